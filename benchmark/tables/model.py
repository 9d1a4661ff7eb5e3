"""The table model: :class:`Column`, :class:`Table`, the ranking of a table's columns, and its rows as text.

Ranking rules:

- per column, ``lower``/``higher`` rank the values, ``match_gt`` ranks ``|value - GT value|`` against the GT
  row's value of that column (no GT row: the column is not ranked); best is bold, second underlined;
- values are compared as the table prints them; ranking is dense (ties share a rank, and the next distinct value
  is second), NaN never ranks, and a column with fewer than two distinct ranked values gets no marks (a single
  row, or rows that all read the same, would be "best" by default);
- GT rows (``run.kind == "gt"``) are never ranked;
- a row that left clips unscored is not ranked against rows that scored every clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from benchmark.results import Results
from benchmark.tables.cells import ARROWS, MISSING, display_name, format_value
from benchmark.tables.intervals import Intervals, paired_p_value

__all__ = [
    "EVALUATOR_MARKS",
    "META_COLUMNS",
    "Column",
    "Table",
    "dataset_label",
    "finished_key",
    "legend",
    "our_rows",
    "published_cells",
    "rank_columns",
]

META_COLUMNS = ("method", "kind", "name", "n_clips", "finished")

#: a cell whose model was trained against a network of the evaluator's family (benchmark.tables.overlap)
OVERLAP_MARK = "⚠"
#: cell marks by evaluator status; official (and unrecorded) weights are not marked
EVALUATOR_MARKS = {"random": "†", "calibrated": "‡", "trained": "‡", "unverified": "§", "unofficial": "§"}


@dataclass(frozen=True)
class Column:
    """One metric column. ``key`` is the metric name, or ``metric@mode`` where rows used different modes."""

    key: str
    metric: str
    direction: str
    mode: str | None = None
    ranked: bool = True
    #: metrics shown in this column too, because every row holds the same value for them (MetricSpec.same_as)
    also: tuple[str, ...] = ()
    #: the header when it is not the metric's display name: the paper's name of the family (FVD) where the table
    #: holds one variant of it, that variant named in a footnote
    label: str | None = None

    @property
    def header(self) -> str:
        name = " / ".join([self.label or display_name(self.metric), *(display_name(m) for m in self.also)])
        return f"{name} ({self.key.split('@', 1)[1]})" if self.key != self.metric else name

    @property
    def arrow(self) -> str:
        return ARROWS.get(self.direction, "")


@dataclass
class Table:
    """One leaderboard: the runs of one dataset under one protocol.

    ``frame`` has :data:`META_COLUMNS` plus one float column per ``Column.key``, our rows first and GT rows last;
    ``ranks`` has the same index and metric columns, holding the dense rank (1 = best) or NaN where not ranked.
    """

    dataset: str
    protocol: str
    protocol_hash: str
    n_clips: int | None
    columns: list[Column]
    frame: pd.DataFrame
    ranks: pd.DataFrame
    evaluators: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    published: pd.DataFrame | None = None  # "method" + Column.key columns; never ranked
    published_source: str | None = None
    #: per row (frame index) and column key: the status of the evaluator weights that produced the value when
    #: they are not the official ones ("random" | "calibrated" | "trained"), else None
    evaluator_status: pd.DataFrame | None = None
    #: what the marks in the cells mean, and which evaluators they refer to
    footnotes: list[str] = field(default_factory=list)
    #: bootstrap intervals of the per-clip columns (benchmark.tables.intervals), None without per-clip values
    intervals: Intervals | None = None
    #: per row and column key: True where the row's model was trained against the family of the network behind
    #: the value (benchmark.tables.overlap)
    overlap: pd.DataFrame | None = None

    def evaluator_mark(self, index: int, key: str) -> str:
        """The symbol for the cell at ``frame`` row ``index``, column ``key`` (see EVALUATOR_MARKS), or ""."""
        if self.evaluator_status is None or key not in self.evaluator_status.columns:
            return ""
        status = self.evaluator_status.at[index, key]
        return EVALUATOR_MARKS.get(status, "") if isinstance(status, str) else ""

    @property
    def title(self) -> str:
        return f"{self.dataset} — {self.protocol} ({self.protocol_hash})"

    def mark(self, index: int, key: str) -> str | None:
        """``"best"``, ``"second"`` or None for the cell at ``frame`` row ``index``, column ``key``."""
        rank = self.ranks.at[index, key]
        if pd.isna(rank):
            return None
        return {1: "best", 2: "second"}.get(int(rank))

    @property
    def gt_mask(self) -> pd.Series:
        return self.frame["kind"] == "gt"


def finished_key(result: Results) -> datetime:
    """When a run finished, for "the newest wins"; an unreadable stamp is the oldest."""
    text = result.run.finished
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return datetime.min.replace(tzinfo=UTC)
    # naive stamps are taken as UTC so they compare with aware ones
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def dataset_label(name: str) -> str:
    """How a table names a dataset: the ``label`` of ``configs/datasets/<name>.yaml`` (e.g. ``lrw`` -> LRW),
    else the name itself."""
    try:
        from benchmark.config import load_group

        label = load_group("datasets", name).get("label")
    except Exception:  # a dataset without a config here (results copied from elsewhere) keeps its own name
        label = None
    return str(label) if label else name


# --------------------------------------------------------------------------------------------------------------
# ranking


def _tie_key(value: float) -> float:
    # |v - gt| picks up float noise (0.25 - 0.24 != 0.24 - 0.23); 12 significant digits is far below any
    # displayed precision, so only true ties are merged
    return float(f"{value:.12g}") if math.isfinite(value) else value


def _as_shown(metric: str, values: pd.Series) -> pd.Series:
    """The values at the precision the table prints them: two cells that read the same are a tie, never "best"
    and "second" (nor one bold 0.00 beside another plain 0.00)."""

    def shown(value: float) -> float:
        try:
            return float(format_value(metric, value))
        except ValueError:  # inf, the missing-value dash
            return value

    return values.map(shown)


def rank_columns(
    frame: pd.DataFrame, columns: list[Column], ordered: list[Results], notes: list[str]
) -> tuple[list[Column], pd.DataFrame]:
    """The columns (``match_gt`` ones without a GT value turned unranked) and the dense ranks of ``frame``, whose
    rows are the results ``ordered``; what a reader must know about the ranking is appended to ``notes``."""
    gt_mask = frame["kind"] == "gt"
    gt_rows = frame[gt_mask]
    if len(gt_rows) > 1:
        newest = max(range(len(ordered)), key=lambda i: (ordered[i].run.kind == "gt", finished_key(ordered[i])))
        gt_index = frame.index[newest]
        notes.append(f"several GT rows; match_gt columns use the newest, {frame.at[gt_index, 'method']}")
    else:
        gt_index = gt_rows.index[0] if len(gt_rows) else None

    ranks = pd.DataFrame(np.nan, index=frame.index, columns=[c.key for c in columns], dtype="float64")
    out_columns = []
    unranked_match = []
    unscored: dict[str, list[str]] = {}
    for column in columns:
        values = _as_shown(column.metric, frame.loc[~gt_mask, column.key])
        # a row that left clips unscored is not ranked against rows that scored every clip (its mean is over
        # other clips, often the easy ones)
        failed = {i: m.n_failed for i, r in zip(frame.index, ordered) if (m := r.metrics.get(column.metric))}
        partial = [i for i in values.index if failed.get(i, 0) > 0]
        if column.ranked and partial and any(failed.get(i, 0) == 0 for i in values.index):
            values = values.drop(partial)
            for i in partial:
                unscored.setdefault(str(frame.at[i, "method"]), []).append(column.header)
        if column.ranked and column.direction == "match_gt":
            gt_value = frame.at[gt_index, column.key] if gt_index is not None else math.nan
            gt_value = _as_shown(column.metric, pd.Series([gt_value])).iloc[0]
            if math.isnan(gt_value):
                unranked_match.append(column.header)
                column = replace(column, ranked=False)
            else:
                values = (values - gt_value).abs()
        elif column.direction == "higher":
            values = -values
        if column.ranked:
            keys = values.map(_tie_key).dropna()
            if keys.nunique() >= 2:  # every row the same: nobody is best
                ranks.loc[keys.index, column.key] = keys.rank(method="dense", na_option="keep")
        out_columns.append(column)
    if unranked_match:
        notes.append(f"not ranked without a GT value: {', '.join(unranked_match)}")
    for method, headers in unscored.items():
        notes.append(
            f"{method}: not ranked on {', '.join(headers)}: clips were left unscored, and rows that scored every "
            "clip are ranked apart"
        )
    return out_columns, ranks


def significant_marks(
    frame: pd.DataFrame, columns: list[Column], ranks: pd.DataFrame, intervals: Intervals, notes: list[str]
) -> pd.DataFrame:
    """``ranks`` with the best / second marks kept only where the paired bootstrap says the row differs from the
    next one (p < 1 - level); a column without replicates for every ranked row keeps its marks by value.

    Best needs the single rank-1 row to differ from the row after it; second needs best marked, a single rank-2
    row, and that row to differ from the row after it (when there is one). What is withheld is said in ``notes``.
    """
    out = ranks.copy()
    gt_rows = [i for i in frame.index if frame.at[i, "kind"] == "gt"]
    for column in columns:
        ranked = out[column.key].dropna().sort_values(kind="stable")
        reps = {i: intervals.replicates.get((i, column.key)) for i in ranked.index}
        gt = next((intervals.replicates.get((g, column.key)) for g in reversed(gt_rows)), None)
        if len(ranked) < 2 or any(r is None for r in reps.values()) or (column.direction == "match_gt" and gt is None):
            continue
        scores = {i: _score(r, column.direction, gt) for i, r in reps.items() if r is not None}
        for index, against, p, what in _withheld(ranked, scores, intervals.settings.alpha):
            out.at[index, column.key] = math.nan
            if against is not None:
                notes.append(
                    f"{column.header}: no {what} mark: {frame.at[index, 'method']} and "
                    f"{frame.at[against, 'method']} are not significantly different (paired bootstrap p = {p:.2f})"
                )
    return out


def _score(means: np.ndarray, direction: str, gt: np.ndarray | None) -> np.ndarray:
    """Bootstrap replicates of what ranks a row, lower being better."""
    if direction == "match_gt":
        assert gt is not None
        distance: np.ndarray = np.abs(means - gt)
        return distance
    return -means if direction == "higher" else means


def _withheld(
    ranked: pd.Series, scores: dict[int, np.ndarray], alpha: float
) -> list[tuple[int, int | None, float, str]]:
    """(row, the row it is not distinguished from or None, p, "best" | "second") for each mark to withhold."""
    order = [int(i) for i in ranked.index]

    def p_value(a: int, b: int) -> float:
        return paired_p_value(scores[a], scores[b])

    out: list[tuple[int, int | None, float, str]] = []
    first = [i for i in order if ranked[i] == 1]
    second = [i for i in order if ranked[i] == 2]
    best_marked = False
    if len(first) > 1:  # equal as printed: already a tie, and nobody is best
        out += [(i, None, math.nan, "best") for i in first]
    else:
        p = p_value(order[0], order[1])
        best_marked = math.isfinite(p) and p < alpha
        if not best_marked:
            out.append((order[0], order[1], p, "best"))
    if not best_marked or len(second) != 1:
        return out + [(i, None, math.nan, "second") for i in second]
    after = order.index(second[0]) + 1
    if after < len(order):
        p = p_value(second[0], order[after])
        if not (math.isfinite(p) and p < alpha):
            out.append((second[0], order[after], p, "second"))
    return out


# --------------------------------------------------------------------------------------------------------------
# rows as text, shared by every renderer


def cell_text(table: Table, index: int, column: Column, intervals: bool = True) -> str:
    """A cell as printed: the value, ``± half-width`` of its interval (``intervals``) and its evaluator mark."""
    text = format_value(column.metric, table.frame.at[index, column.key])
    half = table.intervals.half_width(index, column.key) if intervals and table.intervals is not None else None
    if half is not None and text != MISSING:
        text += " ± " + format_value(column.metric, half).lstrip("+")
    overlap = table.overlap is not None and column.key in table.overlap.columns and table.overlap.at[index, column.key]
    return text + table.evaluator_mark(index, column.key) + (OVERLAP_MARK if overlap else "")


def our_rows(table: Table, intervals: bool = True) -> list[tuple[str, bool, list[tuple[str, str | None]]]]:
    """(method, is_gt, [(text, mark)]) per row of ours, in table order; ``intervals``: cells carry ``± h``."""
    rows = []
    for index, row in table.frame.iterrows():
        i = int(index)
        cells = [(cell_text(table, i, c, intervals), table.mark(i, c.key)) for c in table.columns]
        rows.append((str(row["method"]), row["kind"] == "gt", cells))
    return rows


def published_cells(table: Table) -> list[tuple[str, list[str]]]:
    """(method, [text]) per published row, in table order; empty without published rows."""
    if table.published is None:
        return []
    return [
        (str(row["method"]), [format_value(c.metric, row[c.key]) for c in table.columns])
        for _, row in table.published.iterrows()
    ]


def legend(table: Table, bold: str, second: str, arrow: str) -> str:
    """What the marks mean, in a renderer's own words for them."""
    parts = [f"{bold} best, {second} second"]
    if any(c.direction == "match_gt" for c in table.columns):
        parts.append(f"{arrow}: closer to the GT row is better")
    return "; ".join(parts)
