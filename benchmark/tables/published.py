"""Published rows: a paper's table read as our metric names and attached to a table as an unranked block."""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd

from benchmark.tables.cells import column_sort_key, default_direction, metric_family
from benchmark.tables.model import META_COLUMNS, Column, Table
from metrics import METRICS

__all__ = ["PUBLISHED_MARK", "attach_published", "published_columns", "published_rows"]

#: the marker after a published row's method name (†/‡ already mark non-official evaluators)
PUBLISHED_MARK = "§"

_NOT_REPORTED = {"", "-", "–", "—", "n/a", "na"}


def published_columns() -> dict[str, str]:
    """Published csv headers -> our metric (family) names, from the registry's ``published_names``; any other
    header is read as its lower-cased self."""
    return {name: spec.family or key for key, spec in METRICS.items() for name in spec.published_names}


def published_rows(csv_path: str | Path, dataset: str | None) -> pd.DataFrame:
    """A paper's table in the ``reports/reference/diffused_heads_table1.csv`` format, as our metric names.

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
    names = published_columns()
    for header in raw.columns:
        if header in ("dataset", "method"):
            continue
        metric = names.get(header, header.strip().lower())
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
            direction = default_direction(metric) or "lower"
            columns.append(Column(metric, metric, direction, None, ranked=False))
            frame[metric] = math.nan
            ranks[metric] = math.nan
            target = metric
        block[target] = rows[metric].to_numpy(dtype="float64")
    columns.sort(key=lambda c: column_sort_key(c.key))
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
