"""Streamed I/O for preparation: ffmpeg decoding through a pipe in fixed-size blocks, .npy files appended row by
row, so a one-hour video never has to fit in memory."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from data.clip import FPS, SAMPLE_RATE
from data.io import MediaError, ffmpeg_exe


class NpyWriter:
    """Append rows to a .npy file on disk; the header (fixed 128 bytes) is written with the final shape."""

    HEADER = 128

    def __init__(self, path: Path, dtype: str, row_shape: tuple[int, ...]):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.rows = 0
        self._f: BinaryIO = open(self.path, "wb")
        self._f.write(b"\0" * self.HEADER)

    def append(self, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if arr.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows of shape {self.row_shape} expected, got {arr.shape[1:]}")
        self._f.write(arr.tobytes())
        self.rows += arr.shape[0]

    def close(self, rows: int | None = None) -> int:
        """Finish the file, keeping only the first `rows` rows when given. Returns the row count."""
        if rows is not None and rows < self.rows:
            self.rows = rows
            self._f.truncate(self.HEADER + rows * int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize)
        text = repr({"descr": self.dtype.str, "fortran_order": False, "shape": (self.rows, *self.row_shape)})
        pad = self.HEADER - 10 - len(text) - 1
        header = b"\x93NUMPY\x01\x00" + np.uint16(self.HEADER - 10).tobytes() + text.encode() + b" " * pad + b"\n"
        self._f.seek(0)
        self._f.write(header)
        self._f.close()
        return self.rows


def _stream(args: list[str], path: Path, nbytes: int) -> Iterator[bytes]:
    """Run ffmpeg and yield its stdout in blocks of `nbytes` (the last may be shorter); MediaError on failure.

    stderr goes to a temporary file, not a pipe: a damaged file can make ffmpeg report thousands of errors,
    which would fill a pipe nobody reads and stall the decoder.
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args],
            stdout=subprocess.PIPE,
            stderr=err,
        )
        stdout = proc.stdout
        assert stdout is not None  # stdout=PIPE
        try:
            while True:
                block = stdout.read(nbytes)
                if not block:
                    break
                yield block
        finally:
            stdout.close()
            code = proc.wait()
        if code != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            raise MediaError(path, "ffmpeg failed: " + (lines[-1] if lines else f"exit code {code}"))


def stream_frames(
    path: str | os.PathLike, width: int, height: int, chunk_frames: int
) -> Generator[np.ndarray, None, None]:
    """uint8 [<=chunk_frames, H, W, 3] RGB blocks of the video resampled to 25 fps, in order."""
    path = Path(path)
    frame_bytes = width * height * 3
    args = ["-i", str(path), "-map", "0:v:0", "-vf", f"fps={FPS}", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    for block in _stream(args, path, frame_bytes * chunk_frames):
        n = len(block) // frame_bytes
        if n:
            yield np.frombuffer(block[: n * frame_bytes], np.uint8).reshape(n, height, width, 3)


def stream_audio(path: str | os.PathLike, chunk_samples: int) -> Generator[np.ndarray, None, None]:
    """float32 mono 16 kHz blocks in [-1, 1] of the first audio stream."""
    path = Path(path)
    args = ["-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "pipe:"]
    for block in _stream(args, path, 2 * chunk_samples):
        n = len(block) // 2
        yield np.frombuffer(block[: 2 * n], "<i2").astype(np.float32) / 32768.0


def read_rows(path: Path, start: int, stop: int, dtype=np.float32) -> np.ndarray:
    """Rows [start, stop) of a 1-D .npy written by NpyWriter, read without mapping the file."""
    with open(path, "rb") as f:
        f.seek(NpyWriter.HEADER + start * np.dtype(dtype).itemsize)
        return np.fromfile(f, dtype=dtype, count=max(0, stop - start))


def truncate_npy(path: Path, rows: int) -> None:
    """Shorten a 1-D float32 NpyWriter file to `rows` rows (the audio, cut to whole video frames)."""
    w = NpyWriter.__new__(NpyWriter)
    w.path, w.dtype, w.row_shape = path, np.dtype("<f4"), ()
    w.rows = (path.stat().st_size - NpyWriter.HEADER) // 4
    w._f = open(path, "r+b")
    w.close(rows=min(rows, w.rows))
