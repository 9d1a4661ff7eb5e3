"""Bootstrap intervals for the set metrics of a table (FID, FVD): a Fréchet distance per resampled test set.

A set metric is no mean over clips, so its replicate is recomputed from the per-clip features that scoring kept
(``<run>/features/<output>-<digest8>/<clip>.npy``, listed in ``samples.jsonl``). The draws are the table's own
(:func:`benchmark.tables.intervals.table_intervals`): replicate r gives clip c the weight ``w[r, c]``, the number of
times c's unit was drawn, for every row and column alike. A replicate's value is the Fréchet distance between

- the generated features of the row's clips, each frame (or window) weighted by its clip's weight, and
- the real features of the same drawn clips (the protocol's GT row, which scoring writes into
  ``GT-<hash8>/features/``), weighted by the same draw: the comparison is paired.

With frequency weights ``w_i`` over feature vectors ``x_i`` (``n = sum w_i``), the Gaussian of the resampled set is

    mu = sum w_i x_i / n,        S = sum w_i (x_i - mu)(x_i - mu)^T / (n - 1),

exactly the mean and unbiased covariance of the multiset that repeats ``x_i`` ``w_i`` times, so with all weights 1
the value is the one scoring recorded (``SetMetric.compute``). A metric whose protocol divides by ``n`` (its class
declares ``covariance = "biased"``, StyleGAN-V's ``fvd2048_16f``) is resampled with ``n`` in place of ``n - 1``
throughout (``ddof`` below), so its all-ones replicate too is its recorded value. The distance is

    d^2 = ||mu1 - mu2||^2 + tr S1 + tr S2 - 2 tr (S1 S2)^(1/2).

The trace term never needs a d x d matrix when a set has fewer vectors than dimensions. Write
``S1 = A^T A`` and ``S2 = B^T B`` with the weighted centred rows ``A_i = sqrt(w_i / (n1 - 1)) (x_i - mu1)`` [m1, d]
and likewise ``B`` [m2, d]. The non-zero eigenvalues of ``PQ`` and ``QP`` agree, so with ``P = A^T`` and
``Q = A B^T B``, ``S1 S2 = A^T (A B^T B)`` has the non-zero eigenvalues of ``A B^T B A^T = C C^T`` where
``C = A B^T`` [m1, m2]; those are the squared singular values of ``C``, and since the eigenvalues of ``S1 S2`` are
real and >= 0 (it is similar to the PSD ``S1^(1/2) S2 S1^(1/2)``),

    tr (S1 S2)^(1/2) = sum of the singular values of C = ||A B^T||_*     (C_ij = w-scaled (x1_i - mu1).(x2_j - mu2)).

``C`` comes from the Gram matrix ``G = X1 X2^T`` computed once per cell: ``(x1_i - mu1).(x2_j - mu2) = G_ij -
x1_i.mu2 - mu1.x2_j + mu1.mu2``, so a replicate costs O((m1 + m2) d) for the means and an SVD of the rows and
columns it drew, O(m1 m2 min(m1, m2)). When the sets are large (``min(m1, m2)^2 max(m1, m2) > d^3``) the d x d
route is cheaper: the weighted covariances, then ``tr (R S2 R)^(1/2)`` with ``R = S1^(1/2)`` from ``eigh``, as
:mod:`metrics.functional.frechet` computes it. Both routes work in float64 on features first shifted by the real
set's mean (distances do not move; the sums lose less to cancellation).

Determinism: features are read in clip-id order, whatever order the scoring processes wrote their rows in, and the
weights are the table's seeded draws. A cell is left without an interval, and a note says why, when a feature
file is missing, the GT row is not in the table, the features on disk do not give back the recorded value, or its
replicates would cost more than :data:`MAX_WORK`.

A resampled set repeats clips, so it holds fewer distinct ones, and a Fréchet distance grows as its sets shrink:
the replicates sit above the recorded value (for close sets, all of them can). They are shifted by that excess,
``mean(replicates) - value`` (the bootstrap estimate of the bias), before the percentile interval and the paired
tests take them; the spread is what the bootstrap measures, the location is the recorded value's.

A replicate needs an SVD (small sets) or two d x d eigendecompositions (large ones), far more than a weighted
mean, so set columns use the first :attr:`BootstrapSettings.set_replicates` of the table's replicates (the same
draws as the per-clip columns' first replicates); the caption says how many.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "MAX_WORK",
    "FeatureSets",
    "SetCell",
    "covariance_ddof",
    "frechet_replicates",
    "set_metric_intervals",
    "trace_sqrt_small",
    "work",
]

#: how far the all-ones replicate may be from the recorded value, in units of tr S1 + tr S2, before the features
#: on disk are taken not to be the ones that were scored. The recorded value's eigh route clips the round-off of
#: every null eigenvalue (d - m of them when a set has m < d vectors) at 0 and sums their square roots, which
#: leaves it 2.5e-8 of the traces off the exact nuclear norm at 420 x 2048; other features move it far more.
RECORDED_TOLERANCE = 1e-5

#: what one CPU core did per second in our timings, in the units of :func:`work` (docs/intervals.md)
WORK_PER_SECOND = 2e10

#: a cell whose replicates would take longer than about 2 minutes of one core gets no interval but a note: 1000
#: clips x 7 FID frames (the d x d route, ~5 s a replicate) would hold a table up for a quarter of an hour per row
MAX_WORK = 120 * WORK_PER_SECOND


@dataclass(frozen=True)
class SetCell:
    """One set-metric cell: the row's run folder, its clip -> feature file (relative to the folder), and the
    value it recorded."""

    run_dir: Path
    files: Mapping[str, str]
    value: float


def trace_sqrt_small(a: np.ndarray, b: np.ndarray) -> float:
    """tr (A^T A B^T B)^(1/2) for row matrices ``a`` [m1, d] and ``b`` [m2, d]: the nuclear norm of ``a b^T``."""
    return float(np.linalg.svd(a @ b.T, compute_uv=False).sum())


def _trace_sqrt_dense(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr (S1 S2)^(1/2) for symmetric PSD d x d matrices, as metrics.functional.frechet computes it."""
    vals, vecs = np.linalg.eigh((s1 + s1.T) / 2)
    root = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    inner = root @ s2 @ root
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum())


