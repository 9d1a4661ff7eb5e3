"""Head pose from 68-point landmarks, and its frame-to-frame variation (Delta P).

Angles: `cv2.solvePnP` of six landmarks against a generic 3D face (the six-point model of Mallick,
"Head Pose Estimation using OpenCV and Dlib", LearnOpenCV 2016: nose tip 30, chin 8, outer eye corners 36/45,
mouth corners 48/54, in millimetre-like model units), with a pinhole camera of focal length = frame width
centred on the frame and no distortion. The model's y and z are flipped to the image convention (y down, z
into the scene), so a frontal face has zero angles. Euler angles (degrees) from R = Rz(roll) Ry(yaw) Rx(pitch).

Delta P: the mean over adjacent frame pairs of the mean absolute change of (pitch, yaw, roll), in degrees
(differences wrapped to [-180, 180)). A still head gives 0; it grows with head motion (and with landmark jitter,
so it is comparable only for the same landmark backend).
"""

from __future__ import annotations

import numpy as np

POSE_POINTS = (30, 8, 36, 45, 48, 54)
# (x right, y up, z towards the viewer) in the source; converted to (x right, y down, z away) below
_MODEL_Y_UP = np.array(
    [
        [0.0, 0.0, 0.0],  # nose tip
        [0.0, -330.0, -65.0],  # chin
        [-225.0, 170.0, -135.0],  # outer corner of the eye on the image's left (subject's right)
        [225.0, 170.0, -135.0],  # outer corner of the other eye
        [-150.0, -150.0, -125.0],  # mouth corner, image left
        [150.0, -150.0, -125.0],  # mouth corner, image right
    ]
)
MODEL_3D = _MODEL_Y_UP * np.array([1.0, -1.0, -1.0])


def rotation_to_euler(r: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) in degrees of a rotation matrix R = Rz(roll) @ Ry(yaw) @ Rx(pitch)."""
    pitch = np.arctan2(r[2, 1], r[2, 2])
    yaw = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    roll = np.arctan2(r[1, 0], r[0, 0])
    return np.degrees([pitch, yaw, roll])


def head_angles(landmarks: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """(pitch, yaw, roll) degrees [T, 3] of landmarks [T, 68, 2] in frames of (height, width) pixels."""
    import cv2

    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be [T, 68, 2], got {lm.shape}")
    h, w = frame_size
    camera = np.array([[w, 0.0, w / 2.0], [0.0, w, h / 2.0], [0.0, 0.0, 1.0]])
    out = np.zeros((len(lm), 3))
    for t, pts in enumerate(lm[:, list(POSE_POINTS)]):
        image_points = pts.reshape(-1, 1, 2).copy()  # a view into the stacked array trips cv2's shape check
        ok, rvec, _ = cv2.solvePnP(MODEL_3D, image_points, camera, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE)
        if not ok:
            raise ValueError(f"solvePnP failed on frame {t}")
        out[t] = rotation_to_euler(cv2.Rodrigues(rvec)[0])
    return out


def pose_variation(angles: np.ndarray) -> float:
    """Delta P: mean over adjacent frames of the mean |change| of the three angles [T, 3], degrees."""
    a = np.asarray(angles, np.float64)
    if a.ndim != 2 or a.shape[1] != 3 or len(a) < 2:
        raise ValueError(f"need angles [T >= 2, 3], got {a.shape}")
    d = (np.diff(a, axis=0) + 180.0) % 360.0 - 180.0
    return float(np.abs(d).mean())
