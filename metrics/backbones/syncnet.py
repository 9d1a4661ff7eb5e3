"""SyncNet evaluators for AV offset / confidence and LSE-D / LSE-C.

Two networks share one interface, which is all `metrics.functional.sync` relies on:

- ``forward_lip(x)``: x float (N, 3, 5, H, W), BGR, 0-255 (syncnet_python feeds cv2 frames as float, no
  normalisation) -> (N, D) embedding of a 5-frame window.
- ``forward_aud(x)``: x float (N, 1, 13, 20), raw python_speech_features MFCC of int16-scaled audio
  (syncnet_python SyncNetInstance.evaluate) -> (N, D) embedding of the matching 0.2 s of audio.
- ``prepare_lip_frames(frames)`` / ``forward_lip_prepared(windows)``: the same lip embedding split into a
  per-frame part and a per-window part, so a clip's frames are preprocessed once instead of five times (once
  per window they belong to). ``forward_lip(x) == forward_lip_prepared(stacked prepare_lip_frames(...))``.

``SyncNetS`` is syncnet_python's model ``S`` (SyncNetModel.py) with exactly its state-dict keys, so the
official ``syncnet_v2.model`` loads strictly; its embeddings are raw (not normalised), distances unbounded.
``SyncNetSmall`` is the evaluator we calibrate on the synthetic corpus (docs/sync_calibration.md):
lower half of a 96x96 grey frame, per-window standardisation, L2-normalised embeddings, so its distances lie
in [0, 2] and its confidence is on a much smaller scale than S's (about 0-1 against S's 0-15).

Both are rebuilt from a small config dict ``{"arch": ..., "kwargs": {...}}`` (``evaluator_config``) saved
beside the weights: ``sync_evaluator_from_config(config)`` (= ``build_sync_evaluator(arch, **kwargs)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

WINDOW_FRAMES = 5  # syncnet_python: 5 video frames per window
MFCC_COEFFS = 13
MFCC_STEPS = 20  # 0.2 s of 100 Hz MFCC per window

# cv2.COLOR_BGR2GRAY weights, in BGR order (input frames are BGR)
_GREY_BGR = (0.114, 0.587, 0.299)


class SyncEvaluator(Protocol):
    """The interface of the module docstring: SyncNetS, SyncNetSmall and custom evaluators (nn.Modules too)."""

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor: ...

    def prepare_lip_frames(self, frames: torch.Tensor) -> torch.Tensor: ...

    def forward_lip_prepared(self, windows: torch.Tensor) -> torch.Tensor: ...


class SyncNetS(nn.Module):
    """syncnet_python ``S(num_layers_in_fc_layers=1024)``: the network behind ``syncnet_v2.model``.

    The Sequential indices (netcnnaud.0 ... netcnnlip.19) are part of the checkpoint's key names, so every
    layer, including the parameter-free ReLU/MaxPool ones and the no-op MaxPool(1, 1), sits at the index it
    has in SyncNetModel.py. Lip input must be exactly 5 frames of 224x224 (240x240 also runs); audio 13x20.
    """

    def __init__(self, num_layers_in_fc_layers: int = 1024) -> None:
        super().__init__()
        self.num_layers_in_fc_layers = num_layers_in_fc_layers
        self.netcnnaud = nn.Sequential(
            *_conv_bn_relu(nn.Conv2d(1, 64, 3, padding=1), nn.BatchNorm2d(64)),
            nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),
            *_conv_bn_relu(nn.Conv2d(64, 192, 3, padding=1), nn.BatchNorm2d(192)),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),
            *_conv_bn_relu(nn.Conv2d(192, 384, 3, padding=1), nn.BatchNorm2d(384)),
            *_conv_bn_relu(nn.Conv2d(384, 256, 3, padding=1), nn.BatchNorm2d(256)),
            *_conv_bn_relu(nn.Conv2d(256, 256, 3, padding=1), nn.BatchNorm2d(256)),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
            *_conv_bn_relu(nn.Conv2d(256, 512, kernel_size=(5, 4)), nn.BatchNorm2d(512)),
        )
        self.netfcaud = _fc_head(512, num_layers_in_fc_layers)
        self.netfclip = _fc_head(512, num_layers_in_fc_layers)
        self.netcnnlip = nn.Sequential(
            *_conv_bn_relu(nn.Conv3d(3, 96, kernel_size=(5, 7, 7), stride=(1, 2, 2)), nn.BatchNorm3d(96)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu(
                nn.Conv3d(96, 256, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
                nn.BatchNorm3d(256),
            ),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_conv_bn_relu(nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            *_conv_bn_relu(nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            *_conv_bn_relu(nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu(nn.Conv3d(256, 512, kernel_size=(1, 6, 6)), nn.BatchNorm3d(512)),
        )

    @property
    def evaluator_config(self) -> dict[str, Any]:
        return {"arch": "syncnet_v2", "kwargs": {"num_layers_in_fc_layers": self.num_layers_in_fc_layers}}

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) raw MFCC -> (N, 1024), not normalised."""
        emb: torch.Tensor = self.netfcaud(self.netcnnaud(x).flatten(1))
        return emb

    def forward_lipfeat(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR 0-255 -> (N, 512) conv feature before the FC head (demo_feature.py)."""
        feat: torch.Tensor = self.netcnnlip(x).flatten(1)
        return feat

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR 0-255 -> (N, 1024), not normalised."""
        emb: torch.Tensor = self.netfclip(self.forward_lipfeat(x))
        return emb

    def prepare_lip_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) BGR 0-255 -> the same frames: S has no per-frame preprocessing."""
        return frames

    def forward_lip_prepared(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, 5, 3, H, W) prepared frames -> forward_lip of the (N, 3, 5, H, W) windows."""
        return self.forward_lip(windows.transpose(1, 2).contiguous())


