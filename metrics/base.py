"""What every clip metric shares: one evaluation sample type and per-clip "cat" states.

Per-clip values are kept (not running sums) so that results record every clip, DDP gathers exactly the clips
each rank scored, and the dataset index of each clip lets the caller drop sampler padding duplicates.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

if TYPE_CHECKING:
    from data.corpus import LayoutCorpus


@dataclass
class EvalSample:
    """A generated clip and its reference, as metrics see them (docs/clip_contract.md, "Evaluation input").

    fake/real: uint8 [T, H, W, 3] RGB 25 fps; audio: float32 [N] 16 kHz, the audio both share.
    fake_file: the file `fake` was decoded from, when it was (generated and submitted videos; GT clips have none):
    metrics whose reference script reads files (SyncNet paper mode) read it.
    """

    index: int
    clip_id: str
    fake: np.ndarray
    audio: np.ndarray | None = None
    real: np.ndarray | None = None
    fake_landmarks: np.ndarray | None = None
    real_landmarks: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    fake_file: Path | None = None


class ClipScoreError(ValueError):
    """This clip cannot be scored by this metric (too short, silent, no face...): counted, never hidden."""


class ClipMetric(Metric, abc.ABC):
    """Base for metrics that give each clip one or more values and report their mean over scored clips."""

    full_state_update = False
    # True / False when every output agrees, else None (mixed, or judged against GT); each output's direction is
    # the METRICS registry's, and tests/benchmark/test_metric_descriptions.py checks this flag against it
    higher_is_better: bool | None = None
    #: names of the values `score_clip` returns, in order
    outputs: tuple[str, ...] = ()
    #: the section of configs/metrics/*.yaml whose settings are this class's keyword arguments
    config_section: str | None = None
    #: True when the caller must pass an evaluator network built from registered weights
    needs_evaluator: bool = False
    #: True when the caller must pass `corpus=` (the data.corpus.LayoutCorpus being scored), e.g. so the metric
    #: can find the backbone calibrated on that corpus
    needs_corpus: bool = False
    #: the key under which `evaluator_info` is recorded in results ("syncnet", "inception", "landmarks", ...)
    evaluator_key: str | None = None
    #: outputs whose per-clip value may be NaN by definition (a blink duration in a clip without blinks); any other
    #: non-finite value means the evaluator broke on the clip, which is then a counted failure with the reason
    nan_outputs: tuple[str, ...] = ()

    # states added in __init__ (torchmetrics keeps them as attributes): `values` / `index` are lists of per-update
    # tensors in this process, one gathered tensor only inside a distributed `compute` (see `per_clip`)
    values: list[torch.Tensor]
    index: list[torch.Tensor]
    n_failed: torch.Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("values", default=[], dist_reduce_fx="cat")
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("n_failed", default=torch.tensor(0), dist_reduce_fx="sum")
        #: (clip_id, reason) of clips this process could not score; local to the process
        self.failures: list[tuple[str, str]] = []
        #: what produced the values (backbone arch, weights name, sha256, status official|calibrated|random):
        #: recorded in every result and part of the protocol hash; None for metrics without a network
        self.evaluator_info: dict[str, Any] | None = None

    @abc.abstractmethod
    def score_clip(self, sample: EvalSample) -> Sequence[float]:
        """The values of `outputs` for one clip; raise ClipScoreError when the clip cannot be scored."""

    def score_clips(self, samples: Sequence[EvalSample]) -> list[Sequence[float] | ClipScoreError]:
        """Each sample's values, or the ClipScoreError it raised; override to batch or parallelise across clips."""
        out: list[Sequence[float] | ClipScoreError] = []
        for sample in samples:
            try:
                out.append(self.score_clip(sample))
            except ClipScoreError as err:
                out.append(err)
        return out

    def update(self, samples: Sequence[EvalSample]) -> None:
        samples = list(samples)
        for sample, result in zip(samples, self.score_clips(samples)):
            if isinstance(result, ClipScoreError):
                self.record_failure(sample.clip_id, str(result))
                continue
            vals = [float(v) for v in result]
            broken = [n for n, v in zip(self.outputs, vals) if not math.isfinite(v) and n not in self.nan_outputs]
            if broken:
                self.record_failure(sample.clip_id, f"the evaluator gave non-finite {', '.join(broken)}")
                continue
            self.values.append(torch.tensor([vals], dtype=torch.float64))
            self.index.append(torch.tensor([sample.index], dtype=torch.long))

    def record_failure(self, clip_id: str, reason: str) -> None:
        """Count a clip this metric could not score (the reason goes to the run's per-clip records)."""
        self.n_failed += 1
        self.failures.append((clip_id, reason))

    def restore(
        self, index: int, clip_id: str, *, values: Sequence[float] | None = None, failure: str | None = None
    ) -> None:
        """Put back one clip scored by an earlier, interrupted run: its `values` (in `outputs` order), or the
        `failure` it was recorded with, exactly as `update` would have left them."""
        if failure is not None:
            self.record_failure(clip_id, failure)
            return
        assert values is not None, "restore needs the clip's values or its failure"
        self.values.append(torch.tensor([[float(v) for v in values]], dtype=torch.float64))
        self.index.append(torch.tensor([index], dtype=torch.long))

    def per_clip(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(dataset indices [n], values [n, len(outputs)]) of every scored clip, unique by index, sorted."""
        # a list of per-update tensors in this process; one gathered tensor after a distributed sync
        if isinstance(self.values, list) and len(self.values) == 0:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, len(self.outputs), dtype=torch.float64)
        idx = dim_zero_cat(self.index)
        vals = dim_zero_cat(self.values).reshape(-1, len(self.outputs))
        order = torch.argsort(idx, stable=True)
        idx, vals = idx[order], vals[order]
        keep = torch.ones_like(idx, dtype=torch.bool)
        keep[1:] = idx[1:] != idx[:-1]
        return idx[keep], vals[keep]

    @classmethod
    def calibration_needed(cls, settings: dict[str, Any], corpus: LayoutCorpus) -> str | list[str] | None:
        """The `bench calibrate` step (a benchmark.calibrate.CALIBRATORS name; a list when several) that must run on
        `corpus` before this metric can be built with `settings` (its config section), or None. The runner runs it
        first."""
        return None

    @classmethod
    def protocol_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """The part of its config section that decides this metric's values, as the protocol hash records it: all of
        it, unless a setting only matters under another (SyncNet's tracker settings under `crop: tracked`)."""
        return settings

    def reset(self) -> None:
        super().reset()
        self.failures = []

    def compute(self) -> dict[str, torch.Tensor]:
        _, vals = self.per_clip()
        if vals.shape[0] == 0:
            return {name: torch.tensor(float("nan"), dtype=torch.float64) for name in self.outputs}
        return {name: vals[:, i].mean() for i, name in enumerate(self.outputs)}


@dataclass
class ClipFeatures:
    """Feature vectors `[k, d]` one clip contributes to a set metric, already extracted (e.g. read back from a
    run's feature cache). `real`: the clip belongs to the reference (ground-truth) set."""

    index: int
    clip_id: str
    features: torch.Tensor
    real: bool = False


class SetScoreError(RuntimeError):
    """A set metric cannot give a value for these sets (e.g. fewer feature vectors than feature dimensions)."""


class SetMetric(Metric, abc.ABC):
    """Base for distribution metrics (FID, FVD): each clip contributes feature vectors, and the value compares the
    Gaussian fitted to the generated clips' features with the one fitted to the real clips' features.

    States are sums, as torchmetrics' FrechetInceptionDistance keeps them (and with its names, so a subclass of it
    reuses its states): `{real,fake}_features_sum` [d], `{real,fake}_features_cov_sum` [d, d] (sum of x x^T),
    float64, and `{real,fake}_features_num_samples`; adding them over processes gives the one-process value.
    `fake_clips` counts the clips whose generated features were added (a sum: a "cat" state would hang the
    gather on a rank that added none). A clip the metric cannot use (too short) raises ClipScoreError in
    `check_clip` and is counted in `n_failed`.

    `update` takes EvalSamples (generated features from `fake`, reference features from `real` when present) or
    ClipFeatures. With fewer than d + 1 feature vectors in a set the covariance is singular and the distance is
    dominated by the sample size, so `compute` raises SetScoreError unless `allow_low_n` (recorded in the
    protocol) is set.

    A paper protocol may fix three more things, all class attributes so that the metric's name says them:
    `covariance` ("unbiased": n - 1, or "biased": n, StyleGAN-V), `max_clips` (per set, only clips whose dataset
    index is below it count; the others are counted in `{real,fake}_capped`, neither used nor failed), and a real
    side that sees another part of the clip than the generated side (`view`, e.g. StyleGAN-V's random offsets).
    """

    full_state_update = False
    higher_is_better = False
    outputs: tuple[str, ...] = ()
    config_section: str | None = None
    needs_evaluator: bool = False  # the runner's SyncNet; set metrics build their own backbones
    needs_corpus: bool = False
    evaluator_key: str | None = None
    #: dimension of the feature vectors
    feature_dim: int = 0
    #: the metric's mode as recorded in results (e.g. the resize filter)
    mode: str | None = None
    #: "unbiased" (n - 1) or "biased" (n): the covariance convention of the protocol the name stands for; read
    #: by benchmark/tables/set_intervals.py from the class source, so it must stay a literal
    covariance: str = "unbiased"
    #: per set, clips with a dataset index at or above this are left out (StyleGAN-V: 2048); None = every clip
    max_clips: int | None = None

    # states added in __init__ (or by torchmetrics' FrechetInceptionDistance, for a subclass of it)
    real_features_sum: torch.Tensor
    real_features_cov_sum: torch.Tensor
    real_features_num_samples: torch.Tensor
    fake_features_sum: torch.Tensor
    fake_features_cov_sum: torch.Tensor
    fake_features_num_samples: torch.Tensor
    fake_clips: torch.Tensor
    fake_capped: torch.Tensor
    real_capped: torch.Tensor
    n_failed: torch.Tensor

    def __init__(self, *, allow_low_n: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_low_n = bool(allow_low_n)
        if "real_features_sum" not in self._defaults:  # torchmetrics' FID adds these itself
            d = int(self.feature_dim)
            for side in ("real", "fake"):
                self.add_state(f"{side}_features_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
                self.add_state(f"{side}_features_cov_sum", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")
                self.add_state(f"{side}_features_num_samples", torch.tensor(0).long(), dist_reduce_fx="sum")
        self.add_state("fake_clips", default=torch.tensor(0), dist_reduce_fx="sum")
        for side in ("real", "fake"):
            self.add_state(f"{side}_capped", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("n_failed", default=torch.tensor(0), dist_reduce_fx="sum")
        self.failures: list[tuple[str, str]] = []
        self.evaluator_info: dict[str, Any] | None = None

    @classmethod
    def calibration_needed(cls, settings: dict[str, Any], corpus: LayoutCorpus) -> str | list[str] | None:
        """As ClipMetric.calibration_needed: FID/FVD backbones are official or seeded random, never calibrated."""
        return None

    @classmethod
    def protocol_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """As ClipMetric.protocol_settings: the whole config section."""
        return settings

    def check_clip(self, video: np.ndarray) -> None:
        """Raise ClipScoreError when `video` (uint8 [T, H, W, 3]) cannot contribute features."""

    @abc.abstractmethod
    def clip_features_batch(self, videos: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Feature vectors `[k_i, d]` of each video (checked by `check_clip`), batched across videos."""

    def view(self, video: np.ndarray, clip_id: str | None, real: bool) -> np.ndarray:
        """The part of a checked clip that this side's features come from (the whole clip unless a protocol
        samples the real side differently, e.g. a random window; it may depend on `clip_id`, never on the
        process or the order of clips)."""
        return video

    def real_view_differs(self) -> bool:
        """Whether `view` gives the real side other frames than the generated side (the feature cache then keeps
        the real clips' features apart from a generated clip's)."""
        return False

    def clip_features(self, video: np.ndarray, *, clip_id: str | None = None, real: bool = False) -> torch.Tensor:
        """Feature vectors of one clip on the real (reference) or the generated side."""
        self.check_clip(video)
        return self.clip_features_batch([self.view(video, clip_id, real)])[0]

    def is_capped(self, index: int) -> bool:
        """Whether the clip at dataset `index` lies beyond the protocol's `max_clips` (left out of both sets)."""
        return self.max_clips is not None and int(index) >= int(self.max_clips)

    def _capped(self, real: bool) -> None:
        side = "real" if real else "fake"
        setattr(self, f"{side}_capped", getattr(self, f"{side}_capped") + 1)

    def n_capped(self) -> int:
        """Generated clips left out by the `max_clips` cap (this process; all of them after `compute`)."""
        return int(self.fake_capped)

    def _add(self, feats: torch.Tensor, real: bool) -> None:
        x = torch.as_tensor(feats).to(torch.float64).reshape(-1, int(self.feature_dim))
        side = "real" if real else "fake"
        setattr(self, f"{side}_features_sum", getattr(self, f"{side}_features_sum") + x.sum(0))
        setattr(self, f"{side}_features_cov_sum", getattr(self, f"{side}_features_cov_sum") + x.T @ x)
        setattr(self, f"{side}_features_num_samples", getattr(self, f"{side}_features_num_samples") + x.shape[0])
        if not real:
            self.fake_clips += 1

    def record_failure(self, clip_id: str, reason: str) -> None:
        """Count a clip this metric could not use (the reason goes to the run's per-clip records)."""
        self.n_failed += 1
        self.failures.append((clip_id, reason))

    def restore(
        self, index: int, clip_id: str, *, features: torch.Tensor | None = None, failure: str | None = None
    ) -> None:
        """Put back one clip of an earlier, interrupted run: its generated-set `features` (read back from the
        feature cache), or the `failure` it was recorded with."""
        if failure is not None:
            self.record_failure(clip_id, failure)
        else:
            assert features is not None, "restore needs the clip's features or its failure"
            self.update([ClipFeatures(index=index, clip_id=clip_id, features=features)])

    def update(self, items: Sequence[EvalSample | ClipFeatures]) -> None:
        pending: list[EvalSample] = []
        for item in items:
            if self.is_capped(item.index):
                # StyleGAN-V keeps each set's first max_items; what it leaves out is counted, never a failure
                if isinstance(item, ClipFeatures):
                    self._capped(item.real)
                else:
                    self._capped(False)
                    if item.real is not None:
                        self._capped(True)
                continue
            if isinstance(item, ClipFeatures):
                self._add(item.features, item.real)
                continue
            try:
                self.check_clip(item.fake)
                if item.real is not None:
                    self.check_clip(item.real)
            except ClipScoreError as err:
                self.record_failure(item.clip_id, str(err))
                continue
            pending.append(item)
        if not pending:
            return
        for f in self.clip_features_batch([self.view(s.fake, s.clip_id, False) for s in pending]):
            self._add(f, False)
        reals = [self.view(s.real, s.clip_id, True) for s in pending if s.real is not None]
        if reals:
            for f in self.clip_features_batch(reals):
                self._add(f, True)

    def n_clips(self) -> int:
        """Number of clips whose generated features were added (this process; all of them after `compute`)."""
        return int(self.fake_clips)

    def min_samples(self) -> int:
        return 2 if self.allow_low_n else int(self.feature_dim) + 1

    def compute(self) -> dict[str, torch.Tensor]:
        from metrics.functional.frechet import frechet_distance_from_sums

        n_fake, n_real = int(self.fake_features_num_samples), int(self.real_features_num_samples)
        need = self.min_samples()
        if min(n_fake, n_real) < need:
            hint = "" if self.allow_low_n else " (or set allow_low_n: true, recorded in the protocol)"
            raise SetScoreError(
                f"{self.outputs[0]}: {n_fake} generated and {n_real} real feature vectors; {need} per set are "
                f"needed for a {self.feature_dim}-d covariance. Score more clips{hint}."
            )
        value = frechet_distance_from_sums(
            n_fake,
            self.fake_features_sum,
            self.fake_features_cov_sum,
            n_real,
            self.real_features_sum,
            self.real_features_cov_sum,
            self.covariance,
        )
        return {self.outputs[0]: value}

    def reset(self) -> None:
        super().reset()
        self.failures = []
