"""The speed table shown under a leaderboard table (`bench leaderboard --speed`): one block per device.

Each row of a metric table that made its own videos (a model or baseline run, not GT nor an external folder)
gets its run's `speed.json` entries (`bench perf --run`, :mod:`benchmark.perf.speed`). A device's figures are
never put in a column beside another device's: every device that measured any row of the table has its own
block, and a row not measured on that device shows "—" with a note giving the command that measures it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from benchmark.results import Results
from benchmark.tables.charts import escape
from benchmark.tables.model import Table, finished_key

if TYPE_CHECKING:
    from benchmark.perf.speed import SpeedEntry

__all__ = [
    "NOT_MEASURED",
    "SPEED_COLUMNS",
    "SpeedBlock",
    "SpeedColumn",
    "SpeedTable",
    "run_dirs_for",
    "speed_csv_frame",
    "speed_csv_path",
    "speed_html",
    "speed_latex",
    "speed_markdown",
    "speed_table",
    "speed_terminal",
]

#: a row with no measurement on the block's device
NOT_MEASURED = "—"
#: the run kinds that generate their own videos with a model, so have a speed to measure
MEASURED_KINDS = ("model", "baseline")


def _number(digits: int) -> Callable[[object], str]:
    def show(value: object) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return f"{value:.{digits}f}"
        return NOT_MEASURED

    return show


def _plain(value: object) -> str:
    return NOT_MEASURED if value is None else str(value)


def _steps(value: object) -> str:
    # a measured model without a sampling chain: not the same as "not measured"
    return "one-shot" if value is None else str(value)


@dataclass(frozen=True)
class SpeedColumn:
    """One column: the SpeedEntry field (or property) it shows, its header, its arrow, how a value is written."""

    field: str
    header: str
    arrow: str
    show: Callable[[object], str]


#: the speed block's columns, in order (definitions: docs/speed.md)
SPEED_COLUMNS: tuple[SpeedColumn, ...] = (
    SpeedColumn("model_fps", "Model frames/s", "↑", _number(1)),
    SpeedColumn("e2e_fps", "End-to-end frames/s", "↑", _number(1)),
    SpeedColumn("first_frame_latency_s", "First frame (s)", "↓", _number(3)),
    SpeedColumn("lookahead_s", "of which lookahead (s)", "", _number(3)),
    SpeedColumn("peak_memory_mib", "Peak memory (MiB)", "↓", _number(0)),
    SpeedColumn("precision", "Precision", "", _plain),
    SpeedColumn("sampling", "Sampler steps", "", _steps),
)


@dataclass
class SpeedBlock:
    """The rows of one table on one device: (method, run folder, its entry on this device or None)."""

    device: str
    rows: list[tuple[str, Path | None, SpeedEntry | None]]
    memory_measure: str | None = None

    def cells(self, entry: SpeedEntry | None) -> list[str]:
        if entry is None:
            return [NOT_MEASURED] * len(SPEED_COLUMNS)
        return [c.show(getattr(entry, c.field)) for c in SPEED_COLUMNS]


@dataclass
class SpeedTable:
    """The speed blocks under one metric table."""

    title: str
    blocks: list[SpeedBlock]
    notes: list[str] = field(default_factory=list)


def run_dirs_for(table: Table, results: Iterable[Results]) -> dict[str, Path]:
    """Run name -> the folder of the run each row of `table` shows (the newest of that name under its protocol,
    a later one winning a tie, as the table chose it)."""
    newest: dict[str, tuple[tuple[datetime, int], Path]] = {}
    for position, result in enumerate(results):
        if result.source is None or result.protocol.hash != table.protocol_hash:
            continue
        stamp = (finished_key(result), position)
        name = result.run.name
        if name not in newest or stamp >= newest[name][0]:
            newest[name] = (stamp, Path(result.source).parent)
    return {name: folder for name, (_, folder) in newest.items()}


def speed_table(table: Table, run_dirs: Mapping[str, Path]) -> SpeedTable:
    """The speed blocks for `table`'s model and baseline rows, from the speed.json of their folders."""
    from benchmark.perf.speed import read_speed  # here: the leaderboard without --speed never loads benchmark.perf

    rows: list[tuple[str, Path | None, dict[str, SpeedEntry]]] = []
    for method, kind, name in zip(table.frame["method"], table.frame["kind"], table.frame["name"]):
        if kind not in MEASURED_KINDS:
            continue
        folder = run_dirs.get(str(name))
        entries = {e.device: e for e in read_speed(folder)} if folder is not None else {}
        rows.append((str(method), folder, entries))
    devices = sorted({d for _, _, entries in rows for d in entries})
    blocks = []
    for device in devices:
        measures = {e[device].memory_measure for _, _, e in rows if device in e}
        blocks.append(
            SpeedBlock(
                device,
                [(method, folder, entries.get(device)) for method, folder, entries in rows],
                "; ".join(sorted(measures)) or None,
            )
        )
    notes = []
    missing = [(m, f) for m, f, entries in rows if any(d not in entries for d in devices) or not entries]
    if missing:
        where = ", ".join(f"`bench perf --run {f}`" if f is not None else f"{m} (no run folder)" for m, f in missing)
        notes.append(
            f"{NOT_MEASURED}: not measured on that device; measure with {where} on it (--device cpu|cuda)"
            if devices
            else f"no speed measured for these runs yet; measure with {where} (--device cpu|cuda)"
        )
    notes.append(
        "model frames/s: generation alone on prepared clips; end to end: decode, crop, generate, paste, encode "
        "(whole-frame models: decode, generate, encode); first frame: compute + the audio lookahead "
        "(docs/speed.md)"
    )
    return SpeedTable(f"Speed — {table.dataset}, {table.protocol} ({table.protocol_hash})", blocks, notes)


