"""The metric stress card of a protocol: how far each controlled perturbation of the GT clips moves each metric,
in units of that metric's between-model spread on the leaderboard, and whether offset metrics read an injected
shift (docs/stress.md). `benchmark.stress` scores; this module does the arithmetic and writes Markdown, HTML, JSON.

A change is `delta = perturbed mean - clean GT mean`; its unit is the metric's between-model spread, the range
(max - min) of the model rows (GT rows excluded) of the leaderboard table of the same protocol hash. The adjacent
pair of model rows (sorted by value) whose gap is closest to |delta| names the comparison a reader can make: "a
CRF-28 re-encode moves LSE-C as much as the gap between Wav2Lip and LipGAN". With fewer than two model rows there is
no spread: the units read n/a and a note says why.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmark.results import write_json_atomic, write_text_atomic
from metrics import describe

NA = "n/a"


def card_path(folder: str | Path, dataset: str, protocol_hash: str, suffix: str) -> Path:
    """Where the card of (dataset, protocol) is written in `folder`: `stress_<dataset>_<hash8>.<suffix>`."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)
    return Path(folder) / f"stress_{stem}_{protocol_hash[:8]}.{suffix}"


def is_offset(metric: str) -> bool:
    """An offset metric: a signed value judged against the GT row (AV offset, LM-sync offset), so the change a
    shift of k frames should cause is k."""
    spec = describe(metric)
    return spec is not None and spec.direction == "match_gt" and spec.signed


# ----------------------------------------------------------------------------------------------- arithmetic


@dataclass(frozen=True)
class Spread:
    """A metric's model rows on the leaderboard, sorted by value."""

    rows: tuple[tuple[str, float], ...]

    @property
    def value(self) -> float:
        return self.rows[-1][1] - self.rows[0][1]

    def closest_gap(self, delta: float) -> tuple[str, str, float]:
        """The adjacent pair of rows (lower value first) whose gap is closest to |delta|; tied rows are no gap a
        change can be compared with (a spread is only made of rows that differ, so one pair always does)."""
        gaps = [(a[0], b[0], b[1] - a[1]) for a, b in zip(self.rows, self.rows[1:]) if b[1] > a[1]]
        return min(gaps, key=lambda g: abs(g[2] - abs(delta)))


def spread_of(rows: Sequence[tuple[str, float]]) -> Spread | None:
    """The spread of (label, value) model rows; None with fewer than two finite values or a zero range."""
    finite = sorted(((label, float(v)) for label, v in rows if v is not None and math.isfinite(v)), key=lambda r: r[1])
    if len(finite) < 2 or finite[-1][1] == finite[0][1]:
        return None
    return Spread(tuple(finite))


@dataclass(frozen=True)
class Detection:
    detected: int
    n: int

    @property
    def share(self) -> float | None:
        return self.detected / self.n if self.n else None


def detection(
    clean: Mapping[str, float], perturbed: Mapping[str, float], expected: float, tolerance: float
) -> Detection:
    """Clips (scored both clean and perturbed) whose offset moved by `expected` frames within +-`tolerance`."""
    moved = [
        perturbed[c] - clean[c]
        for c in clean
        if c in perturbed and math.isfinite(clean[c]) and math.isfinite(perturbed[c])
    ]
    return Detection(sum(abs(m - expected) <= tolerance + 1e-9 for m in moved), len(moved))


@dataclass
class PassSummary:
    """One perturbation's pass over the GT clips, as `benchmark.stress` recorded it."""

    name: str
    kind: str
    settings: dict[str, Any]
    description: str
    stream: str  # video | audio
    expected_shift: float | None
    values: dict[str, float]  # metric -> perturbed value (the metric's own aggregate)
    counts: dict[str, tuple[int, int]]  # metric -> (clips scored, clips failed)
    per_clip: dict[str, dict[str, float]]  # metric -> clip id -> value (offset metrics)
    notes: list[str] = field(default_factory=list)


