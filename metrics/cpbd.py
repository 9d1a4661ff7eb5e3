"""CPBD sharpness of the generated frames (Narvekar & Karam 2011; higher is sharper).

Functional core: `metrics.functional.cpbd` (our implementation; the PyPI `cpbd` fails to import on current
SciPy). No network, no landmarks: a per-frame no-reference measure averaged over a clip's frames.
"""

from __future__ import annotations

from typing import Any

from metrics.base import ClipMetric, ClipScoreError, EvalSample
from metrics.functional.cpbd import video_cpbd


class CPBD(ClipMetric):
    """Mean CPBD of the grey frames of `EvalSample.fake` (uint8 RGB [T, H, W, 3], H and W >= 64: CPBD works on
    64x64 blocks); `stride` scores every stride-th frame (1 = all)."""

    outputs = ("cpbd",)
    higher_is_better = True
    config_section = "cpbd"

    def __init__(self, stride: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.stride = int(stride)

    def score_clip(self, sample: EvalSample) -> tuple[float]:
        h, w = sample.fake.shape[1:3]
        if len(sample.fake) == 0 or min(h, w) < 64:
            raise ClipScoreError(f"CPBD needs frames of at least 64x64 pixels, clip has {len(sample.fake)} of {h}x{w}")
        return (video_cpbd(sample.fake, self.stride),)
