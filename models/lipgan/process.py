"""LipGAN's generator input, shared by its training windows (windows.py) and its face redraw (module.py).

LipGAN:train.py `datagen` and batch_inference.py stack a reference frame and the target frame with its lower half
zeroed; training takes the reference from another frame of the clip, inference from the frame itself.
"""

from __future__ import annotations

import torch

from models.common.frames import LOWER_HALF


def lipgan_input(faces: torch.Tensor, references: torch.Tensor | None = None) -> torch.Tensor:
    """(N,3,96,96) BGR targets (and references, default the targets) -> (N,6,96,96) [reference, masked target].

    The official order (train.py `concat([img_ip, img_gt_masked])`), the opposite of Wav2Lip's.
    """
    masked = faces.clone()
    masked[:, :, LOWER_HALF] = 0.0
    return torch.cat([faces if references is None else references, masked], dim=1)
