"""Judge health as the reports show it: the checks of :mod:`benchmark.health`, read back from a GT folder's
``health.json`` and rendered as a small table (HTML, Markdown, terminal) with a warning per judge that falls
below its threshold, naming the columns that judge produces.

Kept apart from the computation so that the report writers read a JSON file without importing the metrics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmark.tables.charts import escape

__all__ = [
    "HEALTH_FILE",
    "Check",
    "Health",
    "append_health_markdown",
    "health_html",
    "health_markdown",
    "health_of_folders",
    "health_terminal",
    "read_health",
]

#: the file in a protocol's GT folder (`GT-<hash8>/`) that holds its judges' health
HEALTH_FILE = "health.json"

#: the status words of a check; "info" = a number with no threshold (a distribution, a floor)
OK, WARNING, INFO, NOT_MEASURED = "OK", "WARNING", "info", "n/a"


@dataclass
class Check:
    """One number about one judge: what it measured on the GT clips, and the threshold it is held to.

    judge: the evaluator ("SyncNet", "lipreader", "landmarks (learned)"...); what: the quantity; value: it
    (None: could not be measured, `detail` says why); detail: counts behind it ("5/6 clips"); threshold / op:
    the bound (op ">=" or "<="; None for an informative number); columns: the protocol's metric names whose
    values this judge produces (the warning names their column labels); percent: value is a fraction shown in %.
    """

    judge: str
    what: str
    value: float | None
    detail: str = ""
    threshold: float | None = None
    op: str | None = None
    columns: list[str] = field(default_factory=list)
    percent: bool = False

    @property
    def status(self) -> str:
        if self.threshold is None or self.op is None:
            return INFO if self.value is not None else NOT_MEASURED
        if self.value is None or not math.isfinite(self.value):
            return WARNING  # a judge that could not be checked is not known to work
        ok = self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold
        return OK if ok else WARNING

    def _number(self, x: float | None) -> str:
        if x is None or not math.isfinite(x):
            return "—"
        return f"{100 * x:.0f}%" if self.percent else f"{x:.3g}"

    @property
    def value_text(self) -> str:
        return self._number(self.value)

    @property
    def threshold_text(self) -> str:
        return f"{self.op} {self._number(self.threshold)}" if self.threshold is not None and self.op else ""

    def warning(self) -> str | None:
        """The note a judge below its threshold puts under the table, or None."""
        if self.status != WARNING:
            return None
        from benchmark.tables.cells import display_name

        labels = ", ".join(display_name(c) for c in self.columns) or "no column of this protocol"
        got = f"{self.value_text} ({self.detail})" if self.detail else self.value_text
        return f"{labels}: {self.judge} {self.what} is {got}, outside the threshold {self.threshold_text}"


@dataclass
class Health:
    """Every check of one protocol's judges on its GT clips, with what it was computed from."""

    protocol: str
    protocol_hash: str
    dataset: str
    n_clips: int
    settings: dict[str, Any]
    computed: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Health:
        checks = [Check(**c) for c in data.get("checks", [])]
        return cls(**{**{k: v for k, v in data.items() if k != "checks"}, "checks": checks})

    def warnings(self) -> list[str]:
        return [w for c in self.checks if (w := c.warning()) is not None]


def read_health(gt_folder: str | Path) -> Health | None:
    """The judge health stored in a GT folder, or None when there is none (or it cannot be read)."""
    path = Path(gt_folder) / HEALTH_FILE
    try:
        return Health.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _rows(health: Health) -> list[tuple[str, str, str, str, str]]:
    return [
        (c.judge, c.what + (f"; {c.detail}" if c.detail else ""), c.value_text, c.threshold_text, c.status)
        for c in health.checks
    ]


def _caption(health: Health) -> str:
    return (
        f"How well each judge does its job on this protocol's {health.n_clips} GT clips, under the same "
        f"preprocessing (protocol {health.protocol} {health.protocol_hash[:12]}, computed {health.computed}; "
        "docs/judge_health.md)."
    )


_HEADER = ("Judge", "What", "Value", "Threshold", "Status")


def health_markdown(health: Health) -> str:
    """The judge health block of a Markdown report: a heading, a table and the warnings."""
    lines = ["#### Judge health", "", _caption(health), ""]
    lines += ["| " + " | ".join(_HEADER) + " |", "|" + "|".join(["---"] * len(_HEADER)) + "|"]
    for row in _rows(health):
        cells = [text.replace("|", "\\|") for text in row]
        cells[-1] = f"**{cells[-1]}**" if cells[-1] == WARNING else cells[-1]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- **Warning**: {w}" for w in health.warnings()]
    lines += [f"- {n}" for n in health.notes]
    return "\n".join(lines).rstrip() + "\n"


def health_html(health: Health) -> str:
    """The judge health block of the HTML report (inside a table's section)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in _HEADER)
    body = []
    for row in _rows(health):
        style = ' style="color:#b00;font-weight:bold"' if row[-1] == WARNING else ""
        tds = "".join(f"<td>{escape(text)}</td>" for text in row[:-1])
        body.append(f"<tr>{tds}<td{style}>{escape(row[-1])}</td></tr>")
    items = [f"<li><b>Warning</b>: {escape(w)}</li>" for w in health.warnings()]
    items += [f"<li>{escape(n)}</li>" for n in health.notes]
    return "\n".join(
        [
            '<div class="health"><h3>Judge health</h3>',
            f'<p class="small">{escape(_caption(health))}</p>',
            f'<table class="board"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>',
            *([f'<ul class="notes">{"".join(items)}</ul>'] if items else []),
            "</div>",
        ]
    )


def health_terminal(health: Health) -> str:
    """Aligned plain text for `bench health`."""
    rows = [_HEADER, *_rows(health)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = [f"Judge health: {health.dataset}, protocol {health.protocol} ({health.protocol_hash[:12]})"]
    lines += ["  ".join(text.ljust(w) for text, w in zip(r, widths)).rstrip() for r in rows]
    lines += [f"WARNING {w}" for w in health.warnings()]
    lines += health.notes
    return "\n".join(lines)


def health_of_folders(folders: Sequence[str | Path]) -> list[Health]:
    """The judge health of each GT folder among `folders` that holds one with checks (a protocol whose metrics
    have no judge to check, say OFM alone, gets no block)."""
    return [h for f in folders if (h := read_health(f)) is not None and h.checks]


def append_health_markdown(path: str | Path, folders: Sequence[str | Path]) -> Path:
    """Add the judge health block of every GT folder among `folders` under the tables of a Markdown file."""
    from benchmark.results import write_text_atomic

    blocks = [health_markdown(h) for h in health_of_folders(folders)]
    if not blocks:
        return Path(path)
    text = Path(path).read_text().rstrip() + "\n\n" + "\n".join(blocks)
    return write_text_atomic(path, text)
