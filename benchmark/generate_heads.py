"""`bench generate` for the models that animate a whole head from one photo (Diffused Heads, the VASA-style model,
the static baseline): face -> the model's own crop -> generation -> mp4 with the audio muxed.

1. framing: the identity frame (the image, or a video's first frame) is cut with the model's crop of the shared
   face layer (data.faces.crops: Diffused Heads' 128 px aligned head `AlignedHeadCrop`, the VASA-style model's
   256 px `VasaCrop`), from the frame's 68 landmarks (the face file's truth sidecar, a landmarks file, or dlib;
   `face_index` K: the K-th face by box area, largest first). `full` / `fixed` boxes give a plain resize of the
   box instead. The static baseline has no crop: its output is the frame itself;
2. generation: T = N // 640 frames at 25 fps from the crop, as the runner generates a test clip
   (`TalkingFaceModule.generate`). Neither model follows a pose prior (models/diffused_heads/module.py,
   models/vasa/module.py: pose_prior is unused), so a video gives its first frame and nothing else;
3. output: the animated head crop itself, or with `paste` the crop put back into the identity frame through the
   inverse of the alignment (models.facecrop.paste_aligned: feathered, or `hard` with no ramp);
4. streaming (models with windowed motion, the VASA-style model): frames go to the ffmpeg encoder window by
   window as they are made, and the report gives the first frame's latency split into the audio it must wait
   for (benchmark/perf/latency.py's rule for the model, with the first window's length) and the compute, and
   the sustained frames/s after it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from data.clip import FPS, SAMPLES_PER_FRAME
from data.io import MediaError, read_audio

if TYPE_CHECKING:
    from benchmark.generate_io import GenerateReport
    from models.base import TalkingFaceModule

PASTE_CHUNK = 32  # frames pasted and written at a time


# ----------------------------------------------------------------------------------------------- model


def load_head_model(model: str, path: Path, preset: str | None, params: Mapping[str, Any] | None) -> TalkingFaceModule:
    """The module of `model` (and the models it needs) with checkpoint `path` loaded, through the runner's own
    loader (benchmark.train.load_checkpoint_module): a run's model.pt with its run's config.yaml (architecture,
    preset, needs), any other file with the config composed for `preset` (None: `paper`, then `tiny`)."""
    from omegaconf import DictConfig, OmegaConf

    from benchmark.config import compose
    from benchmark.train import load_checkpoint_module
    from models.checkpoints import CheckpointError

    run_cfg = path.parent / "config.yaml"
    candidates: list[tuple[str, DictConfig]] = []
    if run_cfg.exists() and path.name == "model.pt":
        cfg = OmegaConf.load(run_cfg)
        assert isinstance(cfg, DictConfig)  # a run's config.yaml is a mapping
        if cfg.model.get("name") != model:
            raise CheckpointError(f"{path}: a run of model {cfg.model.get('name')!r}, not {model!r}")
        if preset and preset != cfg.run.get("preset"):
            raise CheckpointError(f"{path}: a run of preset {cfg.run.get('preset')!r}, not {preset!r}")
        candidates.append((str(cfg.run.get("preset")), cfg))
    else:
        for name in [preset] if preset else ["paper", "tiny"]:
            candidates.append((name, compose(model, "synthetic", name)))
    errors = []
    for name, cfg in candidates:
        for key, value in (params or {}).items():
            OmegaConf.update(cfg, f"model.params.{key}", value, force_add=True)
        OmegaConf.update(cfg, "run.checkpoint", str(path), force_add=True)
        try:
            module, _ = load_checkpoint_module(cfg)
        except CheckpointError as err:
            errors.append(f"{name}: {err}")
            continue
        return module
    raise CheckpointError(f"{path} fits no {model} preset. " + " | ".join(errors))


def registry_name(module: TalkingFaceModule) -> str:
    """The model registry's name of `module`'s class (what benchmark.perf.latency keys its rules by)."""
    from benchmark import registry

    models = registry.models()
    for name in models.names():
        if models.get(name) is type(module):
            return name
    raise KeyError(f"{type(module).__name__} is not a registered model")


# ----------------------------------------------------------------------------------------------- framing


def head_transform(
    module: TalkingFaceModule,
    frame: np.ndarray,
    face: Path,
    *,
    detector: str = "auto",
    box: Sequence[int] | None = None,
    landmarks: str | None = None,
    face_index: int = 0,
) -> np.ndarray | None:
    """The frame -> crop map [2, 3] of the model's crop for the identity frame (None: the model has no crop; the
    face is still looked for, so that every model refuses a photo without one).

    MediaError naming `face` when no face is found (or fewer than face_index + 1)."""
    from benchmark.generate_io import IMAGE_SUFFIXES, build_detector
    from data.faces.crops import CROPS, box_transform
    from models.facecrop import DlibDetector, LandmarksDetector

    det = build_detector(detector, face, box, landmarks, face_index=face_index)
    if isinstance(det, DlibDetector):
        lm = det.landmarks(frame[None])
    elif isinstance(det, LandmarksDetector):
        lm = det.points[:1]
    else:  # full / fixed: a box, no landmarks to align on
        return None if module.crop is None else box_transform(det(frame[None])[0], CROPS[module.crop].size)
    if not np.isfinite(lm).all():
        seen = getattr(det, "faces_seen", 0)
        why = (
            f"--face-index {face_index} asks for face {face_index + 1} (largest first) but it has {seen}"
            if face_index > 0 and seen > 0
            else f"no face found in {'the image' if face.suffix.lower() in IMAGE_SUFFIXES else 'its first frame'} "
            f"(detector {det.name})"
        )
        raise MediaError(face, why + "; try another photo or --detector fixed --box X1 Y1 X2 Y2")
    if module.crop is None:
        return None
    return np.asarray(CROPS[module.crop].transforms(lm.astype(np.float64), frame.shape[1::-1])[0], np.float64)


def cut_head(module: TalkingFaceModule, frame: np.ndarray, m: np.ndarray | None) -> np.ndarray:
    """The identity the model reads: the frame under its crop's map (the frame itself without a crop)."""
    from data.faces.crops import CROPS

    if m is None or module.crop is None:
        return frame
    return CROPS[module.crop].apply(frame, m)


