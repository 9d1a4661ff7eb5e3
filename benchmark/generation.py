"""Generate a run's test split: every clip from its identity frame and its audio, batched, on the run's device.

Clips of equal length are generated together, `run.generate_batch_size` at a time (a batch is made of clips in
test-list order within one length, so the grouping does not depend on the number of processes); clip i is always
generated with seed `run.seed + i`, so a batch gives what one-at-a-time generation gives, up to the float rounding
of batched kernels. Each clip is written as mp4 with its audio as soon as its batch is done; clips already written
by the same weights and settings (`generation_stamp`) are kept, so an interrupted generation resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig

from benchmark.config import config_hash
from benchmark.distributed import EvalGroup, log
from benchmark.features import video_name
from benchmark.results import write_json_atomic
from data.clip import Clip
from data.io import write_video

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from models.base import TalkingFaceModule

POSE_PRIORS = ("none", "video")
PRECISIONS = ("fp32", "bf16")


def generation_stamp(cfg: DictConfig, ckpt: dict[str, Any]) -> dict[str, Any]:
    """What the generated clips depend on: the weights (sha256 or the initialising config), the model's settings
    (its sampler and steps among them: the same weights sampled another way are other clips), seed, conditioning."""
    settings = config_hash(cfg, ("model",))
    return {
        "model": cfg.model.name,
        "weights": ckpt.get("sha256") or settings,
        "settings": settings,
        "source": ckpt.get("source"),
        "seed": int(cfg.run.seed),
        "identity_frame": cfg.run.identity_frame,
        "pose_prior": cfg.run.pose_prior,
        "precision": cfg.run.generate_precision,
    }


def reset_if_stale(out_dir: Path, stamp: dict[str, Any] | None, also: Sequence[Path] = ()) -> None:
    """Drop generated clips (and partial scores) made by other weights or settings than `stamp` describes."""
    if stamp is None:
        return
    path = out_dir / "stamp.json"
    old = json.loads(path.read_text()) if path.exists() else None
    if old != stamp:
        if old is not None or any(out_dir.glob("*.mp4")):
            log(f"[generate] {out_dir}: clips were made by other weights or settings; generating them again")
        for f in out_dir.glob("*.mp4"):
            f.unlink()
        for f in also:
            f.unlink(missing_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, stamp)


def generation_batches(clips: Sequence[Clip], batch_size: int) -> list[list[int]]:
    """Positions of the clips generated together: equal frame counts, at most `batch_size`, test-list order within
    a length; batches ordered by their first clip."""
    by_length: dict[int, list[int]] = {}
    for i, clip in enumerate(clips):
        by_length.setdefault(int(clip.num_frames), []).append(i)
    size = max(1, int(batch_size))
    batches = [idx[k : k + size] for idx in by_length.values() for k in range(0, len(idx), size)]
    return sorted(batches, key=lambda b: b[0])


def generate_batch(
    module: TalkingFaceModule, clips: Sequence[Clip], positions: Sequence[int], cfg: DictConfig
) -> list[np.ndarray]:
    """uint8 [T,H,W,3] videos of the clips at `positions` (equal lengths), each seeded run.seed + its position."""
    batch = [clips[i] for i in positions]
    identity = np.stack([np.asarray(c.video[0]) for c in batch])
    audio = np.stack([c.audio for c in batch])
    prior = np.stack([np.asarray(c.video) for c in batch]) if cfg.run.pose_prior == "video" else None
    seeds = [int(cfg.run.seed) + i for i in positions]
    with precision_context(cfg, module):
        return list(module.generate(identity, audio, pose_prior=prior, seed=seeds))


def precision_context(cfg: DictConfig, module: TalkingFaceModule) -> AbstractContextManager[Any]:
    """bf16 autocast around generation when `run.generate_precision` is bf16 (what it changes in the metrics is
    measured by scripts/gpu_check.sh before it is made a default anywhere), else nothing."""
    import contextlib

    import torch

    precision = str(cfg.run.generate_precision)
    if precision not in PRECISIONS:
        raise ValueError(f"run.generate_precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(module.device).type, dtype=torch.bfloat16)


def generate_split(
    cfg: DictConfig,
    module: TalkingFaceModule,
    clips: Sequence[Clip],
    out_dir: Path,
    progress: bool = True,
    stamp: dict[str, Any] | None = None,
    group: EvalGroup | None = None,
) -> dict[str, Path]:
    """Generate every test clip into `out_dir` (see the module doc); returns clip id -> mp4 path. With several
    processes (`group`) batch j is made by rank j % world; every rank waits until all clips exist."""
    from rich.progress import Progress

    group = group or EvalGroup()
    if cfg.run.pose_prior not in POSE_PRIORS:
        raise ValueError(f"run.pose_prior must be one of {POSE_PRIORS}, got {cfg.run.pose_prior!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if group.main:
        reset_if_stale(out_dir, stamp, also=[out_dir.parent / "samples.partial.jsonl"])
    group.barrier()  # no rank writes a clip before stale ones are gone
    videos = {c.clip_id: out_dir / video_name(c.clip_id) for c in clips}
    batches = generation_batches(clips, int(cfg.run.generate_batch_size))
    t0 = time.perf_counter()
    n_frames = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("generating", total=len(clips))
        for j, positions in enumerate(batches):
            todo = [i for i in positions if not videos[clips[i].clip_id].exists()]
            if j % group.world == group.rank and todo:
                for i, frames in zip(todo, generate_batch(module, clips, todo, cfg)):
                    write_video(videos[clips[i].clip_id], frames, clips[i].audio)
                    n_frames += len(frames)
            bar.advance(task, len(positions))
    dt_s = time.perf_counter() - t0
    if n_frames:
        log(f"[generate] {n_frames} frames in {dt_s:.1f} s ({n_frames / dt_s:.1f} frames/s incl. encoding)")
    group.barrier()  # scoring shards clips differently: every clip must exist first
    return videos
