"""Error bars and significance for a table's per-clip metrics: a seeded bootstrap over the scored clips.

Every row of a table was scored on the same test clips, and each run keeps its per-clip values in
``samples.jsonl``. One set of bootstrap replicates is drawn per table and shared by all its rows and columns:

- the resampling unit is the speaker when the clips name their speakers, at least :data:`MIN_SPEAKERS` speakers
  are present and some speaker has several clips (clips of one speaker are not independent: resampling them
  one by one makes the interval too narrow); otherwise the clip, and a note says so;
- a replicate draws as many units as there are, with replacement (seeded: the same seed, clips and values give
  the same intervals on any machine and with any number of scoring processes, since the values are read in
  clip-id order, not in the order processes wrote them);
- a row's value in a replicate is the mean over the clips of the drawn units that it scored; its interval is the
  percentile interval of those means at the chosen level;
- two rows are compared with a paired bootstrap: the same replicates give both rows' means, so the difference
  of their scores (the value for lower/higher-is-better columns, ``|value - GT|`` for match-GT columns, the GT
  row's mean taken from the same replicate) has a distribution, and the two-sided p-value is twice the smaller
  tail beyond zero.

Set metrics (FID, FVD) are not means over clips; they are shown without an interval here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.results import read_jsonl

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "MIN_SPEAKERS",
    "BootstrapSettings",
    "ClipRecords",
    "Intervals",
    "paired_p_value",
    "read_clip_records",
    "table_intervals",
]

#: speakers needed before they are the resampling unit: a percentile bootstrap over fewer independent units
#: covers the true mean far less often than its nominal level (2 held-out speakers would give 2 possible means
#: per replicate draw of one speaker), so below this the clip is the unit and the table says so
MIN_SPEAKERS = 10


@dataclass(frozen=True)
class BootstrapSettings:
    """``level``: the interval's coverage (0.95) and 1 - the significance threshold of the marks;
    ``replicates``: bootstrap draws (0: no intervals, marks by value alone); ``seed``: the draws' seed."""

    level: float = 0.95
    replicates: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.5 <= self.level < 1:
            raise ValueError(f"the interval level must be in [0.5, 1), got {self.level}")
        if self.replicates < 0:
            raise ValueError(f"the number of bootstrap replicates must be >= 0, got {self.replicates}")

    @property
    def alpha(self) -> float:
        return 1.0 - self.level


#: what every table uses unless told otherwise (`bench leaderboard --ci --bootstrap --bootstrap-seed`)
DEFAULT_BOOTSTRAP = BootstrapSettings()


@dataclass
class ClipRecords:
    """One run's per-clip values: ``values[metric][clip_id]`` and the speaker of each clip ("" unknown)."""

    values: dict[str, dict[str, float]] = field(default_factory=dict)
    speakers: dict[str, str] = field(default_factory=dict)