# ----------------------------------------------------------------------------------------------- generation


def _windows(
    module: TalkingFaceModule,
    identity: np.ndarray,
    wav: np.ndarray,
    *,
    seed: int,
    stream: bool,
    first_window: int | None,
) -> Iterator[np.ndarray]:
    """uint8 [n, S, S, 3] frames of the one clip: window by window when streaming, else all at once."""
    options: dict[str, Any] = {} if first_window is None else {"first_window": first_window}
    if stream:
        for window in module.stream(identity[None], wav[None], seed=seed, **options):  # type: ignore[operator]
            yield window[0]
    else:
        yield module.generate(identity[None], wav[None], seed=seed, **options)[0]


def generate_head_video(
    module: TalkingFaceModule,
    face: Path,
    audio: str | os.PathLike[str],
    out: Path,
    *,
    detector: str = "auto",
    box: Sequence[int] | None = None,
    landmarks: str | None = None,
    face_index: int = 0,
    paste: str | None = None,
    seed: int = 0,
    stream: bool = False,
    first_window: int | None = None,
    progress: bool = True,
) -> GenerateReport:
    """`face` animated by `module` to speak `audio`, written to `out` (module docstring); `paste` None writes the
    head crop, `feather` / `hard` puts it back into the identity frame."""
    from rich.progress import Progress

    from benchmark.generate_io import FrameReader, GenerateReport, StreamLatency, VideoWriter
    from benchmark.perf.latency import first_frame_rule
    from models.facecrop import FEATHER, PASTE_MODES, paste_aligned

    t0 = time.perf_counter()
    windowed = callable(getattr(module, "stream", None))
    if (stream or first_window is not None) and not windowed:
        raise ValueError(
            f"{type(module).__name__} makes no motion windows to stream: --stream and --first-window are for the "
            "VASA-style model"
        )
    if paste is not None and paste not in PASTE_MODES:
        raise ValueError(f"paste mode must be one of {PASTE_MODES}, got {paste!r}")
    wav = read_audio(audio)
    num_frames = len(wav) // SAMPLES_PER_FRAME
    if num_frames == 0:
        raise MediaError(audio, f"audio shorter than one video frame ({len(wav)} samples at 16 kHz)")
    reader = FrameReader(face)
    first = next(reader.chunks(1), None)
    if first is None or len(first) == 0:
        raise MediaError(face, "decoded no video frames (truncated or empty)")
    frame = np.ascontiguousarray(first[0])
    m = head_transform(module, frame, face, detector=detector, box=box, landmarks=landmarks, face_index=face_index)
    identity = cut_head(module, frame, m)
    pasting = paste is not None and m is not None
    height, width = frame.shape[:2] if pasting else identity.shape[:2]
    latency: StreamLatency | None = None
    writer = VideoWriter(out, width, height, audio)
    written = 0
    with writer:
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("generating", total=num_frames)
            g0 = time.perf_counter()
            t_first = 0.0
            n_first = 0
            for frames in _windows(module, identity, wav, seed=seed, stream=stream, first_window=first_window):
                # pasted frames are photo-sized: hand them to the encoder a few at a time, not a clip at once
                for lo in range(0, len(frames), PASTE_CHUNK):
                    part = frames[lo : lo + PASTE_CHUNK]
                    if pasting:
                        assert m is not None  # pasting implies a crop map
                        feather = 0.0 if paste == "hard" else FEATHER
                        part = np.stack(list(paste_aligned(frame, part, m, feather=feather)))
                    writer.write(part)
                if written == 0:
                    t_first, n_first = time.perf_counter() - g0, len(frames)
                written += len(frames)
                bar.advance(task, len(frames))
            if stream:
                rest = time.perf_counter() - g0 - t_first
                cfg = getattr(module, "cfg", None)
                window: int = first_window if first_window is not None else int(getattr(cfg, "window", n_first))
                # the model's own rule (benchmark/perf/latency.py) for a model whose window is the first one
                shim = SimpleNamespace(cfg=dataclasses.replace(cfg, window=window)) if cfg is not None else module
                rule = first_frame_rule(registry_name(module), shim)
                latency = StreamLatency(
                    first_window=n_first,
                    algorithmic_s=rule.lookahead_s,
                    compute_s=t_first,
                    sustained_fps=(written - n_first) / rest if written > n_first and rest > 0 else float("nan"),
                    rule=rule.rule,
                )
        if written != num_frames:
            raise RuntimeError(f"{type(module).__name__} made {written} frames for {num_frames} frames of audio")
    return GenerateReport(
        out=str(out),
        frames=num_frames,
        fps=FPS,
        audio_seconds=len(wav) / 16000.0,
        face_frames=1,
        detector=detector if module.crop is not None else "none (the whole frame)",
        seconds=time.perf_counter() - t0,
        framing=(f"{module.crop} crop" + (f", pasted back ({paste})" if pasting else "")) if module.crop else "frame",
        latency=latency,
    )
