"""OFM / F-MSE paper mode on a file equals smoothness_eval.py's file-level steps, re-implemented here on their own."""

from __future__ import annotations

import cv2 as cv
import numpy as np
import pytest

from data.io import write_video
from data.synthetic.generator import SyntheticConfig, iter_clips
from metrics.base import EvalSample
from metrics.flow import FrameMSE, OpticalFlowMagnitude


def _smoothness_eval(path) -> tuple[float, float]:
    """Diffused Heads smoothness_eval.py (train @2838e57) for one video, step by step: VideoCapture, 128x128
    bilinear, grey, Farneback (0.5, 7, 5, 15, 5, 1.2, 0), min-max normalised magnitude through the JET map, means;
    F-MSE in uint8 arithmetic."""
    cap = cv.VideoCapture(str(path))
    frames = []
    while True:
        ret, frame = cap.read()
        if not ret:
            break
        frames.append(cv.resize(frame, (128, 128)))
    images, mses = [], []
    prev = frames[0]
    prev_grey = cv.cvtColor(prev, cv.COLOR_BGR2GRAY)
    for frame in frames[1:]:
        grey = cv.cvtColor(frame, cv.COLOR_BGR2GRAY)
        flow = cv.calcOpticalFlowFarneback(prev_grey, grey, None, 0.5, 7, 5, 15, 5, 1.2, 0)
        magnitude, _ = cv.cartToPolar(flow[..., 0], flow[..., 1])
        magnitude = cv.normalize(magnitude, None, 0, 255, cv.NORM_MINMAX)
        images.append(cv.applyColorMap(magnitude.astype(np.uint8), cv.COLORMAP_JET))
        mses.append((frame - prev) ** 2)
        prev, prev_grey = frame, grey
    return float(np.mean(images)), float(np.mean(mses))


@pytest.mark.parametrize("size", [96, 160])
def test_paper_mode_reads_the_file_as_smoothness_eval(tmp_path, size):
    cfg = SyntheticConfig(seed=11, n_speakers=4, n_clips=4, size=size, min_seconds=1.0, max_seconds=1.2)
    for i, clip in enumerate(list(iter_clips(cfg))[:2]):
        path = tmp_path / f"{i}.mp4"
        write_video(path, clip.video, clip.audio)
        sample = EvalSample(i, clip.clip_id, clip.video, fake_file=path)
        ofm, fmse = OpticalFlowMagnitude(mode="paper", workers=1), FrameMSE(mode="paper")
        ofm.update([sample])
        fmse.update([sample])
        want_ofm, want_fmse = _smoothness_eval(path)
        assert ofm.per_clip()[1][0, 0].item() == pytest.approx(want_ofm, abs=1e-9)
        assert fmse.per_clip()[1][0, 0].item() == pytest.approx(want_fmse, abs=1e-9)
        # standard mode ignores the file: the suite's own decoded frames
        std = FrameMSE(mode="standard")
        std.update([EvalSample(i, clip.clip_id, clip.video, fake_file=tmp_path / "missing.mp4")])
        assert not std.failures


def test_an_unreadable_file_is_a_counted_failure_naming_it(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    video = np.zeros((4, 32, 32, 3), np.uint8)
    metric = FrameMSE(mode="paper")
    metric.update([EvalSample(0, "c", video, fake_file=bad)])
    assert metric.failures and "bad.mp4" in metric.failures[0][1]
