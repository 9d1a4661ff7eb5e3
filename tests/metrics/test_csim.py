"""CSIM: dlib identity embeddings; a clip against itself scores 1, against degraded copies less."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from metrics.base import EvalSample

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "blink_example.mp4"

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="dlib not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("face_recognition_models") is None, reason="face-recognition-models not installed"
    ),
    pytest.mark.skipif(not FIXTURE.exists(), reason="shared/fixtures/blink_example.mp4 absent"),
]


@pytest.fixture(scope="module")
def face_clip():
    from data.io import read_video
    from metrics.backbones.landmarks import build_backend

    video = read_video(FIXTURE)[::15]  # 5 frames
    return video, build_backend("dlib").estimate(video)


def test_embedder_is_the_official_file(face_clip):
    from metrics.backbones.face_embed import DlibFaceEmbedder, cosine

    video, lm = face_clip
    emb = DlibFaceEmbedder()
    assert emb.info["weights"] == "dlib_face_recognition_resnet_model_v1.dat" and len(emb.info["sha256"]) == 64
    x = emb.embed(video[:2], lm[:2])
    assert x.shape == (2, 128)
    # same person, two frames 0.6 s apart: dlib's same-identity rule is a euclidean distance < 0.6
    assert np.linalg.norm(x[0] - x[1]) < 0.6 and cosine(x[:1], x[1:])[0] > 0.9


def test_csim_itself_is_one_and_degraded_is_lower(face_clip):
    from metrics.backbones.landmarks import FileLandmarks
    from metrics.csim import IdentitySimilarity

    video, lm = face_clip
    noisy = np.clip(video + np.random.default_rng(0).normal(0, 60, video.shape), 0, 255).astype(np.uint8)

    def score(fake, reference="paired"):
        m = IdentitySimilarity(frames=2, reference=reference, backend=FileLandmarks())
        m.update([EvalSample(0, "c", fake, real=video, fake_landmarks=lm, real_landmarks=lm)])
        return m.compute()["csim"].item(), m

    itself, m = score(video)
    assert itself == pytest.approx(1.0, abs=1e-9)
    assert m.evaluator_info["face_embedder"]["status"] == "official"
    assert score(noisy)[0] < itself - 0.005
    assert 0.8 < score(video, "identity_frame")[0] < 1.0
