"""The FID InceptionV3 (the TF `inception-2015-12-05` graph as ported by pytorch-fid / torch-fidelity).

The module's state dict has exactly the keys, shapes and order of
`tests/data_files/fid_inception_v3_state_dict.tsv` (pytorch-fid's `fid_inception_v3()`: torchvision's
`Inception3(num_classes=1008, aux_logits=False)` with the FID blocks swapped in; torch-fidelity's
`FeatureExtractorInceptionV3` has the same keys), so the official `pt_inception-2015-12-05-6726825d.pth` loads
strictly. The FID blocks differ from torchvision's only in `forward`: their average pools exclude padding, and
`Mixed_7c`'s pool branch is a 3x3 stride-1 max pool (a quirk of the TF graph, pytorch-fid inception.py).

Input and preprocessing follow torch-fidelity (what torchmetrics' FID uses): uint8 RGB `(N, 3, H, W)`, resized to
299x299 in float, then `(x - 128) / 128`. Resize modes: `tf1` is TF 1.x `resize_bilinear` (align_corners=False,
no half-pixel centres, no antialias; torch-fidelity `interpolate_bilinear_2d_like_tensorflow1x`), the resize of
the original TF FID code; `antialias` is `F.interpolate(bilinear, antialias=True)`, torchmetrics' default.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008  # the TF graph's classifier has 1008 outputs (1000 ImageNet classes + unused slots)
RESIZE_MODES = ("tf1", "antialias")
BN_EPS = 0.001  # TF's batch-norm epsilon, kept by every port


def resize_tf1_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF 1.x `tf.image.resize_bilinear(align_corners=False)` of float `(N, C, H, W)`.

    TF1 maps output pixel i to source coordinate i * in/out (no half-pixel shift), interpolates between floor and
    floor + 1 (clamped to the last row/column) and never antialiases; PyTorch's bilinear uses (i + 0.5) * in/out
    - 0.5, so the two differ by a sub-pixel shift that moves FID by a few points (clean-fid).
    """
    out = x
    for axis, n_out in ((2, size[0]), (3, size[1])):
        n_in = out.shape[axis]
        if n_in == n_out:
            continue
        src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        w = (src - lo.double()).to(out.dtype)
        shape = [1, 1, 1, 1]
        shape[axis] = n_out
        w = w.view(shape)
        a, b = out.index_select(axis, lo), out.index_select(axis, hi)
        out = a + (b - a) * w
    return out


def resize_for_inception(x: torch.Tensor, mode: str, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 or float 0-255 `(N, 3, H, W)` -> float32 `(N, 3, size, size)` in torch-fidelity's [-1, 1) scale."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; valid: {', '.join(RESIZE_MODES)}")
    x = x.float()
    if x.shape[-2:] != (size, size):
        if mode == "tf1":
            x = resize_tf1_bilinear(x, (size, size))
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (x - 128.0) / 128.0


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    # FID blocks: TF's average pool ignores the padded border (count_include_pad=False), pytorch-fid FIDInceptionA/C/E
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            bd = layer(bd)
        bd = self.branch7x7dbl_5(bd)
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """`Mixed_7b` (pool="avg": FIDInceptionE_1) and `Mixed_7c` (pool="max": FIDInceptionE_2, the TF graph's
    max pool in the last block's pool branch)."""

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_no_pad(x)
        return torch.cat([b1, b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """InceptionV3 for FID: uint8 RGB `(N, 3, H, W)` -> `(N, 2048)` pool3 features (float32).

    `resize`: "tf1" or "antialias" (module docstring). `num_features` is read by torchmetrics'
    FrechetInceptionDistance when the module is passed as its `feature`.
    """

    num_features = FEATURE_DIM

    def __init__(self, resize: str = "tf1") -> None:
        super().__init__()
        if resize not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {resize!r}; valid: {', '.join(RESIZE_MODES)}")
        self.resize = resize
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)
        self.eval()

    def train(self, mode: bool = True) -> FIDInceptionV3:
        # a frozen evaluator: BatchNorm must keep the converted TF statistics whatever a Trainer toggles
        return super().train(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Already resized and scaled `(N, 3, 299, 299)` -> `(N, 2048)`."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"FIDInceptionV3 expects uint8 RGB (N, 3, H, W), got shape {tuple(images.shape)}")
        return self.features(resize_for_inception(images, self.resize))


def build_fid_inception(resize: str = "tf1") -> FIDInceptionV3:
    """The network `pt_inception-2015-12-05-6726825d.pth` is checked against by `bench weights import`."""
    return FIDInceptionV3(resize)


def random_init_(net: nn.Module, seed: int) -> nn.Module:
    """Seeded He-normal initialisation (convolutions, fc), BatchNorm left as identity in eval mode.

    Used when the official weights are not registered: the features still separate distributions (so the
    pipeline runs end to end) but the numbers are not FID and are recorded with status "random".
    """
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.Conv3d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
    return net


def state_dict_sha256(net: nn.Module) -> str:
    """sha256 over the state dict's names and tensor bytes: identifies random-init weights in results."""
    h = hashlib.sha256()
    for key, value in net.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_evaluator_weights(
    net: nn.Module, weights: str, *, official: str, seed: int, arch: str, how_to_get: str = ""
) -> dict[str, Any]:
    """Put weights into a frozen evaluator backbone and say what they are (the metric's `evaluator_info`).

    weights: a registered name; "auto" = the official file `official` when registered, else a seeded random
    initialisation; "random" = the seeded random initialisation. Registered files are read with
    weights_only=True and loaded strictly (a `state_dict` entry and DataParallel's `module.` prefix are accepted).
    status: "random", or the registered entry's status (metrics.weights.WeightsEntry.status).
    """
    from metrics import weights as store

    if weights == "auto":
        weights = official if official in store.list_weights() else "random"
    if weights == "random":
        random_init_(net, seed)
        return {"arch": arch, "weights": None, "sha256": state_dict_sha256(net), "status": "random", "seed": seed}
    obj, entry = store.load(weights, how_to_get)
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(sd, dict):
        raise store.WeightsError(f"weights {weights!r}: expected a state dict, got {type(sd).__name__}")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise store.WeightsError(f"weights {weights!r} ({entry.file}) do not fit {arch}: {err}") from err
    status = entry.status
    return {
        "arch": arch,
        "weights": weights,
        "sha256": entry.sha256,
        "content_sha256": entry.identity,
        "status": status,
    }


def read_evaluator_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict in an official FID-Inception / I3D file, for `bench weights import`'s strict key check.

    Read with weights_only=True; a `state_dict` entry and DataParallel's `module.` prefix are accepted. Files
    converted from TF without `num_batches_tracked` (torch-fidelity's converter, VideoGPT/TATS's
    `i3d_pretrained_400.pt`; docs/checkpoints.md) get it as 0, which is what a strict
    `load_state_dict` fills in for them too.
    """
    from metrics.safe_load import CheckpointReadError, load_checkpoint_file

    try:
        obj, _ = load_checkpoint_file(path)
    except CheckpointReadError as err:
        raise ValueError(str(err)) from err
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: expected a mapping of tensors, got {type(sd).__name__}")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    for key in [k for k in sd if k.endswith(".running_mean")]:
        sd.setdefault(key.removesuffix("running_mean") + "num_batches_tracked", torch.tensor(0))
    return sd
