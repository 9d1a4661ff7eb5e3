"""Landmark backends: registry and `auto`, clear errors, the per-sample memo, the learned regressor and its
calibration (metrics.calibration.landmarks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.config import compose
from data.synthetic.generator import SyntheticConfig, iter_clips
from metrics.backbones import landmarks as lmk
from metrics.backbones.landmark_regressor import LandmarkRegressor, regressor_blob, regressor_from_blob
from metrics.base import ClipScoreError, EvalSample
from metrics.calibration.landmarks import evaluate_regressor, train_regressor


@pytest.fixture(scope="module")
def clips():
    cfg = SyntheticConfig(seed=5, n_speakers=4, n_clips=8, size=96, min_seconds=1.0, max_seconds=1.2)
    return list(iter_clips(cfg))


def test_auto_is_dlib_and_the_synthetic_config_chooses_learned():
    assert lmk.resolve_backend_name("auto") == "dlib" and lmk.resolve_backend_name("fan") == "fan"
    with pytest.raises(ValueError, match="did you mean 'dlib'"):
        lmk.resolve_backend_name("dlb")
    # which backend a corpus's faces need is its dataset config's setting (configs/datasets/*.yaml `metrics:`)
    sections = ("blinks", "lmd", "csim", "headpose", "capp")
    synthetic, crema = compose(None, "synthetic").metrics, compose(None, "crema").metrics
    assert {synthetic[s].landmarks for s in sections} == {synthetic.lipreader.landmark_backend} == {"learned"}
    assert {crema[s].landmarks for s in sections} == {crema.lipreader.landmark_backend} == {"auto"}


class _Corpus:
    name = "fake"

    def fingerprint(self):
        return {"clips": "none-registered"}


def test_learned_without_calibration_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path))
    corpus = _Corpus()
    assert lmk.landmark_calibration_needed("learned", corpus) == "landmarks"
    assert lmk.landmark_calibration_needed("auto", corpus) is None
    assert lmk.landmark_calibration_needed("dlib", corpus) is None
    with pytest.raises(lmk.LandmarkError, match="bench calibrate --what landmarks"):
        lmk.build_backend("learned", corpus)


def test_fan_names_the_missing_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(lmk.LandmarkError) as err:
        lmk.FanLandmarks(detector="sfd")
    msg = str(err.value)
    assert "2DFAN4-11f355bf06.pth.tar" in msg and "s3fd-619a316812.pth" in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg and "adrianbulat.com" in msg


def test_file_backend_and_memo(clips):
    clip = clips[0]
    sample = EvalSample(index=0, clip_id=clip.clip_id, fake=clip.video, fake_landmarks=clip.landmarks)
    backend = lmk.FileLandmarks()
    calls = []
    original = backend.for_sample
    backend.for_sample = lambda s, which: calls.append(which) or original(s, which)
    first = lmk.sample_landmarks(sample, backend, "fake")
    again = lmk.sample_landmarks(sample, backend, "fake")
    assert first is again and calls == ["fake"] and np.array_equal(first, clip.landmarks)
    for _ in range(2):  # failures are memoised too, and raised every time
        with pytest.raises(ClipScoreError, match="no precomputed landmarks for the real clip"):
            lmk.sample_landmarks(sample, backend, "real")
    assert calls == ["fake", "real"]


def test_dlib_finds_no_cartoon_face_and_says_so(clips):
    pytest.importorskip("dlib")
    try:
        backend = lmk.build_backend("dlib")
    except lmk.LandmarkError as err:
        pytest.skip(str(err))
    blank = np.full((3, 96, 96, 3), 127, np.uint8)
    with pytest.raises(ClipScoreError, match="no face in any of the 3 frames"):
        backend.estimate(blank)


def test_regressor_learns_and_round_trips(clips):
    torch.manual_seed(0)
    train, val = clips[:6], clips[6:]
    untrained = evaluate_regressor(LandmarkRegressor(), val)
    net, report = train_regressor(train, val, max_steps=20, batch_size=8, seed=0)
    assert report.steps == 20 and report.n_val_frames == sum(c.num_frames for c in val)
    # 20 steps cannot make it precise, but must move the points from noise towards the faces
    assert report.val_mean_px < 0.5 * untrained["mean_px"]
    again = regressor_from_blob(regressor_blob(net))
    video = val[0].video
    pred = net.predict(video)
    assert pred.shape == (len(video), 68, 2) and pred.dtype == np.float32
    np.testing.assert_allclose(again.predict(video), pred, atol=1e-4)
    with pytest.raises(RuntimeError, match="Missing key"):
        bad = regressor_blob(net)
        bad["state_dict"].pop("eyenet.fc.3.bias")
        regressor_from_blob(bad)
