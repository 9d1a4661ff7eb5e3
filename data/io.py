"""Reading and writing media files with the ffmpeg binary that imageio-ffmpeg ships.

Decoding always resamples to the clip contract's rates (25 fps video, 16 kHz mono audio; docs/clip_contract.md),
so nothing past this module ever sees another rate. Every failure is a `MediaError` naming the file.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.signal

from data.clip import FPS, SAMPLE_RATE


class MediaError(RuntimeError):
    """A media file could not be read or written; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        # raised in pool workers: the default reduce passes only the message back, and the parent's failed
        # unpickling then reads as "a process in the process pool was terminated abruptly"
        return (type(self), (self.path, self.problem))


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of an ffmpeg binary: $TALKBENCH_FFMPEG, else the one bundled with imageio-ffmpeg."""
    env = os.environ.get("TALKBENCH_FFMPEG")
    if env:
        return env
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: list[str], path: str | os.PathLike, stdin: bytes | None = None) -> bytes:
    """ffmpeg quietly on `args`; its stdout, or MediaError naming `path` with ffmpeg's last error line."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args],
        input=stdin,
        capture_output=True,
    )
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(path, "ffmpeg failed: " + (msg[-1] if msg else f"exit code {proc.returncode}"))
    return proc.stdout


@dataclass(frozen=True)
class MediaInfo:
    width: int
    height: int
    fps: float
    duration: float
    has_video: bool
    has_audio: bool
    audio_rate: int | None


_VIDEO_RE = re.compile(r"Stream #\S+.*?: Video: .*?(\d{2,5})x(\d{2,5})")
_FPS_RE = re.compile(r"([\d.]+) (?:fps|tbr)")
_AUDIO_RE = re.compile(r"Stream #\S+.*?: Audio: .*?(\d+) Hz")
_DUR_RE = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")


def probe(path: str | os.PathLike) -> MediaInfo:
    """Stream facts of a media file, read from ffmpeg's own report (imageio-ffmpeg has no ffprobe)."""
    path = Path(path)
    if not path.is_file():
        if path.is_symlink():
            raise MediaError(path, "a symbolic link that leads to no file (dangling or a loop)")
        raise MediaError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True)
    text = proc.stderr
    if "Invalid data found" in text or "Stream #" not in text:
        raise MediaError(path, "not a readable media file (corrupt or unknown container)")
    video = _VIDEO_RE.search(text)
    audio = _AUDIO_RE.search(text)
    fps = 0.0
    if video:
        line = text[video.start() : text.find("\n", video.start())]
        m = _FPS_RE.search(line)
        fps = float(m.group(1)) if m else 0.0
    dur = _DUR_RE.search(text)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    return MediaInfo(
        width=int(video.group(1)) if video else 0,
        height=int(video.group(2)) if video else 0,
        fps=fps,
        duration=duration,
        has_video=video is not None,
        has_audio=audio is not None,
        audio_rate=int(audio.group(1)) if audio else None,
    )


