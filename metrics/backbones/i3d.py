"""I3D Inception-v1 (Kinetics-400) for FVD: the piergiaj layout, and a backend for StyleGAN-V's TorchScript file.

`InceptionI3d` has exactly the keys, shapes and order of `tests/data_files/i3d_inception_kinetics400_state_dict.tsv`
(piergiaj/pytorch-i3d `InceptionI3d(400, in_channels=3)`; VideoGPT and TATS copy the class), so
`i3d_pretrained_400.pt` (converted from the TF-Hub `deepmind/i3d-kinetics-400/1` module that the original FVD
code uses) loads strictly. Every convolution pads like TF's "SAME" (computed in `forward`, as piergiaj does);
the classifier is a 1x1x1 convolution with bias and no BatchNorm.

BatchNorm epsilon: piergiaj builds 1e-3; VideoGPT/TATS (whose code produced the published FVDs with
`i3d_pretrained_400.pt`) build 1e-5. The epsilon is not in the state dict, so it is a constructor argument and
is recorded in the metric's evaluator info (docs/checkpoints.md).

FVD features are the 400 Kinetics logits averaged over the output time steps, before the softmax (TF reference
tensor `RGB/inception_i3d/Mean:0`; VideoGPT/TATS `forward`; StyleGAN-V `return_features=True`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 224  # the final 7x7 average pool needs 224x224 frames (128 or 112 fail; docs/checkpoints.md)
NUM_CLASSES = 400
FEATURE_DIM = NUM_CLASSES
MIN_FRAMES = 9  # T' = ceil(ceil(ceil(T/2)/2)/2) - 1 >= 1 (the [2, 7, 7] average pool)
BN_EPS = {"piergiaj": 1e-3, "videogpt": 1e-5}


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    # TF "SAME": total padding so that out = ceil(in / stride); the extra pixel goes after (piergiaj compute_pad)
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    (pt, pt2), (ph, ph2), (pw, pw2) = (_same_pad(x.shape[2 + i], kernel[i], stride[i]) for i in range(3))
    return F.pad(x, (pw, pw2, ph, ph2, pt, pt2))


class Unit3D(nn.Module):
    """Conv3d (no bias unless told) + BatchNorm3d + ReLU with TF "SAME" padding; keys `conv3d.*`, `bn.*`."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        *,
        batch_norm: bool = True,
        bias: bool = False,
        activation: bool = True,
        bn_eps: float = BN_EPS["piergiaj"],
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.activation = tuple(kernel), tuple(stride), activation
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride, padding=0, bias=bias)
        # momentum as piergiaj (0.01); irrelevant for a frozen evaluator
        self.bn = nn.BatchNorm3d(cout, eps=bn_eps, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # zero padding then max pool, as piergiaj (inputs are post-ReLU, so zeros never win over real values
        # except where TF would also see only the border)
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int], bn_eps: float) -> None:
        super().__init__()
        k3 = (3, 3, 3)
        self.b0 = Unit3D(cin, c[0], bn_eps=bn_eps)
        self.b1a = Unit3D(cin, c[1], bn_eps=bn_eps)
        self.b1b = Unit3D(c[1], c[2], k3, bn_eps=bn_eps)
        self.b2a = Unit3D(cin, c[3], bn_eps=bn_eps)
        self.b2b = Unit3D(c[3], c[4], k3, bn_eps=bn_eps)
        self.b3a = MaxPool3dSame(k3, (1, 1, 1))
        self.b3b = Unit3D(cin, c[5], bn_eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


# (name, in channels, branch channels) of the Inception modules, piergiaj order
_MIXED = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)
# max pools inserted before these modules: (kernel, stride)
_POOL_BEFORE = {"Mixed_3b": ((1, 3, 3), (1, 2, 2)), "Mixed_4b": ((3, 3, 3), (2, 2, 2)), "Mixed_5b": ((2, 2, 2),) * 2}