def _small(m1: int, m2: int, d: int) -> bool:
    """Whether the cross-matrix SVD is cheaper than the d x d route."""
    return min(m1, m2) ** 2 * max(m1, m2) <= d**3


def work(m1: int, m2: int, d: int, replicates: int) -> float:
    """Rough multiply-adds of ``replicates`` replicates of sets of m1 and m2 vectors (each draws ~63% of them)."""
    r1, r2 = 0.63 * m1, 0.63 * m2
    if _small(m1, m2, d):
        return float(m1 * m2 * d + replicates * (12 * r1 * r2 * min(r1, r2) + 3 * (r1 + r2) * d))
    return float(replicates * ((r1 + r2) * d * d + 10 * d**3))


def covariance_ddof(metric: str) -> int:
    """1 when the registry metric ``metric`` divides its covariances by n - 1, 0 when by n: its class's declared
    ``covariance``, read from the source (no torch import for a table); 1 for a name outside the registry."""
    from benchmark.registry import declared_attribute
    from metrics import METRICS

    spec = METRICS.get(metric.partition("@")[0])  # "fvd2048_16f@paper": the column of a protocol variant
    if spec is None:
        return 1
    try:
        convention = declared_attribute(spec.target, "covariance")
    except KeyError:
        return 1
    return 0 if convention == "biased" else 1


