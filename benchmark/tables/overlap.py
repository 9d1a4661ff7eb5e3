"""The evaluator–trainer overlap ledger: a cell is marked where the row's model was trained against a network of
the same family as the one that scored it (Wav2Lip optimises a SyncNet expert's loss; SyncNet then judges its
lip-sync), because such a score flatters the model.

Models declare what they were trained against (``TalkingFaceModule.trained_against``: evaluator family ->
description), and each run records it (``run.trained_against``); a metric's family is its registry ``evaluator``
key. The mark is :data:`OVERLAP_MARK`, with a footnote naming both networks and the independent judges to read
instead.
"""

from __future__ import annotations

import math

import pandas as pd

from benchmark.results import Results
from benchmark.tables.cells import metric_evaluator_key
from benchmark.tables.model import OVERLAP_MARK, Column

__all__ = ["overlap_marks"]


def overlap_marks(frame: pd.DataFrame, columns: list[Column], ordered: list[Results]) -> tuple[pd.DataFrame, list[str]]:
    """Per cell of ``frame`` (rows: the results ``ordered``), True where the row's model was trained against the
    family of the network behind the cell's metric; and one footnote per (model, family) marked."""
    marks = pd.DataFrame(False, index=frame.index, columns=[c.key for c in columns], dtype=bool)
    marked: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for position, result in enumerate(ordered):
        index = frame.index[position]
        against = result.run.trained_against or {}
        for column in columns:
            family = metric_evaluator_key(column.metric)
            if family is None or family not in against or math.isnan(frame.at[index, column.key]):
                continue
            marks.at[index, column.key] = True
            key = (str(frame.at[index, "method"]), family)
            marked.setdefault(key, (str(against[family]), []))[1].append(column.header)
    notes = [
        f"{OVERLAP_MARK} {method} was trained against {what}; its {', '.join(headers)} come from the {family} "
        "evaluator, a network of the same family, so they flatter it: read them beside judges of another family"
        for (method, family), (what, headers) in marked.items()
    ]
    return marks, notes