def read_video(
    path: str | os.PathLike, size: tuple[int, int] | None = None, info: MediaInfo | None = None
) -> np.ndarray:
    """Decode all frames as uint8 [T, H, W, 3] RGB at 25 fps; `size` = (width, height) resizes on decode; `info`:
    the file's `probe`, when the caller has it already."""
    info = info if info is not None else probe(path)
    if not info.has_video:
        raise MediaError(path, "has no video stream")
    w, h = size if size else (info.width, info.height)
    filters = [f"fps={FPS}"]
    if size:
        filters.append(f"scale={w}:{h}:flags=area")
    raw = run_ffmpeg(["-i", str(path), "-vf", ",".join(filters), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"], path)
    frame_bytes = w * h * 3
    if len(raw) < frame_bytes:
        raise MediaError(path, "decoded no video frames (truncated or empty)")
    n = len(raw) // frame_bytes
    return np.frombuffer(raw[: n * frame_bytes], np.uint8).reshape(n, h, w, 3).copy()


def read_audio(path: str | os.PathLike) -> np.ndarray:
    """Decode the first audio stream as float32 [N] mono 16 kHz in [-1, 1] (any container, any rate)."""
    info = probe(path)
    if not info.has_audio:
        raise MediaError(path, "has no audio stream")
    raw = run_ffmpeg(["-i", str(path), "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "pipe:"], path)
    return (np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0).copy()


def write_wav(path: str | os.PathLike, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """16-bit PCM mono wav (the form syncnet_python and CREMA-D's AudioWAV use)."""
    pcm = np.clip(np.round(np.asarray(audio, np.float64) * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


FLV_AUDIO_RATE = 22050
MP3_ENCODER_DELAY = 1105  # samples at FLV_AUDIO_RATE: LAME's 576 + the decoder's 529


def _write_flv(path: Path, frames: np.ndarray, audio: np.ndarray) -> None:
    """H.264 + MP3 in FLV (CREMA-D VideoFlash) that decodes in sync from t = 0.

    FLV allows MP3 only at 11.025/22.05/44.1 kHz (16 kHz fails with "Nothing was written into output file"),
    and has no field for the MP3 encoder delay (1105 samples at 22.05 kHz), so ffmpeg would shift the video
    start to 0.05 s: read_video would repeat the first frame and read_audio return the audio 802 samples late.
    So: encode at 22.05 kHz, drop the first 1105 resampled samples and start the audio input at +1105/22050 s;
    -bf 0 keeps B-frame reordering from shifting the video start too. MP3 in FLV then decodes aligned, with
    50-420 samples of end padding (MP3 frames of 1152 samples).
    """
    t, h, w, _ = frames.shape
    a = scipy.signal.resample_poly(np.asarray(audio, np.float64), FLV_AUDIO_RATE // 50, SAMPLE_RATE // 50)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    with tempfile.TemporaryDirectory() as td:
        wav = Path(td) / "a.wav"
        write_wav(wav, np.clip(a[MP3_ENCODER_DELAY:], -1.0, 1.0), FLV_AUDIO_RATE)
        args = [
            "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(FPS), "-i", "pipe:",
            "-itsoffset", f"{MP3_ENCODER_DELAY / FLV_AUDIO_RATE:.6f}", "-i", str(wav),
            "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-bf", "0", "-pix_fmt", "yuv420p",
            "-c:a", "libmp3lame", "-ar", str(FLV_AUDIO_RATE), str(tmp),
        ]  # fmt: skip
        try:
            run_ffmpeg(args, path, stdin=frames.tobytes())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


# Containers and their codecs: mp4 carries H.264 + AAC; avi MPEG-4 + PCM; flv is written by _write_flv.
_CODECS = {
    ".mp4": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    ".flv": [],
    ".avi": ["-c:v", "mpeg4", "-q:v", "2", "-c:a", "pcm_s16le"],
}


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    audio: np.ndarray | None = None,
    fps: int = FPS,
    audio_rate: int = SAMPLE_RATE,
) -> None:
    """Encode uint8 [T, H, W, 3] RGB frames (and optional mono float audio) into mp4/flv/avi, atomically."""
    path = Path(path)
    frames = np.ascontiguousarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise MediaError(path, f"frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    codec = _CODECS.get(path.suffix.lower())
    if codec is None:
        raise MediaError(path, f"unsupported container {path.suffix!r}; use one of {sorted(_CODECS)}")
    if path.suffix.lower() == ".flv" and audio is not None:
        _write_flv(path, frames, audio)
        return
    if path.suffix.lower() == ".flv":
        codec = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]
    t, h, w, _ = frames.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    with tempfile.TemporaryDirectory() as td:
        args = ["-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:"]
        if audio is not None:
            wav = Path(td) / "a.wav"
            write_wav(wav, audio, audio_rate)
            args += ["-i", str(wav)]
        else:
            codec = [c for c in codec if c not in ("-c:a", "aac", "libmp3lame", "pcm_s16le")]
        args += ["-map", "0:v"] + (["-map", "1:a"] if audio is not None else []) + codec + [str(tmp)]
        try:
            run_ffmpeg(args, path, stdin=frames.tobytes())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


_TEMP = re.compile(r"\.tmp(\d+)(\.[A-Za-z0-9]+)?$")


def sweep_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders (`<name>.tmp<pid>[.ext]`) that processes which died left in
    `folder`: a killed corpus write, decode or weights registration leaves no debris for the next start. Temps of
    living processes are kept. Returns what was removed."""
    import shutil

    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        found = _TEMP.search(path.name)
        if found is None or pid_alive(int(found.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextmanager
def temp_beside(final: str | os.PathLike) -> Iterator[Path]:
    """`final` + `.tmp<pid>`: the caller writes it (a file or a folder) and renames it onto `final`. If the
    block fails (a full disk, an interrupt) whatever it wrote there is removed before the error goes on; a process
    killed outright leaves it to `sweep_stale_temps`."""
    import shutil

    final = Path(final)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    try:
        yield tmp
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (this one included; another user's counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