class _Pair:
    """A generated and a real feature set, shifted by the real mean, with what every replicate reuses; covariances
    divide by n - ``ddof``."""

    def __init__(self, fake: np.ndarray, real: np.ndarray, ddof: int = 1) -> None:
        shift = real.mean(axis=0)
        self.x1, self.x2 = fake - shift, real - shift
        self.small = _small(len(fake), len(real), fake.shape[1])
        self.ddof = ddof
        self._gram: np.ndarray | None = None

    @property
    def gram(self) -> np.ndarray:
        """X1 X2^T, formed once for every replicate of the small route."""
        if self._gram is None:
            self._gram = self.x1 @ self.x2.T
        return self._gram

    def distance(self, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        """(d^2, tr S1 + tr S2) with frame weights ``a`` (generated) and ``b`` (real); NaN when a side has fewer
        than 2 vectors."""
        n1, n2 = float(a.sum()), float(b.sum())
        if n1 < 2 or n2 < 2:
            return math.nan, math.nan
        keep1, keep2 = np.flatnonzero(a), np.flatnonzero(b)
        a, b = a[keep1], b[keep2]
        x1, x2 = self.x1[keep1], self.x2[keep2]
        mu1, mu2 = a @ x1 / n1, b @ x2 / n2
        c1, c2 = x1 - mu1, x2 - mu2
        d1, d2 = n1 - self.ddof, n2 - self.ddof
        tr1 = float(a @ np.einsum("ij,ij->i", c1, c1)) / d1
        tr2 = float(b @ np.einsum("ij,ij->i", c2, c2)) / d2
        diff = mu1 - mu2
        if self.small:
            cross = self.gram[np.ix_(keep1, keep2)] - (x1 @ mu2)[:, None] - (x2 @ mu1)[None, :] + mu1 @ mu2
            cross *= np.sqrt(a / d1)[:, None]
            cross *= np.sqrt(b / d2)[None, :]
            trace = float(np.linalg.svd(cross, compute_uv=False).sum())
        else:
            s1 = (c1 * a[:, None]).T @ c1 / d1
            s2 = (c2 * b[:, None]).T @ c2 / d2
            trace = _trace_sqrt_dense(s1, s2)
        return float(diff @ diff) + tr1 + tr2 - 2.0 * trace, tr1 + tr2


class FeatureSets:
    """A generated and a real feature set given clip by clip (``fake[k]`` / ``real[k]``: one clip's vectors
    [t_k, d]); every vector carries its clip's weight. ``ddof``: 1 for the unbiased covariance, 0 for the biased
    one (:func:`covariance_ddof` of the column's metric)."""

    def __init__(self, fake: Sequence[np.ndarray], real: Sequence[np.ndarray], ddof: int = 1) -> None:
        self.pair = _Pair(
            np.concatenate([np.asarray(f, dtype=np.float64) for f in fake]),
            np.concatenate([np.asarray(f, dtype=np.float64) for f in real]),
            ddof,
        )
        self.clip1 = np.repeat(np.arange(len(fake)), [len(f) for f in fake])
        self.clip2 = np.repeat(np.arange(len(real)), [len(f) for f in real])

    def all_ones(self) -> tuple[float, float]:
        """(d^2, tr S1 + tr S2) of the sets as scored, every clip once."""
        return self.pair.distance(np.ones(len(self.clip1)), np.ones(len(self.clip2)))

    def replicates(self, weights_fake: np.ndarray, weights_real: np.ndarray) -> np.ndarray:
        """d^2 per replicate r, clip k weighing ``weights_*[r, k]``."""
        return np.array(
            [self.pair.distance(wf[self.clip1], wr[self.clip2])[0] for wf, wr in zip(weights_fake, weights_real)],
            dtype=np.float64,
        )


def frechet_replicates(
    fake: Sequence[np.ndarray],
    real: Sequence[np.ndarray],
    weights_fake: np.ndarray,
    weights_real: np.ndarray,
    ddof: int = 1,
) -> np.ndarray:
    """The Fréchet distance per replicate: ``fake[k]`` / ``real[k]`` are one clip's feature vectors [t_k, d],
    ``weights_*[r, k]`` that clip's weight in replicate r (every vector of a clip carries its clip's weight)."""
    return FeatureSets(fake, real, ddof).replicates(weights_fake, weights_real)


def _shapes(run_dir: Path, files: Mapping[str, str], clips: Sequence[str]) -> list[tuple[int, ...]] | str:
    """The shape of each clip's features (the .npy headers only: a cell too large to resample is never read), or
    why they cannot be read."""
    out = []
    for clip in clips:
        path = run_dir / files[clip]
        try:
            out.append(tuple(np.load(path, mmap_mode="r").shape))
        except (OSError, ValueError) as err:
            return f"{path} cannot be read ({type(err).__name__})"
    return out


def _read(run_dir: Path, files: Mapping[str, str], clips: Sequence[str]) -> list[np.ndarray]:
    """The clips' features in ``clips`` order, in float64, one row per vector."""
    out = []
    for clip in clips:
        feats = np.asarray(np.load(run_dir / files[clip]), dtype=np.float64)
        out.append(feats.reshape(len(feats), -1))
    return out


def _vectors(shapes: Sequence[tuple[int, ...]]) -> tuple[int, int]:
    """(number of vectors, their dimension) of a set given its clips' feature shapes."""
    dims = {int(np.prod(s[1:])) for s in shapes if s and s[0]}
    return sum(s[0] for s in shapes if s), max(dims, default=0)


def _centred_replicates(sets: FeatureSets, value: float, w_fake: np.ndarray, w_real: np.ndarray) -> np.ndarray:
    """The replicates, shifted so that their mean is the recorded ``value``; ValueError when the features do not
    give that value back."""
    ones, scale = sets.all_ones()
    if not abs(ones - value) <= RECORDED_TOLERANCE * scale:
        raise ValueError(f"the features on disk give {ones:.6g}, not the recorded {value:.6g} (scored again since?)")
    values = sets.replicates(w_fake, w_real)
    if np.isfinite(values).any():
        values = values - (float(np.nanmean(values)) - value)
    return values


def set_metric_intervals(
    frame: pd.DataFrame,
    keys: Sequence[tuple[str, str, str]],
    cells: Mapping[tuple[int, str], SetCell],
    reference: Mapping[str, SetCell],
    clip_ids: Sequence[str],
    weights: np.ndarray,
    level: float,
    no_reference: str = "the GT row, whose real-clip features it resamples, is not in the table",
) -> tuple[pd.DataFrame, pd.DataFrame, dict[tuple[int, str], np.ndarray], list[str]]:
    """Intervals of the set-metric cells of ``frame``.

    ``keys``: (column key, metric, header) of the set columns; ``cells[(row index, key)]``: a row's features and
    value; ``reference[key]``: the GT row's (real) features of that column, absent when the table has no GT row
    with them (``no_reference`` says why in the note); ``weights`` [replicates, clips]: the table's draws over
    ``clip_ids`` (sorted). Returns low, high, the replicate values and notes (one per column and cause)."""
    low = pd.DataFrame(np.nan, index=frame.index, columns=[k for k, _, _ in keys], dtype="float64")
    high = low.copy()
    reps: dict[tuple[int, str], np.ndarray] = {}
    notes: list[str] = []
    position = {c: i for i, c in enumerate(clip_ids)}
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    for key, metric, header in keys:
        mine = {index: cell for (index, k), cell in cells.items() if k == key}
        if not mine:
            continue
        ddof = covariance_ddof(metric)
        ref = reference.get(key)
        if ref is None:
            notes.append(f"{header}: no interval: {no_reference}")
            continue
        real_clips = sorted(c for c in ref.files if c in position)
        real_shapes = _shapes(ref.run_dir, ref.files, real_clips)
        if isinstance(real_shapes, str):
            notes.append(f"{header}: no interval: the real-clip features are gone ({real_shapes})")
            continue
        m2, d = _vectors(real_shapes)
        real: list[np.ndarray] | None = None
        w_real = weights[:, [position[c] for c in real_clips]]
        problems: list[str] = []
        for index, cell in sorted(mine.items()):
            fake_clips = sorted(c for c in cell.files if c in position)
            fake_shapes = _shapes(cell.run_dir, cell.files, fake_clips)
            method = frame.at[index, "method"] if "method" in frame.columns else index
            if isinstance(fake_shapes, str):
                problems.append(f"{method}: features are gone ({fake_shapes})")
                continue
            m1, d1 = _vectors(fake_shapes)
            if d1 != d:
                problems.append(f"{method}: {d1}-d generated features against {d}-d real ones")
                continue
            cost = work(m1, m2, d, len(weights))
            if cost > MAX_WORK:
                problems.append(
                    f"{method}: {m1} generated and {m2} real vectors would take about "
                    f"{cost / WORK_PER_SECOND / 60:.0f} CPU minutes for {len(weights)} replicates"
                )
                continue
            try:
                if real is None:
                    real = _read(ref.run_dir, ref.files, real_clips)
                sets = FeatureSets(_read(cell.run_dir, cell.files, fake_clips), real, ddof)
                values = _centred_replicates(sets, cell.value, weights[:, [position[c] for c in fake_clips]], w_real)
            except (OSError, ValueError, np.linalg.LinAlgError) as err:
                # a truncated file, non-finite features, features of another scoring: this cell goes without
                problems.append(f"{method}: {err}")
                continue
            reps[(index, key)] = values
            finite = values[np.isfinite(values)]
            if len(finite):
                low.at[index, key], high.at[index, key] = np.percentile(finite, q)
        if problems:
            notes.append(f"{header}: no interval for {'; '.join(problems)}")
    return low, high, reps, notes
