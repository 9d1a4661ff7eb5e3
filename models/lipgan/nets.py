"""LipGAN's residual generator and contrastive audio-visual discriminator, ported from Keras to PyTorch.

Sources: LipGAN:generator.py `create_model_residual` and LipGAN:discriminator.py `create_model` (master, MFCC
input 12x35); the mel variant follows the fully_pythonic branch's audio encoders (80x27 input), with the
residual generator's two residual blocks per level in place of the basic model's two plain conv blocks.
Facts (docs/lipgan.md, with keras-contrib's instancenormalization.py):
- channels-last Keras graphs become NCHW here; generator face input = [reference frame, target frame with rows
  48-95 zeroed] (the opposite channel order to Wav2Lip), BGR in [0, 1];
- Keras BatchNormalization(momentum=0.8) = PyTorch momentum 0.2, epsilon 1e-3;
- TF "same" padding with stride 2 pads the extra row/column at the bottom/right, and Conv2DTranspose "same"
  crops the full transposed output from the bottom/right; both are reproduced exactly (not PyTorch's
  symmetric padding), so ported weights give the same numbers;
- keras-contrib InstanceNormalization() (axis=None): per sample over all of H, W, C, scalar gamma/beta,
  epsilon 1e-3 added to the standard deviation.
Modules are created in the order the Keras code creates its layers, so Keras weights can be assigned in order.
This is a re-implementation: no PyTorch LipGAN exists, and the official .h5 weights were not available here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.common.blocks import scale_channels

FACE_SIZE = 96
KERAS_BN_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.2  # = 1 - Keras momentum 0.8
AUDIO_SHAPES: dict[str, tuple[int, int]] = {"mfcc": (12, 35), "mel": (80, 27)}

_Size = int | tuple[int, int]


def _pair(x: _Size) -> tuple[int, int]:
    return (x, x) if isinstance(x, int) else (int(x[0]), int(x[1]))


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF's "same" convolution: the odd extra pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class KerasConv2d(nn.Conv2d):
    """Conv2D with Keras `padding="same"` (TF's asymmetric rule) or `"valid"`."""

    def __init__(self, cin: int, cout: int, kernel_size: _Size, stride: _Size = 1, padding: str = "same") -> None:
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        super().__init__(cin, cout, _pair(kernel_size), _pair(stride), padding=0)
        self.keras_padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.keras_padding == "same":
            top, bottom = tf_same_pads(x.shape[-2], self.kernel_size[0], self.stride[0])
            left, right = tf_same_pads(x.shape[-1], self.kernel_size[1], self.stride[1])
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class KerasConvTranspose2d(nn.ConvTranspose2d):
    """Conv2DTranspose with Keras `padding="same"`: output = input * stride, cropped like TF (extra at the end)."""

    def __init__(self, cin: int, cout: int, kernel_size: _Size, stride: _Size) -> None:
        super().__init__(cin, cout, _pair(kernel_size), _pair(stride), padding=0)

    # narrower than ConvTranspose2d.forward(input, output_size=None): the output size is Keras's, not a choice
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        h, w = x.shape[-2] * self.stride[0], x.shape[-1] * self.stride[1]
        full = super().forward(x)
        top = max(full.shape[-2] - h, 0) // 2
        left = max(full.shape[-1] - w, 0) // 2
        return full[..., top : top + h, left : left + w]


class KerasInstanceNorm(nn.Module):
    """keras-contrib InstanceNormalization(axis=None): (x - mean) / (std + eps) over C, H, W; scalar affine."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True, unbiased=False) + self.eps
        return (x - mean) / std * self.weight + self.bias


class ConvBlock(nn.Module):
    """generator.py `conv_block`: Conv2D + BatchNormalization(momentum 0.8) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: _Size = 3, stride: _Size = 1, padding: str = "same") -> None:
        super().__init__()
        self.conv = KerasConv2d(cin, cout, kernel, stride, padding)
        self.bn = nn.BatchNorm2d(cout, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class ConvTBlock(nn.Module):
    """generator.py `conv_t_block`: Conv2DTranspose("same") + BatchNormalization(momentum 0.8) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: _Size = 3, stride: _Size = 2) -> None:
        super().__init__()
        self.conv = KerasConvTranspose2d(cin, cout, kernel, stride)
        self.bn = nn.BatchNorm2d(cout, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class ResidualBlock(nn.Module):
    """create_model_residual's `residual_block`: two conv_blocks (each ending in ReLU), Add, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block1 = ConvBlock(channels, channels)
        self.block2 = ConvBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.block2(self.block1(x)) + x)


