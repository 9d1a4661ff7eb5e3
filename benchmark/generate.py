"""`bench generate`: any face video or still image + any audio file -> a lip-synced mp4 with the audio muxed.

The pipeline of Rudrabha/Wav2Lip `inference.py` (face detection, box smoothing, paste-back) for every model with a
face-crop interface (`redraws_faces`, models/base.py: wav2lip, wav2lip_gan, lipgan):
1. audio: decoded by ffmpeg from any container / rate to 16 kHz mono; T = N // 640 output frames at 25 fps;
2. face: a still image is repeated; a video is resampled to 25 fps, truncated to T frames or looped
   (frame i uses frame i % P) as inference.py does;
3. pass 1 streams the video once and keeps only the face boxes (detector -> pads -> smoothing: the box rule of
   data.faces.boxes; the landmark-based detectors `dlib` and `landmarks` default to the pads of preparation's
   `wav2lip` crop, so the faces are framed as in the prepared corpora the models train on);
4. pass 2 streams it again in chunks of `chunk_frames`: crop -> model -> paste back -> ffmpeg encoder pipe,
   so memory holds one chunk of frames whatever the video's length;
5. frames where no face was found pass through unchanged and are counted in the report (the official script
   aborts on them: Wav2Lip#163, #229).
The original audio file is muxed (AAC), so the output's audio has the input's length.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from data.clip import FPS, SAMPLES_PER_FRAME
from data.io import MediaError, ffmpeg_exe, probe, read_audio

if TYPE_CHECKING:
    from models.base import TalkingFaceModule
    from models.facecrop import Detector

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


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

    def summary(self) -> str:
        shown = ", ".join(map(str, self.no_face[:10])) + (" ..." if len(self.no_face) > 10 else "")
        faces = (
            f"{len(self.no_face)} of {self.frames} frames had no face ({self.detector}) and passed through unchanged"
            + (f": {shown}" if self.no_face else "")
        )
        return (
            f"wrote {self.out}: {self.frames} frames at {self.fps} fps, audio {self.audio_seconds:.2f} s, "
            f"{self.seconds:.1f} s ({self.frames / max(self.seconds, 1e-9):.1f} frames/s). {faces}"
        )


# ----------------------------------------------------------------------------------------------- model


def load_generator(
    model: str, checkpoint: str | os.PathLike[str], preset: str | None = None, params: dict[str, Any] | None = None
) -> TalkingFaceModule:
    """The model's LightningModule with `checkpoint` loaded into its network, in eval mode.

    `checkpoint` is a file (official formats, Lightning checkpoints, a run's model.pt) or a registered weights
    name. A run's model.pt is read with its run's config.yaml (preset and params) when that sits beside it;
    otherwise the `paper` then the `tiny` width is tried.
    """
    from omegaconf import DictConfig, OmegaConf

    from benchmark import registry
    from metrics import weights as store
    from models.checkpoints import CheckpointError, load_network_weights

    cls = registry.models().get(model)
    if not cls.redraws_faces:  # the face-redraw hook of models/base.py
        capable = [n for n in registry.models().names() if registry.models().get(n).redraws_faces]
        raise ValueError(f"model {model!r} does not reanimate face videos; `bench generate` supports: {capable}")
    path = Path(checkpoint)
    if not path.exists():
        path, _ = store.resolve(str(checkpoint))
    params = dict(params or {})
    run_cfg = path.parent / "config.yaml"
    if run_cfg.exists() and (path.parent / "model.pt") == path:
        cfg = OmegaConf.load(run_cfg)
        assert isinstance(cfg, DictConfig)  # a run's config.yaml is a mapping
        # to_container's declared union: a mapping section gives a dict
        raw: dict[str, Any] = OmegaConf.to_container(  # type: ignore[assignment]
            cfg.model.get("params") or {}, resolve=True
        )
        params = {**{k: v for k, v in raw.items() if v is not None}, **params}
        preset = preset or cfg.run.get("preset")
    errors = []
    for name in [preset] if preset else ["paper", "tiny"]:
        module = cls(cls.config_class.preset(name, **params))
        try:
            load_network_weights(module.net, path)
        except CheckpointError as err:
            errors.append(f"{name}: {err}")
            continue
        generator: TalkingFaceModule = module.eval()
        return generator
    raise CheckpointError(f"{path} fits no {model} preset. " + " | ".join(errors))


# ----------------------------------------------------------------------------------------------- media


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


# ----------------------------------------------------------------------------------------------- pipeline


def build_detector(name: str, face: Path, box: Sequence[int] | None = None, landmarks: str | None = None) -> Detector:
    """A `models.facecrop.DETECTORS` entry; `auto` = the face file's truth landmarks if present, else dlib."""
    from benchmark.registry import suggest
    from data.synthetic.writer import truth_paths
    from models.facecrop import DETECTORS

    if name == "auto":
        sidecar = truth_paths(face)[1]
        if landmarks or sidecar.exists():
            return DETECTORS["landmarks"](landmarks or sidecar)
        return DETECTORS["dlib"]()
    if name not in DETECTORS:
        raise suggest("face detector", name, [*DETECTORS, "auto"])
    if name == "fixed":
        return DETECTORS["fixed"](box)
    if name == "landmarks":
        sidecar = truth_paths(face)[1]
        if not landmarks and not sidecar.exists():
            raise ValueError(f"detector 'landmarks' needs --landmarks FILE ([T,68,2] .npy/.npz); {sidecar} missing")
        return DETECTORS["landmarks"](landmarks or sidecar)
    return DETECTORS[name]()


def _output_chunks(
    reader: FrameReader, n_src: int, num_frames: int, chunk_frames: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(output frame indices, their source frames) in chunks; sources loop, a short source is read once."""
    if n_src <= chunk_frames:
        cache = np.ascontiguousarray(next(reader.chunks(chunk_frames))[:n_src])
        for lo in range(0, num_frames, chunk_frames):
            idx = np.arange(lo, min(lo + chunk_frames, num_frames))
            yield idx, cache[idx % n_src]
        return
    written = 0
    while written < num_frames:
        pos = 0
        for chunk in reader.chunks(chunk_frames):
            chunk = chunk[: min(n_src - pos, num_frames - written)]
            if len(chunk) == 0:
                break
            yield np.arange(written, written + len(chunk)), chunk
            pos += len(chunk)
            written += len(chunk)
            if pos >= n_src or written >= num_frames:
                break
        if pos < n_src and written < num_frames:
            raise MediaError(reader.path, f"decoded {pos} frames on a second read, {n_src} on the first")


def detect_boxes(
    reader: FrameReader,
    det: Detector,
    num_frames: int,
    pads: Sequence[int],
    *,
    smooth: bool = True,
    chunk_frames: int = 128,
    progress: bool = False,
) -> np.ndarray:
    """Pass 1: int64 boxes [n, 4] of the first n = min(num_frames, video length) source frames, -1 rows where no
    face was found: detector -> pads (clipped to the frame) -> forward-mean smoothing (data.faces.boxes)."""
    from rich.progress import Progress

    from models.facecrop import pad_boxes, smooth_boxes

    pads = tuple(pads)
    if len(pads) != 4:
        raise ValueError(f"pads must be 4 numbers (top bottom left right), got {pads}")
    found: list[np.ndarray] = []
    n_src = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("detecting faces", total=num_frames)
        for chunk in reader.chunks(chunk_frames):
            chunk = chunk[: num_frames - n_src]
            found.append(det(chunk, n_src))
            n_src += len(chunk)
            bar.advance(task, len(chunk))
            if n_src >= num_frames:
                break
    if n_src == 0:
        raise MediaError(reader.path, "decoded no video frames (truncated or empty)")
    boxes = pad_boxes(np.concatenate(found), pads, reader.width, reader.height)
    return smooth_boxes(boxes) if smooth else boxes


def generate_video(
    module: TalkingFaceModule,
    face: str | os.PathLike[str],
    audio: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    detector: str = "auto",
    box: Sequence[int] | None = None,
    landmarks: str | None = None,
    pads: Sequence[int] | None = None,
    smooth: bool = True,
    chunk_frames: int = 128,
    progress: bool = True,
) -> GenerateReport:
    """Reanimate `face` to speak `audio` with `module` and write `out` (mp4, 25 fps, audio muxed).

    `pads` None: the detector's (landmark boxes: the `wav2lip` crop's, as prepared corpora were cut), else the
    model's `default_pads` (inference.py's chin padding for Wav2Lip's S3FD-like boxes)."""
    from rich.progress import Progress

    from models.facecrop import crop_faces, paste_faces

    t0 = time.perf_counter()
    face, out = Path(face), Path(out)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"{out}: the output must be an .mp4 file")
    wav = read_audio(audio)
    num_frames = len(wav) // SAMPLES_PER_FRAME
    if num_frames == 0:
        raise MediaError(audio, f"audio shorter than one video frame ({len(wav)} samples at 16 kHz)")
    reader = FrameReader(face)
    det = build_detector(detector, face, box, landmarks)
    if pads is None:
        pads = det.pads if det.pads is not None else module.default_pads
    boxes = detect_boxes(reader, det, num_frames, pads, smooth=smooth, chunk_frames=chunk_frames, progress=progress)
    n_src = len(boxes)
    has_face = boxes[:, 0] >= 0
    if not has_face.any():
        raise MediaError(
            face,
            f"no face found in any of its {n_src} frames (detector {getattr(det, 'name', detector)}); nothing "
            "to lip-sync (try --detector fixed --box X1 Y1 X2 Y2 or another photo)",
        )

    # pass 2: output frame i uses source frame i % n_src (loop; an image is repeated)
    windows = module.face_audio_windows(wav, num_frames)
    writer = VideoWriter(out, reader.width, reader.height, audio)
    no_face: list[int] = []
    try:
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("generating", total=num_frames)
            for idx, frames in _output_chunks(reader, n_src, num_frames, chunk_frames):
                src = idx % n_src
                ok = has_face[src]
                frames = np.array(frames, copy=True)
                if ok.any():
                    faces = module.redraw_faces(crop_faces(frames[ok], boxes[src[ok]]), windows[idx[ok]])
                    frames[ok] = paste_faces(frames[ok], boxes[src[ok]], faces)
                no_face.extend(idx[~ok].tolist())
                writer.write(frames)
                bar.advance(task, len(idx))
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return GenerateReport(
        out=str(out),
        frames=num_frames,
        fps=FPS,
        audio_seconds=len(wav) / 16000.0,
        face_frames=n_src,
        no_face=no_face,
        detector=getattr(det, "name", detector),
        seconds=time.perf_counter() - t0,
    )
