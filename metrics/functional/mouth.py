"""Grey mouth crops for a lipreader, from iBUG-68 landmarks (mouth points 48-67).

Reference pipeline (mpc001/Lipreading_using_Temporal_Convolutional_Networks `preprocessing/dataloader.py` and
`lipreading/dataloaders.py`; docs/metrics_reference.md): landmarks averaged over neighbouring frames, face
similarity-aligned to a mean face at 256x256, a 96x96 grey ROI centred on the mouth, test-time centre crop 88x88,
`/255`, then `(x - 0.421) / 0.165`. We do not ship the reference mean face (`20words_mean_face.npy`), so the
alignment here is a similarity transform fixed by the eyes and the mouth: rotation from the eye line (roll removed),
scale so that the outer eye corners (36, 45) are `roi_eye_ratio` ROI widths apart, centre at the mean of the mouth
points. On a frontal face this matches the reference ROI's framing (mouth plus chin and nostrils) to within a few
pixels; it is our protocol choice, stated here so numbers are reproducible.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

MOUTH = slice(48, 68)
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45
MEAN, STD = 0.421, 0.165  # mpc001 lipreading/dataloaders.py Normalize(mean=0.421, std=0.165)
ROI_OVER_CROP = 96 / 88  # 96x96 ROI, 88x88 centre crop
SMOOTH_WINDOW = 12  # mpc001 preprocessing `window_margin`: landmarks averaged over up to 12 neighbouring frames


def smooth_landmarks(landmarks: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """Centred moving average of [T, 68, 2] landmarks over `window` frames (shorter at the clip ends)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if window <= 1 or len(lm) < 2:
        return lm
    half = window // 2
    csum = np.concatenate([np.zeros((1, *lm.shape[1:])), np.cumsum(lm, axis=0)])
    t = np.arange(len(lm))
    lo, hi = np.maximum(t - half, 0), np.minimum(t + half + 1, len(lm))
    smooth: np.ndarray = (csum[hi] - csum[lo]) / (hi - lo)[:, None, None]
    return smooth


def mouth_transforms(landmarks: np.ndarray, roi: int, roi_eye_ratio: float = 1.0) -> np.ndarray:
    """[T, 2, 3] affine matrices mapping each frame onto a `roi` x `roi` mouth-centred, roll-free ROI."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"mouth crops need [T, 68, 2] landmarks, got {lm.shape}")
    eye_vec = lm[:, RIGHT_EYE_OUTER] - lm[:, LEFT_EYE_OUTER]
    eye_dist = np.linalg.norm(eye_vec, axis=1)
    if not np.all(np.isfinite(lm)) or np.any(eye_dist < 1e-3):
        raise ValueError("landmarks are not finite or the eye corners coincide: no face to crop")
    angle = np.arctan2(eye_vec[:, 1], eye_vec[:, 0])
    scale = roi / (roi_eye_ratio * eye_dist)
    centre = lm[:, MOUTH].mean(axis=1)
    cos, sin = np.cos(-angle) * scale, np.sin(-angle) * scale
    m = np.zeros((len(lm), 2, 3))
    m[:, 0, 0], m[:, 0, 1] = cos, -sin
    m[:, 1, 0], m[:, 1, 1] = sin, cos
    m[:, :, 2] = roi / 2.0 - np.einsum("tij,tj->ti", m[:, :, :2], centre)
    return m


def mouth_crops(
    video: np.ndarray,
    landmarks: np.ndarray,
    crop: int = 88,
    *,
    smooth: int = SMOOTH_WINDOW,
    roi_eye_ratio: float = 1.0,
    normalise: bool = True,
) -> np.ndarray:
    """Grey mouth crops float32 [T, crop, crop] of uint8 RGB `video` [T, H, W, 3] from `landmarks` [T, 68, 2].

    The ROI is `round(crop * 96 / 88)` pixels (96 for the reference 88 crop), centre-cropped to `crop`; values
    are `(x / 255 - 0.421) / 0.165` when `normalise` (the reference's test transform), else x / 255.
    """
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"video must be uint8 [T, H, W, 3], got {video.dtype} {video.shape}")
    if len(landmarks) != len(video):
        raise ValueError(f"{len(landmarks)} landmark frames for {len(video)} video frames")
    roi = int(round(crop * ROI_OVER_CROP))
    mats = mouth_transforms(smooth_landmarks(landmarks, smooth), roi, roi_eye_ratio)
    off = (roi - crop) // 2  # mpc001 CenterCrop: int(round((96 - 88) / 2))
    out = np.empty((len(video), crop, crop), dtype=np.float32)
    for t, (frame, m) in enumerate(zip(video, mats)):
        grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        warped = cv2.warpAffine(grey, m, (roi, roi), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        out[t] = warped[off : off + crop, off : off + crop].astype(np.float32) / 255.0
    if normalise:
        out = (out - MEAN) / STD
    return out


def mouth_rois(
    video: np.ndarray,
    landmarks: np.ndarray,
    roi: int,
    *,
    smooth: int = SMOOTH_WINDOW,
    roi_eye_ratio: float = 1.0,
) -> np.ndarray:
    """The same aligned mouth ROIs as `mouth_crops` before the grey conversion and centre crop: uint8 RGB
    [T, roi, roi, 3] (lipreader calibration draws its colour and geometry augmentations from these)."""
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"video must be uint8 [T, H, W, 3], got {video.dtype} {video.shape}")
    if len(landmarks) != len(video):
        raise ValueError(f"{len(landmarks)} landmark frames for {len(video)} video frames")
    mats = mouth_transforms(smooth_landmarks(landmarks, smooth), roi, roi_eye_ratio)
    out = np.empty((len(video), roi, roi, 3), dtype=np.uint8)
    for t, (frame, m) in enumerate(zip(video, mats)):
        out[t] = cv2.warpAffine(
            np.ascontiguousarray(frame), m, (roi, roi), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
    return out


def pad_batch(crops: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad [T_i, H, W] crop sequences to (B, 1, T_max, H, W) plus their lengths (mpc001 `pad_packed_collate`)."""
    if not crops:
        raise ValueError("no crop sequences to batch")
    lengths = torch.tensor([len(c) for c in crops], dtype=torch.long)
    h, w = crops[0].shape[1:]
    x = torch.zeros(len(crops), 1, int(lengths.max()), h, w)
    for i, c in enumerate(crops):
        x[i, 0, : len(c)] = torch.from_numpy(np.ascontiguousarray(c))
    return x, lengths


def word_frames(span: tuple[float, float] | None, n_frames: int, margin: int = 2, fps: int = 25) -> tuple[int, int]:
    """Frames [a, b) covering a word spoken over `span` seconds, widened by `margin` frames each side and clipped
    to the clip; the whole clip when the span is unknown (LRW's protocol: the word is centred in the clip)."""
    if span is None:
        return 0, n_frames
    a = max(0, int(np.floor(span[0] * fps)) - margin)
    b = min(n_frames, int(np.ceil(span[1] * fps)) + margin)
    if b - a < 1:
        raise ValueError(f"word span {span} s lies outside the clip's {n_frames} frames")
    return a, b