class DiscBlock(nn.Module):
    """discriminator.py `conv_block`: Conv2D + InstanceNormalization + LeakyReLU(0.2); stride 2 by default."""

    def __init__(self, cin: int, cout: int, kernel: _Size = 3, stride: _Size = 2, padding: str = "same") -> None:
        super().__init__()
        self.conv = KerasConv2d(cin, cout, kernel, stride, padding)
        self.norm = KerasInstanceNorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class ZeroPadTop(nn.Module):
    """ZeroPadding2D(((1, 0), (0, 0))): one zero row above (12 MFCC rows -> 13, so two stride-2 halvings fit)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 1, 0))


def _level(first: nn.Module, channels: int, n_res: int) -> nn.Sequential:
    return nn.Sequential(first, *[ResidualBlock(channels) for _ in range(n_res)])


class LipGANGenerator(nn.Module):
    """Residual LipGAN generator: (audio (N,1,12,35) MFCC or (N,1,80,27) mel, face (N,6,96,96)) -> (N,3,96,96).

    Face channels 0-2: reference frame; 3-5: target frame with rows 48-95 zeroed; BGR [0, 1]. Output BGR in
    [0, 1] (sigmoid). Spatial paths: face 96 -> 96 -> 48 -> 24 -> 12 -> 6 -> 3 -> 1 -> 1; MFCC audio 12x35 ->
    13x35 (zero row) -> 13x18 -> 7x9 -> 4x5 -> 1x1; mel audio 80x27 -> 27x9 -> 9x9 -> 3x3 -> 1x1; decoder
    1 -> 3 -> 6 -> 12 -> 24 -> 48 -> 96 with U-Net concatenations [encoder feature, decoder output].
    """

    def __init__(self, width: float = 1.0, audio_features: str = "mfcc") -> None:
        super().__init__()
        if audio_features not in AUDIO_SHAPES:
            raise ValueError(f"audio_features must be one of {sorted(AUDIO_SHAPES)}, got {audio_features!r}")
        self.width = float(width)
        self.audio_features = audio_features

        def c(n: int) -> int:
            return scale_channels(n, self.width)

        # face encoder: (first block, channels, residual blocks); levels 0-4 are U-Net skips, 5 is x5_face (3x3)
        self.face_encoder = nn.ModuleList(
            [
                ConvBlock(6, c(32), 7),  # identity_mapping, 96x96
                _level(ConvBlock(c(32), c(64), 5, 2), c(64), 2),  # 48x48
                _level(ConvBlock(c(64), c(128), 3, 2), c(128), 3),  # 24x24
                _level(ConvBlock(c(128), c(256), 3, 2), c(256), 2),  # 12x12
                _level(ConvBlock(c(256), c(512), 3, 2), c(512), 2),  # 6x6
                ConvBlock(c(512), c(512), 3, 2),  # 3x3
                nn.Sequential(ConvBlock(c(512), c(512), 3, 1, "valid"), ConvBlock(c(512), c(512), 1, 1)),  # 1x1
            ]
        )
        if audio_features == "mfcc":
            self.audio_encoder = nn.Sequential(
                _level(ConvBlock(1, c(128)), c(128), 3),  # 12x35
                ZeroPadTop(),  # 13x35
                _level(ConvBlock(c(128), c(256), 3, (1, 2)), c(256), 2),  # 13x18
                _level(ConvBlock(c(256), c(512), 3, 2), c(512), 2),  # 7x9
                _level(ConvBlock(c(512), c(512), 3, 2), c(512), 1),  # 4x5
                ConvBlock(c(512), c(512), (4, 5), 1, "valid"),  # 1x1
                ConvBlock(c(512), c(512), 1, 1),
            )
        else:
            self.audio_encoder = nn.Sequential(
                _level(ConvBlock(1, c(32)), c(32), 2),  # 80x27
                _level(ConvBlock(c(32), c(64), 3, 3), c(64), 2),  # 27x9
                _level(ConvBlock(c(64), c(128), 3, (3, 1)), c(128), 2),  # 9x9
                _level(ConvBlock(c(128), c(256), 3, 3), c(256), 2),  # 3x3
                ConvBlock(c(256), c(512), 3, 1, "valid"),  # 1x1
                ConvBlock(c(512), c(512), 1, 1),
            )
        self.decoder = nn.ModuleList(
            [
                ConvTBlock(c(512) + c(512), c(512), 3, 3),  # 3x3
                _level(ConvTBlock(c(512) + c(512), c(512)), c(512), 2),  # 6x6
                _level(ConvTBlock(c(512) + c(512), c(256)), c(256), 2),  # 12x12
                _level(ConvTBlock(c(256) + c(256), c(128)), c(128), 2),  # 24x24
                _level(ConvTBlock(c(128) + c(128), c(64)), c(64), 2),  # 48x48
                ConvTBlock(c(64) + c(64), c(32)),  # 96x96
            ]
        )
        self.output_block = nn.Sequential(
            ConvBlock(c(32) + c(32), c(16)), ConvBlock(c(16), c(16)), KerasConv2d(c(16), 3, 1), nn.Sigmoid()
        )

    def forward(self, audio: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        feats = []
        h = face
        for level in self.face_encoder:
            h = level(h)
            feats.append(h)
        x = torch.cat([feats.pop(), self.audio_encoder(audio)], dim=1)  # Concatenate([x7_face, audio])
        for level in self.decoder:
            x = torch.cat([feats.pop(), level(x)], dim=1)  # Concatenate([skip, decoder output])
        return self.output_block(x)


class LipGANDiscriminator(nn.Module):
    """Contrastive audio-visual discriminator: (face (N,3,96,96) full frame BGR [0,1], audio) -> distance (N,1).

    Both embeddings (512-d) are L2-normalised; the output is their Euclidean distance in [0, 2]: small = in
    sync (label 0), large = off-sync or generated (label 1). Face path 96 -> 48 -> 24 -> 12 -> 6 -> 3 -> 1.
    """

    def __init__(self, width: float = 1.0, audio_features: str = "mfcc") -> None:
        super().__init__()
        if audio_features not in AUDIO_SHAPES:
            raise ValueError(f"audio_features must be one of {sorted(AUDIO_SHAPES)}, got {audio_features!r}")
        self.width = float(width)
        self.audio_features = audio_features

        def c(n: int) -> int:
            return scale_channels(n, self.width)

        self.face_encoder = nn.Sequential(
            DiscBlock(3, c(64), 7),
            DiscBlock(c(64), c(128), 5),
            DiscBlock(c(128), c(256), 3),
            DiscBlock(c(256), c(512), 3),
            DiscBlock(c(512), c(512), 3),
            KerasConv2d(c(512), c(512), 3, 1, "valid"),
        )
        if audio_features == "mfcc":
            self.audio_encoder = nn.Sequential(
                DiscBlock(1, c(64), 3, 1),  # 12x35
                DiscBlock(c(64), c(128), 3, 1),
                ZeroPadTop(),  # 13x35
                DiscBlock(c(128), c(256), 3, (1, 2)),  # 13x18
                DiscBlock(c(256), c(256), 3, 1),
                DiscBlock(c(256), c(256), 3, 2),  # 7x9
                DiscBlock(c(256), c(512), 3, 2),  # 4x5
                KerasConv2d(c(512), c(512), (4, 5), 1, "valid"),  # 1x1
            )
        else:
            self.audio_encoder = nn.Sequential(
                DiscBlock(1, c(32), 3, 1),  # 80x27
                DiscBlock(c(32), c(64), 3, 3),  # 27x9
                DiscBlock(c(64), c(128), 3, (3, 1)),  # 9x9
                DiscBlock(c(128), c(256), 3, 3),  # 3x3
                DiscBlock(c(256), c(512), 3, 1, "valid"),  # 1x1
                DiscBlock(c(512), c(512), 1, 1),
            )

    def embeddings(self, face: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = F.normalize(self.face_encoder(face).flatten(1), dim=1)
        a = F.normalize(self.audio_encoder(audio).flatten(1), dim=1)
        return f, a

    def forward(self, face: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        f, a = self.embeddings(face, audio)
        return (f - a).pow(2).sum(dim=1, keepdim=True).clamp_min(1e-12).sqrt()


def contrastive_loss(distance: torch.Tensor, label: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """mean((1 - y) d^2 + y max(0, margin - d)^2), y = 0 in sync, 1 off-sync / generated (discriminator.py)."""
    label = label.reshape(distance.shape).to(distance.dtype)
    return ((1.0 - label) * distance.pow(2) + label * (margin - distance).clamp_min(0.0).pow(2)).mean()
