"""Temporal smoothness of a video: optical-flow magnitude (OFM) and frame MSE (F-MSE).

Diffused Heads (App. A) reports both; its `smoothness_eval.py` (train branch @2838e57) is the reference:
frames resized to 128x128, Farneback flow between consecutive grey frames. Two modes (docs/metrics_reference.md):

- ``paper``: what `smoothness_eval.py` computes, quirks included. OFM is the mean BGR value of the JET
  colour map of the per-frame-pair min-max normalised magnitude (so it lies in 0-255 and is not a length in
  pixels); F-MSE squares uint8 differences in uint8 arithmetic, which wraps modulo 256.
- ``standard``: the definitions the paper's text implies. OFM is the mean flow magnitude in pixels of the
  128x128 frames; F-MSE is the float mean squared difference of consecutive 128x128 frames on the 0-255 scale.

Inputs are uint8 RGB videos [T, H, W, 3] (docs/clip_contract.md); the reference reads BGR with OpenCV, so frames are
converted to BGR first, which keeps its grey weights (`COLOR_BGR2GRAY`) and its channel order in the means.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

MODES = ("paper", "standard")
FLOW_SIZE = 128  # smoothness_eval.py: cv.resize(frame, (128, 128))
# smoothness_eval.py: cv.calcOpticalFlowFarneback(prev, cur, None, 0.5, 7, 5, 15, 5, 1.2, 0)
FARNEBACK_ARGS: dict[str, Any] = {
    "pyr_scale": 0.5,
    "levels": 7,
    "winsize": 5,
    "iterations": 15,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}


def _check(video: np.ndarray, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be uint8 [T, H, W, 3] RGB, got {video.dtype} {tuple(video.shape)}")
    if video.shape[0] < 2:
        raise ValueError(f"smoothness needs at least 2 frames, got {video.shape[0]}")


def bgr_frames_128(video: np.ndarray) -> np.ndarray:
    """uint8 BGR frames [T, 128, 128, 3] as smoothness_eval.py sees them (cv2.resize, default bilinear)."""
    return np.stack([cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), (FLOW_SIZE, FLOW_SIZE)) for frame in video])


def farneback_flows(video: np.ndarray, identical_is_still: bool = False) -> list[np.ndarray]:
    """Farneback flow float32 [128, 128, 2] for each consecutive frame pair of an RGB uint8 video.

    identical_is_still: give identical grey frames an all-zero field instead of Farneback's estimate, which
    leaves spurious border flow on textured frames (see `optical_flow_magnitude`).
    """
    grey = [cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) for frame in bgr_frames_128(video)]
    return [
        np.zeros((*cur.shape, 2), np.float32)
        if identical_is_still and np.array_equal(prev, cur)
        else cv2.calcOpticalFlowFarneback(prev, cur, None, **FARNEBACK_ARGS)
        for prev, cur in zip(grey[:-1], grey[1:])
    ]


def paper_flow_image(flow: np.ndarray) -> np.ndarray:
    """smoothness_eval.py's stored image for one flow field: JET colour map of the min-max normalised magnitude.

    cv2.normalize maps a constant magnitude (e.g. a frozen frame pair) to all zeros, and JET maps 0 to BGR
    (128, 0, 0), so such a pair contributes 128/3 ~ 42.667 to the paper OFM, not 0.
    """
    magnitude, _ = cv2.cartToPolar(flow[..., 0], flow[..., 1])
    magnitude = cv2.normalize(magnitude, None, 0, 255, cv2.NORM_MINMAX)
    return cv2.applyColorMap(magnitude.astype(np.uint8), cv2.COLORMAP_JET)


def optical_flow_magnitude(video: np.ndarray, mode: str = "paper") -> float:
    """OFM of one video (uint8 RGB [T, H, W, 3], T >= 2).

    paper: mean over all frame pairs, pixels and the 3 channels of `paper_flow_image` (range 0-255). A frozen
    video gives 128/3 ~ 42.667 here, because that is what the reference code computes (see `paper_flow_image`).
    standard: mean over pairs and pixels of sqrt(fx^2 + fy^2), in pixels of the 128x128 frames (frozen: 0).

    On two identical textured frames OpenCV's Farneback leaves up to ~1 px of spurious flow in the outer 2-3
    pixel rows/columns. paper mode keeps it, as the reference does (a frozen synthetic-corpus clip measures
    ~42.95: the min-max normalisation stretches that border noise to 0-255); standard mode counts identical
    frames as still (zero flow), so a frozen video measures exactly 0.
    """
    _check(video, mode)
    flows = farneback_flows(video, identical_is_still=mode == "standard")
    if mode == "paper":
        # the reference keeps every colour-mapped image and takes np.mean of the list; same here
        return float(np.mean(np.stack([paper_flow_image(flow) for flow in flows])))
    return float(np.mean([np.mean(np.hypot(flow[..., 0], flow[..., 1]), dtype=np.float64) for flow in flows]))


def frame_mse(video: np.ndarray, mode: str = "paper") -> float:
    """F-MSE of one video (uint8 RGB [T, H, W, 3], T >= 2) over its 128x128 BGR frames.

    paper: mean of `(frame - prev) ** 2` evaluated in uint8 numpy arithmetic, as smoothness_eval.py does:
    both the subtraction and the square wrap modulo 256 (e.g. 10 -> 250 gives 240**2 % 256 = 0).
    standard: mean of the float squared differences (0-255 scale, range 0-65025).
    """
    _check(video, mode)
    frames = bgr_frames_128(video)
    if mode == "paper":
        return float(np.mean(np.stack([(cur - prev) ** 2 for prev, cur in zip(frames[:-1], frames[1:])])))
    diff = np.diff(frames.astype(np.float64), axis=0)
    return float(np.mean(diff**2))
