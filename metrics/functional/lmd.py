"""Landmark distance (LMD) between generated and real clips.

Chen et al., ECCV 2018 ("Lip Movements Generation at a Glance"): the mean Euclidean distance between
corresponding mouth landmarks (iBUG-68 points 48-67) of generated and ground-truth frames, averaged over points
and frames. Implementations differ in the image size the distance is measured at and in whether each frame's
points are first centred on their mean (removing head translation) (docs/metrics_reference.md), so
both are explicit here: distances are in pixels of a frame rescaled to `scale` pixels wide (128 by default,
the synthetic corpus's and Diffused Heads' frame size), and `centre=True` removes each frame's mean point.
"""

from __future__ import annotations

import numpy as np

MOUTH = tuple(range(48, 68))
FACE = tuple(range(68))
POINT_SETS = {"mouth": MOUTH, "face": FACE}


def landmark_distance(
    fake: np.ndarray,
    real: np.ndarray,
    frame_width: float,
    points: str = "mouth",
    scale: float = 128.0,
    centre: bool = False,
) -> float:
    """Mean distance over frames and `points` ("mouth" = 48-67, "face" = all 68) of landmarks [T, 68, 2].

    frame_width: width in pixels of the frames the landmarks are in; distances are rescaled to `scale` px.
    The clips are compared over their common length min(T_fake, T_real).
    """
    if points not in POINT_SETS:
        raise ValueError(f"points must be one of {sorted(POINT_SETS)}, got {points!r}")
    fake, real = np.asarray(fake, np.float64), np.asarray(real, np.float64)
    for name, lm in (("fake", fake), ("real", real)):
        if lm.ndim != 3 or lm.shape[1:] != (68, 2):
            raise ValueError(f"{name} landmarks must be [T, 68, 2], got {lm.shape}")
    t = min(len(fake), len(real))
    if t == 0:
        raise ValueError("landmark distance of an empty clip")
    idx = list(POINT_SETS[points])
    f, r = fake[:t, idx], real[:t, idx]
    if centre:
        f = f - f.mean(axis=1, keepdims=True)
        r = r - r.mean(axis=1, keepdims=True)
    return float(np.linalg.norm(f - r, axis=-1).mean() * (scale / float(frame_width)))
