"""Results -> tables: one :class:`~benchmark.tables.model.Table` per (dataset, protocol hash).

- numbers from different protocols are never ranked together;
- several runs with one ``run.name`` under one protocol: the newest by ``finished`` is kept;
- our rows alphabetically, GT rows (``run.kind == "gt"``) last; a paper-mode and a standard-mode value of one
  metric get separate columns;
- published rows (a paper's table, e.g. ``reports/reference/diffused_heads_table1.csv``) are attached as their own
  unranked block (:mod:`benchmark.tables.published`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.results import DIRECTIONS, MetricResult, Results
from benchmark.tables.cells import column_sort_key, display_name, metric_family
from benchmark.tables.evaluators import evaluator_lines, evaluator_marks
from benchmark.tables.intervals import DEFAULT_BOOTSTRAP, BootstrapSettings, read_clip_records, table_intervals
from benchmark.tables.model import META_COLUMNS, Column, Table, finished_key, rank_columns, significant_marks
from benchmark.tables.overlap import overlap_marks
from benchmark.tables.published import attach_published, published_rows
from metrics import describe

__all__ = ["TIME_CAP_MARK", "leaderboard_frame", "time_capped"]


def _newest_per_name(results: Sequence[Results]) -> list[Results]:
    newest: dict[tuple[str, str, str], tuple[datetime, int, Results]] = {}
    for position, result in enumerate(results):
        key = (result.protocol.dataset, result.protocol.hash, result.run.name)
        candidate = (finished_key(result), position, result)
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
    bootstrap: BootstrapSettings | None = DEFAULT_BOOTSTRAP,
) -> list[Table]:
    """One ranked :class:`Table` per (dataset, protocol hash), ordered by dataset, protocol name and hash.

    ``dataset`` (case-insensitive) keeps only that dataset. ``published`` (a frame from :func:`published_rows`,
    or the csv path itself) adds the paper's rows of the same dataset to each table as an unranked block; when
    ``dataset`` is given and has published rows but no results of ours, a table with only the published block
    is returned. ``bootstrap``: intervals for the per-clip columns of results read from run folders, and best /
    second marks only where a paired bootstrap finds the difference significant (None: marks by value alone).
    """
    published_frame: pd.DataFrame | None
    if isinstance(published, str | Path):
        published_source = published_source or Path(published).name
        published_frame = published_rows(published, dataset)
    else:
        published_frame = published
    selected = [r for r in results if dataset is None or _same_dataset(r.protocol.dataset, dataset)]
    groups: dict[tuple[str, str], list[Results]] = {}
    for result in _newest_per_name(selected):
        groups.setdefault((result.protocol.dataset, result.protocol.hash), []).append(result)
    tables = [_build_table(group, bootstrap) for group in groups.values()]
    tables.sort(key=lambda t: (t.dataset.casefold(), t.protocol.casefold(), t.protocol_hash))

    if published_frame is not None:
        tables = [attach_published(table, published_frame, published_source) for table in tables]
        # a published-only table is made only when that dataset was asked for: listing every paper's dataset
        # under an all-datasets leaderboard would bury our own tables
        if dataset is not None and not any(_same_dataset(t.dataset, dataset) for t in tables):
            names = [n for n in dict.fromkeys(published_frame["dataset"]) if _same_dataset(n, dataset)]
            for name in names[:1]:
                empty = _empty_table(name, "published", "-")
                tables.append(attach_published(empty, published_frame, published_source))
    return tables


def _empty_table(dataset: str, protocol: str, protocol_hash: str) -> Table:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in META_COLUMNS})
    return Table(dataset, protocol, protocol_hash, None, [], frame, pd.DataFrame(index=frame.index))


def _build_table(group: list[Results], bootstrap: BootstrapSettings | None = None) -> Table:
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
    records: list[tuple[Results, dict[str, Any]]] = []
    for result, label in zip(group, labels):
        record: dict[str, Any] = {
            "method": label,
            "kind": result.run.kind,
            "name": result.run.name,
            "n_clips": result.protocol.n_clips,
            "finished": result.run.finished,
        }
        for column in columns:
            metric = result.metrics.get(column.metric)
            if metric is not None and (column.key == column.metric or metric.mode == column.mode):
                record[column.key] = float(metric.value)
            else:
                record[column.key] = math.nan
        records.append((result, record))

    # ours alphabetically, GT last
    records.sort(key=lambda item: (item[0].run.kind == "gt", item[1]["method"].casefold(), item[0].run.name))
    frame = pd.DataFrame([record for _, record in records], columns=[*META_COLUMNS, *(c.key for c in columns)])
    for column in columns:
        frame[column.key] = frame[column.key].astype("float64")
    ordered = [result for result, _ in records]

    columns, frame = _merge_identical(columns, frame, notes)
    columns, variants = _paper_headers(columns)
    columns, ranks = rank_columns(frame, columns, ordered, notes)
    intervals = None
    if bootstrap is not None:
        per_clip = [read_clip_records(r.source.parent) if r.source is not None else None for r in ordered]
        keys = [(c.key, c.metric) for c in columns]
        intervals = table_intervals(frame, keys, per_clip, bootstrap, {c.key: c.header for c in columns})
        if intervals is not None:
            notes.extend(intervals.notes)
            ranks = significant_marks(frame, columns, ranks, intervals, notes)
    notes.extend(_failure_notes(frame, columns, ordered))
    notes.extend(_small_set_notes(columns, ordered))
    evaluators, evaluator_notes = evaluator_lines(group)
    notes.extend(evaluator_notes)
    status, footnotes = evaluator_marks(frame, columns, ordered)
    overlap, overlap_notes = overlap_marks(frame, columns, ordered)
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
        footnotes=[*variants, *footnotes, *overlap_notes],
        intervals=intervals,
        overlap=overlap if overlap.any().any() else None,
    )


def _small_set_notes(columns: list[Column], ordered: list[Results]) -> list[str]:
    """A warning per set-metric column (FID, FVD) scored on fewer clips than its registry ``min_clips``."""
    notes = []
    for column in columns:
        spec = describe(column.metric)
        counts = [m.n for r in ordered if (m := r.metrics.get(column.metric)) is not None and r.run.kind != "gt"]
        if spec is None or spec.min_clips is None or not counts or min(counts) >= spec.min_clips:
            continue
        notes.append(
            f"{column.header} from {min(counts)} clips (under {spec.min_clips}): a Fréchet distance is biased upward "
            "on small sets, so compare it only between rows scored on these same clips; its interval shows the "
            "spread over resampled test sets, not that bias"
        )
    return notes


def _collect_columns(group: list[Results], notes: list[str]) -> list[Column]:
    seen: dict[str, list[MetricResult]] = {}
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
    columns.sort(key=lambda c: column_sort_key(c.key))
    return columns


def _merge_identical(columns: list[Column], frame: pd.DataFrame, notes: list[str]) -> tuple[list[Column], pd.DataFrame]:
    """One column for two metrics that are one number by definition (MetricSpec.same_as), where every row
    agrees; where any row differs (another protocol's definition, a failed clip) both stay, and the note says so."""
    by_key = {c.key: c for c in columns}
    for column in list(columns):
        spec = describe(column.metric)
        twin = by_key.get(spec.same_as) if spec is not None and spec.same_as else None
        if twin is None or column.mode != twin.mode:
            continue
        a, b = frame[twin.key].to_numpy(), frame[column.key].to_numpy()
        same = bool(np.all((np.isnan(a) & np.isnan(b)) | np.isclose(a, b, rtol=1e-9, atol=1e-12)))
        if not same:
            notes.append(f"{column.header} differs from {twin.header} in some rows: both are shown")
            continue
        merged = replace(twin, also=(*twin.also, column.metric))
        columns = [merged if c is twin else c for c in columns if c is not column]
        by_key[twin.key] = merged
        frame = frame.drop(columns=[column.key])
        notes.append(
            f"{column.header} is {twin.header}'s clip mean and equal in every row: shown once, as {merged.header}"
        )
    return columns, frame


def _paper_headers(columns: list[Column]) -> tuple[list[Column], list[str]]:
    """Headers as papers print them: a family shown through one variant is headed by the family's name (FVD, not
    FVD_16f) and the variant goes to a footnote; two variants of one family in a table keep their suffixes."""
    per_family = Counter(metric_family(c.metric) for c in columns)
    out, footnotes = [], []
    for column in columns:
        family = metric_family(column.metric)
        if family is not None and family != column.metric and per_family[family] == 1:
            column = replace(column, label=display_name(family))
            spec = describe(column.metric)
            assert spec is not None  # a name with a family always has a description
            text = spec.description.removeprefix(f"{column.label}: ")
            footnotes.append(f"{column.label} is {column.metric}" + (f": {text}" if text else ""))
        out.append(column)
    return out, footnotes


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

    def visit(name: str, info: dict[str, Any]) -> None:
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
