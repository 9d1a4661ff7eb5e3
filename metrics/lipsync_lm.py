"""Landmark lip-sync (lsync_lm): mouth opening against the speech's loudness, an AV offset no SyncNet produced.

Per generated clip: the inner-lip opening from 68-point landmarks (the same backends as blinks and LMD: dlib on
real faces, the regressor calibrated on the synthetic corpus) is correlated with the loudness of its audio over
the voiced frames (an energy + zero-crossing VAD), at every lag within +-max_lag frames. Two values per clip:
``lsync_lm_offset``, the best lag in frames with syncnet_python's AV-offset sign (judged against the GT row,
like ``av_offset``), and ``lsync_lm_corr``, the correlation at lag 0 (higher is better: the mouth follows the
sound as the clip plays it; a shifted or frozen mouth scores lower). ``lsync_lm_peak`` (the correlation at the
best lag) is kept per clip for inspection only. Functional core and its constants: `metrics.functional.lipsync_lm`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from data.clip import FPS, SAMPLE_RATE
from metrics.base import ClipScoreError, EvalSample
from metrics.functional.lipsync_lm import (
    MAX_LAG,
    MIN_PAIRS,
    MOUTH_LEAD_MS,
    VAD_ENERGY_RATIO,
    VAD_HANGOVER,
    VAD_MAX_ZCR,
    lipsync_lm,
)
from metrics.landmarks import LandmarkClipMetric


class LandmarkLipSync(LandmarkClipMetric):
    """Per-clip (lsync_lm_offset, lsync_lm_corr, lsync_lm_peak) of `EvalSample.fake` (uint8 RGB [T, H, W, 3] at
    `fps`) against `EvalSample.audio` (float32 [N] at `sample_rate`); means over the scored clips.

    max_lag: lags searched each way (frames); min_pairs: voiced frames a lag needs; mouth_lead_ms: how much later
    than its frame the loudness window of a frame starts; energy_ratio, max_zcr, hangover: the VAD's settings.
    A clip without audio, without a face (the backend's failure), or with fewer than `min_pairs` voiced frames is
    a counted failure with its reason. The whole correlation curve of each clip goes to
    `sample.extra["lipsync_lm"]`.
    """

    outputs = ("lsync_lm_offset", "lsync_lm_corr", "lsync_lm_peak")
    higher_is_better = None  # the offset is judged against the GT row, the correlation higher: METRICS has each
    config_section = "lipsync_lm"

    def __init__(
        self,
        max_lag: int = MAX_LAG,
        min_pairs: int = MIN_PAIRS,
        mouth_lead_ms: float = MOUTH_LEAD_MS,
        energy_ratio: float = VAD_ENERGY_RATIO,
        max_zcr: float = VAD_MAX_ZCR,
        hangover: int = VAD_HANGOVER,
        fps: float = FPS,
        sample_rate: int = SAMPLE_RATE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_lag < 1 or min_pairs < 3 or mouth_lead_ms < 0:
            raise ValueError(
                f"need max_lag >= 1, min_pairs >= 3, mouth_lead_ms >= 0; got {max_lag}, {min_pairs}, {mouth_lead_ms}"
            )
        if energy_ratio < 0 or not 0 < max_zcr <= 1 or hangover < 0 or fps <= 0 or sample_rate <= 0:
            raise ValueError(
                f"need energy_ratio >= 0, 0 < max_zcr <= 1, hangover >= 0, fps > 0, sample_rate > 0; got "
                f"{energy_ratio}, {max_zcr}, {hangover}, {fps}, {sample_rate}"
            )
        self.max_lag, self.min_pairs, self.mouth_lead_ms = int(max_lag), int(min_pairs), float(mouth_lead_ms)
        self.energy_ratio, self.max_zcr, self.hangover = float(energy_ratio), float(max_zcr), int(hangover)
        self.fps, self.sample_rate = float(fps), int(sample_rate)

    def score_clip(self, sample: EvalSample) -> tuple[float, float, float]:
        if sample.audio is None:
            raise ClipScoreError("landmark lip-sync needs the clip's audio")
        audio = np.asarray(sample.audio)
        if audio.ndim != 1:
            raise ClipScoreError(f"landmark lip-sync needs mono audio [N], got {audio.shape}")
        landmarks = self.landmarks_of(sample, "fake")
        try:
            res = lipsync_lm(
                landmarks,
                audio,
                fps=self.fps,
                sample_rate=self.sample_rate,
                max_lag=self.max_lag,
                min_pairs=self.min_pairs,
                mouth_lead_ms=self.mouth_lead_ms,
                energy_ratio=self.energy_ratio,
                max_zcr=self.max_zcr,
                hangover=self.hangover,
            )
        except ValueError as err:  # too few voiced frames, degenerate landmarks
            raise ClipScoreError(f"landmark lip-sync: {err}") from None
        sample.extra["lipsync_lm"] = {"lag": res.lag, "curve": res.curve, "n_voiced": res.n_voiced}
        return float(res.lag), res.corr, res.peak
