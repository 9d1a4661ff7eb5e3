"""Landmark backends: registry and `auto`, clear errors, the per-sample memo, the learned regressor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.corpus import LayoutCorpus, SyntheticCorpus
from data.synthetic.generator import SyntheticConfig, iter_clips
from metrics.backbones import landmarks as lmk
from metrics.base import ClipScoreError, EvalSample
from metrics.landmark_regressor import (
    LandmarkRegressor,
    evaluate_regressor,
    regressor_blob,
    regressor_from_blob,
    train_regressor,
)


@pytest.fixture(scope="module")
def clips():
    cfg = SyntheticConfig(seed=5, n_speakers=4, n_clips=8, size=96, min_seconds=1.0, max_seconds=1.2)
    return list(iter_clips(cfg))


def test_auto_is_learned_on_synthetic_and_dlib_elsewhere(tmp_path):
    assert lmk.resolve_backend_name("auto", SyntheticCorpus(root=tmp_path / "s")) == "learned"
    assert lmk.resolve_backend_name("auto", LayoutCorpus("crema", tmp_path / "c", "crema")) == "dlib"
    assert lmk.resolve_backend_name("auto", None) == "dlib"
    assert lmk.resolve_backend_name("fan", None) == "fan"
    with pytest.raises(ValueError, match="did you mean 'dlib'"):
        lmk.resolve_backend_name("dlb")


class _Corpus:
    name = "fake"

    def fingerprint(self):
        return {"clips": "none-registered"}


def test_learned_without_calibration_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(lmk, "is_synthetic", lambda corpus: True)
    corpus = _Corpus()
    assert lmk.landmark_calibration_needed("auto", corpus) == "landmarks"
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
