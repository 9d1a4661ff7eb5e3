"""SVG charts written by hand (no matplotlib, no JavaScript): a bar chart of a column and the per-clip
distribution of a metric (box + strip plot), each stating the metric's direction."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.tables.cells import ARROWS, format_value

__all__ = ["MAX_STRIP_POINTS", "Bar", "Series", "bar_chart_svg", "distribution_svg", "escape", "nice_ticks"]

MAX_STRIP_POINTS = 300

_DIRECTION_TEXT = {
    "lower": "lower is better",
    "higher": "higher is better",
    "match_gt": "closer to GT is better",
}
_COLOURS = {"ours": "#4e79a7", "gt": "#f28e2b", "axis": "#555555", "grid": "#dddddd", "text": "#222222"}


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (steps of 1, 2 or 5 times a power of ten) covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"ticks need a finite range, got [{lo}, {hi}]")
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(n - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    start = math.floor(lo / step + 1e-9) * step
    stop = math.ceil(hi / step - 1e-9) * step
    count = int(round((stop - start) / step)) + 1
    # round away float noise (0.30000000000000004) so tick labels print as written
    return [float(f"{start + i * step:.12g}") for i in range(count)]


def _tick_text(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    if step > 0 and not float(f"{step:.{decimals}f}") == step:
        decimals += 1
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def escape(text: object) -> str:
    """``text`` safe inside HTML/SVG text and attribute values."""
    return html.escape(str(text), quote=True)


_LEFT, _PLOT_W, _RIGHT, _TOP = 150, 250, 70, 46  # chart layout (px): labels, plot, values, heading
_CHAR_W, _MAX_LABEL = 7, 64  # px per character of the 12 px sans labels (a wide one); longest label shown whole


def _label_width(labels: Sequence[str]) -> int:
    """The label column's width: wide enough for the longest row label ("Wav2Lip (wav2lip_untrained)" is shown
    whole, not cut), never narrower than the default."""
    longest = min(max((len(t) for t in labels), default=0), _MAX_LABEL)
    return max(_LEFT, 16 + _CHAR_W * longest)


def _fit_label(text: str) -> str:
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…"


def _svg_frame(
    title: str,
    direction: str,
    metric: str,
    span: tuple[float, float],
    rows: int,
    row_h: int,
    *,
    left: int,
    aria: str,
    css: str,
    suffix: str,
) -> tuple[Callable[[float], float], list[str]]:
    """The frame both charts draw their rows in: the value-to-x mapping over nice ticks covering `span`, and the
    opening SVG lines (heading with the direction arrow and its words, vertical grid lines with tick labels)."""
    plot_w, right, top = _PLOT_W, _RIGHT, _TOP
    ticks = nice_ticks(*span, 5)
    lo, hi = ticks[0], ticks[-1]

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    height = top + row_h * rows + 30
    width = left + plot_w + right
    axis_y = top + row_h * rows
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12" '
        f'role="img" aria-label="{escape(title)} {aria}" class="{css}" data-metric="{escape(metric)}">',
        f'<text x="{left}" y="16" font-size="14" font-weight="bold" fill="{_COLOURS["text"]}">'
        f"{escape(title)} {escape(ARROWS.get(direction, ''))}{suffix}</text>",
        f'<text x="{left}" y="32" fill="{_COLOURS["axis"]}">{escape(_DIRECTION_TEXT.get(direction, ""))}</text>',
    ]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for tick in ticks:
        tx = x(tick)
        out.append(
            f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{axis_y}" stroke="{_COLOURS["grid"]}" '
            'stroke-width="1"/>'
        )
        out.append(
            f'<text x="{tx:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="{_COLOURS["axis"]}">'
            f"{escape(_tick_text(tick, step))}</text>"
        )
    return x, out


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    is_gt: bool = False
    mark: str | None = None  # "best" | "second" | None


def bar_chart_svg(title: str, direction: str, bars: Sequence[Bar], metric: str = "") -> str:
    """Horizontal bars, one per row (GT in its own colour), values printed at the bar ends with the best bold
    and the second underlined; ``match_gt`` draws the GT value as a dashed reference line. NaN shows as a dash.
    """
    left, top, row_h = _label_width([b.label for b in bars]), _TOP, 22
    values = [b.value for b in bars if math.isfinite(b.value)]
    x, out = _svg_frame(
        title,
        direction,
        metric,
        (min([0.0, *values]), max([0.0, *values])) if values else (0.0, 1.0),
        len(bars),
        row_h,
        left=left,
        aria="bar chart",
        css="bar-chart",
        suffix="",
    )
    axis_y = top + row_h * len(bars)
    zero = x(0.0)
    for i, bar in enumerate(bars):
        y = top + i * row_h
        weight = ' font-weight="bold"' if bar.is_gt else ""
        out.append(
            f'<text x="{left - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end" fill="{_COLOURS["text"]}"{weight}>'
            f"<title>{escape(bar.label)}</title>{escape(_fit_label(bar.label))}</text>"
        )
        if not math.isfinite(bar.value):
            out.append(f'<text x="{zero + 4:.1f}" y="{y + row_h / 2 + 4:.1f}" fill="{_COLOURS["axis"]}">–</text>')
            continue
        x0, x1 = sorted((zero, x(bar.value)))
        colour = _COLOURS["gt"] if bar.is_gt else _COLOURS["ours"]
        kind = "gt" if bar.is_gt else "ours"
        out.append(
            f'<rect class="bar {kind}" x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1.0):.1f}" '
            f'height="{row_h - 6}" fill="{colour}"><title>{escape(bar.label)}: '
            f"{escape(format_value(metric or title, bar.value))}</title></rect>"
        )
        style = ' font-weight="bold"' if bar.mark == "best" else ' text-decoration="underline"' if bar.mark else ""
        out.append(
            f'<text x="{max(x1, zero) + 4:.1f}" y="{y + row_h / 2 + 4:.1f}" fill="{_COLOURS["text"]}"{style}>'
            f"{escape(format_value(metric or title, bar.value))}</text>"
        )
    out.append(
        f'<line x1="{zero:.1f}" y1="{top - 4}" x2="{zero:.1f}" y2="{axis_y}" stroke="{_COLOURS["axis"]}" '
        'stroke-width="1"/>'
    )
    gt_values = [b.value for b in bars if b.is_gt and math.isfinite(b.value)]
    if direction == "match_gt" and gt_values:
        gx = x(gt_values[-1])
        out.append(
            f'<line class="gt-line" x1="{gx:.1f}" y1="{top - 6}" x2="{gx:.1f}" y2="{axis_y}" '
            f'stroke="{_COLOURS["gt"]}" stroke-width="2" stroke-dasharray="4 3"/>'
        )
    out.append("</svg>")
    return "\n".join(out)


@dataclass(frozen=True)
class Series:
    label: str
    values: tuple[float, ...]
    is_gt: bool = False


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    # linear interpolation between order statistics (numpy's default, "type 7")
    return float(np.quantile(np.asarray(sorted_values, dtype=np.float64), q))


def distribution_svg(title: str, direction: str, series: Sequence[Series], metric: str = "") -> str:
    """Per-clip values of one metric, a row per run: a Tukey box (quartiles, median, whiskers to the furthest
    value within 1.5 IQR) over a strip of every clip's value (deterministic jitter), with n at the right."""
    left, plot_w, top, row_h = _label_width([s.label for s in series]), _PLOT_W, _TOP, 30
    finite = [v for s in series for v in s.values if math.isfinite(v)]
    x, out = _svg_frame(
        title,
        direction,
        metric,
        (min(finite), max(finite)) if finite else (0.0, 1.0),
        len(series),
        row_h,
        left=left,
        aria="per-clip distribution",
        css="distribution",
        suffix=" per clip",
    )
    for i, s in enumerate(series):
        y = top + i * row_h
        mid = y + row_h / 2
        colour = _COLOURS["gt"] if s.is_gt else _COLOURS["ours"]
        weight = ' font-weight="bold"' if s.is_gt else ""
        out.append(
            f'<text x="{left - 8}" y="{mid + 4:.1f}" text-anchor="end" fill="{_COLOURS["text"]}"{weight}>'
            f"<title>{escape(s.label)}</title>{escape(_fit_label(s.label))}</text>"
        )
        values = sorted(v for v in s.values if math.isfinite(v))
        out.append(f'<text x="{left + plot_w + 8}" y="{mid + 4:.1f}" fill="{_COLOURS["axis"]}">n={len(values)}</text>')
        if not values:
            continue
        q1, med, q3 = (_quantile(values, q) for q in (0.25, 0.5, 0.75))
        reach = 1.5 * (q3 - q1)
        w_lo = min(v for v in values if v >= q1 - reach)
        w_hi = max(v for v in values if v <= q3 + reach)
        out.append(
            f'<line x1="{x(w_lo):.1f}" y1="{mid:.1f}" x2="{x(w_hi):.1f}" y2="{mid:.1f}" stroke="{colour}" '
            'stroke-width="1.5"/>'
        )
        for end in (w_lo, w_hi):
            out.append(
                f'<line x1="{x(end):.1f}" y1="{mid - 5:.1f}" x2="{x(end):.1f}" y2="{mid + 5:.1f}" '
                f'stroke="{colour}" stroke-width="1.5"/>'
            )
        out.append(
            f'<rect class="box" x="{x(q1):.1f}" y="{y + 6}" width="{max(x(q3) - x(q1), 1.0):.1f}" '
            f'height="{row_h - 12}" fill="{colour}" fill-opacity="0.25" stroke="{colour}" stroke-width="1.5">'
            f"<title>{escape(s.label)}: median {med:.4g}, IQR [{q1:.4g}, {q3:.4g}], n={len(values)}</title></rect>"
        )
        out.append(
            f'<line x1="{x(med):.1f}" y1="{y + 6}" x2="{x(med):.1f}" y2="{y + row_h - 6}" stroke="{colour}" '
            'stroke-width="2.5"/>'
        )
        shown = values
        if len(values) > MAX_STRIP_POINTS:
            # a real test set (LRW: 25k clips) would make every chart megabytes of dots: draw evenly spaced order
            # statistics instead, which keep the shape; the box and n use every value
            picks = np.linspace(0, len(values) - 1, MAX_STRIP_POINTS).round().astype(int)
            shown = [values[k] for k in picks]
        for j, v in enumerate(shown):
            # golden-ratio jitter: spread evenly, and the same file twice gives the same picture
            jitter = ((j * 0.6180339887) % 1.0 - 0.5) * (row_h - 14)
            out.append(
                f'<circle class="point" cx="{x(v):.1f}" cy="{mid + jitter:.1f}" r="2" fill="{_COLOURS["text"]}" '
                'fill-opacity="0.55"/>'
            )
    out.append("</svg>")
    return "\n".join(out)
