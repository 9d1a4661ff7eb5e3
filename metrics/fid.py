"""FID on video frames: torchmetrics' FrechetInceptionDistance with our FID-InceptionV3 as its `feature` module.

The metric's name states the resize filter, the one choice that moves FID most between implementations
(docs/metrics_reference.md, clean-fid): `fid_tf1` resizes to 299x299 like TF 1.x `resize_bilinear` (the original TF FID
and torch-fidelity), `fid_aa` with PyTorch's antialiased bilinear (torchmetrics' default). Both take uint8 RGB
frames as torch-fidelity does, scale `(x - 128) / 128`, and use the 2048-d pool3 features. Statistics are sums in
float64 (DDP adds them); the distance uses the symmetric matrix square root (`metrics.functional.frechet`).

`fid_pytorchfid` is pytorch-fid's `fid_score.py` / `inception.py` on the same frames: each frame as float [0, 1]
(its `ToTensor`), `F.interpolate` bilinear to 299x299 (align_corners=False, no antialias), then `2x - 1`; the same
pool3 features and weights (`pt_inception-2015-12-05-6726825d` is pytorch-fid's own file); covariance divided by
n - 1 (`np.cov`), as here. Where it differs from `fid_tf1`: the resize (PyTorch's half-pixel bilinear vs TF1's
corner-aligned one) and the scale (`x / 127.5 - 1` vs `(x - 128) / 128`, 0.4 % apart at the ends); pytorch-fid
reads frames from image files (PNG is lossless, a JPEG dump is not) and takes `scipy.linalg.sqrtm` of the product
(with an eps retry), which agrees with the symmetric route on well-conditioned covariances. How far apart the
two are: docs/metrics_reference.md ("FID").

Frames: every frame of every clip (`frame_stride: 1`, the paper protocols); the synthetic corpus's CPU protocol
takes every 10th frame (`fid.frame_stride` in the `metrics:` block of configs/datasets/synthetic.yaml), recorded in
the evaluator info and the protocol. Without the official weights the Inception is seeded random init and the
numbers are recorded with status "random": they rank runs of one protocol against each other, they are not FID.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.image.fid import FrechetInceptionDistance as _TorchmetricsFID

from metrics.backbones.inception import FEATURE_DIM, INPUT_SIZE, FIDInceptionV3, load_evaluator_weights
from metrics.base import ClipScoreError, SetMetric

if TYPE_CHECKING:
    from data.corpus import LayoutCorpus

OFFICIAL_WEIGHTS = "pt_inception-2015-12-05-6726825d"
HOW_TO_GET = (
    "Download pt_inception-2015-12-05-6726825d.pth from "
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth "
    "(or torch-fidelity's weights-inception-2015-12-05-6726825d.pth), then "
    "`bench weights import pt_inception-2015-12-05-6726825d.pth --as pt_inception-2015-12-05-6726825d`."
)


# SetMetric's update/compute take EvalSamples and return a dict; torchmetrics' FID's take images and a tensor
class FrechetInceptionDistance(SetMetric, _TorchmetricsFID):  # type: ignore[misc]
    """FID between the frames of the generated clips and the frames of the real test clips.

    Inputs: EvalSample (`fake`, and `real` when present) or ClipFeatures. weights: registered name, "auto"
    (official when registered, else random) or "random"; seed: random-init seed; frame_stride / max_frames:
    which frames of each clip (1 / None = all); batch_size: frames per Inception forward; allow_low_n: compute
    even with fewer than 2049 frames per set (recorded). corpus: accepted (the runner passes it), not used: a
    corpus's own frame selection arrives in these settings from its dataset config.
    """

    outputs: tuple[str, ...] = ("fid_tf1",)
    resize = "tf1"
    input_scaling = "uint8 RGB, (x - 128) / 128 at 299x299"
    config_section = "fid"
    needs_corpus = True
    evaluator_key = "inception"
    feature_dim = FEATURE_DIM
    higher_is_better = False

    def __init__(
        self,
        *,
        weights: str = "auto",
        seed: int = 0,
        frame_stride: int = 1,
        max_frames: int | None = None,
        batch_size: int = 32,
        allow_low_n: bool = False,
        corpus: LayoutCorpus | None = None,
        device: str | None = None,
        **kwargs: Any,
    ) -> None:
        if int(frame_stride) < 1 or (max_frames is not None and int(max_frames) < 1):
            raise ValueError(f"frame_stride and max_frames must be >= 1, got {frame_stride}, {max_frames}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        net = self.network()
        info = load_evaluator_weights(
            net, weights, official=OFFICIAL_WEIGHTS, seed=int(seed), arch="fid_inception_v3", how_to_get=HOW_TO_GET
        )
        if device is not None:
            net = net.to(device)
        # torchmetrics keeps the real statistics across reset(): the real set is fixed, the generated one changes
        super().__init__(
            allow_low_n=bool(allow_low_n), feature=net, reset_real_features=False, normalize=False, **kwargs
        )
        self.mode = self.resize
        self.frame_stride = int(frame_stride)
        self.max_frames = None if max_frames is None else int(max_frames)
        self.batch_size = int(batch_size)
        self.device_name = device
        self.evaluator_info = {
            **info,
            "resize": self.resize,
            "input": self.input_scaling,
            "features": "pool3 (2048)",
            "frame_stride": self.frame_stride,
            "max_frames": self.max_frames,
            "allow_low_n": self.allow_low_n,
        }

    def network(self) -> FIDInceptionV3:
        """The Inception this variant feeds (weights are loaded into it afterwards)."""
        return FIDInceptionV3(self.resize)

    def frame_indices(self, n_frames: int) -> list[int]:
        idx = list(range(0, n_frames, self.frame_stride))
        return idx[: self.max_frames] if self.max_frames is not None else idx

    def check_clip(self, video: np.ndarray) -> None:
        if video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] < 1:
            raise ClipScoreError(f"FID needs RGB frames [T, H, W, 3], got shape {tuple(video.shape)}")

    @torch.no_grad()
    def clip_features_batch(self, videos: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Selected frames of all videos go through the Inception in batches of `batch_size` (frames of one size
        per batch); returns `[k_i, 2048]` float32 per video."""
        frames: list[tuple[int, np.ndarray]] = []
        for v, video in enumerate(videos):
            frames.extend((v, video[i]) for i in self.frame_indices(len(video)))
        feats: list[list[torch.Tensor]] = [[] for _ in videos]
        start = 0
        while start < len(frames):
            shape = frames[start][1].shape
            stop = start
            while stop < len(frames) and stop - start < self.batch_size and frames[stop][1].shape == shape:
                stop += 1
            batch = torch.from_numpy(np.stack([f for _, f in frames[start:stop]])).permute(0, 3, 1, 2)
            if self.device_name is not None:
                batch = batch.to(self.device_name)
            out = self.inception(batch).float().cpu()
            for (v, _), row in zip(frames[start:stop], out):
                feats[v].append(row)
            start = stop
        return [torch.stack(f) if f else torch.zeros(0, FEATURE_DIM) for f in feats]


