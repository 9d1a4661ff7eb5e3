"""The base of metrics computed from 68-point landmarks (blinks, LMD, CSIM alignment, head pose, CAPP).

The landmark backends themselves (dlib, FAN, a landmarks file, the regressor calibrated on the synthetic corpus)
and their loaders are in `metrics.backbones.landmarks`; this class only builds the configured one and reads each
sample's landmarks through its per-clip cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from metrics.backbones.landmarks import (
    LandmarkBackend,
    build_backend,
    landmark_calibration_needed,
    resolve_backend_name,
    sample_landmarks,
    takes_device,
)
from metrics.base import ClipMetric, EvalSample

if TYPE_CHECKING:
    from data.corpus import LayoutCorpus


class LandmarkClipMetric(ClipMetric):
    """A ClipMetric whose values come from 68-point landmarks of the sample's clips.

    landmarks: the backend name (dlib | fan | file | learned | auto); landmark_options: keyword arguments of the
    backend (e.g. {"upsample": 1} for dlib); corpus: the corpus being scored (its calibrated regressor is
    looked up there); backend: an already built backend (tests, or sharing one across metrics explicitly).
    """

    needs_corpus = True
    evaluator_key = "landmarks"

    def __init__(
        self,
        landmarks: str = "auto",
        landmark_options: dict[str, Any] | None = None,
        corpus: LayoutCorpus | None = None,
        backend: LandmarkBackend | None = None,
        device: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        options = dict(landmark_options or {})
        if device is not None and takes_device(resolve_backend_name(landmarks)):
            options.setdefault("device", device)  # the network backends (fan, learned) run on the run's device
        self.landmark_backend = backend or build_backend(landmarks, corpus, **options)
        self.evaluator_info = dict(self.landmark_backend.info)

    @classmethod
    def calibration_needed(cls, settings: dict[str, Any], corpus: LayoutCorpus) -> str | list[str] | None:
        name = settings.get("landmarks", "auto")
        resolve_backend_name(name)  # unknown names fail here, before any calibration runs
        if (settings.get("landmark_options") or {}).get("weights"):
            return None
        return landmark_calibration_needed(name, corpus)

    def landmarks_of(self, sample: EvalSample, which: str = "fake") -> np.ndarray:
        return sample_landmarks(sample, self.landmark_backend, which)
