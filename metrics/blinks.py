"""Blinks per second and blink duration (DinoMan/blink-detector's rule, as Diffused Heads reports them).

Both are `match_gt` metrics: a generated head should blink as often and as long as real people do.
Functional core: `metrics.functional.blinks`; landmarks from `metrics.backbones.landmarks`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torchmetrics.utilities import dim_zero_cat

from data.clip import FPS
from metrics.base import ClipScoreError, EvalSample
from metrics.functional.blinks import (
    PAPER_THRESHOLD,
    PEAK_DISTANCE,
    blink_durations,
    check_mode,
    detect_blinks,
    eye_aspect_ratio,
)
from metrics.landmarks import LandmarkClipMetric

_KEY_STRIDE = 1 << 20  # more blinks than any clip has; float64 keys stay exact for 8e9 clips


class BlinkMetrics(LandmarkClipMetric):
    """Blink rate and blink duration of the generated clips (`EvalSample.fake`, uint8 RGB [T, H, W, 3], 25 fps).

    Per clip: EAR from the landmarks' eyes (36-41, 42-47), blink events by the reference rule (threshold 0.072,
    peaks at least 4 frames apart). Over the clips: blinks_per_s = total blinks / total seconds; blink_dur =
    median duration of all blinks (paper: frames, end - start as in the reference CSV; standard: seconds, the
    frames between the two open-eye frames). Per-clip values also give n_blinks and seconds; the events of
    each clip are kept in `events` ({clip_id: [{"onset", "start", "end"}, ...]}) and in `sample.extra["blinks"]`.
    A clip without blinks has blink_dur NaN; with no blink in any clip the aggregate duration is NaN.
    """

    outputs = ("blinks_per_s", "blink_dur", "n_blinks", "seconds")
    nan_outputs = ("blink_dur",)  # a clip without blinks has no duration
    higher_is_better = None
    config_section = "blinks"
    durations: list[torch.Tensor]  # torchmetrics states (lists until a distributed gather concatenates them)
    duration_keys: list[torch.Tensor]

    def __init__(
        self,
        mode: str = "paper",
        threshold: float = PAPER_THRESHOLD,
        distance: int = PEAK_DISTANCE,
        fps: float = FPS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mode = check_mode(mode)
        if threshold <= 0 or distance < 1 or fps <= 0:
            raise ValueError(f"need threshold > 0, distance >= 1, fps > 0; got {threshold}, {distance}, {fps}")
        self.threshold, self.distance, self.fps = float(threshold), int(distance), float(fps)
        # every blink's duration with a key (clip index * 2**20 + its rank within the clip), so that duplicated
        # clips (sampler padding) count once after a distributed gather. Both are 1-d float64: torchmetrics gives a
        # rank without blinks an empty 1-d tensor of the metric's dtype, and gloo needs every rank's shapes and
        # dtypes to agree.
        self.add_state("durations", default=[], dist_reduce_fx="cat")
        self.add_state("duration_keys", default=[], dist_reduce_fx="cat")
        self.set_dtype(torch.float64)
        self.events: dict[str, list[dict[str, int]]] = {}
        self.evaluator_info = {**(self.evaluator_info or {}), "blink_mode": self.mode, "threshold": self.threshold}

    def score_clip(self, sample: EvalSample) -> tuple[float, float, float, float]:
        lm = self.landmarks_of(sample, "fake")
        if lm.shape[0] < 2:
            raise ClipScoreError(f"blink detection needs at least 2 frames, clip has {lm.shape[0]}")
        ear = eye_aspect_ratio(lm)
        if not np.all(np.isfinite(ear)):
            raise ClipScoreError("eye landmarks give a non-finite eye aspect ratio (degenerate eye corners)")
        events = detect_blinks(ear, self.threshold, self.distance, self.mode)
        durs = blink_durations(events, self.mode, self.fps)
        self.events[sample.clip_id] = [e.to_dict() for e in events]
        sample.extra["blinks"] = {"mode": self.mode, "events": self.events[sample.clip_id], "ear": ear}
        if len(durs):
            self.durations.append(torch.tensor(durs, dtype=torch.float64))
            keys = torch.tensor([sample.index * _KEY_STRIDE + j for j in range(len(durs))], dtype=torch.float64)
            self.duration_keys.append(keys)
        seconds = lm.shape[0] / self.fps
        median = float(np.median(durs)) if len(durs) else float("nan")
        return len(events) / seconds, median, float(len(events)), seconds

    def reset(self) -> None:
        super().reset()
        self.events = {}

    def _pooled_durations(self, n_blinks: float) -> torch.Tensor | None:
        if isinstance(self.durations, list) and len(self.durations) == 0:
            return torch.zeros(0, dtype=torch.float64) if n_blinks == 0 else None
        durs = dim_zero_cat(self.durations)
        keys = dim_zero_cat(self.duration_keys)
        _, first = np.unique(keys.numpy(), return_index=True)
        durs = durs[torch.from_numpy(np.sort(first))]
        # clips restored from a results file bring their per-clip values but not their blinks' durations
        return durs if len(durs) == int(n_blinks) else None

    def compute(self) -> dict[str, torch.Tensor]:
        _, vals = self.per_clip()
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        if vals.shape[0] == 0:
            return {name: nan for name in self.outputs}
        n_blinks, seconds = vals[:, 2].sum(), vals[:, 3].sum()
        durs = self._pooled_durations(float(n_blinks))
        if durs is None:
            warnings.warn(
                "blink durations of some clips are not in this metric's state (restored clips): blink_dur is the "
                "median of the per-clip medians",
                stacklevel=2,
            )
            med = vals[:, 1][~torch.isnan(vals[:, 1])]
            dur = torch.from_numpy(np.asarray(np.median(med.numpy()))) if len(med) else nan
        else:
            dur = torch.from_numpy(np.asarray(np.median(durs.numpy()))) if len(durs) else nan
        return {"blinks_per_s": n_blinks / seconds, "blink_dur": dur, "n_blinks": n_blinks, "seconds": seconds}
