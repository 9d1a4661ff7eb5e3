"""One resize, done by the metric that needs it.

A submitted video reaches every metric at its own size: a metric with a reference implementation resizes the
original frames once, as that implementation does (SyncNet to 224, I3D, Inception), and only a metric that pairs
generated frames with the reference's pixel by pixel (PSNR/SSIM) or point by point (LMD, a mouth crop placed by the
reference's landmarks) brings one side to the other's size, here. Resizing a 224 px video to a 128 px corpus first
and then again to 224 for SyncNet moved its min-distance by up to 1.0 (docs/metrics_reference.md, "One resize").
"""

from __future__ import annotations

import numpy as np


def to_size(video: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """uint8 [T, H, W, C] frames at `hw` = (height, width): area averaging when shrinking (no aliasing), bilinear
    when enlarging (area interpolation then degenerates to nearest neighbour); the frames themselves when equal."""
    import cv2

    h, w = int(hw[0]), int(hw[1])
    if video.shape[1:3] == (h, w):
        return video
    shrink = video.shape[1] * video.shape[2] > h * w
    flag = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (w, h), interpolation=flag) for f in video]) if len(video) else video[:, :h, :w]


def scale_points(points: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates (x, y in the last axis) of a `src_hw` frame mapped onto a `dst_hw` frame of the same view
    (pixel-edge convention: the frame's border maps to the border)."""
    if tuple(src_hw) == tuple(dst_hw):
        return points
    sy, sx = dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]
    out = np.asarray(points, np.float64).copy()
    out[..., 0] = (out[..., 0] + 0.5) * sx - 0.5
    out[..., 1] = (out[..., 1] + 0.5) * sy - 0.5
    return out.astype(np.asarray(points).dtype, copy=False)