def build_card(
    *,
    dataset: str,
    protocol: Mapping[str, Any],
    metrics: Sequence[str],
    clean: Mapping[str, float | None],
    clean_per_clip: Mapping[str, Mapping[str, float]],
    passes: Sequence[PassSummary],
    board: Mapping[str, Sequence[tuple[str, float]]],
    tolerance: float,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The card as JSON-able data: per metric its clean value and spread, per perturbation and metric the change,
    its units of spread, the closest model gap and (offset metrics with a defined shift) the detection share."""
    card_notes = list(notes)
    spreads = {m: spread_of(board.get(m, ())) for m in metrics}
    lacking = [m for m in metrics if spreads[m] is None]
    if lacking:
        card_notes.append(
            f"no between-model spread for {', '.join(_label(m) for m in lacking)}: the leaderboard of this protocol "
            "has fewer than two model rows with distinct values there; changes are shown without units"
        )
    infinite = [m for m in metrics if not _finite(clean.get(m))]
    if infinite:
        card_notes.append(
            f"no finite clean GT value for {', '.join(_label(m) for m in infinite)} (a clip scored against itself: "
            "PSNR is infinite), so no change is measured there"
        )
    metric_info = []
    for m in metrics:
        spec, spread = describe(m), spreads[m]
        metric_info.append(
            {
                "name": m,
                "label": _label(m),
                "decimals": _decimals(m),
                "direction": spec.direction if spec else None,
                "offset": is_offset(m),
                "clean": clean.get(m),
                "spread": spread.value if spread else None,
                "spread_rows": [list(r) for r in spread.rows] if spread else [],
            }
        )
    out_passes = []
    for p in passes:
        cells: dict[str, Any] = {}
        for m in metrics:
            cells[m] = _cell(m, p, clean.get(m), spreads[m], clean_per_clip.get(m, {}), tolerance)
        out_passes.append(
            {
                "name": p.name,
                "kind": p.kind,
                "settings": p.settings,
                "description": p.description,
                "stream": p.stream,
                "expected_shift": p.expected_shift,
                "notes": p.notes,
                "metrics": cells,
            }
        )
    return {
        "dataset": dataset,
        "protocol": dict(protocol),
        "detection_tolerance_frames": tolerance,
        "metrics": metric_info,
        "perturbations": out_passes,
        "notes": card_notes,
    }


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _cell(
    m: str,
    p: PassSummary,
    clean: float | None,
    spread: Spread | None,
    clean_clips: Mapping[str, float],
    tolerance: float,
) -> dict[str, Any]:
    value = p.values.get(m)
    n, failed = p.counts.get(m, (0, 0))
    cell: dict[str, Any] = {"clean": clean, "perturbed": value, "n": n, "n_failed": failed}
    delta = value - clean if value is not None and clean is not None and _finite(value - clean) else None
    cell["delta"] = delta
    cell["units"] = delta / spread.value if delta is not None and spread is not None else None
    if delta is not None and spread is not None:
        a, b, gap = spread.closest_gap(delta)
        cell["closest_gap"] = {"rows": [a, b], "gap": gap}
        ratio = abs(delta) / gap
        # "as much as" only where it is true within a factor 1.5 either way; otherwise the factor is the message
        compared = "as much as" if 1 / 1.5 <= ratio <= 1.5 else f"{ratio:.2g}x"
        cell["sentence"] = (
            f"{p.description} moves {_label(m)} by {_fmt(m, delta, signed=True)} "
            f"({abs(delta) / spread.value:.2f}x the between-model spread of {_fmt(m, spread.value)}): "
            f"{compared} the gap between {a} and {b} ({_fmt(m, gap)})"
        )
    if is_offset(m) and p.expected_shift is not None:
        det = detection(clean_clips, p.per_clip.get(m, {}), p.expected_shift, tolerance)
        cell["detection"] = {"expected": p.expected_shift, **asdict(det), "share": det.share}
    return cell


# ----------------------------------------------------------------------------------------------- rendering


def _label(metric: str) -> str:
    spec = describe(metric)
    if spec is None or not spec.label:
        return metric
    family = spec.family or metric
    return spec.label + metric[len(family) :] if metric.startswith(family) else spec.label


def _decimals(metric: str) -> int:
    spec = describe(metric)
    return spec.decimals if spec is not None and spec.decimals is not None else 3


def _fmt(metric: str, value: float | None, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return NA
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:{'+' if signed else ''}.{_decimals(metric)}f}"
    # a change that rounds to zero reads "0.00", whichever side of zero it fell on
    return f"{0:.{_decimals(metric)}f}" if float(text) == 0 else text


def _shift_text(shift: float | None) -> str:
    if shift is None:
        return "none defined"
    return f"{shift:+g}" if shift else "0"


def _tables(card: Mapping[str, Any]) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, caption, header, rows) of every table of the card, rendered alike in Markdown and HTML."""
    metrics = card["metrics"]
    tol = card["detection_tolerance_frames"]
    out = []
    rows = []
    for info in metrics:
        lo_hi = info["spread_rows"]
        rows.append(
            [
                info["label"],
                info["direction"] or "",
                _fmt(info["name"], info["clean"]),
                _fmt(info["name"], info["spread"]),
                f"{lo_hi[0][0]} ({_fmt(info['name'], lo_hi[0][1])})" if lo_hi else NA,
                f"{lo_hi[-1][0]} ({_fmt(info['name'], lo_hi[-1][1])})" if lo_hi else NA,
            ]
        )
    out.append(
        (
            "Clean GT and between-model spread",
            "Spread: max - min over the model rows of the leaderboard table of this protocol (GT rows excluded).",
            ["Metric", "Direction", "Clean GT", "Spread", "Lowest row", "Highest row"],
            rows,
        )
    )
    rows = []
    for p in card["perturbations"]:
        cells = [p["name"]]
        for info in metrics:
            c = p["metrics"][info["name"]]
            text = _fmt(info["name"], c["delta"], signed=True)
            if c["units"] is not None:
                text += f" ({c['units']:+.2f})"
            cells.append(text)
        rows.append(cells)
    out.append(
        (
            "Change from the clean GT value",
            "Perturbed mean - clean GT mean; in brackets, in units of the between-model spread (1.00: as far as the "
            "best and the worst model row are apart).",
            ["Perturbation", *(i["label"] for i in metrics)],
            rows,
        )
    )
    offsets = [i for i in metrics if i["offset"]]
    if offsets:
        rows = []
        for p in card["perturbations"]:
            if p["expected_shift"] is None:
                continue
            cells = [p["name"], _shift_text(p["expected_shift"])]
            for info in offsets:
                det = p["metrics"][info["name"]].get("detection")
                cells.append(f"{det['detected']}/{det['n']}" if det and det["n"] else NA)
            rows.append(cells)
        out.append(
            (
                "Shift detection",
                f"Clips whose measured offset moved by the injected shift within +-{tol:g} frame(s) (syncnet_python's "
                "sign: positive when the audio leads). For perturbations that inject none (0), the share of clips "
                "whose offset stayed put.",
                ["Perturbation", "Injected (frames)", *(i["label"] for i in offsets)],
                rows,
            )
        )
    rows = []
    for info in metrics:
        cells = [
            (p["name"], p["metrics"][info["name"]])
            for p in card["perturbations"]
            if "sentence" in p["metrics"][info["name"]]
        ]
        if cells:
            name, cell = max(cells, key=lambda pc: abs(pc[1]["units"]))
            rows.append([info["label"], name, cell["sentence"]])
    if rows:
        out.append(("Largest effect per metric", "", ["Metric", "Perturbation", "In words"], rows))
    rows = [
        [p["name"], p["stream"], p["description"], _shift_text(p["expected_shift"]), "; ".join(p["notes"])]
        for p in card["perturbations"]
    ]
    out.append(("Perturbations", "", ["Name", "Stream", "How it is made", "Injected shift", "Notes"], rows))
    return out


def _title(card: Mapping[str, Any]) -> str:
    proto = card["protocol"]
    return f"Metric stress card: {card['dataset']}, protocol {proto.get('name')} ({str(proto.get('hash'))[:8]})"


def _intro(card: Mapping[str, Any]) -> str:
    proto = card["protocol"]
    return (
        f"The {proto.get('n_clips')} GT test clips of protocol {proto.get('name')} (hash {proto.get('hash')}), each "
        "scored again under every perturbation below (made with ffmpeg or numpy, never by a metric's code). FID/FVD "
        "compare the perturbed set with the clean GT set, so their clean value is 0 by construction."
    )


def to_markdown(card: Mapping[str, Any]) -> str:
    lines = [f"# {_title(card)}", "", _intro(card), ""]
    for title, caption, header, rows in _tables(card):
        lines += [f"## {title}", ""]
        if caption:
            lines += [caption, ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        lines.append("")
    if card["notes"]:
        lines += ["## Notes", "", *(f"- {n}" for n in card["notes"]), ""]
    return "\n".join(lines)


def to_html_section(card: Mapping[str, Any]) -> str:
    """The card as one `<section>`, for a page of its own or a report."""
    e = html.escape
    parts = [f'<section id="stress-{e(str(card["protocol"].get("hash", ""))[:8])}">', f"<h2>{e(_title(card))}</h2>"]
    parts.append(f'<p class="small">{e(_intro(card))}</p>')
    for title, caption, header, rows in _tables(card):
        parts.append(f"<h3>{e(title)}</h3>")
        if caption:
            parts.append(f'<p class="small">{e(caption)}</p>')
        head = "".join(f"<th>{e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
        parts.append(f'<table class="board"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
    if card["notes"]:
        parts.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in card["notes"]) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)


_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
table.board { border-collapse: collapse; margin: 1em 0; font-size: .85em; }
table.board th, table.board td { padding: .25em .6em; text-align: right; border-bottom: 1px solid #ddd; }
table.board th:first-child, table.board td:first-child { text-align: left; }
.small { font-size: .85em; color: #555; } ul.notes { font-size: .85em; color: #555; }
"""


def write_card(card: Mapping[str, Any], folder: str | Path, stem: str | Path | None = None) -> list[Path]:
    """`stress_<dataset>_<hash8>.{md,html,json}` in `folder` (or `<stem>.{md,html,json}`)."""
    base = (
        Path(stem).with_suffix("")
        if stem is not None
        else card_path(folder, card["dataset"], card["protocol"]["hash"], "x").with_suffix("")
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(_title(card))}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + to_html_section(card)
        + "\n</body>\n</html>\n"
    )
    return [
        write_text_atomic(base.with_name(base.name + ".md"), to_markdown(card)),
        write_text_atomic(base.with_name(base.name + ".html"), page),
        write_json_atomic(base.with_name(base.name + ".json"), card),
    ]


def leaderboard_rows(
    runs: str | Path, dataset: str, protocol_hash: str, metrics: Sequence[str]
) -> dict[str, list[tuple[str, float]]]:
    """metric -> (row label, value) of the model rows (GT excluded) of the leaderboard table of `protocol_hash`
    over the results under `runs`. A metric merged into a twin's column (LSE-C into AV conf.) takes its values."""
    from benchmark.results import find_results
    from benchmark.tables.collect import leaderboard_frame

    root = Path(runs)
    found = [r for _, r in find_results(root)] if root.is_dir() else []
    tables = [t for t in leaderboard_frame(found, dataset, bootstrap=None) if t.protocol_hash == protocol_hash]
    out: dict[str, list[tuple[str, float]]] = {m: [] for m in metrics}
    if not tables:
        return out
    table = tables[0]
    models = table.frame[table.frame["kind"] != "gt"]
    for m in metrics:
        columns = [c for c in table.columns if c.metric == m or m in c.also]
        if columns:
            key = columns[0].key
            out[m] = [(str(r["method"]), float(r[key])) for _, r in models.iterrows()]
    return out
