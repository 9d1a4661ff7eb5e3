"""The 96 px face crop of the Wav2Lip family (Wav2Lip, its lip-sync expert, LipGAN) and its colour convention.

The official loaders read frames with cv2 (BGR) and divide by 255, and crop faces to 96x96 (Wav2Lip hparams.img_size,
LipGAN's img_size); the generators redraw, and the expert sees, the lower half of that crop. `rgb_to_model` and
`model_to_rgb` are the only places where the conversion happens: colour conversions at the model boundary only.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import torch

FACE_SIZE = 96  # Wav2Lip hparams.img_size
LOWER_HALF = slice(FACE_SIZE // 2, FACE_SIZE)  # rows 48-95: the mouth region the expert sees / the generator redraws


def resize_faces(frames: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 [T, size, size, 3]; INTER_AREA, which averages when shrinking."""
    if frames.shape[1:3] == (size, size):
        return frames
    out = np.empty((frames.shape[0], size, size, 3), np.uint8)
    for i, frame in enumerate(frames):
        out[i] = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    return out


def rgb_to_model(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB [..., H, W, 3] -> float32 BGR [..., 3, H, W] in [0, 1], Wav2Lip's input convention."""
    with warnings.catch_warnings():
        # read-only memory-mapped clips are fine here: flip() copies before anything could write
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        t = torch.as_tensor(frames)
    return t.flip(-1).movedim(-1, -3).float().div_(255.0)


def model_to_rgb(x: torch.Tensor) -> np.ndarray:
    """float BGR [..., 3, H, W] in [0, 1] -> uint8 RGB [..., H, W, 3].

    Rounds, where the official inference.py truncates (`(pred * 255).astype(np.uint8)`): truncation maps
    v / 255 * 255 = v - 1e-5 to v - 1, darkening every pixel by half a level on average.
    """
    t = (x.detach().float().clamp(0.0, 1.0) * 255.0).round_().to(torch.uint8)
    return t.movedim(-3, -1).flip(-1).cpu().numpy()
