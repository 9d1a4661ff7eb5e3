"""One resize, done by the metric: a generated clip at another size than its reference is paired correctly."""

from __future__ import annotations

import numpy as np
import pytest

from data.synthetic.generator import SyntheticConfig, iter_clips
from metrics.backbones.landmarks import FileLandmarks
from metrics.base import EvalSample
from metrics.fidelity import FidelityScores
from metrics.functional.resize import scale_points, to_size
from metrics.lmd import LandmarkDistance


@pytest.fixture(scope="module")
def clip():
    cfg = SyntheticConfig(seed=5, n_speakers=4, n_clips=4, size=96, min_seconds=1.0, max_seconds=1.1)
    return next(iter(iter_clips(cfg)))


def test_points_map_with_the_frame_and_back():
    pts = np.array([[[0.0, 0.0], [47.5, 31.0], [95.0, 63.0]]])
    up = scale_points(pts, (64, 96), (128, 192))
    # pixel centres: pixel 0 of the small frame covers pixels 0-1 of the large one, whose centre is 0.5
    assert up[0, 0].tolist() == [0.5, 0.5] and up[0, 2].tolist() == [190.5, 126.5]
    assert np.allclose(scale_points(up, (128, 192), (64, 96)), pts)
    assert scale_points(pts, (64, 96), (64, 96)) is pts


def test_to_size_shrinks_by_area_and_leaves_equal_sizes_alone(clip):
    video = clip.video[:3]
    assert to_size(video, video.shape[1:3]) is video
    big = np.repeat(np.repeat(video, 2, axis=1), 2, axis=2)  # each pixel a 2x2 block
    assert np.array_equal(to_size(big, video.shape[1:3]), video)  # area averaging of equal blocks is exact
    assert to_size(video, (50, 70)).shape == (3, 50, 70, 3)


def test_psnr_ssim_pair_a_larger_generated_clip_at_the_reference_size(clip):
    big = np.repeat(np.repeat(clip.video, 2, axis=1), 2, axis=2)
    metric = FidelityScores()
    metric.update([EvalSample(0, clip.clip_id, big, real=clip.video)])
    _, values = metric.per_clip()
    psnr, ssim = values[0].tolist()
    assert psnr == np.inf and ssim == pytest.approx(1.0)  # the same picture, at twice the size
    short = FidelityScores()
    short.update([EvalSample(1, clip.clip_id, big[:-1], real=clip.video)])
    assert short.failures and "one length" in short.failures[0][1]


def test_lmd_maps_a_larger_clip_s_landmarks_onto_the_reference(clip):
    big = np.repeat(np.repeat(clip.video, 2, axis=1), 2, axis=2)
    lm_big = scale_points(clip.landmarks, clip.video.shape[1:3], big.shape[1:3])
    metric = LandmarkDistance(backend=FileLandmarks())
    metric.update(
        [EvalSample(0, clip.clip_id, big, real=clip.video, fake_landmarks=lm_big, real_landmarks=clip.landmarks)]
    )
    assert metric.compute()["lmd"].item() == pytest.approx(0.0, abs=1e-4)
