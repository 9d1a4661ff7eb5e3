"""Wav2Lip's convolution blocks (Wav2Lip:models/conv.py), shared by the SyncNet expert and the generator.

The attribute names (`conv_block.0` = convolution, `conv_block.1` = BatchNorm) are part of the checkpoint
format: the official `lipsync_expert.pth` / `wav2lip.pth` state dicts are keyed by them.
"""

from __future__ import annotations

import torch
from torch import nn

_Size = int | tuple[int, int]


MIN_CHANNELS = 8


def scale_channels(channels: int, width: float) -> int:
    """Channel count of a layer under a width multiplier, never below 8 (nor above the layer's own count).

    The floor matters at the full-resolution levels of the generator: at width 0.125 the 96x96 encoder level
    would keep 2 channels, too few to carry the colours of the masked and reference frames through the skip
    connection (tiny runs then lose each unseen speaker's colours). Official widths are all >= 16.
    """
    return min(channels, max(MIN_CHANNELS, int(round(channels * width))))


class ConvBNReLU(nn.Module):
    """Conv2d + BatchNorm2d (+ identity residual) + ReLU: Wav2Lip's `Conv2d` block.

    The residual is added before the ReLU, as in the official block; a residual block must keep its shape.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: _Size,
        stride: _Size = 1,
        padding: _Size = 0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class ConvTransposeBNReLU(nn.Module):
    """ConvTranspose2d + BatchNorm2d + ReLU: Wav2Lip's `Conv2dTranspose` block."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: _Size,
        stride: _Size = 1,
        padding: _Size = 0,
        output_padding: _Size = 0,
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


class ConvLeakyReLU(nn.Module):
    """Conv2d + LeakyReLU(0.01) without normalisation: Wav2Lip's `nonorm_Conv2d` (quality discriminator)."""

    def __init__(self, cin: int, cout: int, kernel_size: _Size, stride: _Size = 1, padding: _Size = 0) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding))
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))
