"""The one face-box rule: every door that cuts a Wav2Lip-style face box out of a frame goes through it.

Preparation's `wav2lip` crop (data.faces.crops) and `bench generate` (models.facecrop, benchmark.generate) both
call these functions, so a model sees at inference the framing it was trained on. The rule (docs/faces.md):

1. `landmark_boxes`: a box from iBUG-68 landmarks, rounded outwards to whole pixels (as a detector's box);
2. `pad_boxes`: pads (top, bottom, left, right) added and the box clipped to the frame (Wav2Lip inference.py);
3. `smooth_boxes`: the forward mean over `SMOOTH_T` boxes of inference.py `get_smoothened_boxes`, applied within
   each run of frames that have a face, rounded to whole pixels.

Boxes are int64 [T, 4] (x1, y1, x2, y2), x2 / y2 exclusive; a row of -1 (`NO_BOX`) marks a frame without a face.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Forehead margin, as a fraction of the brow-to-chin height, added above the highest brow point. The 68 points
# stop at the brows, while the S3FD boxes Wav2Lip was trained on (preprocess.py) take in part of the forehead.
# By the usual facial proportions the forehead is about half the brow-to-chin height and S3FD's top edge lies
# near the middle of it: 0.25. It is also the margin corpora were prepared with before the rule was shared.
FOREHEAD = 0.25
SMOOTH_T = 5  # Wav2Lip inference.py get_smoothened_boxes(boxes, T=5)
NO_BOX = np.full(4, -1, np.int64)
BROWS = slice(17, 27)  # iBUG-68 points 17-26: both eyebrows


def landmark_boxes(landmarks: np.ndarray) -> np.ndarray:
    """int64 [T, 4] face boxes from landmarks [T, 68, 2] in frame pixels; -1 rows where a frame has NaNs.

    x from the leftmost to the rightmost point, y from the highest brow point raised by FOREHEAD of the
    brow-to-chin height down to the lowest point (the chin); rounded outwards (floor x1 / y1, ceil x2 / y2).
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be [T, 68, 2], got {lm.shape}")
    out = np.tile(NO_BOX, (len(lm), 1))
    ok = np.isfinite(lm).all(axis=(1, 2))
    if ok.any():
        pts = lm[ok]
        x1, x2 = pts[:, :, 0].min(1), pts[:, :, 0].max(1)
        top, bottom = pts[:, BROWS, 1].min(1), pts[:, :, 1].max(1)
        y1 = top - FOREHEAD * (bottom - top)
        out[ok] = np.stack([np.floor(x1), np.floor(y1), np.ceil(x2), np.ceil(bottom)], 1).astype(np.int64)
    return out


def pad_boxes(boxes: np.ndarray, pads: Sequence[int], width: int, height: int) -> np.ndarray:
    """inference.py: y1 -= top, y2 += bottom, x1 -= left, x2 += right, then clipped to the frame.

    -1 rows stay; a box that leaves no pixel inside the frame becomes -1 (no face to crop there).
    """
    top, bottom, left, right = (int(p) for p in pads)
    out = np.asarray(boxes, np.int64).copy()
    ok = out[:, 0] >= 0
    out[ok] += np.array([-left, -top, right, bottom])
    out[ok] = np.clip(out[ok], 0, [width, height, width, height])
    bad = ok & ((out[:, 2] <= out[:, 0]) | (out[:, 3] <= out[:, 1]))
    out[bad] = NO_BOX
    return out


def forward_mean(values: np.ndarray, t: int) -> np.ndarray:
    """Wav2Lip inference.py `get_smoothened_boxes`: each row is the mean of itself and the next t-1 rows (the
    last t rows share the final window). Unlike the official loop it averages the unsmoothed rows throughout
    (the official one writes into the array it reads, so its final windows mix in already smoothed rows)."""
    values = np.asarray(values, np.float64)
    n = len(values)
    if n == 0:
        return values.copy()
    if n <= t:
        return np.repeat(values.mean(0, keepdims=True), n, axis=0)
    c = np.cumsum(np.concatenate([np.zeros_like(values[:1]), values]), axis=0)
    starts = np.minimum(np.arange(n), n - t)
    return (c[starts + t] - c[starts]) / t


def smooth_boxes(boxes: np.ndarray, t: int = SMOOTH_T) -> np.ndarray:
    """The forward mean over t boxes within each run of consecutive frames with a face, rounded to pixels.

    A face-less frame (-1 row) stays one and never pulls a neighbour's box; a clip whose gaps were filled
    (preparation interpolates missing landmarks) is one run, smoothed exactly as inference.py smooths.
    """
    boxes = np.asarray(boxes, np.int64)
    out = boxes.copy()
    ok = boxes[:, 0] >= 0
    # run boundaries: where `ok` switches on and off
    edges = np.flatnonzero(np.diff(np.concatenate([[False], ok, [False]]).astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2]):
        out[start:stop] = np.round(forward_mean(boxes[start:stop], t)).astype(np.int64)
    return out


def face_boxes(
    landmarks: np.ndarray,
    width: int,
    height: int,
    pads: Sequence[int] = (0, 0, 0, 0),
    smooth: bool = True,
) -> np.ndarray:
    """The whole rule: landmarks [T, 68, 2] -> padded, clipped, smoothed int64 boxes [T, 4] (-1: no face)."""
    boxes = pad_boxes(landmark_boxes(landmarks), pads, width, height)
    return smooth_boxes(boxes) if smooth else boxes


def fill_gaps(landmarks: np.ndarray) -> np.ndarray:
    """Linear interpolation over frames without a face (edge frames take the nearest face)."""
    ok = np.isfinite(landmarks).all(axis=(1, 2))
    if ok.all() or not ok.any():
        return landmarks
    t = np.arange(len(landmarks))
    flat = landmarks.reshape(len(landmarks), -1).copy()
    for k in range(flat.shape[1]):
        flat[~ok, k] = np.interp(t[~ok], t[ok], flat[ok, k])
    return flat.reshape(landmarks.shape)
