"""Honest marking of values computed with non-official evaluator weights: which network produced a cell (the
metric registry's ``evaluator``), the status the results record for its weights, and the footnotes saying so."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from benchmark.results import Results
from benchmark.tables.cells import metric_evaluator_key
from benchmark.tables.model import EVALUATOR_MARKS, Column

__all__ = ["EVALUATOR_STATUSES", "evaluator_lines", "evaluator_marks", "evaluator_status"]

EVALUATOR_STATUSES = ("official", "calibrated", "trained", "random", "unverified", "unofficial")
_FOOTNOTES = {
    "†": "† random-init evaluator: not comparable to published numbers ({})",
    "‡": "‡ evaluator calibrated / trained here, not the official weights: comparable only within this protocol, "
    "not to published numbers ({})",
    "§": "§ evaluator imported under an official name but not verified against a pinned official sha256 ({})",
}


def evaluator_status(info: dict[str, Any]) -> str | None:
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


def evaluator_marks(
    frame: pd.DataFrame, columns: list[Column], ordered: list[Results]
) -> tuple[pd.DataFrame, list[str]]:
    """Per cell of ``frame`` (rows: the results ``ordered``), the status of non-official evaluator weights behind
    its value, and the footnotes explaining the marks used."""
    status = pd.DataFrame(None, index=frame.index, columns=[c.key for c in columns], dtype=object)
    used: dict[str, set[str]] = {}
    for position, result in enumerate(ordered):
        index = frame.index[position]
        for column in columns:
            key = metric_evaluator_key(column.metric)
            info = result.evaluators.get(key) if key else None
            if not key or info is None or math.isnan(frame.at[index, column.key]):
                continue
            found = evaluator_status(info)
            if found in EVALUATOR_MARKS:
                status.at[index, column.key] = found
                name = info.get("weights") or info.get("name") or key
                used.setdefault(EVALUATOR_MARKS[found], set()).add(f"{key}={name}" if name != key else key)
    footnotes = [_FOOTNOTES[mark].format(", ".join(sorted(names))) for mark, names in sorted(used.items())]
    return status, footnotes


def _describe_evaluator(key: str, info: dict[str, Any]) -> str:
    name = info.get("weights") or info.get("name") or info.get("checkpoint")
    digest = info.get("sha256") or info.get("hash")
    text = f"{key}={name}" if name and name != key else key
    return f"{text} ({str(digest)[:8]})" if digest else text


def evaluator_lines(group: list[Results]) -> tuple[list[str], list[str]]:
    """The evaluator weights behind a table, one line each, and notes where rows used different weights."""
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