class FrechetInceptionDistanceAntialias(FrechetInceptionDistance):
    """FID with PyTorch's antialiased bilinear resize to 299 (torchmetrics' default `antialias=True`)."""

    outputs = ("fid_aa",)
    resize = "antialias"


class PytorchFIDInceptionV3(FIDInceptionV3):
    """The same network fed as pytorch-fid's `InceptionV3(resize_input=True, normalize_input=True)` feeds it:
    uint8 RGB `(N, 3, H, W)` -> x / 255 (`ToTensor`) -> bilinear 299x299 (align_corners=False, no antialias) ->
    2x - 1 -> pool3 `(N, 2048)`. Its state dict is FIDInceptionV3's, so the same weight file loads strictly."""

    def __init__(self) -> None:
        super().__init__("tf1")
        self.resize = "pytorch-fid"  # forward below replaces the parent's resize; this only names it

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 RGB (N, 3, H, W), got shape {tuple(images.shape)}")
        x = images.float() / 255.0
        # pytorch-fid interpolates even at 299x299 (an identity there), so do we
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return self.features(2 * x - 1)


class FrechetInceptionDistancePytorchFID(FrechetInceptionDistance):
    """FID as pytorch-fid computes it from frames (module docstring): [0, 1] input, PyTorch bilinear to 299,
    2x - 1, unbiased covariance. On the synthetic corpus's 60 test clips (every 10th frame, random-init
    Inception) it reads 1.7-4.2 % above `fid_tf1` (docs/metrics_reference.md, "FVD")."""

    outputs = ("fid_pytorchfid",)
    resize = "pytorch-fid"
    input_scaling = "float RGB x / 255, bilinear 299x299 (align_corners=False, no antialias), 2x - 1"

    def network(self) -> FIDInceptionV3:
        return PytorchFIDInceptionV3()
