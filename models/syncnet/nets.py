"""Wav2Lip's lip-sync expert `SyncNet_color` (Wav2Lip:models/syncnet.py).

Layer order, kernel sizes, strides and paddings follow the official class so that `lipsync_expert.pth` loads
strictly (keys in tests/data_files/wav2lip_SyncNet_color_state_dict.tsv; docs/checkpoints.md). `width` scales
every hidden channel count (the `tiny` preset) and leaves the key set unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.common.blocks import ConvBNReLU, scale_channels

# (cout, kernel, stride, padding, residual) per block. Face path: 48x96 -> 48x96 -> 46x47 -> 23x24 -> 12x12
# -> 6x6 -> 3x3 -> 1x1 -> 1x1 (official comments).
_FACE_BLOCKS: list[tuple[int, int, int | tuple[int, int], int, bool]] = [
    (32, 7, 1, 3, False),
    (64, 5, (1, 2), 1, False),
    (64, 3, 1, 1, True),
    (64, 3, 1, 1, True),
    (128, 3, 2, 1, False),
    (128, 3, 1, 1, True),
    (128, 3, 1, 1, True),
    (128, 3, 1, 1, True),
    (256, 3, 2, 1, False),
    (256, 3, 1, 1, True),
    (256, 3, 1, 1, True),
    (512, 3, 2, 1, False),
    (512, 3, 1, 1, True),
    (512, 3, 1, 1, True),
    (512, 3, 2, 1, False),
    (512, 3, 1, 0, False),
    (512, 1, 1, 0, False),
]

# Audio path (80 mel x 16 steps): 80x16 -> 27x16 -> 9x6 -> 3x3 -> 1x1.
_AUDIO_BLOCKS: list[tuple[int, int, int | tuple[int, int], int, bool]] = [
    (32, 3, 1, 1, False),
    (32, 3, 1, 1, True),
    (32, 3, 1, 1, True),
    (64, 3, (3, 1), 1, False),
    (64, 3, 1, 1, True),
    (64, 3, 1, 1, True),
    (128, 3, 3, 1, False),
    (128, 3, 1, 1, True),
    (128, 3, 1, 1, True),
    (256, 3, (3, 2), 1, False),
    (256, 3, 1, 1, True),
    (256, 3, 1, 1, True),
    (512, 3, 1, 0, False),
    (512, 1, 1, 0, False),
]

FACE_CHANNELS = 15  # 5 frames x BGR, channel index 3*t + c
FACE_SIZE = (48, 96)  # lower half of a 96x96 face crop
MEL_SHAPE = (80, 16)


def _stack(cin: int, blocks: list, width: float) -> nn.Sequential:
    layers = []
    for cout, kernel, stride, padding, residual in blocks:
        cout = scale_channels(cout, width)
        layers.append(ConvBNReLU(cin, cout, kernel, stride, padding, residual))
        cin = cout
    return nn.Sequential(*layers)


class SyncNetColor(nn.Module):
    """Lip-sync expert: embeds 5 lower-half face frames and their 0.2 s of mel into a shared space.

    forward(audio (B,1,80,16) mel in [-4,4], face (B,15,48,96) BGR in [0,1]) -> (audio_emb, face_emb), each
    (B, 512*width) L2-normalised. Both encoders end in a ReLU'd block, so the embeddings are non-negative and
    their cosine lies in [0, 1], which is what lets the official code feed it to BCELoss.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.width = float(width)
        self.face_encoder = _stack(FACE_CHANNELS, _FACE_BLOCKS, self.width)
        self.audio_encoder = _stack(1, _AUDIO_BLOCKS, self.width)

    @property
    def embedding_dim(self) -> int:
        return scale_channels(512, self.width)

    def forward(self, audio: torch.Tensor, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        audio_emb = self.audio_encoder(audio).flatten(1)
        face_emb = self.face_encoder(face).flatten(1)
        return F.normalize(audio_emb, p=2, dim=1), F.normalize(face_emb, p=2, dim=1)


def sync_probability(audio_emb: torch.Tensor, face_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of L2-normalised embeddings, read as P(in sync) (Wav2Lip's `cosine_loss` input).

    Clamped to [0, 1]: rounding can push the cosine of non-negative unit vectors a hair past 1, which
    `binary_cross_entropy` rejects.
    """
    return (audio_emb * face_emb).sum(dim=1).clamp(0.0, 1.0)


def sync_bce(audio_emb: torch.Tensor, face_emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE between the cosine similarity and the in-sync label (Wav2Lip color_syncnet_train.py `cosine_loss`)."""
    return F.binary_cross_entropy(sync_probability(audio_emb, face_emb), target.to(audio_emb.dtype))