# --------------------------------------------------------------------------------------------------------------
# renderers


def _header() -> list[str]:
    return ["Method", *(f"{c.header} {c.arrow}".rstrip() for c in SPEED_COLUMNS)]


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def speed_markdown(speed: SpeedTable) -> str:
    lines = [f"#### {_md(speed.title)}", ""]
    for block in speed.blocks:
        lines += [f"**{_md(block.device)}**", "", "| " + " | ".join(_header()) + " |"]
        lines.append("|:---|" + "---:|" * len(SPEED_COLUMNS))
        for method, _, entry in block.rows:
            lines.append("| " + " | ".join([_md(method), *block.cells(entry)]) + " |")
        if block.memory_measure:
            lines += ["", f"Peak memory: {_md(block.memory_measure)}."]
        lines.append("")
    lines += [f"- {_md(n)}" for n in speed.notes]
    return "\n".join(lines) + "\n"


def speed_terminal(speed: SpeedTable) -> str:
    out = [speed.title]
    for block in speed.blocks:
        body = [_header(), *([m, *block.cells(e)] for m, _, e in block.rows)]
        widths = [max(len(r[i]) for r in body) for i in range(len(body[0]))]
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        out += [f"[{block.device}]", rule]
        for i, row in enumerate(body):
            out.append("  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:]))]))
            if i == 0:
                out.append(rule)
        out.append(rule)
        if block.memory_measure:
            out.append(f"peak memory: {block.memory_measure}")
    out += [f"note: {n}" for n in speed.notes]
    return "\n".join(out) + "\n"


def speed_html(speed: SpeedTable) -> str:
    parts = [f"<h3>{escape(speed.title)}</h3>"]
    head = "".join(f"<th>{escape(h)}</th>" for h in _header())
    for block in speed.blocks:
        rows = "\n".join(
            "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in [method, *block.cells(entry)]) + "</tr>"
            for method, _, entry in block.rows
        )
        parts.append(f"<h4>{escape(block.device)}</h4>")
        parts.append(f'<table class="board"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>')
        if block.memory_measure:
            parts.append(f'<p class="small">Peak memory: {escape(block.memory_measure)}.</p>')
    parts.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in speed.notes) + "</ul>")
    return "\n".join(parts)


def speed_latex(speed: SpeedTable) -> str:
    from benchmark.tables.latex import latex_escape

    out = []
    for block in speed.blocks:
        spec = "l" + "r" * len(SPEED_COLUMNS)
        out += [
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{latex_escape(speed.title)} on {latex_escape(block.device)}}}",
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
            " & ".join(latex_escape(h) for h in _header()) + " \\\\",
            "\\midrule",
        ]
        out += [" & ".join(latex_escape(c) for c in [m, *block.cells(e)]) + " \\\\" for m, _, e in block.rows]
        out += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    out += [f"% {n}" for n in speed.notes]
    return "\n".join(out) + "\n"


def speed_csv_frame(speeds: Sequence[tuple[Table, SpeedTable]]) -> pd.DataFrame:
    """One row per (table, device, method), the device in a column of its own, full precision; rows without a
    measurement on a device are left out (the table's other devices list them)."""
    records = []
    for table, speed in speeds:
        for block in speed.blocks:
            for method, folder, entry in block.rows:
                if entry is None:
                    continue
                records.append(
                    {
                        "method": method,
                        "dataset": table.dataset,
                        "protocol_hash": table.protocol_hash,
                        "device": block.device,
                        "run_dir": str(folder) if folder is not None else None,
                        **{c.field: getattr(entry, c.field) for c in SPEED_COLUMNS},
                        "first_frame_compute_s": entry.first_frame_compute_s,
                        "sampler": entry.sampler,
                        "sampler_steps": entry.sampler_steps,
                        "e2e_path": entry.e2e_path,
                        "memory_measure": entry.memory_measure,
                        "clips": entry.clips,
                        "repeats": entry.repeats,
                        "measured": entry.measured,
                    }
                )
    return pd.DataFrame(records)


def speed_csv_path(out: str | Path) -> Path:
    """Where `--format csv --speed` writes the speed rows: beside the leaderboard CSV."""
    out = Path(out)
    return out.with_name(f"{out.stem}_speed.csv")
