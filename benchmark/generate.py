"""`bench generate`: any face video or still image + any audio file -> a lip-synced mp4 with the audio muxed.

Every registered model that makes video generates here, each with its own framing: the models that animate a
whole head from one photo (Diffused Heads, the VASA-style model, the static baseline) through
benchmark/generate_heads.py; the face-box models below. `load_generator` takes a checkpoint file, a registered
weights name, or a run (its folder or its name under `runs/`), and the model runs on CUDA when present.

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
   aborts on them: Wav2Lip#163, #229); a face file with no face at all is an error naming it;
6. paste-back: `feather` (default) blends the redrawn lower face in through a soft-edged mask, `hard` pastes the
   whole box as inference.py does (models.facecrop.paste_faces).
The original audio file is muxed (AAC), so the output's audio has the input's length.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.generate_io import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from benchmark.generate_io import FrameReader as FrameReader
from benchmark.generate_io import GenerateReport as GenerateReport
from benchmark.generate_io import VideoWriter as VideoWriter
from benchmark.generate_io import build_detector as build_detector
from data.clip import FPS, SAMPLES_PER_FRAME
from data.io import MediaError, read_audio

if TYPE_CHECKING:
    from models.base import TalkingFaceModule
    from models.facecrop import Detector

RUNS_DIR = Path("runs")  # configs/run.yaml run.out_dir: where a run given by name is looked for
SYNTHETIC_WARNING = (
    "{checkpoint} was trained on the synthetic corpus: its faces are drawn cartoons; on a real photo the output "
    "is not meaningful"
)


# ----------------------------------------------------------------------------------------------- model


def resolve_checkpoint(checkpoint: str | os.PathLike[str], runs: Path = RUNS_DIR) -> Path:
    """The weights file of `checkpoint`: a file; a run folder (its model.pt); a run name (`<runs>/*/<name>/`,
    one dataset's); or a registered weights name."""
    from metrics import weights as store
    from models.checkpoints import CheckpointError

    path = Path(checkpoint).expanduser()
    if path.is_dir():
        if not (path / "model.pt").is_file():
            raise CheckpointError(f"{path}: a folder without model.pt (not a finished run)")
        return path / "model.pt"
    if path.is_file():
        return path
    named = sorted(runs.glob(f"*/{checkpoint}/model.pt")) if path.name == str(checkpoint) else []
    if len(named) > 1:
        raise CheckpointError(f"run name {checkpoint!r} is a run of several datasets: give its folder: {named}")
    if named:
        return named[0]
    resolved, _ = store.resolve(str(checkpoint))
    return Path(resolved)


def trained_corpus(path: Path) -> str | None:
    """The corpus a run's weights were trained on (its config.yaml's dataset), None for a file of no run."""
    from omegaconf import OmegaConf

    run_cfg = path.parent / "config.yaml"
    if path.name != "model.pt" or not run_cfg.is_file():
        return None
    cfg = OmegaConf.load(run_cfg)
    name, target = OmegaConf.select(cfg, "dataset.name"), OmegaConf.select(cfg, "dataset.target")
    # a renamed copy of the synthetic dataset config still names the synthetic corpus as its target
    return "synthetic" if "synthetic" in (name, target) else (str(name) if name is not None else None)


def synthetic_warning(path: Path | None, face: str | os.PathLike[str]) -> str | None:
    """The warning for weights trained only on the synthetic corpus driving a face from outside it (a file with
    no truth sidecar of the synthetic writer: a real photo or video), else None."""
    from data.synthetic.writer import truth_paths

    if path is None or trained_corpus(path) != "synthetic" or truth_paths(face)[1].exists():
        return None
    return SYNTHETIC_WARNING.format(checkpoint=path)


def best_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_generator(
    model: str,
    checkpoint: str | os.PathLike[str] | None,
    preset: str | None = None,
    params: dict[str, Any] | None = None,
    *,
    device: str | None = None,
    runs: Path = RUNS_DIR,
) -> TalkingFaceModule:
    """The model's LightningModule with `checkpoint` loaded, in eval mode, on `device` (None: cuda when present).

    `checkpoint` is a file (official formats, Lightning checkpoints, a run's model.pt), a run (folder or name)
    or a registered weights name; None only for a model without weights (the static baseline). Face-box models:
    a run's model.pt is read with its run's config.yaml (preset and params) when that sits beside it, otherwise
    the `paper` then the `tiny` width is tried. Head models load through benchmark.generate_heads.
    """
    from benchmark import registry
    from benchmark.generate_heads import load_head_model

    models = registry.models()
    cls = models.get(model)
    if cls.kind == "component":
        capable = [n for n in models.names() if models.get(n).kind != "component"]
        raise ValueError(f"model {model!r} is a component that makes no video; `bench generate` supports: {capable}")
    if not cls.trainable:  # the static baseline: no weights to load
        if checkpoint is not None:
            raise ValueError(f"model {model!r} has no weights: leave out --checkpoint")
        module: TalkingFaceModule = cls(cls.config_class()).eval()
        return module.to(device or best_device())
    if checkpoint is None:
        raise ValueError(f"model {model!r} needs --checkpoint (a weights name, a run, or a file)")
    path = resolve_checkpoint(checkpoint, runs)
    if not cls.redraws_faces:
        return load_head_model(model, path, preset, params).eval().to(device or best_device())
    return _load_face_box_model(cls, model, path, preset, params).to(device or best_device())


def _load_face_box_model(
    cls: Any, model: str, path: Path, preset: str | None, params: dict[str, Any] | None
) -> TalkingFaceModule:
    from omegaconf import DictConfig, OmegaConf

    from models.checkpoints import CheckpointError, load_network_weights

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


# ----------------------------------------------------------------------------------------------- pipeline


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
    face_index: int = 0,
    paste: str | None = None,
    seed: int = 0,
    stream: bool = False,
    first_window: int | None = None,
) -> GenerateReport:
    """Reanimate `face` to speak `audio` with `module` and write `out` (mp4, 25 fps, audio muxed).

    `pads` None: the detector's (landmark boxes: the `wav2lip` crop's, as prepared corpora were cut), else the
    model's `default_pads` (inference.py's chin padding for Wav2Lip's S3FD-like boxes).
    `paste`: face-box models `feather` (None: the default) or `hard`; head models None (the head crop is the
    video) or `feather` / `hard` (put back into the photo). `seed`, `stream`, `first_window`: head models
    (benchmark.generate_heads)."""
    from rich.progress import Progress

    from models.facecrop import DlibDetector, crop_faces, paste_faces

    face, out = Path(face), Path(out)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"{out}: the output must be an .mp4 file")
    if not module.redraws_faces:
        from benchmark.generate_heads import generate_head_video

        return generate_head_video(
            module,
            face,
            audio,
            out,
            detector=detector,
            box=box,
            landmarks=landmarks,
            face_index=face_index,
            paste=paste,
            seed=seed,
            stream=stream,
            first_window=first_window,
            progress=progress,
        )
    if stream or first_window is not None:
        raise ValueError("--stream and --first-window are for the VASA-style model (windowed motion)")
    t0 = time.perf_counter()
    wav = read_audio(audio)
    num_frames = len(wav) // SAMPLES_PER_FRAME
    if num_frames == 0:
        raise MediaError(audio, f"audio shorter than one video frame ({len(wav)} samples at 16 kHz)")
    reader = FrameReader(face)
    det = build_detector(detector, face, box, landmarks, face_index=face_index)
    if pads is None:
        pads = det.pads if det.pads is not None else module.default_pads
    boxes = detect_boxes(reader, det, num_frames, pads, smooth=smooth, chunk_frames=chunk_frames, progress=progress)
    n_src = len(boxes)
    has_face = boxes[:, 0] >= 0
    if not has_face.any() and isinstance(det, DlibDetector) and 0 < det.faces_seen <= face_index:
        raise MediaError(
            face,
            f"--face-index {face_index} asks for face {face_index + 1} (largest first) but it has {det.faces_seen}",
        )
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
    with writer:
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("generating", total=num_frames)
            for idx, frames in _output_chunks(reader, n_src, num_frames, chunk_frames):
                src = idx % n_src
                ok = has_face[src]
                frames = np.array(frames, copy=True)
                if ok.any():
                    faces = module.redraw_faces(crop_faces(frames[ok], boxes[src[ok]]), windows[idx[ok]])
                    frames[ok] = paste_faces(frames[ok], boxes[src[ok]], faces, paste or "feather")
                no_face.extend(idx[~ok].tolist())
                writer.write(frames)
                bar.advance(task, len(idx))
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
