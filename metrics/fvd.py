"""FVD with a pinned protocol: I3D Kinetics-400 logits of 16-frame windows, Fréchet distance in float64.

`fvd_16f`, the corrected definition (the `standard` protocol), named after StyleGAN-V's `fvd2048_16f`
(docs/metrics_reference.md):
- a window is 16 consecutive frames; by default one window per clip starting at frame 0 for the real AND the
  generated clips (StyleGAN-V takes offset 0 for generated videos only; 0 on both sides makes the real set a
  fixed function of the test list); `window_stride` takes every window starting at 0, s, 2s, ... instead
  (`max_windows` caps them per clip); clips shorter than 16 frames are counted as failures (StyleGAN-V
  `discard_short_videos`); every clip of the test list, no cap;
- frames resized straight to 224x224 (bilinear, align_corners=False, aspect not kept) and scaled 2x/255 - 1
  (TATS / content-debiased-fvd `preprocess`); with StyleGAN-V's TorchScript file, the archive does the scaling
  and resizing itself (`rescale=True, resize=True`), as in StyleGAN-V;
- features: the 400 logits averaged over time (TF `RGB/inception_i3d/Mean:0`);
- covariance divided by n - 1; every feature vector is a sample of the Gaussian; fewer than 401 per set are
  refused unless `allow_low_n`.

Paper variants (the name says whose protocol; each pins what its code does, whatever the shared `fvd:` settings):
- `fvd2048_16f` (StyleGAN-V `src/metrics/frechet_video_distance.py`, `metric_utils.py`, `training/dataset.py`):
  one window per clip; the real clip's window starts at a random offset in [0, T - 16] (StyleGAN-V
  `random.randint(0, n_avail - 16)`, unseeded there; here drawn from a generator seeded by (seed, clip id) alone,
  so resumes, DDP shards and the GT feature cache agree), the generated clip's at 0; at most 2048 clips per set:
  the first 2048 of the protocol's test list (StyleGAN-V takes the first `max_items` dataset items, in sorted
  folder order, after dropping short videos; here a short clip among the first 2048 is a failure and is not
  replaced by clip 2049); clips beyond are counted as capped, neither used nor failed; covariance divided by n
  (`FeatureStats.get_mean_cov`). StyleGAN-V takes the square root of the product with `scipy.linalg.sqrtm` and
  keeps the real part; we take the symmetric route of `metrics.functional.frechet`, the same number on
  well-conditioned covariances (tests/metrics/test_fvd_paper.py: 1e-6 relative).
- `fvd_videogpt` (VideoGPT `videogpt/fvd/fvd.py`, copied unchanged as TATS `tats/fvd/fvd.py`): the state-dict
  I3D `i3d_pretrained_400` only (never the TorchScript), BatchNorm eps 1e-5, `preprocess` = bilinear straight to
  224x224 (align_corners=False) and 2x/255 - 1, logits; covariance divided by n - 1 (their `cov`); tf-gan's
  symmetric square root (theirs by SVD in float32, ours by eigh in float64); one window per clip at frame 0 on
  both sides (their callers pass clips of `sequence_length` frames; VideoGPT's `compute_fvd.py` scores 256 test
  clips per trial, we score the whole test list).

How far apart these are on the synthetic corpus: docs/metrics_reference.md ("FVD").

Weights (`weights: auto`): `i3d_torchscript` when registered, else `i3d_pretrained_400` (state dict, BatchNorm
eps 1e-5 as VideoGPT/TATS evaluate it), else a seeded random init recorded with status "random" (not FVD).
"""

from __future__ import annotations

