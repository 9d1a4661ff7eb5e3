"""CSIM: identity cosine similarity between generated and real faces (higher is better).

Embeddings from dlib's face-recognition ResNet (`metrics.backbones.face_embed`, offline), faces aligned by the
landmarks of the metric's landmark backend. `reference="paired"`: each sampled generated frame against the real
frame at the same time; `reference="identity_frame"`: against the real clip's first frame (the still image a
one-shot generator is given, by default). CSIM of a clip with itself is 1 with `paired`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metrics.backbones.face_embed import DlibFaceEmbedder, cosine
from metrics.base import ClipScoreError, EvalSample
from metrics.landmarks import LandmarkClipMetric

REFERENCES = ("paired", "identity_frame")


class IdentitySimilarity(LandmarkClipMetric):
    """Mean cosine of 128-d identity embeddings of `frames` evenly spaced frames of `EvalSample.fake` against
    `EvalSample.real` (uint8 RGB [T, H, W, 3]); see the module docstring for `reference`. The embedder costs
    ~0.1 s per face on one CPU core, hence the frame subsampling."""

    outputs = ("csim",)
    higher_is_better = True
    config_section = "csim"

    def __init__(self, frames: int = 4, reference: str = "paired", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        self.frames, self.reference = int(frames), reference
        self.embedder = DlibFaceEmbedder()
        self.evaluator_info = {**(self.evaluator_info or {}), "face_embedder": self.embedder.info}

    def score_clip(self, sample: EvalSample) -> tuple[float]:
        if sample.real is None:
            raise ClipScoreError("CSIM needs the real clip")
        t = min(len(sample.fake), len(sample.real))
        if t == 0:
            raise ClipScoreError("CSIM of an empty clip")
        idx = np.unique(np.linspace(0, t - 1, min(self.frames, t)).round().astype(np.int64))
        fake_lm = self.landmarks_of(sample, "fake")
        fake = self.embedder.embed(sample.fake[idx], fake_lm[idx])
        ref_idx = idx if self.reference == "paired" else np.zeros(1, np.int64)
        real_lm = self.landmarks_of(sample, "real")
        real = self.embedder.embed(sample.real[ref_idx], real_lm[ref_idx])
        return (float(cosine(fake, real).mean()),)
