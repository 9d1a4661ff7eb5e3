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

Set metrics (FID, FVD) are not means over clips: their replicates are Fréchet distances of the same resampled test
sets, computed from the per-clip features scoring kept (:mod:`benchmark.tables.set_intervals`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.results import read_jsonl
from benchmark.tables.set_intervals import SetCell, set_metric_intervals
from metrics import describe

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
    ``replicates``: bootstrap draws (0: no intervals, marks by value alone); ``seed``: the draws' seed;
    ``set_replicates``: how many of those draws (the first ones) the set metrics (FID, FVD) use, since each costs a
    Fréchet distance, not a weighted mean (docs/intervals.md, "Set metrics")."""

    level: float = 0.95
    replicates: int = 1000
    seed: int = 0
    set_replicates: int = 200

    def __post_init__(self) -> None:
        if not 0.5 <= self.level < 1:
            raise ValueError(f"the interval level must be in [0.5, 1), got {self.level}")
        if self.replicates < 0:
            raise ValueError(f"the number of bootstrap replicates must be >= 0, got {self.replicates}")
        if self.set_replicates < 0:
            raise ValueError(f"the number of set-metric replicates must be >= 0, got {self.set_replicates}")

    @property
    def alpha(self) -> float:
        return 1.0 - self.level


#: what every table uses unless told otherwise (`bench leaderboard --ci --bootstrap --bootstrap-seed`)
DEFAULT_BOOTSTRAP = BootstrapSettings()


@dataclass
class ClipRecords:
    """One run's per-clip values: ``values[metric][clip_id]``, the speaker of each clip ("" unknown), and for set
    metrics ``features[metric][clip_id]``: the clip's feature file, relative to ``run_dir``."""

    values: dict[str, dict[str, float]] = field(default_factory=dict)
    speakers: dict[str, str] = field(default_factory=dict)
    features: dict[str, dict[str, str]] = field(default_factory=dict)
    run_dir: Path | None = None


def read_clip_records(run_dir: str | Path) -> ClipRecords:
    """The per-clip values of the run in ``run_dir`` (its ``samples.jsonl``; empty when absent)."""
    out = ClipRecords(run_dir=Path(run_dir))
    for row in read_jsonl(Path(run_dir) / "samples.jsonl", missing_ok=True):
        clip_id = row.get("clip_id")
        if not isinstance(clip_id, str):
            continue
        out.speakers[clip_id] = str(row.get("speaker") or "")
        for metric, value in (row.get("values") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.values.setdefault(metric, {})[clip_id] = float(value)
        for entry in (row.get("features") or {}).values():
            name = entry.get("file") if isinstance(entry, dict) else None
            if isinstance(name, str):
                # the folder is benchmark.features.feature_key: "<output>-<digest8>"; the output names the column
                out.features.setdefault(Path(name).parent.name.rpartition("-")[0], {})[clip_id] = name
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
    #: replicates behind the set-metric cells (the first ones of the table's); None when no such cell has any
    set_replicates: int | None = None

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
        sets = "" if self.set_replicates is None else f"; FID / FVD: the first {self.set_replicates} of them"
        marks = (
            f"best / second marks only where the paired bootstrap difference to the next row is significant "
            f"(p < {s.alpha:.2g}; {s.replicates} resamples of the {self.n_units} test {self.unit}s, seed {s.seed}"
            f"{sets})"
        )
        if plus_minus is None:
            return marks
        of = (
            "of the mean" if self.set_replicates is None else "of the mean (FID / FVD: of the resampled sets' distance)"
        )
        return f"{plus_minus} half the {s.level:.0%} percentile bootstrap interval {of}; {marks}"


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
    headers: Mapping[str, str] | None = None,
) -> Intervals | None:
    """Intervals of ``frame``'s cells: ``keys`` are (column key, metric) pairs of the columns, and ``records[i]``
    the per-clip values (and set-metric feature files) of the row at position i (None: none, no interval). A
    column whose metric has feature files in some record, or a registry ``min_clips``, is a set metric
    (:mod:`benchmark.tables.set_intervals`); its real side is the GT row's (``frame["kind"] == "gt"``).
    ``headers`` name the columns in notes. None when no row has per-clip values or features, or no replicates
    are asked for."""
    if settings.replicates == 0 or not any(r is not None and (r.values or r.features) for r in records):
        return None
    present = [r for r in records if r is not None]
    clip_ids = sorted(
        {c for r in present for m in r.values.values() for c in m}
        | {c for r in present for m in r.features.values() for c in m}
    )
    speakers: dict[str, str] = {}
    for r in present:
        speakers.update({c: s for c, s in r.speakers.items() if s})
    unit_of_clip, unit, n_units, notes = _units(clip_ids, speakers)
    weights = _replicate_weights(unit_of_clip, n_units, settings)
    low = pd.DataFrame(np.nan, index=frame.index, columns=[k for k, _ in keys], dtype="float64")
    high = low.copy()
    reps: dict[tuple[int, str], np.ndarray] = {}
    q = (100 * settings.alpha / 2, 100 * (1 - settings.alpha / 2))
    set_metrics = {m for r in present for m in r.features} | {
        m for _, m in keys if (spec := describe(m)) is not None and spec.min_clips is not None
    }
    for position, index in enumerate(frame.index):
        record = records[position]
        if record is None:
            continue
        for key, metric in keys:
            per_clip = record.values.get(metric)
            if not per_clip or metric in set_metrics:
                continue
            values = np.array([per_clip.get(c, np.nan) for c in clip_ids], dtype=np.float64)
            means = _replicate_means(values, weights)
            reps[(index, key)] = means
            finite = means[np.isfinite(means)]
            if len(finite):
                low.at[index, key], high.at[index, key] = np.percentile(finite, q)
    set_keys = [(k, m) for k, m in keys if m in set_metrics]
    n_set = min(settings.replicates, settings.set_replicates)
    if set_keys and n_set > 0:
        set_low, set_high, set_reps, set_notes = _set_intervals(
            frame, set_keys, records, weights[:n_set], clip_ids, settings.level, headers or {}
        )
        for key, _ in set_keys:
            low[key], high[key] = set_low[key], set_high[key]
        reps.update(set_reps)
        notes.extend(set_notes)
    intervals = Intervals(settings, unit, n_units, low, high, reps, notes)
    if any(k in {key for key, _ in set_keys} for _, k in reps):
        intervals.set_replicates = n_set
    return intervals


def _set_intervals(
    frame: pd.DataFrame,
    keys: Sequence[tuple[str, str]],
    records: Sequence[ClipRecords | None],
    weights: np.ndarray,
    clip_ids: Sequence[str],
    level: float,
    headers: Mapping[str, str],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[tuple[int, str], np.ndarray], list[str]]:
    """The set-metric cells of rows with a value and feature files; the real side from the last GT row."""
    kinds = frame["kind"] if "kind" in frame.columns else pd.Series("", index=frame.index)
    cells: dict[tuple[int, str], SetCell] = {}
    reference: dict[str, SetCell] = {}
    unlisted: dict[str, list[str]] = {}
    for position, index in enumerate(frame.index):
        record = records[position]
        if record is None or record.run_dir is None:
            continue
        for key, metric in keys:
            files = record.features.get(metric)
            value = float(frame.at[index, key])
            if not files:
                if math.isfinite(value) and kinds.at[index] != "gt":
                    unlisted.setdefault(key, []).append(str(frame.at[index, "method"]) if "method" in frame else "")
                continue
            if kinds.at[index] == "gt":
                # the GT row scores no set metric (the real set against itself); its features are the real side
                reference[key] = SetCell(record.run_dir, files, math.nan)
                continue
            if math.isfinite(value):
                cells[(index, key)] = SetCell(record.run_dir, files, value)
    set_keys = [(k, m, headers.get(k, m)) for k, m in keys]
    why = (
        "the GT row lists no real-clip feature files"
        if (kinds == "gt").any()
        else "the GT row, whose real-clip features it resamples, is not in the table"
    )
    low, high, reps, notes = set_metric_intervals(frame, set_keys, cells, reference, clip_ids, weights, level, why)
    for key, methods in unlisted.items():
        notes.append(
            f"{headers.get(key, key)}: no interval for {', '.join(methods)}: its samples.jsonl lists no feature files "
            "(scored before they were recorded)"
        )
    return low, high, reps, notes


def paired_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value that scores ``a`` and ``b`` (bootstrap replicates drawn on the same clips) differ: twice
    the smaller share of replicates on either side of zero difference (ties counted half to each side)."""
    d = a - b
    d = d[np.isfinite(d)]
    if not len(d):
        return math.nan
    below = float(np.mean(d < 0) + 0.5 * np.mean(d == 0))
    return min(1.0, 2.0 * min(below, 1.0 - below))
