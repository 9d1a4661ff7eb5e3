"""FVD with a pinned protocol: `fvd_16f` = I3D Kinetics-400 logits of 16-frame windows, Fréchet distance in float64.

Protocol (named after StyleGAN-V's `fvd2048_16f`, docs/metrics_reference.md):
- a window is 16 consecutive frames; by default one window per clip starting at frame 0 (StyleGAN-V takes
  offset 0 for generated videos; we use 0 for the real ones too, so the protocol is deterministic);
  `window_stride` takes every window starting at 0, s, 2s, ... instead (`max_windows` caps them per clip);
  clips shorter than 16 frames are counted as failures (StyleGAN-V `discard_short_videos`);
- frames resized straight to 224x224 (bilinear, align_corners=False, aspect not kept) and scaled 2x/255 - 1
  (TATS / content-debiased-fvd `preprocess`); with StyleGAN-V's TorchScript file, the archive does the scaling
  and resizing itself (`rescale=True, resize=True`), as in StyleGAN-V;
- features: the 400 logits averaged over time (TF `RGB/inception_i3d/Mean:0`);
- every feature vector is a sample of the Gaussian; fewer than 401 per set are refused unless `allow_low_n`.

Weights (`weights: auto`): `i3d_torchscript` when registered, else `i3d_pretrained_400` (state dict, BatchNorm
eps 1e-5 as VideoGPT/TATS evaluate it), else a seeded random init recorded with status "random" (not FVD).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from metrics.backbones.i3d import BN_EPS, FEATURE_DIM, StateDictI3D, TorchScriptI3D, build_i3d
from metrics.backbones.inception import load_evaluator_weights
from metrics.base import ClipScoreError, SetMetric

if TYPE_CHECKING:
    from data.corpus import LayoutCorpus

TORCHSCRIPT_WEIGHTS = "i3d_torchscript"
STATE_DICT_WEIGHTS = "i3d_pretrained_400"
HOW_TO_GET = {
    TORCHSCRIPT_WEIGHTS: "Download https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1 (StyleGAN-V), "
    "then `bench weights import i3d_torchscript.pt --as i3d_torchscript`.",
    STATE_DICT_WEIGHTS: "Get i3d_pretrained_400.pt (VideoGPT's Google Drive file, or TATS's "
    "tats/fvd/i3d_pretrained_400.pt), then `bench weights import i3d_pretrained_400.pt --as i3d_pretrained_400`.",
}


class FrechetVideoDistance(SetMetric):
    """FVD between 16-frame windows of the generated clips and of the real test clips.

    weights: registered name, "auto" or "random"; seed: random-init seed; window_stride: None (one window per
    clip, at frame 0) or the step between window starts; max_windows: cap per clip; bn_eps: BatchNorm epsilon of
    the state-dict I3D (1e-5 VideoGPT/TATS, 1e-3 piergiaj); batch_size: windows per I3D forward; allow_low_n:
    compute with fewer than 401 windows per set (recorded). A corpus's own settings arrive in these from its
    dataset config (configs/datasets/<name>.yaml `metrics:`).
    """

    outputs = ("fvd_16f",)
    num_frames = 16
    config_section = "fvd"
    needs_corpus = True
    evaluator_key = "i3d"
    feature_dim = FEATURE_DIM
    higher_is_better = False
    mode = "16f"

    def __init__(
        self,
        *,
        weights: str = "auto",
        seed: int = 0,
        window_stride: int | None = None,
        max_windows: int | None = None,
        bn_eps: float = BN_EPS["videogpt"],
        batch_size: int = 4,
        allow_low_n: bool = False,
        corpus: LayoutCorpus | None = None,
        device: str | None = None,
        **kwargs: Any,
    ) -> None:
        for key, value in (("window_stride", window_stride), ("max_windows", max_windows)):
            if value is not None and int(value) < 1:
                raise ValueError(f"{key} must be >= 1 or null, got {value}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        super().__init__(allow_low_n=bool(allow_low_n), **kwargs)
        from metrics import weights as store

        if weights == "auto":
            registered = store.list_weights()
            weights = next((w for w in (TORCHSCRIPT_WEIGHTS, STATE_DICT_WEIGHTS) if w in registered), "random")
        self.i3d: TorchScriptI3D | StateDictI3D
        info: dict[str, Any]
        if weights != "random" and _is_torchscript_entry(weights):
            path, entry = store.resolve(weights, HOW_TO_GET.get(weights, ""))
            self.i3d = TorchScriptI3D(path)
            status = entry.status
            info = {"arch": "i3d_torchscript (StyleGAN-V)", "weights": weights, "sha256": entry.sha256}
            info["content_sha256"] = entry.identity
            info.update(status=status, preprocessing="inside the archive: rescale=True, resize=True")
        else:
            net = build_i3d(bn_eps)
            info = load_evaluator_weights(
                net,
                weights,
                official=STATE_DICT_WEIGHTS,
                seed=int(seed),
                arch="i3d_inception_v1",
                how_to_get=HOW_TO_GET.get(weights, ""),
            )
            info.update(bn_eps=float(bn_eps), preprocessing="bilinear 224x224 (align_corners=False), 2x/255 - 1")
            self.i3d = StateDictI3D(net)
        if device is not None:
            self.i3d = self.i3d.to(device)
        self.device_name = device
        self.window_stride = None if window_stride is None else int(window_stride)
        self.max_windows = None if max_windows is None else int(max_windows)
        self.batch_size = int(batch_size)
        self.evaluator_info = {
            **info,
            "features": "logits (400), mean over time",
            "frames": self.num_frames,
            "window_stride": self.window_stride,
            "max_windows": self.max_windows,
            "allow_low_n": self.allow_low_n,
        }

    def window_starts(self, n_frames: int) -> list[int]:
        if n_frames < self.num_frames:
            return []
        last = n_frames - self.num_frames
        starts = [0] if self.window_stride is None else list(range(0, last + 1, self.window_stride))
        return starts[: self.max_windows] if self.max_windows is not None else starts

    def check_clip(self, video: np.ndarray) -> None:
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ClipScoreError(f"FVD needs RGB frames [T, H, W, 3], got shape {tuple(video.shape)}")
        if video.shape[0] < self.num_frames:
            raise ClipScoreError(f"FVD ({self.outputs[0]}) needs {self.num_frames} frames, clip has {video.shape[0]}")

    @torch.no_grad()
    def clip_features_batch(self, videos: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Windows of all videos through the I3D in batches of `batch_size` (one frame size per batch);
        returns `[k_i, 400]` float32 per video."""
        windows = [
            (v, video[s : s + self.num_frames])
            for v, video in enumerate(videos)
            for s in self.window_starts(len(video))
        ]
        feats: list[list[torch.Tensor]] = [[] for _ in videos]
        start = 0
        while start < len(windows):
            shape = windows[start][1].shape
            stop = start
            while stop < len(windows) and stop - start < self.batch_size and windows[stop][1].shape == shape:
                stop += 1
            batch = torch.from_numpy(np.stack([w for _, w in windows[start:stop]]))
            if self.device_name is not None:
                batch = batch.to(self.device_name)
            out = self.i3d(batch).float().cpu()
            for (v, _), row in zip(windows[start:stop], out):
                feats[v].append(row)
            start = stop
        return [torch.stack(f) if f else torch.zeros(0, FEATURE_DIM) for f in feats]

    def train(self, mode: bool = True) -> FrechetVideoDistance:
        super().train(mode)
        self.i3d.eval()
        return self


def _is_torchscript_entry(name: str) -> bool:
    from metrics import weights as store
    from metrics.backbones.i3d import _is_torchscript

    path, _ = store.resolve(name, HOW_TO_GET.get(name, ""))
    return _is_torchscript(path)