def read_clip_records(run_dir: str | Path) -> ClipRecords:
    """The per-clip values of the run in ``run_dir`` (its ``samples.jsonl``; empty when absent)."""
    out = ClipRecords()
    for row in read_jsonl(Path(run_dir) / "samples.jsonl", missing_ok=True):
        clip_id = row.get("clip_id")
        if not isinstance(clip_id, str):
            continue
        out.speakers[clip_id] = str(row.get("speaker") or "")
        for metric, value in (row.get("values") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.values.setdefault(metric, {})[clip_id] = float(value)
    return out


@dataclass
class Intervals:
    """A table's intervals: ``low`` / ``high`` share the table frame's index and metric columns (NaN where a
    cell has none); ``replicates[(row index, column key)]`` holds that cell's bootstrap means."""

    settings: BootstrapSettings
    unit: str  # "speaker" | "clip"
    n_units: int
    low: pd.DataFrame
    high: pd.DataFrame
    replicates: dict[tuple[int, str], np.ndarray]
    notes: list[str] = field(default_factory=list)

    def half_width(self, index: int, key: str) -> float | None:
        if key not in self.low.columns:
            return None
        low, high = self.low.at[index, key], self.high.at[index, key]
        if not (math.isfinite(low) and math.isfinite(high)):
            return None
        return float(high - low) / 2.0

    def caption(self, plus_minus: str | None = "±") -> str:
        """What the marks (and, with ``plus_minus``, the ± of the cells, written that way) mean."""
        s = self.settings
        marks = (
            f"best / second marks only where the paired bootstrap difference to the next row is significant "
            f"(p < {s.alpha:.2g}; {s.replicates} resamples of the {self.n_units} test {self.unit}s, seed {s.seed})"
        )
        if plus_minus is None:
            return marks
        return f"{plus_minus} half the {s.level:.0%} percentile bootstrap interval of the mean; {marks}"


def _units(clip_ids: Sequence[str], speakers: Mapping[str, str]) -> tuple[np.ndarray, str, int, list[str]]:
    """Unit index per clip, the unit's name, the number of units and notes."""
    named = [speakers.get(c, "") for c in clip_ids]
    distinct = sorted(set(named))
    several = len(distinct) < len(clip_ids)
    if all(named) and len(distinct) >= MIN_SPEAKERS and several:
        index = {s: i for i, s in enumerate(distinct)}
        return np.array([index[s] for s in named], dtype=np.int64), "speaker", len(distinct), []
    notes = []
    if all(named) and several:
        notes.append(
            f"intervals resample clips, not speakers: the test clips come from {len(distinct)} speaker(s), fewer "
            f"than {MIN_SPEAKERS}, and clips of one speaker are not independent, so the intervals are optimistic"
        )
    return np.arange(len(clip_ids), dtype=np.int64), "clip", len(clip_ids), notes


def _replicate_weights(unit_of_clip: np.ndarray, n_units: int, settings: BootstrapSettings) -> np.ndarray:
    """[replicates, clips]: how many times each clip's unit was drawn in each replicate."""
    rng = np.random.default_rng(settings.seed)
    draws = rng.integers(0, n_units, size=(settings.replicates, n_units))
    # one bincount over all replicates: replicate r's units are numbered r * n_units + unit
    offsets = np.arange(settings.replicates)[:, None] * n_units
    counts = np.bincount((draws + offsets).ravel(), minlength=settings.replicates * n_units)
    return counts.reshape(settings.replicates, n_units)[:, unit_of_clip].astype(np.float64)


def _replicate_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted mean per replicate over the finite values (NaN in a replicate that drew none of them)."""
    finite = np.isfinite(values)
    w = weights * finite
    total = w.sum(axis=1)
    sums = (w * np.where(finite, values, 0.0)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, sums / np.where(total > 0, total, 1.0), np.nan)


def table_intervals(
    frame: pd.DataFrame,
    keys: Sequence[tuple[str, str]],
    records: Sequence[ClipRecords | None],
    settings: BootstrapSettings,
) -> Intervals | None:
    """Intervals of ``frame``'s cells: ``keys`` are (column key, metric) pairs of the per-clip columns, and
    ``records[i]`` the per-clip values of the row at position i (None: no per-clip values, no interval). None
    when no row has per-clip values or no replicates are asked for."""
    if settings.replicates == 0 or not any(r is not None and r.values for r in records):
        return None
    clip_ids = sorted({c for r in records if r is not None for m in r.values.values() for c in m})
    speakers: dict[str, str] = {}
    for r in records:
        if r is not None:
            speakers.update({c: s for c, s in r.speakers.items() if s})
    unit_of_clip, unit, n_units, notes = _units(clip_ids, speakers)
    weights = _replicate_weights(unit_of_clip, n_units, settings)
    low = pd.DataFrame(np.nan, index=frame.index, columns=[k for k, _ in keys], dtype="float64")
    high = low.copy()
    reps: dict[tuple[int, str], np.ndarray] = {}
    q = (100 * settings.alpha / 2, 100 * (1 - settings.alpha / 2))
    for position, index in enumerate(frame.index):
        record = records[position]
        if record is None:
            continue
        for key, metric in keys:
            per_clip = record.values.get(metric)
            if not per_clip:
                continue
            values = np.array([per_clip.get(c, np.nan) for c in clip_ids], dtype=np.float64)
            means = _replicate_means(values, weights)
            reps[(index, key)] = means
            finite = means[np.isfinite(means)]
            if len(finite):
                low.at[index, key], high.at[index, key] = np.percentile(finite, q)
    return Intervals(settings, unit, n_units, low, high, reps, notes)


def paired_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value that scores ``a`` and ``b`` (bootstrap replicates drawn on the same clips) differ: twice
    the smaller share of replicates on either side of zero difference (ties counted half to each side)."""
    d = a - b
    d = d[np.isfinite(d)]
    if not len(d):
        return math.nan
    below = float(np.mean(d < 0) + 0.5 * np.mean(d == 0))
    return min(1.0, 2.0 * min(below, 1.0 - below))
