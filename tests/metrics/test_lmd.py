"""LMD: known answers (identity, translation, scale) and the metric over samples."""

from __future__ import annotations

import numpy as np
import pytest

from data.synthetic.generator import SyntheticConfig, iter_clips
from metrics.backbones.landmarks import FileLandmarks
from metrics.base import EvalSample
from metrics.functional.lmd import landmark_distance
from metrics.lmd import LandmarkDistance


def _lm(t=5, seed=0):
    return np.random.default_rng(seed).uniform(20, 100, (t, 68, 2))


def test_known_answers():
    a = _lm()
    assert landmark_distance(a, a, frame_width=128) == 0.0
    shifted = a + np.array([3.0, 4.0])  # every point 5 px away
    assert landmark_distance(shifted, a, frame_width=128) == pytest.approx(5.0)
    assert landmark_distance(shifted, a, frame_width=256) == pytest.approx(2.5)  # measured at 128 px wide
    assert landmark_distance(shifted, a, frame_width=128, centre=True) == pytest.approx(0.0, abs=1e-12)
    # only the mouth counts by default: moving the eyes changes "face" but not "mouth"
    eyes = a.copy()
    eyes[:, 36:48] += 10.0
    assert landmark_distance(eyes, a, 128) == 0.0
    assert landmark_distance(eyes, a, 128, points="face") == pytest.approx(12 / 68 * np.sqrt(200))
    # common length only
    assert landmark_distance(a[:3], shifted, 128) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="points must be one of"):
        landmark_distance(a, a, 128, points="jaw")


def test_metric_zero_for_itself_and_larger_for_a_frozen_mouth():
    cfg = SyntheticConfig(seed=3, n_speakers=4, n_clips=4, size=96, min_seconds=1.0, max_seconds=1.2)
    clips = list(iter_clips(cfg))
    metric = LandmarkDistance(backend=FileLandmarks())
    same = [
        EvalSample(i, c.clip_id, c.video, real=c.video, fake_landmarks=c.landmarks, real_landmarks=c.landmarks)
        for i, c in enumerate(clips)
    ]
    metric.update(same)
    assert metric.compute()["lmd"].item() == 0.0
    frozen = LandmarkDistance(backend=FileLandmarks())
    frozen.update(
        [
            EvalSample(
                i,
                c.clip_id,
                c.video,
                real=c.video,
                fake_landmarks=np.repeat(c.landmarks[:1], c.num_frames, 0),
                real_landmarks=c.landmarks,
            )
            for i, c in enumerate(clips)
        ]
    )
    assert frozen.compute()["lmd"].item() > 0.3
