"""What every clip metric shares: one evaluation sample type and per-clip "cat" states.

Per-clip values are kept (not running sums) so that results record every clip, DDP gathers exactly the clips
each rank scored, and the dataset index of each clip lets the caller drop sampler padding duplicates.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


@dataclass
class EvalSample:
    """A generated clip and its reference, as metrics see them (SPEC section 1, "evaluation input").

    fake/real: uint8 [T, H, W, 3] RGB 25 fps; audio: float32 [N] 16 kHz, the audio both share.
    """

    index: int
    clip_id: str
    fake: np.ndarray
    audio: np.ndarray | None = None
    real: np.ndarray | None = None
    fake_landmarks: np.ndarray | None = None
    real_landmarks: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


class ClipScoreError(ValueError):
    """This clip cannot be scored by this metric (too short, silent, no face...): counted, never hidden."""


class ClipMetric(Metric, abc.ABC):
    """Base for metrics that give each clip one or more values and report their mean over scored clips."""

    full_state_update = False
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

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("values", default=[], dist_reduce_fx="cat")
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("n_failed", default=torch.tensor(0), dist_reduce_fx="sum")
        #: (clip_id, reason) of clips this process could not score; local to the process
        self.failures: list[tuple[str, str]] = []
        #: what produced the values (backbone arch, weights name, sha256, status official|calibrated|random):
        #: recorded in every result and part of the protocol hash; None for metrics without a network
        self.evaluator_info: dict | None = None

    @abc.abstractmethod
    def score_clip(self, sample: EvalSample) -> Sequence[float]:
        """The values of `outputs` for one clip; raise ClipScoreError when the clip cannot be scored."""

    def update(self, samples: Sequence[EvalSample]) -> None:
        for sample in samples:
            try:
                vals = [float(v) for v in self.score_clip(sample)]
            except ClipScoreError as err:
                self.n_failed += 1
                self.failures.append((sample.clip_id, str(err)))
                continue
            self.values.append(torch.tensor([vals], dtype=torch.float64))
            self.index.append(torch.tensor([sample.index], dtype=torch.long))

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
    def calibration_needed(cls, settings: dict, corpus) -> str | None:
        """The `bench calibrate` step (a benchmark.calibrate.CALIBRATORS name) that must run on `corpus` before
        this metric can be built with `settings` (its config section), or None. The runner runs it first."""
        return None

    def reset(self) -> None:
        super().reset()
        self.failures = []

    def compute(self) -> dict[str, torch.Tensor]:
        _, vals = self.per_clip()
        if vals.shape[0] == 0:
            return {name: torch.tensor(float("nan"), dtype=torch.float64) for name in self.outputs}
        return {name: vals[:, i].mean() for i, name in enumerate(self.outputs)}
