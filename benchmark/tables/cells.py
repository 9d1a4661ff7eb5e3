"""What a column and a cell show for a metric name: header, position, direction and number format.

Every answer comes from the metric registry (:data:`metrics.METRICS`, through :func:`metrics.describe`), so a
new metric brings its own column; a name outside the registry is shown as written, after the known columns.
"""

from __future__ import annotations

import math

from metrics import METRICS, describe, families, metric_family

__all__ = [
    "ARROWS",
    "MISSING",
    "column_sort_key",
    "default_direction",
    "display_name",
    "format_value",
    "metric_evaluator_key",
    "metric_family",
]

ARROWS = {"lower": "↓", "higher": "↑", "match_gt": "→GT"}
MISSING = "–"


def display_name(metric: str) -> str:
    """The column header of ``metric``: its family's label plus the variant's suffix (``fvd_16f`` -> FVD_16f)."""
    family = metric_family(metric)
    if family is None:
        return metric
    return (families()[family].label or family) + metric[len(family) :]


def column_sort_key(key: str) -> tuple[int, str]:
    """Columns by their metric's registered order, then by name; names outside the registry sort with the last
    position."""
    last = max((s.order for s in METRICS.values() if s.order is not None), default=0)
    family = metric_family(key)
    order = families()[family].order if family is not None else None
    return (last if order is None else order), key.lower()


def default_direction(metric: str) -> str | None:
    """The registered direction of ``metric`` (or of its family), None for a name outside the registry; used
    only where no result states a direction (columns that only published rows have)."""
    spec = describe(metric)
    return spec.direction if spec is not None else None


def metric_evaluator_key(metric: str) -> str | None:
    """The results ``evaluators`` key of the network behind ``metric``, None for metrics without a network or not
    in the registry."""
    spec = METRICS.get(metric)
    return spec.evaluator if spec is not None else None


def format_value(metric: str, value: float | None) -> str:
    """Display text for one value, with the decimals the registry gives its family (signed metrics such as AV
    offsets as signed integers, a mean over clips with its decimals); missing values as an en dash.
    """
    if value is None:
        return MISSING
    value = float(value)
    if math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    family = metric_family(metric)
    spec = families()[family] if family is not None else None
    decimals = spec.decimals if spec is not None else None
    if decimals is None:
        decimals = 2 if abs(value) >= 100 else 3
    if spec is not None and spec.signed:
        if value.is_integer():
            return f"{int(value):+d}" if value else "0"
        text = f"{value:+.{decimals}f}"
        return f"{0:.{decimals}f}" if float(text) == 0 else text
    text = f"{value:.{decimals}f}"
    # "-0.00" reads as a sign error
    return text[1:] if text.startswith("-") and float(text) == 0 else text
