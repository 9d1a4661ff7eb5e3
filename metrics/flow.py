"""OFM and F-MSE as clip metrics (Diffused Heads App. A; functional core in `metrics.functional.flow`).

Both are `match_gt` metrics: a generated video should be as smooth as the real one, not smoother.

Frames: in `paper` mode a sample decoded from a file (`EvalSample.fake_file`) is read again the way
smoothness_eval.py reads it, with OpenCV's VideoCapture at the file's own frame rate and size (its decoder and colour
conversion, not ffmpeg's rgb24 output, and no 25 fps resampling), once for both metrics; a sample without a file
(the GT row's corpus clips) is scored from its frames. `standard` mode scores the suite's decoded frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from metrics.base import ClipMetric, ClipScoreError, EvalSample
from metrics.functional.flow import MODES, frame_mse, optical_flow_magnitude


def _video_capture_frames(path: Path) -> np.ndarray:
    """All frames of `path` as smoothness_eval.py reads them (cv2.VideoCapture, BGR), as uint8 RGB [T, H, W, 3]."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))  # undone exactly by the functional's RGB2BGR
    finally:
        cap.release()
    if not frames:
        raise ClipScoreError(f"{path}: OpenCV's VideoCapture read no frames (the reference script would skip it)")
    return np.stack(frames)


def smoothness_frames(sample: EvalSample, mode: str) -> np.ndarray:
    """The frames OFM / F-MSE score (see the module doc), read once per sample for both."""
    if mode != "paper" or sample.fake_file is None:
        return sample.fake
    key = f"video_capture:{sample.fake_file}"
    if key not in sample.extra:
        sample.extra[key] = _video_capture_frames(Path(sample.fake_file))
    return cast(np.ndarray, sample.extra[key])


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
        video = smoothness_frames(sample, self.mode)
        if video.shape[0] < 2:
            raise ClipScoreError(f"OFM needs at least 2 frames, clip has {video.shape[0]}")
        return (optical_flow_magnitude(video, self.mode),)

    def score_clips(self, samples: Sequence[EvalSample]) -> list[Sequence[float] | ClipScoreError]:
        # Farneback is single-threaded per frame pair and dominates the cost: clips go to a process pool
        if self.workers == 1 or len(samples) < 2:
            return super().score_clips(samples)
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        jobs: list[tuple[np.ndarray, str] | ClipScoreError] = []
        for sample in samples:
            try:
                jobs.append((smoothness_frames(sample, self.mode), self.mode))
            except ClipScoreError as err:
                jobs.append(err)
        with ProcessPoolExecutor(min(self.workers, len(samples)), mp_context=mp.get_context("fork")) as pool:
            return list(pool.map(_ofm_or_error, jobs))


def _ofm_or_error(job: tuple[np.ndarray, str] | ClipScoreError) -> tuple[float] | ClipScoreError:
    if isinstance(job, ClipScoreError):
        return job
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
        video = smoothness_frames(sample, self.mode)
        if video.shape[0] < 2:
            raise ClipScoreError(f"F-MSE needs at least 2 frames, clip has {video.shape[0]}")
        return (frame_mse(video, self.mode),)
