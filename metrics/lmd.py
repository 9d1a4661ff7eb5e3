"""LMD: landmark distance between the generated clip and the real one (Chen et al. 2018; lower is better).

Functional core: `metrics.functional.lmd`; landmarks of both clips from the same backend
(`metrics.backbones.landmarks`), so an estimator's bias cancels instead of being scored.
"""

from __future__ import annotations

from typing import Any

from metrics.base import ClipScoreError, EvalSample
from metrics.functional.lmd import POINT_SETS, landmark_distance
from metrics.functional.resize import scale_points
from metrics.landmarks import LandmarkClipMetric


class LandmarkDistance(LandmarkClipMetric):
    """Mean distance of mouth landmarks 48-67 (points="mouth") or all 68 ("face") between `EvalSample.fake` and
    `EvalSample.real` (uint8 RGB [T, H, W, 3]), frame by frame over the common length, in pixels of frames rescaled
    to `scale` px wide; `centre=True` removes each frame's mean point first. A generated clip of another size has
    its landmarks found at its own size and mapped onto the reference's frame (the frames are not resized).
    """

    outputs = ("lmd",)
    higher_is_better = False
    config_section = "lmd"

    def __init__(self, points: str = "mouth", scale: float = 128.0, centre: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if points not in POINT_SETS:
            raise ValueError(f"points must be one of {sorted(POINT_SETS)}, got {points!r}")
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.points, self.scale, self.centre = points, float(scale), bool(centre)

    def score_clip(self, sample: EvalSample) -> tuple[float]:
        if sample.real is None and sample.real_landmarks is None:
            raise ClipScoreError("LMD needs the real clip")
        fake, real = self.landmarks_of(sample, "fake"), self.landmarks_of(sample, "real")
        frame = sample.real if sample.real is not None else sample.fake
        fake = scale_points(fake, sample.fake.shape[1:3], frame.shape[1:3])
        width = frame.shape[2]
        return (landmark_distance(fake, real, width, self.points, self.scale, self.centre),)
