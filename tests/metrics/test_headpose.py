"""Delta P: angles of a known rotation, zero for a still head, larger for the synthetic GT than a frozen clip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from data.synthetic.generator import SyntheticConfig, iter_clips
from data.synthetic.perturb import freeze_video
from metrics.backbones.landmarks import FileLandmarks
from metrics.base import EvalSample
from metrics.functional.headpose import MODEL_3D, POSE_POINTS, head_angles, pose_variation
from metrics.headpose import HeadPoseVariation


def _project(pitch, yaw, roll, size=256):
    rx = cv2.Rodrigues(np.array([np.radians(pitch), 0.0, 0.0]))[0]
    ry = cv2.Rodrigues(np.array([0.0, np.radians(yaw), 0.0]))[0]
    rz = cv2.Rodrigues(np.array([0.0, 0.0, np.radians(roll)]))[0]
    r = rz @ ry @ rx
    cam = np.array([[size, 0, size / 2], [0, size, size / 2], [0, 0, 1.0]])
    pts, _ = cv2.projectPoints(MODEL_3D, cv2.Rodrigues(r)[0], np.array([0.0, 0.0, 2500.0]), cam, np.zeros(4))
    lm = np.zeros((68, 2))
    lm[list(POSE_POINTS)] = pts.reshape(-1, 2)
    return lm


def test_angles_of_known_rotations():
    poses = [(0, 0, 0), (10, 0, 0), (0, -15, 0), (0, 0, 20), (5, 10, -8)]
    lm = np.stack([_project(*p) for p in poses])
    np.testing.assert_allclose(head_angles(lm, (256, 256)), np.array(poses, float), atol=0.05)
    # adjacent changes: (10,0,0), (10,15,0), (0,15,20), (5,10,28) -> means 10/3, 25/3, 35/3, 43/3
    assert pose_variation(head_angles(lm, (256, 256))) == pytest.approx((10 + 25 + 35 + 43) / 12, abs=0.05)
    assert pose_variation(np.array([[0, 0, 179.0], [0, 0, -179.0]])) == pytest.approx(2 / 3)  # wrapped


def test_still_head_zero_and_gt_moves_more_than_frozen():
    cfg = SyntheticConfig(seed=3, n_speakers=4, n_clips=3, size=96, min_seconds=1.0, max_seconds=1.2)
    clips = list(iter_clips(cfg))

    def score(cs):
        m = HeadPoseVariation(backend=FileLandmarks())
        m.update([EvalSample(i, c.clip_id, c.video, fake_landmarks=c.landmarks) for i, c in enumerate(cs)])
        return m.compute()["delta_p"].item()

    frozen = score([freeze_video(c) for c in clips])
    assert frozen == 0.0
    assert score(clips) > 0.1
    m = HeadPoseVariation(backend=FileLandmarks())
    m.update([EvalSample(0, "one", clips[0].video[:1], fake_landmarks=clips[0].landmarks[:1])])
    assert m.n_failed.item() == 1
