"""Plain-text renderers: CSV (full precision), Markdown (GitHub tables) and aligned terminal text.

Headers and number formats come from the metric registry through :class:`~benchmark.tables.model.Column` and
:func:`~benchmark.tables.cells.format_value`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from benchmark.tables.model import Table, legend, our_rows, published_cells

__all__ = ["CSV_META_COLUMNS", "csv_frame", "render_terminal", "to_csv", "to_markdown"]

CSV_META_COLUMNS = ("method", "kind", "name", "dataset", "protocol", "protocol_hash", "n_clips")


def to_csv(table: Table) -> str:
    """Plain values at full precision, ours then published, with method, kind, protocol and n_clips columns."""
    frame = csv_frame(table)
    text: str = frame.to_csv(index=False, lineterminator="\n")
    return text


def csv_frame(table: Table) -> pd.DataFrame:
    """The rows :func:`to_csv` writes, as a frame (the stacked CSV of several tables concatenates these)."""
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
    for column in table.columns:  # data, not display: a metric shown in another's column keeps its own column here
        for metric in column.also:
            ours[column.key.replace(column.metric, metric, 1)] = table.frame[column.key]
    if table.intervals is not None:  # the bootstrap interval's bounds beside each per-clip value
        for column in table.columns:
            if column.key in table.intervals.low.columns:
                ours[f"{column.key}_ci_low"] = table.intervals.low[column.key]
                ours[f"{column.key}_ci_high"] = table.intervals.high[column.key]
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
        for method, _, cells in our_rows(table):
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
            + legend(table, "**bold**", "<u>underlined</u>", "→GT")
            + ".",
        ]
        if table.intervals is not None:
            lines.append(f"- {_md_escape(table.intervals.caption())}")
        lines += [f"- {_md_escape(note)}" for note in table.notes]
        lines += [f"- {_md_escape(note)}" for note in table.footnotes]
    published = published_cells(table)
    if published:
        source = f" from {_md_escape(table.published_source)}" if table.published_source else ""
        lines += ["", f"*Published{source} (as printed in the paper; not ranked with ours):*", ""]
        lines += [_md_row(header), rule]
        lines += [_md_row([_md_escape(method), *cells]) for method, cells in published]
    return "\n".join(lines) + "\n"


def render_terminal(table: Table) -> str:
    """Plain aligned text: best marked ``*``, second ``_``; GT and published rows below a rule."""
    header = ["Method", *(f"{c.header} {c.arrow}" for c in table.columns)]
    body: list[list[str] | None] = []
    previous_gt = False
    for method, is_gt, cells in our_rows(table):
        if is_gt and not previous_gt and body:
            body.append(None)
        previous_gt = is_gt
        body.append([method, *(text + {"best": "*", "second": "_"}.get(mark or "", " ") for text, mark in cells)])
    published = published_cells(table)
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
    meaning = legend(table, "*", "_", "→GT")
    evaluators = "; ".join(table.evaluators) or "none recorded"
    out.append(f"{meaning}. Evaluators: {evaluators}.")
    out += table.footnotes
    if table.intervals is not None:
        out.append(table.intervals.caption())
    out += [f"note: {note}" for note in table.notes]
    return "\n".join(out) + "\n"