import hashlib
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
    compute with fewer than 401 windows per set (recorded); offset_seed: seed of the real windows' offsets where
    the protocol draws them (no config key: `fvd2048_16f` draws with 0, a part of its name's protocol). A corpus's
    own settings arrive in these from its dataset config (configs/datasets/<name>.yaml `metrics:`).
    """

    outputs = ("fvd_16f",)
    num_frames = 16
    config_section = "fvd"
    needs_corpus = True
    evaluator_key = "i3d"
    feature_dim = FEATURE_DIM
    higher_is_better = False
    mode = "16f"
    #: where a real clip's window starts: "first" (frame 0) or "random" (drawn per clip id, `real_window_start`)
    real_offset = "first"
    #: the protocol takes one window per clip at its start and reads neither `window_stride` nor `max_windows`
    one_window = False
    #: the protocol's network is the state-dict I3D (`i3d_pretrained_400`, BatchNorm eps 1e-5), never the TorchScript
    state_dict_only = False
    #: what the evaluator info says the variant follows ("" for the corrected definition)
    protocol = ""

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
        offset_seed: int = 0,
        corpus: LayoutCorpus | None = None,
        device: str | None = None,
        **kwargs: Any,
    ) -> None:
        if self.one_window:
            # fvd_16f's settings share the `fvd:` section; a paper variant's name fixes one window per clip
            window_stride = max_windows = None
        if self.state_dict_only:
            bn_eps = BN_EPS["videogpt"]
        for key, value in (("window_stride", window_stride), ("max_windows", max_windows)):
            if value is not None and int(value) < 1:
                raise ValueError(f"{key} must be >= 1 or null, got {value}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        super().__init__(allow_low_n=bool(allow_low_n), **kwargs)
        from metrics import weights as store

        if weights == "auto":
            registered = store.list_weights()
            allowed = (STATE_DICT_WEIGHTS,) if self.state_dict_only else (TORCHSCRIPT_WEIGHTS, STATE_DICT_WEIGHTS)
            weights = next((w for w in allowed if w in registered), "random")
        self.i3d: TorchScriptI3D | StateDictI3D
        info: dict[str, Any]
        is_torchscript = weights != "random" and _is_torchscript_entry(weights)
        if is_torchscript and self.state_dict_only:
            raise ValueError(
                f"{self.outputs[0]} follows VideoGPT/TATS, whose I3D is the state dict {STATE_DICT_WEIGHTS}; "
                f"{weights!r} is a TorchScript archive (StyleGAN-V's, for fvd_16f / fvd2048_16f)"
            )
        if is_torchscript:
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
        self.offset_seed = int(offset_seed)
        self.evaluator_info = {
            **info,
            "features": "logits (400), mean over time",
            "frames": self.num_frames,
            "window_stride": self.window_stride,
            "max_windows": self.max_windows,
            "allow_low_n": self.allow_low_n,
        }
        if self.protocol:
            # only the variants add these, so fvd_16f's feature-cache digest stays what it was
            self.evaluator_info.update(
                protocol=self.protocol,
                real_offset=self.real_offset,
                offset_seed=self.offset_seed if self.real_offset == "random" else None,
                covariance=self.covariance,
                max_clips=self.max_clips,
            )

    def window_starts(self, n_frames: int) -> list[int]:
        if n_frames < self.num_frames:
            return []
        last = n_frames - self.num_frames
        starts = [0] if self.window_stride is None else list(range(0, last + 1, self.window_stride))
        return starts[: self.max_windows] if self.max_windows is not None else starts

    def real_view_differs(self) -> bool:
        return self.real_offset == "random"

    def view(self, video: np.ndarray, clip_id: str | None, real: bool) -> np.ndarray:
        """The real clip's 16 frames from its seeded offset under `real_offset: random`; else the whole clip."""
        if not (real and self.real_view_differs()):
            return video
        if clip_id is None:
            raise ValueError(f"{self.outputs[0]} draws each real clip's window offset from its clip id: pass it")
        start = real_window_start(self.offset_seed, clip_id, len(video), self.num_frames)
        return video[start : start + self.num_frames]

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


class FrechetVideoDistanceStyleGANV(FrechetVideoDistance):
    """StyleGAN-V's `fvd2048_16f`: real windows at seeded random offsets, generated at 0, at most 2048 clips per
    set, biased covariance (module docstring).

    By how much it differs from `fvd_16f` (docs/metrics_reference.md): on the synthetic corpus's 60 test clips
    (random-init I3D) 16-17 % higher, almost all of it from the random real offsets (+16-17 % alone); the biased
    covariance alone lowers the value by 0.16-0.27 % there, and by 1.6 % on fixed random features of 60 clips
    (0.05 % at 2048: at most 1/n of the value)."""

    outputs = ("fvd2048_16f",)
    mode = "stylegan-v"
    protocol = "StyleGAN-V fvd2048_16f"
    real_offset = "random"
    one_window = True
    covariance = "biased"
    max_clips = 2048


class FrechetVideoDistanceVideoGPT(FrechetVideoDistance):
    """VideoGPT / TATS `fvd.py`: the state-dict I3D, straight 224x224 resize, first 16 frames of each clip,
    unbiased covariance, tf-gan's symmetric square root (module docstring).

    By how much it differs from `fvd_16f`: not at all where `fvd_16f` also runs `i3d_pretrained_400` (or the random
    init, as on the synthetic corpus) with its default window settings; by the TorchScript's own resize where
    `fvd_16f` takes StyleGAN-V's archive."""

    outputs = ("fvd_videogpt",)
    mode = "videogpt"
    protocol = "VideoGPT/TATS fvd.py"
    one_window = True
    state_dict_only = True


def real_window_start(seed: int, clip_id: str, n_frames: int, num_frames: int = 16) -> int:
    """Start of a real clip's window, uniform on [0, n_frames - num_frames] like StyleGAN-V's
    `random.randint(0, n_avail - n)`, from a generator seeded by (seed, clip_id) alone: the same on every process,
    in every resumed run and in the GT feature cache (Python's `hash` is salted per process, sha256 is not)."""
    if n_frames < num_frames:
        raise ValueError(f"a {num_frames}-frame window needs {num_frames} frames, the clip has {n_frames}")
    digest = hashlib.sha256(f"{int(seed)}\0{clip_id}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "little"))
    return int(rng.integers(0, n_frames - num_frames, endpoint=True))


def _is_torchscript_entry(name: str) -> bool:
    from metrics import weights as store
    from metrics.backbones.i3d import _is_torchscript

    path, _ = store.resolve(name, HOW_TO_GET.get(name, ""))
    return _is_torchscript(path)
