"""Leaderboards: results collected into pandas, ranked per column by each metric's direction, and exported.

Rules (SPEC section 6):

- one :class:`Table` per (dataset, protocol hash): numbers from different protocols are never ranked together;
- several runs with one ``run.name`` under one protocol: the newest by ``finished`` is kept;
- per column, ``lower``/``higher`` rank the values, ``match_gt`` ranks ``|value - GT value|`` against the GT
  row's value of that column (no GT row: the column is not ranked); best is bold, second underlined;
- ranking is dense (ties share a rank, and the next distinct value is second), NaN never ranks, and a column
  with fewer than two ranked values gets no marks (a single row would be "best" by default);
- GT rows (``run.kind == "gt"``) are never ranked and are listed last;
- published rows (a paper's table, e.g. ``reference/diffused_heads_table1.csv``) are shown in their own block
  below ours, labelled as published, and never ranked or marked.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from benchmark.results import DIRECTIONS, Results, write_text_atomic

__all__ = [
    "ARROWS",
    "DEFAULT_DIRECTIONS",
    "DISPLAY_NAMES",
    "PUBLISHED_MARK",
    "PREFERRED_ORDER",
    "PUBLISHED_COLUMNS",
    "Column",
    "Table",
    "attach_published",
    "dataset_label",
    "format_value",
    "latex_document",
    "leaderboard_frame",
    "published_rows",
    "render_terminal",
    "to_csv",
    "to_latex",
    "to_latex_table1",
    "to_markdown",
    "write_leaderboard",
]

#: column order of the Diffused Heads Table 1, then the Wav2Lip sync scores and the lipreader
PREFERRED_ORDER = (
    "fvd",
    "fid",
    "blinks_per_s",
    "blink_dur",
    "ofm",
    "fmse",
    "av_offset",
    "av_conf",
    "lse_d",
    "lse_c",
    "wer",
)

DISPLAY_NAMES = {
    "fvd": "FVD",
    "fid": "FID",
    "blinks_per_s": "Blinks/s",
    "blink_dur": "Blink dur.",
    "ofm": "OFM",
    "fmse": "F-MSE",
    "av_offset": "AV offset",
    "av_conf": "AV conf.",
    "lse_d": "LSE-D",
    "lse_c": "LSE-C",
    "wer": "WER",
    "psnr": "PSNR",
    "ssim": "SSIM",
    "lmd": "LMD",
    "cpbd": "CPBD",
    "csim": "CSIM",
}

#: used only where no result states a direction (columns that only published rows have)
DEFAULT_DIRECTIONS = {
    "fvd": "lower",
    "fid": "lower",
    "blinks_per_s": "match_gt",
    "blink_dur": "match_gt",
    "ofm": "match_gt",
    "fmse": "match_gt",
    "av_offset": "match_gt",
    "av_conf": "higher",
    "lse_d": "lower",
    "lse_c": "higher",
    "wer": "lower",
    "psnr": "higher",
    "ssim": "higher",
    "lmd": "lower",
    "cpbd": "higher",
    "csim": "higher",
}

#: decimals per metric family; the paper prints 2 for everything in Table 1, Wav2Lip prints LSE-D/C with 3
_DECIMALS = {
    "fvd": 2,
    "fid": 2,
    "blinks_per_s": 2,
    "blink_dur": 2,
    "ofm": 2,
    "fmse": 2,
    "av_conf": 2,
    "lse_d": 3,
    "lse_c": 3,
    "wer": 2,
    "psnr": 2,
    "ssim": 3,
    "lmd": 3,
    "cpbd": 3,
    "csim": 3,
}

ARROWS = {"lower": "↓", "higher": "↑", "match_gt": "→GT"}
_LATEX_ARROWS = {"lower": r"$\downarrow$", "higher": r"$\uparrow$", "match_gt": r"$\rightarrow$GT"}

#: the paper's Table 1 csv headers -> our metric names
PUBLISHED_COLUMNS = {
    "FVD": "fvd",
    "FID": "fid",
    "blinks_per_s": "blinks_per_s",
    "blink_dur_s": "blink_dur",
    "OFM": "ofm",
    "F_MSE": "fmse",
    "AV_offset": "av_offset",
    "AV_conf": "av_conf",
    "WER": "wer",
}

MISSING = "–"
META_COLUMNS = ("method", "kind", "name", "n_clips", "finished")
CSV_META_COLUMNS = ("method", "kind", "name", "dataset", "protocol", "protocol_hash", "n_clips")
_NOT_REPORTED = {"", "-", "–", "—", "n/a", "na"}


# --------------------------------------------------------------------------------------------------------------
# metric names


def metric_family(name: str) -> str | None:
    """The known metric a name belongs to: ``fvd_16f`` and ``fvd2048_16f`` -> ``fvd``; ``ofm@paper`` -> ``ofm``."""
    low = name.lower()
    for key in sorted(set(PREFERRED_ORDER) | DISPLAY_NAMES.keys(), key=len, reverse=True):
        # a protocol suffix follows a non-letter (StyleGAN-V style "fvd2048_16f"); "fidelity" is not "fid"
        if low == key or (low.startswith(key) and not low[len(key)].isalpha()):
            return key
    return None


def _column_sort_key(key: str) -> tuple[int, str]:
    family = metric_family(key)
    position = PREFERRED_ORDER.index(family) if family in PREFERRED_ORDER else len(PREFERRED_ORDER)
    return position, key.lower()


def _display_name(metric: str) -> str:
    family = metric_family(metric)
    if family is None:
        return metric
    return DISPLAY_NAMES[family] + metric[len(family) :]


def _default_direction(metric: str) -> str | None:
    try:
        from metrics import METRICS  # the registry is light (lazy targets); metrics never imports benchmark
    except ImportError:
        METRICS = {}
    if metric in METRICS:
        return METRICS[metric].direction
    return DEFAULT_DIRECTIONS.get(metric_family(metric) or "")


def format_value(metric: str, value: float | None) -> str:
    """Display text for one value: AV offsets as signed integers (a mean over clips with one decimal), other
    metrics with the decimals their papers print; missing values as an en dash.
    """
    if value is None:
        return MISSING
    value = float(value)
    if math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    family = metric_family(metric)
    if family == "av_offset":
        if value.is_integer():
            return f"{int(value):+d}" if value else "0"
        text = f"{value:+.1f}"
        return "0.0" if float(text) == 0 else text
    decimals = _DECIMALS.get(family or "", 2 if abs(value) >= 100 else 3)
    text = f"{value:.{decimals}f}"
    # "-0.00" reads as a sign error
    return text[1:] if text.startswith("-") and float(text) == 0 else text


# --------------------------------------------------------------------------------------------------------------
# the table model


@dataclass(frozen=True)
class Column:
    """One metric column. ``key`` is the metric name, or ``metric@mode`` where rows used different modes."""

    key: str
    metric: str
    direction: str
    mode: str | None = None
    ranked: bool = True

    @property
    def header(self) -> str:
        name = _display_name(self.metric)
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


def _finished_key(result: Results) -> datetime:
    text = result.run.finished
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return datetime.min.replace(tzinfo=UTC)
    # naive stamps are taken as UTC so they compare with aware ones
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _newest_per_name(results: Sequence[Results]) -> list[Results]:
    newest: dict[tuple[str, str, str], tuple[datetime, int, Results]] = {}
    for position, result in enumerate(results):
        key = (result.protocol.dataset, result.protocol.hash, result.run.name)
        candidate = (_finished_key(result), position, result)
        # a later position wins a tie, so re-collecting the same files in order keeps the last written
        if key not in newest or candidate[:2] >= newest[key][:2]:
            newest[key] = candidate
    return [entry[2] for entry in sorted(newest.values(), key=lambda e: e[1])]


def _same_dataset(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def leaderboard_frame(
    results: Iterable[Results],
    dataset: str | None = None,
    *,
    published: pd.DataFrame | str | Path | None = None,
    published_source: str | None = None,
) -> list[Table]:
    """One ranked :class:`Table` per (dataset, protocol hash), ordered by dataset, protocol name and hash.

    ``dataset`` (case-insensitive) keeps only that dataset. ``published`` (a frame from :func:`published_rows`,
    or the csv path itself) adds the paper's rows of the same dataset to each table as an unranked block; when
    ``dataset`` is given and has published rows but no results of ours, a table with only the published block
    is returned.
    """
    if isinstance(published, str | Path):
        published_source = published_source or Path(published).name
        published = published_rows(published, dataset)
    selected = [r for r in results if dataset is None or _same_dataset(r.protocol.dataset, dataset)]
    groups: dict[tuple[str, str], list[Results]] = {}
    for result in _newest_per_name(selected):
        groups.setdefault((result.protocol.dataset, result.protocol.hash), []).append(result)
    tables = [_build_table(group) for group in groups.values()]
    tables.sort(key=lambda t: (t.dataset.casefold(), t.protocol.casefold(), t.protocol_hash))

    if published is not None:
        tables = [attach_published(table, published, published_source) for table in tables]
        # a published-only table is made only when that dataset was asked for: listing every paper's dataset
        # under an all-datasets leaderboard would bury our own tables
        wanted = dataset is not None and not any(_same_dataset(t.dataset, dataset) for t in tables)
        names = [n for n in dict.fromkeys(published["dataset"]) if wanted and _same_dataset(n, dataset)]
        for name in names[:1]:
            tables.append(attach_published(_empty_table(name, "published", "-"), published, published_source))
    return tables


def _empty_table(dataset: str, protocol: str, protocol_hash: str) -> Table:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in META_COLUMNS})
    return Table(dataset, protocol, protocol_hash, None, [], frame, pd.DataFrame(index=frame.index))


def _build_table(group: list[Results]) -> Table:
    first = group[0]
    notes: list[str] = []
    names = sorted({r.protocol.name for r in group})
    if len(names) > 1:
        notes.append(f"one protocol hash under several names: {', '.join(names)}")
    counts = sorted({r.protocol.n_clips for r in group})
    if len(counts) > 1:
        notes.append(f"rows record different protocol clip counts: {', '.join(map(str, counts))}")

    columns = _collect_columns(group, notes)
    labels = _row_labels(group)
    notes.extend(_budget_notes(group, labels))
    records = []
    for result, label in zip(group, labels):
        record = {
            "method": label,
            "kind": result.run.kind,
            "name": result.run.name,
            "n_clips": result.protocol.n_clips,
            "finished": result.run.finished,
        }
        for column in columns:
            metric = result.metrics.get(column.metric)
            present = metric is not None and (column.key == column.metric or metric.mode == column.mode)
            record[column.key] = float(metric.value) if present else math.nan
        records.append((result, record))

    # ours alphabetically, GT last (SPEC section 6)
    records.sort(key=lambda item: (item[0].run.kind == "gt", item[1]["method"].casefold(), item[0].run.name))
    frame = pd.DataFrame([record for _, record in records], columns=[*META_COLUMNS, *(c.key for c in columns)])
    for column in columns:
        frame[column.key] = frame[column.key].astype("float64")
    ordered = [result for result, _ in records]

    columns, ranks = _rank(frame, columns, ordered, notes)
    notes.extend(_failure_notes(frame, columns, ordered))
    evaluators, evaluator_notes = _evaluator_lines(group)
    notes.extend(evaluator_notes)
    status, footnotes = _evaluator_marks(frame, columns, ordered)
    return Table(
        dataset=first.protocol.dataset,
        protocol=names[0],
        protocol_hash=first.protocol.hash,
        n_clips=counts[0] if len(counts) == 1 else None,
        columns=columns,
        frame=frame,
        ranks=ranks,
        evaluators=evaluators,
        notes=notes,
        evaluator_status=status,
        footnotes=footnotes,
    )


# --------------------------------------------------------------------------------------------------------------
# honest marking of values computed with non-official evaluator weights

#: cell marks by evaluator status; official (and unrecorded) weights are not marked
EVALUATOR_MARKS = {"random": "†", "calibrated": "‡", "trained": "‡", "unverified": "§", "unofficial": "§"}
EVALUATOR_STATUSES = ("official", "calibrated", "trained", "random", "unverified", "unofficial")
_FOOTNOTES = {
    "†": "† random-init evaluator: not comparable to published numbers ({})",
    "‡": "‡ evaluator calibrated / trained here, not the official weights: comparable only within this protocol, "
    "not to published numbers ({})",
    "§": "§ evaluator imported under an official name but not verified against a pinned official sha256 ({})",
}


def evaluator_status(info: dict) -> str | None:
    """Normalised status of one recorded evaluator: official | calibrated | trained | random, None if unknown.

    Results record ``status`` (metrics of issue 3); older SyncNet records have ``calibrated: bool`` and a
    ``source`` ("official (syncnet_v2.model)" or a path)."""
    status = info.get("status")
    if isinstance(status, str) and status in EVALUATOR_STATUSES:
        return status
    if "calibrated" in info:
        if info["calibrated"]:
            return "calibrated"
        source = str(info.get("source") or "")
        return "official" if source.startswith("official") or not source else "trained"
    return None


_EVALUATOR_KEYS: dict[str, str | None] = {}


def metric_evaluator_key(metric: str) -> str | None:
    """The results ``evaluators`` key of the network behind ``metric`` (its registered class's
    ``evaluator_key``), None for metrics without a network or not in the registry."""
    if metric not in _EVALUATOR_KEYS:
        key = None
        try:
            from benchmark.registry import import_target
            from metrics import METRICS

            spec = METRICS.get(metric)
            if spec is not None:
                key = getattr(import_target(spec.target), "evaluator_key", None)
        except Exception:  # a metric whose class cannot be imported here is simply not marked
            key = None
        _EVALUATOR_KEYS[metric] = key
    return _EVALUATOR_KEYS[metric]


def _evaluator_marks(
    frame: pd.DataFrame, columns: list[Column], ordered: list[Results]
) -> tuple[pd.DataFrame, list[str]]:
    status = pd.DataFrame(None, index=frame.index, columns=[c.key for c in columns], dtype=object)
    used: dict[str, set[str]] = {}
    for position, result in enumerate(ordered):
        index = frame.index[position]
        for column in columns:
            key = metric_evaluator_key(column.metric)
            info = result.evaluators.get(key) if key else None
            if info is None or math.isnan(frame.at[index, column.key]):
                continue
            found = evaluator_status(info)
            if found in EVALUATOR_MARKS:
                status.at[index, column.key] = found
                name = info.get("weights") or info.get("name") or key
                used.setdefault(EVALUATOR_MARKS[found], set()).add(f"{key}={name}" if name != key else key)
    footnotes = [_FOOTNOTES[mark].format(", ".join(sorted(names))) for mark, names in sorted(used.items())]
    return status, footnotes


def _collect_columns(group: list[Results], notes: list[str]) -> list[Column]:
    seen: dict[str, list] = {}
    for result in group:
        for name, metric in result.metrics.items():
            seen.setdefault(name, []).append(metric)
    columns = []
    for name, metrics in seen.items():
        modes = sorted({m.mode for m in metrics}, key=lambda m: (m is not None, m or ""))
        # a paper-mode and a standard-mode value measure different things: separate columns, never one ranking
        split = len(modes) > 1
        for mode in modes:
            members = [m for m in metrics if m.mode == mode]
            directions = sorted({m.direction for m in members})
            ranked = len(directions) == 1 and directions[0] in DIRECTIONS
            if not ranked:
                notes.append(f"{name}: rows record different directions ({', '.join(directions)}); not ranked")
            key = f"{name}@{mode or 'unspecified'}" if split else name
            columns.append(Column(key, name, directions[0], mode, ranked))
    columns.sort(key=lambda c: _column_sort_key(c.key))
    return columns


def _row_labels(group: list[Results]) -> list[str]:
    labels = [r.run.label or r.run.name for r in group]
    repeated = {label for label in labels if labels.count(label) > 1}
    # two runs shown as "Wav2Lip" (say, two seeds) must stay tellable apart
    labels = [f"{label} ({r.run.name})" if label in repeated else label for label, r in zip(labels, group)]
    return [f"{label} {TIME_CAP_MARK}" if time_capped(r) else label for label, r in zip(labels, group)]


TIME_CAP_MARK = "(time cap)"


def time_capped(result: Results) -> list[str]:
    """The trainings behind a row that stopped at their wall-clock safety net before their step budget
    ("<model>: <steps> of <max_steps> steps"), the models it needed included; empty for a row trained to budget."""
    out: list[str] = []

    def visit(name: str, info: dict) -> None:
        budget = info.get("budget") or {}
        if budget.get("stopped_by") == "time":
            out.append(f"{name}: {budget.get('steps')} of {budget.get('max_steps')} steps")
        for arg, sub in (info.get("needs") or {}).items():
            visit(arg, sub)

    visit(result.run.model or result.run.name, result.run.checkpoint or {})
    return out


def _budget_notes(group: list[Results], labels: list[str]) -> list[str]:
    return [
        f"{label}: training stopped by its wall-clock safety net before its step budget ({'; '.join(capped)}); "
        "its numbers depend on the load of the machine it trained on"
        for result, label in zip(group, labels)
        if (capped := time_capped(result))
    ]


def _tie_key(value: float) -> float:
    # |v - gt| picks up float noise (0.25 - 0.24 != 0.24 - 0.23); 12 significant digits is far below any
    # displayed precision, so only true ties are merged
    return float(f"{value:.12g}") if math.isfinite(value) else value


def _rank(
    frame: pd.DataFrame, columns: list[Column], ordered: list[Results], notes: list[str]
) -> tuple[list[Column], pd.DataFrame]:
    gt_mask = frame["kind"] == "gt"
    gt_rows = frame[gt_mask]
    if len(gt_rows) > 1:
        newest = max(range(len(ordered)), key=lambda i: (ordered[i].run.kind == "gt", _finished_key(ordered[i])))
        gt_index = frame.index[newest]
        notes.append(f"several GT rows; match_gt columns use the newest, {frame.at[gt_index, 'method']}")
    else:
        gt_index = gt_rows.index[0] if len(gt_rows) else None

    ranks = pd.DataFrame(np.nan, index=frame.index, columns=[c.key for c in columns], dtype="float64")
    out_columns = []
    unranked_match = []
    unscored: dict[str, list[str]] = {}
    for column in columns:
        values = frame.loc[~gt_mask, column.key]
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
            if math.isnan(gt_value):
                unranked_match.append(column.header)
                column = replace(column, ranked=False)
            else:
                values = (values - gt_value).abs()
        elif column.direction == "higher":
            values = -values
        if column.ranked:
            keys = values.map(_tie_key).dropna()
            if len(keys) >= 2:
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


def _failure_notes(frame: pd.DataFrame, columns: list[Column], ordered: list[Results]) -> list[str]:
    notes = []
    for position, result in enumerate(ordered):
        by_count: dict[tuple[int, int], list[str]] = {}
        for column in columns:
            metric = result.metrics.get(column.metric)
            if metric is None or (column.key != column.metric and metric.mode != column.mode):
                continue
            if metric.n_failed:
                by_count.setdefault((metric.n_failed, metric.n + metric.n_failed), []).append(column.header)
        for (failed, total), headers in by_count.items():
            method = frame.at[frame.index[position], "method"]
            notes.append(f"{method}: {failed} of {total} clips could not be scored for {', '.join(headers)}")
    return notes


def _describe_evaluator(key: str, info: dict) -> str:
    name = info.get("weights") or info.get("name") or info.get("checkpoint")
    digest = info.get("sha256") or info.get("hash")
    text = f"{key}={name}" if name and name != key else key
    return f"{text} ({str(digest)[:8]})" if digest else text


def _evaluator_lines(group: list[Results]) -> tuple[list[str], list[str]]:
    per_key: dict[str, set[str]] = {}
    for result in group:
        for key, info in result.evaluators.items():
            per_key.setdefault(key, set()).add(_describe_evaluator(key, info))
    notes = [
        f"rows used different weights for evaluator {key}: {', '.join(sorted(found))}"
        for key, found in sorted(per_key.items())
        if len(found) > 1
    ]
    return [line for key in sorted(per_key) for line in sorted(per_key[key])], notes


# --------------------------------------------------------------------------------------------------------------
# published rows


def published_rows(csv_path: str | Path, dataset: str | None) -> pd.DataFrame:
    """A paper's table in the ``reference/diffused_heads_table1.csv`` format, as our metric names.

    Lines starting with ``#`` are comments; an empty cell (or "-") means not reported. Returns columns
    ``dataset``, ``method`` and one float column per metric, rows of ``dataset`` only (case-insensitive; all
    datasets when None).
    """
    path = Path(csv_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise FileNotFoundError(f"cannot read published table {path}: {err.strerror or err}") from err
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    if not body.strip():
        raise ValueError(f"published table {path} has no rows")
    raw = pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False, skipinitialspace=True)
    missing = [c for c in ("dataset", "method") if c not in raw.columns]
    if missing:
        raise ValueError(f"published table {path} lacks column(s) {', '.join(missing)}; found {', '.join(raw.columns)}")
    out = pd.DataFrame({"dataset": raw["dataset"].str.strip(), "method": raw["method"].str.strip()})
    for header in raw.columns:
        if header in ("dataset", "method"):
            continue
        metric = PUBLISHED_COLUMNS.get(header, header.strip().lower())
        cells = raw[header].str.strip()
        values = []
        for method, cell in zip(out["method"], cells):
            if cell.lower() in _NOT_REPORTED:
                values.append(math.nan)
                continue
            try:
                values.append(float(cell))
            except ValueError:
                raise ValueError(f"published table {path}: {header} of {method} is not a number: {cell!r}") from None
        out[metric] = pd.Series(values, dtype="float64", index=out.index)
    if dataset is not None:
        out = out[out["dataset"].str.casefold() == dataset.casefold()]
    return out.reset_index(drop=True)


def attach_published(table: Table, published: pd.DataFrame, source: str | None = None) -> Table:
    """A copy of ``table`` with the published rows of its dataset as an unranked block.

    A published metric goes under our column of the same metric family (the paper's FVD under ``fvd_16f``, for
    side-by-side reading; the protocols may differ, which is why the block is never ranked), or a new column.
    """
    rows = published[published["dataset"].str.casefold() == table.dataset.casefold()]
    if rows.empty:
        return table
    columns = list(table.columns)
    frame = table.frame.copy()
    ranks = table.ranks.copy()
    block = pd.DataFrame({"method": rows["method"].to_numpy()})
    for metric in (c for c in rows.columns if c not in ("dataset", "method")):
        target = _target_column(metric, columns)
        if target is None:
            direction = _default_direction(metric) or "lower"
            columns.append(Column(metric, metric, direction, None, ranked=False))
            frame[metric] = math.nan
            ranks[metric] = math.nan
            target = metric
        block[target] = rows[metric].to_numpy(dtype="float64")
    columns.sort(key=lambda c: _column_sort_key(c.key))
    keys = [c.key for c in columns]
    frame = frame[[*META_COLUMNS, *keys]]
    ranks = ranks.reindex(columns=keys)
    block = block.reindex(columns=["method", *keys])
    return replace(
        table,
        columns=columns,
        frame=frame,
        ranks=ranks,
        published=block,
        published_source=source,
    )


def _target_column(metric: str, columns: list[Column]) -> str | None:
    for column in columns:
        if column.key == metric:
            return column.key
    family = metric_family(metric)
    matches = [c.key for c in columns if family is not None and metric_family(c.key) == family]
    return matches[0] if len(matches) == 1 else None


# --------------------------------------------------------------------------------------------------------------
# exports


def _our_rows(table: Table) -> list[tuple[str, bool, list[tuple[str, str | None]]]]:
    """(method, is_gt, [(text, mark)]) per row of ours, in table order."""
    rows = []
    for index, row in table.frame.iterrows():
        cells = [
            (format_value(c.metric, row[c.key]) + table.evaluator_mark(index, c.key), table.mark(index, c.key))
            for c in table.columns
        ]
        rows.append((str(row["method"]), row["kind"] == "gt", cells))
    return rows


def _published_rows(table: Table) -> list[tuple[str, list[str]]]:
    if table.published is None:
        return []
    return [
        (str(row["method"]), [format_value(c.metric, row[c.key]) for c in table.columns])
        for _, row in table.published.iterrows()
    ]


def _legend(table: Table, bold: str, second: str, arrow: str) -> str:
    parts = [f"{bold} best, {second} second"]
    if any(c.direction == "match_gt" for c in table.columns):
        parts.append(f"{arrow}: closer to the GT row is better")
    return "; ".join(parts)


def to_csv(table: Table) -> str:
    """Plain values at full precision, ours then published, with method, kind, protocol and n_clips columns."""
    frame = _csv_frame(table)
    return frame.to_csv(index=False, lineterminator="\n")


def _csv_frame(table: Table) -> pd.DataFrame:
    keys = [c.key for c in table.columns]
    ours = pd.DataFrame(
        {
            "method": table.frame["method"],
            "kind": table.frame["kind"],
            "name": table.frame["name"],
            "dataset": table.dataset,
            "protocol": table.protocol,
            "protocol_hash": table.protocol_hash,
            "n_clips": table.frame["n_clips"],
        }
    )
    ours = pd.concat([ours, table.frame[keys]], axis=1)
    if table.evaluator_status is not None and table.evaluator_status.notna().any().any():
        # plain numbers stay numbers: which values came from non-official evaluator weights is a column of its own
        ours["evaluator_marks"] = [
            "; ".join(f"{k}: {v}" for k, v in row.items() if isinstance(v, str)) or None
            for _, row in table.evaluator_status.iterrows()
        ]
    parts = [ours]
    if table.published is not None:
        theirs = pd.DataFrame(
            {
                "method": table.published["method"],
                "kind": "published",
                "name": None,
                "dataset": table.dataset,
                "protocol": table.published_source or "published",
                "protocol_hash": None,
                "n_clips": None,
            }
        )
        parts.append(pd.concat([theirs, table.published[keys]], axis=1))
    frame = pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
    frame["n_clips"] = frame["n_clips"].astype("Int64")
    return frame


def _md_escape(text: str) -> str:
    return re.sub(r"([\\|*_<>\[\]`])", r"\\\1", text)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def to_markdown(table: Table) -> str:
    """A GitHub table (best ``**x**``, second ``<u>x</u>``), a line with the protocol and evaluator weights,
    notes, then the published rows in their own table.
    """
    header = ["Method", *(f"{_md_escape(c.header)} {c.arrow}" for c in table.columns)]
    rule = "|:---|" + "---:|" * len(table.columns)
    lines = [f"### {_md_escape(table.title)}", ""]
    if len(table.frame):
        lines += [_md_row(header), rule]
        for method, _, cells in _our_rows(table):
            shown = [
                f"**{text}**" if mark == "best" else f"<u>{text}</u>" if mark == "second" else text
                for text, mark in cells
            ]
            lines.append(_md_row([_md_escape(method), *shown]))
        clips = f", {table.n_clips} clips" if table.n_clips is not None else ""
        evaluators = "; ".join(_md_escape(e) for e in table.evaluators) or "none recorded"
        lines += [
            "",
            f"Protocol `{table.protocol}` hash `{table.protocol_hash}`{clips}. Evaluators: {evaluators}. "
            + _legend(table, "**bold**", "<u>underlined</u>", "→GT")
            + ".",
        ]
        lines += [f"- {_md_escape(note)}" for note in table.notes]
        lines += [f"- {_md_escape(note)}" for note in table.footnotes]
    published = _published_rows(table)
    if published:
        source = f" from {_md_escape(table.published_source)}" if table.published_source else ""
        lines += ["", f"*Published{source} (as printed in the paper; not ranked with ours):*", ""]
        lines += [_md_row(header), rule]
        lines += [_md_row([_md_escape(method), *cells]) for method, cells in published]
    return "\n".join(lines) + "\n"


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "—": "---",
    "–": "--",
    "→": r"$\rightarrow$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "†": r"$\dagger$",
    "‡": r"$\ddagger$",
    "§": r"$\S$",
    "±": r"$\pm$",
    "×": r"$\times$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)


# math-mode symbols come from the Computer Modern math fonts every TeX has as Type 1; text-mode \dag (TS1, EC
# fonts) makes pdflatex run METAFONT to build bitmap fonts where cm-super is not installed
_LATEX_MARKS = {"†": r"$^{\dagger}$", "‡": r"$^{\ddagger}$", "§": r"$^{\S}$"}


def _latex_number(text: str) -> str:
    suffix = ""
    while text and text[-1] in _LATEX_MARKS:
        suffix = _LATEX_MARKS[text[-1]] + suffix
        text = text[:-1]
    if text == MISSING:
        return "--" + suffix
    # a typeset minus, not a hyphen
    return ("$-$" + text[1:] if text.startswith("-") else text) + suffix


def to_latex(table: Table) -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``): arrows in the header, ``\\textbf`` best,
    ``\\underline`` second, ``\\midrule`` before the GT row, published rows in a labelled block below.
    """
    n = len(table.columns) + 1
    label = re.sub(r"[^A-Za-z0-9]+", "-", f"{table.dataset}-{table.protocol_hash}").strip("-").lower()
    clips = f", {table.n_clips} clips" if table.n_clips is not None else ""
    caption = (
        f"{latex_escape(table.dataset)}, protocol \\texttt{{{latex_escape(table.protocol)}}} "
        f"({latex_escape(table.protocol_hash)}){clips}. "
        + _legend(table, r"\textbf{bold}", r"\underline{underlined}", _LATEX_ARROWS["match_gt"])
        + "."
    )
    if table.published is not None:
        caption += " Published rows are quoted from the paper and not ranked."
    lines = [
        "% requires \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{caption}}}",
        f"\\label{{tab:talkbench-{label}}}",
        f"\\begin{{tabular}}{{l{'r' * len(table.columns)}}}",
        "\\toprule",
        " & ".join(["Method", *(f"{latex_escape(c.header)} {_LATEX_ARROWS[c.direction]}" for c in table.columns)])
        + " \\\\",
        "\\midrule",
    ]
    previous_gt = False
    for method, is_gt, cells in _our_rows(table):
        if is_gt and not previous_gt and lines[-1] != "\\midrule":
            lines.append("\\midrule")
        previous_gt = is_gt
        shown = []
        for text, mark in cells:
            number = _latex_number(text)
            shown.append(
                f"\\textbf{{{number}}}"
                if mark == "best"
                else f"\\underline{{{number}}}"
                if mark == "second"
                else number
            )
        lines.append(" & ".join([latex_escape(method), *shown]) + " \\\\")
    published = _published_rows(table)
    if published:
        if lines[-1] != "\\midrule":
            lines.append("\\midrule")
        source = f" ({latex_escape(table.published_source)})" if table.published_source else ""
        lines.append(f"\\multicolumn{{{n}}}{{l}}{{\\textit{{Published{source}, not ranked}}}} \\\\")
        for method, cells in published:
            lines.append(" & ".join([latex_escape(method), *(_latex_number(t) for t in cells)]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if table.evaluators:
        lines.append(f"\\par\\smallskip{{\\footnotesize Evaluators: {latex_escape('; '.join(table.evaluators))}.}}")
    for note in table.footnotes:
        mark, rest = note[0], note[1:]
        lines.append(f"\\par{{\\footnotesize {_LATEX_MARKS.get(mark, latex_escape(mark))}{latex_escape(rest)}}}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------------
# Table 1 of Diffused Heads (Stypulkowski et al., WACV 2023): one table, a block per dataset

#: the marker after a published row's method name (†/‡ already mark non-official evaluators)
PUBLISHED_MARK = "§"
_LATEX_PUBLISHED_MARK = r"$^{\S}$"


def dataset_label(name: str) -> str:
    """How a table names a dataset: the ``label`` of ``configs/datasets/<name>.yaml`` (e.g. ``lrw`` -> LRW),
    else the name itself."""
    try:
        from benchmark.config import load_group

        label = load_group("datasets", name).get("label")
    except Exception:  # a dataset without a config here (results copied from elsewhere) keeps its own name
        label = None
    return str(label) if label else name


def _block_label(table: Table, repeated: bool) -> str:
    name = latex_escape(dataset_label(table.dataset))
    if table.protocol_hash == "-":  # published rows only
        return f"\\textbf{{{name}}}"
    clips = f", {table.n_clips} clips" if table.n_clips is not None else ""
    protocol = f"protocol \\texttt{{{latex_escape(table.protocol)}}} ({latex_escape(table.protocol_hash)}){clips}"
    # the protocol is part of the label only where it tells two blocks of one dataset apart, else it is small print
    if repeated:
        return f"\\textbf{{{name}}}, {protocol}"
    return f"\\textbf{{{name}}} {{\\footnotesize {protocol}}}"


def _merged_columns(tables: Sequence[Table]) -> tuple[list[Column], list[str]]:
    """The union of the tables' columns (Table 1 order); a key whose direction differs between tables gets no
    arrow, since one header cannot state two directions."""
    by_key: dict[str, list[Column]] = {}
    for table in tables:
        for column in table.columns:
            by_key.setdefault(column.key, []).append(column)
    columns, notes = [], []
    for key in sorted(by_key, key=_column_sort_key):
        found = by_key[key]
        directions = sorted({c.direction for c in found})
        if len(directions) > 1:
            notes.append(f"{found[0].header}: blocks rank by different directions ({', '.join(directions)})")
            columns.append(replace(found[0], direction=""))
        else:
            columns.append(found[0])
    return columns, notes


def _latex_cell(text: str, mark: str | None) -> str:
    number = _latex_number(text)
    if mark == "best":
        return f"\\textbf{{{number}}}"
    if mark == "second":
        return f"\\underline{{{number}}}"
    return number


def to_latex_table1(
    tables: Sequence[Table],
    *,
    caption: str | None = None,
    label: str = "tab:talkbench-table1",
    wide: bool = True,
    fit_width: bool = False,
) -> str:
    """All ``tables`` as one booktabs table shaped like Table 1 of Diffused Heads.

    One block per table (dataset and protocol), opened by a ``\\midrule`` and the dataset's name; metric
    columns carry their direction (``$\\downarrow$`` / ``$\\uparrow$`` / ``$\\rightarrow$GT``, explained in the
    caption); within a block, the best value of a column is bold and the second underlined, ``match_gt`` columns
    judged by the distance to that block's GT row; published rows (italic, marked with ``\\S``) follow ours,
    unranked; the GT row closes the block. ``wide`` uses ``table*`` (Table 1 spans both columns of a two-column
    paper); ``fit_width`` shrinks a table wider than the line (needs ``\\usepackage{graphicx}``).
    """
    if not tables:
        raise ValueError("no tables to put in a LaTeX table")
    tables = sorted(tables, key=_block_order)
    columns, notes = _merged_columns(tables)
    n = len(columns) + 1
    env = "table*" if wide else "table"
    datasets = [t.dataset.casefold() for t in tables]
    lines = [
        "% talkbench Table 1 export: requires \\usepackage{booktabs}" + (" and graphicx" if fit_width else ""),
        f"\\begin{{{env}}}[t]",
        "\\centering",
        "\\small",
        f"\\caption{{{caption if caption is not None else _table1_caption(tables, columns)}}}",
        f"\\label{{{label}}}",
    ]
    if fit_width:
        # shrink only: a narrow table keeps its natural size (graphicx exposes \width inside \resizebox)
        lines.append("\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%")
    lines += [
        f"\\begin{{tabular}}{{l{'r' * len(columns)}}}",
        "\\toprule",
        " & ".join(
            ["Method", *(f"{latex_escape(c.header)} {_LATEX_ARROWS.get(c.direction, '')}".rstrip() for c in columns)]
        )
        + " \\\\",
    ]
    for table in tables:
        keys = {c.key for c in table.columns}
        lines += [
            "\\midrule",
            f"\\multicolumn{{{n}}}{{l}}{{{_block_label(table, datasets.count(table.dataset.casefold()) > 1)}}} \\\\",
        ]
        positions = {c.key: i for i, c in enumerate(table.columns)}
        ours = _our_rows(table)
        for method, is_gt, cells in ours:
            if is_gt:
                continue
            shown = [_latex_cell(*cells[positions[c.key]]) if c.key in keys else "--" for c in columns]
            lines.append(" & ".join([latex_escape(method), *shown]) + " \\\\")
        for method, texts in _published_rows(table):
            shown = [
                f"\\textit{{{_latex_number(texts[positions[c.key]])}}}" if c.key in keys else "--" for c in columns
            ]
            name = f"\\textit{{{latex_escape(method)}}}{_LATEX_PUBLISHED_MARK}"
            lines.append(" & ".join([name, *shown]) + " \\\\")
        gt_rows = [row for row in ours if row[1]]
        if gt_rows:
            if len(ours) > len(gt_rows) or table.published is not None:
                lines.append(f"\\cmidrule{{1-{n}}}")
            for method, _, cells in gt_rows:
                shown = [_latex_cell(*cells[positions[c.key]]) if c.key in keys else "--" for c in columns]
                lines.append(" & ".join([latex_escape(method), *shown]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}" + ("}" if fit_width else "")]
    evaluators = list(dict.fromkeys(e for t in tables for e in t.evaluators))
    if evaluators:
        lines.append(f"\\par\\smallskip{{\\footnotesize Evaluators: {latex_escape('; '.join(evaluators))}.}}")
    for note in dict.fromkeys(f for t in tables for f in t.footnotes):
        mark, rest = note[0], note[1:]
        lines.append(f"\\par{{\\footnotesize {_LATEX_MARKS.get(mark, latex_escape(mark))}{latex_escape(rest)}.}}")
    for note in notes:
        lines.append(f"\\par{{\\footnotesize {latex_escape(note)}.}}")
    lines.append(f"\\end{{{env}}}")
    return "\n".join(lines) + "\n"


#: the paper's block order (LRW above CREMA); other datasets follow alphabetically
TABLE1_DATASETS = ("lrw", "crema")


def _block_order(table: Table) -> tuple[int, str, str, str]:
    name = table.dataset.casefold()
    position = TABLE1_DATASETS.index(name) if name in TABLE1_DATASETS else len(TABLE1_DATASETS)
    return position, name, table.protocol.casefold(), table.protocol_hash


def _table1_caption(tables: Sequence[Table], columns: Sequence[Column]) -> str:
    names = ", ".join(dict.fromkeys(latex_escape(dataset_label(t.dataset)) for t in tables))
    parts = [f"Results on {names}."]
    used = {c.direction for c in columns}
    arrows = [
        f"{_LATEX_ARROWS[d]}: {text}"
        for d, text in (
            ("lower", "lower is better"),
            ("higher", "higher is better"),
            ("match_gt", "closer to the block's GT row is better"),
        )
        if d in used
    ]
    if arrows:
        parts.append("; ".join(arrows) + ".")
    parts.append(
        "Per column and block, the best value is in \\textbf{bold} and the second best \\underline{underlined}; "
        "GT rows are not ranked."
    )
    sources = sorted({t.published_source or "the paper" for t in tables if t.published is not None})
    if sources:
        parts.append(
            f"Rows in \\textit{{italics}} marked {_LATEX_PUBLISHED_MARK} are published numbers quoted from "
            f"{latex_escape(', '.join(sources))}, not computed here and not ranked."
        )
    return " ".join(parts)


def latex_document(body: str) -> str:
    """``body`` (a ``table``/``table*`` from :func:`to_latex_table1` or :func:`to_latex`) as a document that
    compiles on its own with pdflatex (packages: booktabs, graphicx)."""
    return (
        "\\documentclass{article}\n"
        "\\usepackage{booktabs}\n"
        "\\usepackage{graphicx}\n"
        "\\usepackage[margin=2cm]{geometry}\n"
        "\\begin{document}\n" + body + "\\end{document}\n"
    )


def render_terminal(table: Table) -> str:
    """Plain aligned text: best marked ``*``, second ``_``; GT and published rows below a rule."""
    header = ["Method", *(f"{c.header} {c.arrow}" for c in table.columns)]
    body: list[list[str] | None] = []
    previous_gt = False
    for method, is_gt, cells in _our_rows(table):
        if is_gt and not previous_gt and body:
            body.append(None)
        previous_gt = is_gt
        body.append([method, *(text + {"best": "*", "second": "_"}.get(mark or "", " ") for text, mark in cells)])
    published = _published_rows(table)
    if published:
        body += [None, ["published (not ranked)", *[""] * len(table.columns)]]
        body += [[method, *(text + " " for text in cells)] for method, cells in published]
    widths = [len(h) for h in header]
    for row in body:
        if row is not None:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(cell.rjust(width) for cell, width in zip(cells[1:], widths[1:]))]).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    out = [table.title, rule, line(header), rule]
    out += [rule if row is None else line(row) for row in body]
    out.append(rule)
    legend = _legend(table, "*", "_", "→GT")
    evaluators = "; ".join(table.evaluators) or "none recorded"
    out.append(f"{legend}. Evaluators: {evaluators}.")
    out += table.footnotes
    out += [f"note: {note}" for note in table.notes]
    return "\n".join(out) + "\n"


_EXTENSIONS = {"csv": "csv", "latex": "tex", "markdown": "md"}


def write_leaderboard(
    results: Iterable[Results],
    dataset: str | None,
    fmt: Literal["csv", "latex", "markdown"],
    out: str | Path | None = None,
    reports_dir: str | Path = Path("reports"),
    *,
    published: pd.DataFrame | str | Path | None = None,
    published_source: str | None = None,
    standalone: bool = False,
) -> Path:
    """Write every table of ``dataset`` (all datasets when None) to ``reports_dir/leaderboard_<dataset>.<ext>``
    or ``out``, atomically; returns the path. CSV stacks the tables (the protocol columns tell them apart);
    LaTeX is one Table-1-shaped table with a block per dataset and protocol (:func:`to_latex_table1`), a whole
    document when ``standalone``; Markdown is one table per block. The HTML report, which also needs the run
    folders, is :func:`benchmark.report.write_report`.
    """
    if fmt not in _EXTENSIONS:
        hint = " (the HTML report: benchmark.report.write_report)" if fmt == "html" else ""
        raise ValueError(f"unknown leaderboard format {fmt!r}; choose one of {', '.join(_EXTENSIONS)}{hint}")
    results = list(results)
    tables = leaderboard_frame(results, dataset, published=published, published_source=published_source)
    if not tables:
        known = sorted({r.protocol.dataset for r in results})
        where = f" for dataset {dataset!r}" if dataset is not None else ""
        hint = f"; results exist for: {', '.join(known)}" if known else "; no results were found at all"
        raise ValueError(f"nothing to put in a leaderboard{where}{hint}")
    if fmt == "csv":
        frames = [_csv_frame(t) for t in tables]
        keys = sorted({k for t in tables for k in (c.key for c in t.columns)}, key=_column_sort_key)
        stacked = pd.concat(frames, ignore_index=True)
        marks = ["evaluator_marks"] if "evaluator_marks" in stacked.columns else []
        stacked = stacked.reindex(columns=[*CSV_META_COLUMNS, *keys, *marks])
        stacked["n_clips"] = stacked["n_clips"].astype("Int64")
        text = stacked.to_csv(index=False, lineterminator="\n")
    elif fmt == "latex":
        text = to_latex_table1(tables, fit_width=standalone)
        if standalone:
            text = latex_document(text)
    else:
        text = "\n".join(to_markdown(t) for t in tables)
    if out is None:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset) if dataset is not None else "all"
        out = Path(reports_dir) / f"leaderboard_{stem}.{_EXTENSIONS[fmt]}"
    return write_text_atomic(out, text)
