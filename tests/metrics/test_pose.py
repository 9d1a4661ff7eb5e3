"""CAPP-style audio-pose alignment: functional pieces, training on a corpus where pose follows the audio, metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics.backbones.capp import CappConfig, capp_blob, capp_from_blob
from metrics.base import EvalSample
from metrics.calibration.capp import train_capp
from metrics.functional.pose import (
    audio_frame_features,
    contrastive_loss,
    pose_features,
    window_starts,
)
from metrics.pose import AudioPoseAlignment

torch.set_num_threads(1)
TINY = CappConfig(window=20, hop=10, d_model=32, pose_layers=1, audio_layers=1, heads=2, embed_dim=16, lr=3e-3)


def test_pose_features_known_answer() -> None:
    angles = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 3.0], [0.0, 0.0, 5.0]])
    f = pose_features(angles, scale_deg=1.0)
    assert np.allclose(f[:, 2], [-2.0, 0.0, 2.0]) and np.allclose(f[:, 5], [0.0, 2.0, 2.0])
    assert np.allclose(f[:, [0, 1, 3, 4]], 0.0)
    with pytest.raises(ValueError, match="angles must be"):
        pose_features(np.zeros((4, 2)))
    assert window_starts(50, 20, 10) == [0, 10, 20, 30] and window_starts(10, 20, 5) == []


def test_contrastive_loss_prefers_matched_pairs() -> None:
    torch.manual_seed(0)
    e = torch.randn(8, 16)
    assert float(contrastive_loss(e, e)) < float(contrastive_loss(e, e.roll(1, 0)))
    assert float(contrastive_loss(e, e, temperature=0.01)) < 1e-3


def _loudness_pose_items(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Synthetic speech whose head roll follows the smoothed loudness: pose and audio are aligned by design."""
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(SyntheticConfig(n_clips=n, size=64, min_seconds=2.0, max_seconds=2.4, seed=seed))
    items = []
    for i in range(n):
        audio = render_clip(spec, i).audio
        energy = audio_frame_features(audio).mean(1)
        roll = np.convolve(energy - energy.mean(), np.ones(3) / 3, mode="same") * 20.0
        angles = np.stack([np.zeros_like(roll), np.zeros_like(roll), roll], 1)
        items.append((angles, audio))
    return items


def test_capp_learns_alignment_that_generalises() -> None:
    items = _loudness_pose_items(10, seed=4)
    net = train_capp(items[:7], TINY, max_steps=150, seed=0)
    held = items[7:]
    matched = [net.score(a, au) for a, au in held]
    shuffled = [net.score(held[i][0], held[(i + 1) % len(held)][1]) for i in range(len(held))]
    assert np.mean(matched) > np.mean(shuffled) + 0.2
    again = capp_from_blob(capp_blob(net))
    assert again.score(*held[0]) == pytest.approx(matched[0], abs=1e-6)


def test_metric_scores_clips_from_their_landmarks() -> None:
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(SyntheticConfig(n_clips=2, size=64, min_seconds=1.0, max_seconds=1.2, seed=1))
    clip = render_clip(spec, 0)
    net = train_capp([(np.zeros((clip.num_frames, 3)), clip.audio)], TINY, max_steps=2)
    metric = AudioPoseAlignment(net=net, landmarks="file")
    ok = EvalSample(0, "a", clip.video, audio=clip.audio, fake_landmarks=clip.landmarks)
    short = EvalSample(1, "b", clip.video[:10], audio=clip.audio[: 640 * 10], fake_landmarks=clip.landmarks[:10])
    metric.update([ok, short])
    out = metric.compute()
    assert -1.0 <= float(out["capp"]) <= 1.0 and int(metric.n_failed) == 1
    assert "needs at least 20 frames" in metric.failures[0][1]


def test_capp_asks_for_its_calibration_unless_given_weights():
    from metrics.pose import AudioPoseAlignment

    assert AudioPoseAlignment.calibration_needed({"weights": None, "landmarks": "file"}, None) == ["capp"]
    assert AudioPoseAlignment.calibration_needed({"weights": "capp.pt", "landmarks": "file"}, None) == []
