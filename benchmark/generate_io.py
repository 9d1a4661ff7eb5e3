"""What `bench generate`'s two pipelines share (benchmark/generate.py for face-box models, benchmark/generate_heads.py
for head models): the face file reader, the mp4 writer with the audio muxed, the face detector choice, and the
report (with a streamed run's first-frame latency)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from data.clip import FPS
from data.io import MediaError, ffmpeg_exe, probe

if TYPE_CHECKING:
    from models.facecrop import Detector

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class StreamLatency:
    """First-frame latency of a streamed generation: `algorithmic_s` of audio must have arrived (the model's
    lookahead: its first window), then `compute_s` of work (identity encoding, the first window's sampling and
    decoding, its paste and hand-over to the encoder); `sustained_fps` is the rate of the frames after it."""

    first_window: int
    algorithmic_s: float
    compute_s: float
    sustained_fps: float
    rule: str

    @property
    def first_frame_s(self) -> float:
        return self.algorithmic_s + self.compute_s

    def summary(self) -> str:
        return (
            f"first frame after {self.first_frame_s:.3f} s = {self.algorithmic_s:.3f} s algorithmic ({self.rule}) "
            f"+ {self.compute_s:.3f} s compute; sustained {self.sustained_fps:.1f} frames/s after the first window "
            f"of {self.first_window} frames"
        )


@dataclass
class GenerateReport:
    out: str
    frames: int
    fps: int
    audio_seconds: float
    face_frames: int  # distinct source frames (1 for an image)
    no_face: list[int] = field(default_factory=list)  # output frame indices passed through unchanged
    detector: str = ""
    seconds: float = 0.0
    framing: str = "face box"  # what the frames show: the face box pasted back, or a head crop
    latency: StreamLatency | None = None  # set when streamed (benchmark.generate_heads)

    def summary(self) -> str:
        shown = ", ".join(map(str, self.no_face[:10])) + (" ..." if len(self.no_face) > 10 else "")
        faces = (
            f"{len(self.no_face)} of {self.frames} frames had no face ({self.detector}) and passed through unchanged"
            + (f": {shown}" if self.no_face else "")
        )
        text = (
            f"wrote {self.out}: {self.frames} frames at {self.fps} fps, audio {self.audio_seconds:.2f} s, "
            f"{self.seconds:.1f} s ({self.frames / max(self.seconds, 1e-9):.1f} frames/s)."
        )
        if self.framing != "face box":
            text += f" Framing: {self.framing}."
        else:
            text += f" {faces}"
        return text + (f"\nstreamed: {self.latency.summary()}" if self.latency is not None else "")


class FrameReader:
    """Streams uint8 RGB frames of a video at 25 fps (or one image) in chunks; `restart` for looping."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.image = None
        if self.path.suffix.lower() in IMAGE_SUFFIXES:
            import cv2

            img = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
            if img is None:
                raise MediaError(self.path, "cannot read the image (corrupt or unsupported format)")
            self.image = np.ascontiguousarray(img[:, :, ::-1])
            self.height, self.width = self.image.shape[:2]
        else:
            info = probe(self.path)
            if not info.has_video:
                raise MediaError(self.path, "has no video stream (give a face video or an image)")
            self.width, self.height = info.width, info.height
        self._proc: subprocess.Popen[bytes] | None = None

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """uint8 [<=size, H, W, 3] chunks from the start of the video (an image: one chunk of one frame)."""
        if self.image is not None:
            yield self.image[None]
            return
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(self.path)]
        cmd += ["-vf", f"fps={FPS}", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None  # stdout=PIPE
        frame_bytes = self.width * self.height * 3
        try:
            while True:
                raw = proc.stdout.read(frame_bytes * size)
                n = len(raw) // frame_bytes
                if n == 0:
                    break
                yield np.frombuffer(raw[: n * frame_bytes], np.uint8).reshape(n, self.height, self.width, 3)
                if n < size:
                    break
        finally:
            proc.stdout.close()
            proc.kill()
            proc.wait()


class VideoWriter:
    """H.264 mp4 at 25 fps written through an ffmpeg pipe, with an audio file muxed (AAC)."""

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, audio: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}.mp4")
        args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        args += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(FPS), "-i", "pipe:"]
        args += ["-i", str(audio), "-map", "0:v", "-map", "1:a:0"]
        # yuv420p needs even sizes: pad odd frames by one pixel rather than fail
        args += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18"]
        args += ["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(self.tmp)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frames: np.ndarray) -> None:
        assert self.proc.stdin is not None  # stdin=PIPE
        try:
            self.proc.stdin.write(np.ascontiguousarray(frames).tobytes())
        except BrokenPipeError:
            self.close(ok=False)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        # an interrupted generation (an error, Ctrl-C) leaves no half-written output; a finished one is renamed in
        if kind is not None:
            self.abort()
        else:
            self.close()

    def abort(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.tmp.unlink(missing_ok=True)

    def close(self, ok: bool = True) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        assert self.proc.stderr is not None  # stderr=PIPE
        err = self.proc.stderr.read().decode(errors="replace").strip()
        code = self.proc.wait()
        if code != 0 or not ok:
            self.tmp.unlink(missing_ok=True)
            raise MediaError(self.path, "ffmpeg failed: " + (err.splitlines()[-1] if err else f"exit code {code}"))
        os.replace(self.tmp, self.path)


def build_detector(
    name: str,
    face: Path,
    box: Sequence[int] | None = None,
    landmarks: str | None = None,
    *,
    face_index: int = 0,
) -> Detector:
    """A `models.facecrop.DETECTORS` entry; `auto` = the face file's truth landmarks if present, else dlib.
    `face_index` (the K-th face, largest first) needs a detector that finds several faces: dlib."""
    from benchmark.registry import suggest
    from data.synthetic.writer import truth_paths
    from models.facecrop import DETECTORS

    if name == "auto":
        sidecar = truth_paths(face)[1]
        if landmarks or sidecar.exists():
            name = "landmarks"
        else:
            return DETECTORS["dlib"](face_index)
    if name not in DETECTORS:
        raise suggest("face detector", name, [*DETECTORS, "auto"])
    if face_index and name != "dlib":
        raise ValueError(f"--face-index picks among the faces dlib finds; detector {name!r} gives one face")
    if name == "dlib":
        return DETECTORS["dlib"](face_index)
    if name == "fixed":
        return DETECTORS["fixed"](box)
    if name == "landmarks":
        sidecar = truth_paths(face)[1]
        if not landmarks and not sidecar.exists():
            raise ValueError(f"detector 'landmarks' needs --landmarks FILE ([T,68,2] .npy/.npz); {sidecar} missing")
        return DETECTORS["landmarks"](landmarks or sidecar)
    return DETECTORS[name]()