class InceptionI3d(nn.Module):
    """I3D with piergiaj's keys. `forward`: float `(B, 3, T, 224, 224)` in [-1, 1] -> `(B, 400)` logits averaged
    over time (T >= 9). `bn_eps`: 1e-3 (piergiaj) or 1e-5 (VideoGPT/TATS)."""

    num_features = FEATURE_DIM

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 3, bn_eps: float = BN_EPS["piergiaj"]):
        super().__init__()
        self.bn_eps = float(bn_eps)
        # registered first, like piergiaj (its __init__ builds `logits` before `build()` adds the endpoints)
        self.logits = Unit3D(1024, num_classes, batch_norm=False, bias=True, activation=False)
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2), bn_eps=bn_eps)
        self.pool_2a = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, bn_eps=bn_eps)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), bn_eps=bn_eps)
        self.pools = nn.ModuleDict({name: MaxPool3dSame(*ks) for name, ks in _POOL_BEFORE.items()})
        for name, cin, c in _MIXED:
            self.add_module(name, InceptionModule(cin, c, bn_eps))
        self.eval()

    def train(self, mode: bool = True) -> InceptionI3d:
        return super().train(False)  # frozen evaluator

    def logits_per_step(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, 3, T, 224, 224)` in [-1, 1] -> `(B, 400, T')` (piergiaj's `forward`, dropout = identity in eval)."""
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"I3D expects (B, 3, T, H, W), got {tuple(x.shape)}")
        if x.shape[2] < MIN_FRAMES or x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"I3D needs >= {MIN_FRAMES} frames of 224x224, got {tuple(x.shape[2:])}")
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(self.pool_2a(self.Conv3d_1a_7x7(x))))
        for name, _, _ in _MIXED:
            if name in self.pools:
                x = self.pools[name](x)
            x = getattr(self, name)(x)
        x = F.avg_pool3d(x, kernel_size=(2, 7, 7), stride=1)
        logits: torch.Tensor = self.logits(x)
        return logits.squeeze(4).squeeze(3)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_per_step(x).mean(dim=2)


def build_i3d(bn_eps: float = BN_EPS["videogpt"]) -> InceptionI3d:
    """The network `i3d_pretrained_400.pt` is checked against by `bench weights import`."""
    return InceptionI3d(NUM_CLASSES, 3, bn_eps)


def preprocess_i3d(videos: torch.Tensor) -> torch.Tensor:
    """uint8 `(B, T, H, W, 3)` -> float `(B, 3, T, 224, 224)` in [-1, 1].

    As TATS / content-debiased-fvd `preprocess`: every frame resized straight to 224x224 (aspect not kept) with
    bilinear interpolation (align_corners=False, no antialias), then 2x/255 - 1.
    """
    b, t, h, w, c = videos.shape
    if c != 3:
        raise ValueError(f"I3D expects RGB videos (B, T, H, W, 3), got {tuple(videos.shape)}")
    x = videos.reshape(b * t, h, w, c).permute(0, 3, 1, 2).float()
    if (h, w) != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    x = x * (2.0 / 255.0) - 1.0
    return x.reshape(b, t, c, INPUT_SIZE, INPUT_SIZE).permute(0, 2, 1, 3, 4).contiguous()


class StateDictI3D(nn.Module):
    """uint8 `(B, T, H, W, 3)` -> `(B, 400)` FVD features with our `InceptionI3d` (TATS preprocessing)."""

    num_features = FEATURE_DIM

    def __init__(self, net: InceptionI3d) -> None:
        super().__init__()
        self.net = net.eval()

    def train(self, mode: bool = True) -> StateDictI3D:
        return super().train(False)

    @torch.no_grad()
    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        feats: torch.Tensor = self.net(preprocess_i3d(videos))
        return feats


class TorchScriptI3D(nn.Module):
    """StyleGAN-V's `i3d_torchscript.pt` (torch.jit.load): uint8 `(B, T, H, W, 3)` -> `(B, 400)`.

    Called as StyleGAN-V's metric_utils does: `[B, 3, T, H, W]` uint8 with `rescale=True, resize=True,
    return_features=True` (the archive scales to [-1, 1] and resizes to 224 itself; its interpolation is in its
    own code, so its numbers may differ from the state-dict backend's by the resize alone).
    """

    num_features = FEATURE_DIM

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = str(path)
        # torch.jit.load is unannotated in torch's own sources
        self.module = torch.jit.load(self.path, map_location="cpu").eval()  # type: ignore[no-untyped-call]

    def train(self, mode: bool = True) -> TorchScriptI3D:
        return super().train(False)

    @torch.no_grad()
    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        x = videos.permute(0, 4, 1, 2, 3).contiguous()
        out: torch.Tensor = self.module(x, rescale=True, resize=True, return_features=True)
        return out.reshape(out.shape[0], -1).float()


def _is_torchscript(path: Path) -> bool:
    # torch.save zips hold data.pkl only; TorchScript archives also hold constants.pkl and code/
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in zf.namelist())


def check_torchscript_i3d(path: str | Path) -> None:
    """Validate a candidate `i3d_torchscript.pt` before it is registered: a TorchScript archive whose forward
    takes StyleGAN-V's arguments and gives 400 features per clip. Raises ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if not _is_torchscript(path):
        raise ValueError(f"{path}: not a TorchScript archive (StyleGAN-V's i3d_torchscript.pt is one)")
    try:
        out = TorchScriptI3D(path)(torch.zeros(1, 16, INPUT_SIZE, INPUT_SIZE, 3, dtype=torch.uint8))
    except Exception as err:  # a foreign archive fails in many ways; name the file and what happened
        raise ValueError(f"{path}: TorchScript forward(x, rescale, resize, return_features) failed: {err}") from err
    if tuple(out.shape) != (1, FEATURE_DIM):
        raise ValueError(f"{path}: gives features of shape {tuple(out.shape)[1:]}, expected ({FEATURE_DIM},)")


class TorchScriptI3DContract(nn.Module):
    """What `bench weights import ... --as i3d_torchscript` checks keys against: nothing. StyleGAN-V's archive does
    not publish its parameter names, so `read_torchscript_i3d` checks it by its forward contract instead."""


def read_torchscript_i3d(path: str | Path) -> dict[str, torch.Tensor]:
    """Reader for `bench weights import`: runs `check_torchscript_i3d` (raises ValueError naming the file) and
    returns the empty mapping that matches `TorchScriptI3DContract`."""
    check_torchscript_i3d(path)
    return {}
