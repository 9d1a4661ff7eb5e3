"""OFM and F-MSE as clip metrics (Diffused Heads App. A; functional core in `metrics.functional.flow`).

Both are `match_gt` metrics: a generated video should be as smooth as the real one, not smoother.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from metrics.base import ClipMetric, ClipScoreError, EvalSample
from metrics.functional.flow import MODES, frame_mse, optical_flow_magnitude


def _checked_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    return mode


class OpticalFlowMagnitude(ClipMetric):
    """Mean optical-flow magnitude of the generated clip (Farneback on 128x128 grey frames).

    mode="paper" reproduces smoothness_eval.py (mean of the JET-coloured, per-pair min-max normalised
    magnitude image, 0-255; a frozen clip scores 128/3 ~ 42.667); mode="standard" is the mean magnitude in
    pixels of the 128x128 frames. Input: `EvalSample.fake`, uint8 RGB [T, H, W, 3] with T >= 2.
    """

    outputs = ("ofm",)
    higher_is_better = None
    config_section = "flow"  # configs/metrics/default.yaml section holding its settings

    def __init__(self, mode: str = "paper", workers: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = _checked_mode(mode)
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = int(workers)

    def score_clip(self, sample: EvalSample) -> tuple[float]:
        if sample.fake.shape[0] < 2:
            raise ClipScoreError(f"OFM needs at least 2 frames, clip has {sample.fake.shape[0]}")
        return (optical_flow_magnitude(sample.fake, self.mode),)

    def score_clips(self, samples: Sequence[EvalSample]) -> list[Sequence[float] | ClipScoreError]:
        # Farneback is single-threaded per frame pair and dominates the cost: clips go to a process pool
        if self.workers == 1 or len(samples) < 2:
            return super().score_clips(samples)
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(self.workers, len(samples)), mp_context=mp.get_context("fork")) as pool:
            return list(pool.map(_ofm_or_error, [(s.fake, self.mode) for s in samples]))


def _ofm_or_error(job: tuple[np.ndarray, str]) -> tuple[float] | ClipScoreError:
    video, mode = job
    if video.shape[0] < 2:
        return ClipScoreError(f"OFM needs at least 2 frames, clip has {video.shape[0]}")
    return (optical_flow_magnitude(video, mode),)


class FrameMSE(ClipMetric):
    """Mean squared difference of consecutive frames of the generated clip (128x128 BGR, 0-255 scale).

    mode="paper" reproduces smoothness_eval.py's uint8 arithmetic (differences and squares wrap modulo 256);
    mode="standard" is the float MSE. Input: `EvalSample.fake`, uint8 RGB [T, H, W, 3] with T >= 2.
    """

    outputs = ("fmse",)
    higher_is_better = None
    config_section = "flow"

    def __init__(self, mode: str = "paper", workers: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = _checked_mode(mode)  # `workers` is OFM's (they share the `flow` config section)

    def score_clip(self, sample: EvalSample) -> tuple[float]:
        if sample.fake.shape[0] < 2:
            raise ClipScoreError(f"F-MSE needs at least 2 frames, clip has {sample.fake.shape[0]}")
        return (frame_mse(sample.fake, self.mode),)
