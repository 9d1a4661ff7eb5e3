"""The set-metric feature cache: the features FID / FVD take from each clip, one .npy file per clip.

Generated clips' features live beside the run's per-clip records (`<run>/features/`), so an interrupted scoring
pass loses no finished clip; the real test clips' features live in the GT run directory of their protocol
(`GT-<hash8>/features/`), where scoring the GT row writes them, so the reference set is extracted once per
protocol whatever the number of runs scored against it.

A metric whose real side sees other frames than its generated side (`SetMetric.real_view_differs`, e.g.
`fvd2048_16f`'s random real windows) keeps the real clips' features under another digest of the same output, so a
GT clip scored as generated (offset 0) and as real (its random offset) never overwrite each other.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig

from benchmark.results import Protocol
from data.clip import Clip
from metrics.base import ClipFeatures, ClipMetric, ClipScoreError, SetMetric

if TYPE_CHECKING:
    import torch


def video_name(clip_id: str) -> str:
    """File name of a generated clip: the clip id with '/' replaced, so ids stay unique and readable."""
    return clip_id.replace("/", "__") + ".mp4"


def feature_key(metric: SetMetric, real: bool = False) -> str:
    """Folder name of a set metric's per-clip feature files: its output and a digest of what made the features
    (backbone weights, frame selection, and the side where the sides differ), so changed settings never reuse
    stale features. The output stays the part before the last "-" (benchmark.tables.intervals reads it so)."""
    made_by = dict(metric.evaluator_info or {})
    if real and metric.real_view_differs():
        made_by["side"] = "real"
    info = json.dumps(made_by, sort_keys=True, default=str)
    return f"{metric.outputs[0]}-{hashlib.sha256(info.encode()).hexdigest()[:8]}"


def feature_path(features_dir: Path, metric: SetMetric, clip_id: str, real: bool = False) -> Path:
    return features_dir / feature_key(metric, real) / (video_name(clip_id).removesuffix(".mp4") + ".npy")


def save_features(path: Path, feats: torch.Tensor | np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    np.save(tmp, np.asarray(feats, dtype=np.float32))
    os.replace(tmp, path)


def load_features(path: Path) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.load(path))


def clip_set_features(
    metric: SetMetric, clip_id: str, video: np.ndarray, features_dir: Path, reuse: bool = False, *, real: bool = False
) -> tuple[torch.Tensor, Path]:
    """The features a set metric takes from one clip's video, extracted and written to `features_dir`, or read
    from there when `reuse` and already extracted (the real clips, fixed by the protocol). `real`: the clip is
    on the reference side (a ground-truth clip: the GT row's and the reference set's), which some protocols
    sample differently. ClipScoreError when the metric cannot use the clip."""
    path = feature_path(features_dir, metric, clip_id, real)
    if reuse and path.exists():
        return load_features(path), path
    feats = metric.clip_features(video, clip_id=clip_id, real=real)
    save_features(path, feats)
    return feats, path


def gt_dir(cfg: DictConfig, protocol: Protocol) -> Path:
    """The GT run directory of a protocol: its row, and the real clips' feature cache."""
    return Path(cfg.run.out_dir) / str(cfg.dataset.name) / f"GT-{protocol.hash[:8]}"


def reference_features(cfg: DictConfig, clips: Sequence[Clip], protocol: Protocol) -> Callable[[SetMetric], None]:
    """Adds the real test clips' features to a set metric (FID/FVD's reference set), from the protocol's cache."""
    features_dir = gt_dir(cfg, protocol) / "features"

    def add(metric: SetMetric) -> None:
        import torch

        for i, clip in enumerate(clips):
            if metric.is_capped(i):
                # beyond the protocol's clip cap: the metric counts it from its index; nothing is extracted
                none = torch.zeros(0, int(metric.feature_dim))
                metric.update([ClipFeatures(index=i, clip_id=clip.clip_id, features=none, real=True)])
                continue
            try:
                feats, _ = clip_set_features(
                    metric, clip.clip_id, np.asarray(clip.video), features_dir, reuse=True, real=True
                )
            except ClipScoreError:
                continue  # a real clip the metric cannot use (too short) is simply not in the reference set
            metric.update([ClipFeatures(index=i, clip_id=clip.clip_id, features=feats, real=True)])

    return add


def features_missing(row: dict[str, Any], set_metrics: Mapping[str, ClipMetric | SetMetric], base: Path) -> bool:
    """True when a finished clip's record names a feature file that is gone (the clip is scored again). A record
    may list a target under "capped" instead (beyond the metric's `max_clips`): it has no file to miss."""
    for target in set_metrics:
        if target in row.get("failed", {}) or target in row.get("capped", ()):
            continue
        entry = row.get("features", {}).get(target)
        if entry is None or not (base / entry["file"]).exists():
            return True
    return False