def _conv_bn_relu(conv: nn.Module, bn: nn.Module) -> list[nn.Module]:
    return [conv, bn, nn.ReLU(inplace=True)]


def _fc_head(width: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, out))


class SyncNetSmall(nn.Module):
    """Small evaluation SyncNet for the synthetic corpus (the recipe that worked, docs/sync_calibration.md).

    Lip path: BGR frames of any size -> grey (cv2 BGR2GRAY weights) -> bilinear resize (antialiased) to
    ``frame_size`` square -> the lower half (rows frame_size/2 .. frame_size-1, full width) -> the 5 frames
    stacked as channels -> each window standardised by its own mean/std (removes skin/background brightness
    and contrast) -> conv tower -> L2-normalised embedding.
    Audio path: raw MFCC (N, 1, 13, 20) standardised per coefficient with the training set's statistics
    (buffers ``mfcc_mean``/``mfcc_std``, saved with the weights) -> conv tower -> L2-normalised embedding.

    Because embeddings are unit vectors, Euclidean distances lie in [0, 2] and a zero-padded audio window
    (syncnet_python's calc_pdist padding) is at distance exactly 1, which removes the edge bias that pulls
    unnormalised embeddings to offsets of +-vshift (docs/sync_calibration.md).

    width scales the conv channel counts; hidden is the FC width of both heads. The default (width 0.25,
    embed_dim 64: 0.51 M parameters) is the prototype's "tiny" model, the fastest to calibrate on 2 CPU cores;
    width 1.0 with embed_dim 128 is its 2.45 M "main" model (slightly larger confidence margins, 4x the compute).
    """

    # buffers registered in __init__
    mfcc_mean: torch.Tensor
    mfcc_std: torch.Tensor

    def __init__(self, width: float = 0.25, embed_dim: int = 64, hidden: int = 256, frame_size: int = 96) -> None:
        super().__init__()
        if frame_size % 2 or frame_size < 32:
            raise ValueError(f"frame_size must be even and >= 32, got {frame_size}")
        self.width, self.embed_dim, self.hidden = float(width), int(embed_dim), int(hidden)
        self.frame_size = int(frame_size)

        def ch(n: int) -> int:
            return max(4, int(round(n * width)))

        crop_h, crop_w = frame_size // 2, frame_size
        self.lip_tower = nn.Sequential(
            *_conv2d_bn_relu(WINDOW_FRAMES, ch(32), 5, 2),
            *_conv2d_bn_relu(ch(32), ch(64), 3, 2),
            *_conv2d_bn_relu(ch(64), ch(64), 3, 1),
            *_conv2d_bn_relu(ch(64), ch(128), 3, 2),
            *_conv2d_bn_relu(ch(128), ch(128), 3, 2),
            nn.Flatten(),
        )
        lip_flat = ch(128) * _strided(crop_h, 4) * _strided(crop_w, 4)
        self.lip_head = _embed_head(lip_flat, hidden, embed_dim)
        self.aud_tower = nn.Sequential(
            *_conv2d_bn_relu(1, ch(64), 3, 1),
            *_conv2d_bn_relu(ch(64), ch(128), 3, 1),
            nn.MaxPool2d(kernel_size=(1, 2)),
            *_conv2d_bn_relu(ch(128), ch(128), 3, 2),
            *_conv2d_bn_relu(ch(128), ch(128), 3, 1),
            nn.Flatten(),
        )
        aud_flat = ch(128) * _strided(MFCC_COEFFS, 1) * _strided(MFCC_STEPS // 2, 1)
        self.aud_head = _embed_head(aud_flat, hidden, embed_dim)
        self.register_buffer("mfcc_mean", torch.zeros(MFCC_COEFFS))
        self.register_buffer("mfcc_std", torch.ones(MFCC_COEFFS))

    @property
    def evaluator_config(self) -> dict[str, Any]:
        return {
            "arch": "small",
            "kwargs": {
                "width": self.width,
                "embed_dim": self.embed_dim,
                "hidden": self.hidden,
                "frame_size": self.frame_size,
            },
        }

    def set_mfcc_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training set's per-coefficient MFCC mean/std (13 each) used to standardise audio."""
        self.mfcc_mean.copy_(torch.as_tensor(mean, dtype=self.mfcc_mean.dtype).reshape(MFCC_COEFFS))
        self.mfcc_std.copy_(torch.as_tensor(std, dtype=self.mfcc_std.dtype).reshape(MFCC_COEFFS).clamp_min(1e-6))

    # -- lip path --------------------------------------------------------------------------------------
    def prepare_lip_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) BGR 0-255 -> (T, S, S) grey frames at the working size S = frame_size.

        Per frame and independent of the window, so a clip's frames can be prepared once. Frames already at
        S x S are not resized; calibration feeds frames through this same function so that training inputs
        equal what evaluation produces from 224x224 frames.
        """
        # channel by channel, so the result does not depend on the memory layout of `frames` (the metric's
        # fast path passes a channels-last view; the reference path a contiguous copy): identical numbers
        b, g, r = _GREY_BGR
        grey = (frames[:, 0:1] * b + frames[:, 1:2] * g) + frames[:, 2:3] * r
        if grey.shape[-2:] != (self.frame_size, self.frame_size):
            grey = F.interpolate(
                grey, size=(self.frame_size, self.frame_size), mode="bilinear", align_corners=False, antialias=True
            )
        return grey[:, 0]

    def lower_half(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., S, S) -> (..., S/2, S): rows S/2 .. S-1 (the mouth region of a frontal face), full width."""
        return frames[..., self.frame_size // 2 :, :]

    def embed_lip_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 5, S/2, S) grey mouth crops of a window -> (N, D) unit-norm embeddings."""
        return F.normalize(self.lip_head(self.lip_tower(_standardise(crops))), dim=1)

    def forward_lip_prepared(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, 5, S, S) prepared frames -> (N, D)."""
        return self.embed_lip_crops(self.lower_half(windows))

    def forward_lipfeat(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, H, W) BGR 0-255 -> (N, F) flattened conv feature before the embedding head."""
        feat: torch.Tensor = self.lip_tower(_standardise(self.lower_half(self._prepare_windows(x))))
        return feat

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, H, W) BGR 0-255 -> (N, D) unit-norm embeddings."""
        return self.forward_lip_prepared(self._prepare_windows(x))

    def _prepare_windows(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        frames = self.prepare_lip_frames(x.transpose(1, 2).reshape(n * t, c, h, w))
        return frames.view(n, t, self.frame_size, self.frame_size)

    # -- audio path ------------------------------------------------------------------------------------
    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) raw MFCC -> (N, D) unit-norm embeddings."""
        x = (x - self.mfcc_mean.view(1, 1, -1, 1)) / self.mfcc_std.view(1, 1, -1, 1)
        return F.normalize(self.aud_head(self.aud_tower(x)), dim=1)


def _standardise(crops: torch.Tensor) -> torch.Tensor:
    # per window over its 5 frames: removes speaker skin/background brightness and contrast (docs/sync_calibration.md)
    flat = crops.flatten(1)
    return (crops - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-3)


def _strided(n: int, halvings: int) -> int:
    # output size of `halvings` stride-2 convs with kernel 3/5 and "same" padding: ceil(n / 2) each
    for _ in range(halvings):
        n = (n + 1) // 2
    return n


def _conv2d_bn_relu(cin: int, cout: int, k: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _embed_head(flat: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(flat, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


SYNC_EVALUATORS: dict[str, type[nn.Module]] = {"syncnet_v2": SyncNetS, "small": SyncNetSmall}


def build_sync_evaluator(arch: str, **kwargs: Any) -> nn.Module:
    """A fresh (randomly initialised) evaluator: "syncnet_v2" (syncnet_python S) or "small" (SyncNetSmall)."""
    if arch not in SYNC_EVALUATORS:
        raise ValueError(f"unknown SyncNet evaluator arch {arch!r}; valid: {', '.join(SYNC_EVALUATORS)}")
    return SYNC_EVALUATORS[arch](**kwargs)


def sync_evaluator_from_config(config: Mapping[str, Any]) -> nn.Module:
    """Rebuild an evaluator from its ``evaluator_config`` dict ({"arch": ..., "kwargs": {...}})."""
    unknown = set(config) - {"arch", "kwargs"}
    if "arch" not in config or unknown:
        raise ValueError(f"evaluator config needs keys 'arch' and optional 'kwargs', got {sorted(config)}")
    return build_sync_evaluator(config["arch"], **dict(config.get("kwargs", {})))


def load_sync_evaluator_state(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "") -> None:
    """Strictly load `state_dict` into `model`, with an error that lists every missing/extra/mis-shaped key.

    BatchNorm ``num_batches_tracked`` counters may be absent (syncnet_python's loadParameters copies only the
    keys the file has, and older/foreign saves omit them); the model's own counters are kept then. They do
    not affect evaluation-mode outputs.
    """
    own = model.state_dict()
    state = dict(state_dict)
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [
        f"{k}: file {tuple(state[k].shape)} != model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or misshaped:
        where = f"{source}: " if source else ""
        problems = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped)):
            if items:
                shown = ", ".join(items[:6]) + (f", ... ({len(items)} in all)" if len(items) > 6 else "")
                problems.append(f"{label}: {shown}")
        name = type(model).__name__
        raise ValueError(f"{where}weights do not fit {name}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
