"""OFM / F-MSE: hand-computed values, the smoothness_eval.py quirks, and per-clip metric states."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from metrics.base import EvalSample
from metrics.flow import FrameMSE, OpticalFlowMagnitude
from metrics.functional.flow import bgr_frames_128, farneback_flows, frame_mse, optical_flow_magnitude

JET_OF_ZERO_MEAN = 128 / 3  # cv2.COLORMAP_JET maps 0 to BGR (128, 0, 0)


def _constant_video(values: list[tuple[int, int, int]], size: int = 64) -> np.ndarray:
    return np.stack([np.full((size, size, 3), v, np.uint8) for v in values])


def _face_like_frame(size: int = 128) -> np.ndarray:
    # flat border: Farneback returns exactly zero flow for two identical frames only where the 5x5 window
    # sees no texture at the image edge (see test_frozen_textured_border_effect)
    frame = np.full((size, size, 3), (40, 90, 160), np.uint8)
    cv2.circle(frame, (size // 2, size // 2), size // 4, (200, 170, 140), -1, cv2.LINE_AA)
    cv2.ellipse(frame, (size // 2, size // 2 + 12), (12, 5), 0, 0, 360, (90, 30, 40), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(frame, (0, 0), 1.5)


def _texture(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)), (0, 0), 3)
    tex = (tex - tex.min()) / (tex.max() - tex.min()) * 255
    return np.repeat(tex[..., None], 3, axis=-1).astype(np.uint8)


def test_frozen_video():
    video = np.repeat(_face_like_frame()[None], 5, axis=0)
    assert frame_mse(video, "paper") == 0.0
    assert frame_mse(video, "standard") == 0.0
    assert optical_flow_magnitude(video, "standard") == 0.0
    # the reference's normalize + JET turns an all-zero magnitude into BGR (128, 0, 0): 42.667, not 0
    assert optical_flow_magnitude(video, "paper") == pytest.approx(JET_OF_ZERO_MEAN, abs=1e-9)


def test_frozen_textured_border_effect():
    # OpenCV's Farneback is not exactly zero on identical textured frames near the image border: paper mode
    # keeps that (as the reference), standard mode counts identical frames as still
    video = np.repeat(_texture(128)[None], 3, axis=0)
    assert frame_mse(video, "standard") == 0.0
    assert optical_flow_magnitude(video, "standard") == 0.0
    raw = np.hypot(*np.moveaxis(farneback_flows(video)[0], -1, 0))
    assert raw.max() > 0 and raw[8:-8, 8:-8].max() < 1e-3
    assert optical_flow_magnitude(video, "paper") > JET_OF_ZERO_MEAN


def test_fmse_uint8_wraparound_by_hand():
    # grey levels 10 -> 250 -> 5; differences in uint8: 240, 11 (= 5 - 250 + 256); squares mod 256: 0, 121
    video = _constant_video([(10, 10, 10), (250, 250, 250), (5, 5, 5)])
    assert (240**2) % 256 == 0 and (11**2) % 256 == 121
    assert frame_mse(video, "paper") == pytest.approx((0 + 121) / 2)
    assert frame_mse(video, "standard") == pytest.approx((240**2 + 245**2) / 2)


def test_fmse_channels_and_resize():
    # per-channel constants survive the 128x128 resize; the mean runs over the 3 channels
    video = _constant_video([(0, 10, 20), (3, 10, 40)], size=50)
    assert frame_mse(video, "standard") == pytest.approx((3**2 + 0 + 20**2) / 3)
    assert frame_mse(video, "paper") == pytest.approx((9 + 0 + (400 % 256)) / 3)


def test_ofm_uniform_translation():
    # a smooth texture moving 2 px to the right per frame, already 128x128 (no resize)
    tex = _texture(200)
    video = np.stack([tex[30:158, 30 - 2 * t : 158 - 2 * t] for t in range(4)])
    assert optical_flow_magnitude(video, "standard") == pytest.approx(2.0, abs=0.1)
    flows = farneback_flows(video)
    for flow in flows:
        assert np.median(flow[..., 0]) == pytest.approx(2.0, abs=0.05)
        assert np.median(flow[..., 1]) == pytest.approx(0.0, abs=0.05)
    # paper formula recomputed directly from the flow fields, step by step as smoothness_eval.py does
    images = []
    for flow in flows:
        mag, _ = cv2.cartToPolar(flow[..., 0], flow[..., 1])
        norm = cv2.normalize(mag, None, 0, 255, cv2.NORM_MINMAX)
        images.append(cv2.applyColorMap(norm.astype(np.uint8), cv2.COLORMAP_JET))
    assert optical_flow_magnitude(video, "paper") == pytest.approx(float(np.mean(images)), abs=1e-12)


def test_frames_converted_to_bgr():
    # the reference reads BGR with OpenCV: a pure-red RGB frame is (0, 0, 255), so BGR2GRAY weighs it 0.299
    frames = bgr_frames_128(_constant_video([(255, 0, 0)], size=16))
    assert frames.shape == (1, 128, 128, 3)
    assert frames[0, 0, 0].tolist() == [0, 0, 255]
    assert cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY)[0, 0] == round(0.299 * 255)


def test_bad_input():
    with pytest.raises(ValueError, match="mode"):
        frame_mse(_constant_video([(0, 0, 0)] * 2), "exact")
    with pytest.raises(ValueError, match="at least 2 frames"):
        optical_flow_magnitude(_constant_video([(0, 0, 0)]))
    with pytest.raises(ValueError, match="mode"):
        OpticalFlowMagnitude(mode="nope")


def _sample(i: int, video: np.ndarray) -> EvalSample:
    return EvalSample(index=i, clip_id=f"c{i}", fake=video)


def test_metric_classes_and_merge():
    clips = [
        _constant_video([(10, 10, 10), (250, 250, 250), (5, 5, 5)]),
        _constant_video([(0, 0, 0), (2, 2, 2)]),
        _constant_video([(7, 7, 7)]),  # one frame: counted as a failure
    ]
    samples = [_sample(i, v) for i, v in enumerate(clips)]
    single = FrameMSE(mode="paper")
    single.update(samples)
    assert single.n_failed == 1 and single.failures[0][0] == "c2"
    assert single.compute()["fmse"].item() == pytest.approx((60.5 + 4.0) / 2)
    a, b = FrameMSE(mode="paper"), FrameMSE(mode="paper")
    a.update(samples[1:])
    b.update(samples[:1])
    a.merge_state(b)
    idx, vals = a.per_clip()
    assert idx.tolist() == [0, 1]
    assert torch.equal(vals, single.per_clip()[1])
    assert int(a.n_failed) == 1

    ofm = OpticalFlowMagnitude(mode="standard")
    ofm.update(samples)
    assert ofm.mode == "standard" and int(ofm.n_failed) == 1
    assert ofm.compute()["ofm"].item() == 0.0


def test_ofm_process_pool_equals_serial():
    """Scoring several clips at once uses a process pool; values and failures are those of the serial path."""
    rng = np.random.default_rng(3)
    videos = [rng.integers(0, 256, (6 + i, 48, 48, 3), dtype=np.uint8) for i in range(3)]
    videos.append(videos[0][:1])  # one frame: a counted failure either way
    samples = [EvalSample(index=i, clip_id=f"c{i}", fake=v) for i, v in enumerate(videos)]
    serial, pooled = OpticalFlowMagnitude(workers=1), OpticalFlowMagnitude(workers=2)
    serial.update(samples)
    pooled.update(samples)
    torch.testing.assert_close(pooled.per_clip()[1], serial.per_clip()[1], rtol=0, atol=0)
    assert int(pooled.n_failed) == int(serial.n_failed) == 1 and pooled.failures == serial.failures
