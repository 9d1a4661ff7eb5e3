"""The HTML report (SPEC section 6, issue 8 items 4 and 7): what a reader of a leaderboard wants to see.

Per leaderboard block (dataset and protocol, see :mod:`benchmark.leaderboard`): the ranked table, a bar chart per
metric (GT highlighted, direction stated), per-clip distributions from each run's ``samples.jsonl`` (box + strip
plots), the evaluator footnotes, and side-by-side sample grid videos — GT and every method on the same test clip
with the clip's audio, like Figure 4 of Diffused Heads (Stypulkowski et al., WACV 2023), but moving.

Everything is written by hand as SVG, so the report needs neither matplotlib nor a JavaScript library: one
self-contained ``report_<dataset>.html`` (charts inline, grid videos embedded up to a size limit and linked
always), plus ``report_<dataset>.md`` that shows the same tables with the charts as separate ``.svg`` files, for
a report committed under ``reports/``.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.leaderboard import (
    ARROWS,
    PUBLISHED_MARK,
    Column,
    Table,
    _finished_key,
    _our_rows,
    _published_rows,
    dataset_label,
    format_value,
    leaderboard_frame,
    to_markdown,
)
from benchmark.results import Results, find_results, load_results, read_jsonl, write_text_atomic
from data.clip import SAMPLES_PER_FRAME

__all__ = [
    "GridVideo",
    "ReportFiles",
    "bar_chart_svg",
    "corpus_reference",
    "distribution_svg",
    "nice_ticks",
    "per_clip_values",
    "write_report",
    "write_sample_grid",
]

#: (dataset, clip ids) -> {clip id: (video uint8 [T,H,W,3], audio float32 [N])} for the clips it can find
ReferenceSource = Callable[[str, Sequence[str]], dict[str, tuple[np.ndarray, np.ndarray]]]

#: grid videos up to this size are embedded in the HTML as data URIs (one file to mail around); larger ones are
#: only linked, so a report over a real test set does not become hundreds of megabytes of base64
EMBED_VIDEO_MAX_BYTES = 8 * 1024 * 1024

#: dots per row of a strip plot; beyond this a quantile sample is drawn
MAX_STRIP_POINTS = 300

_DIRECTION_TEXT = {
    "lower": "lower is better",
    "higher": "higher is better",
    "match_gt": "closer to GT is better",
}
_COLOURS = {"ours": "#4e79a7", "gt": "#f28e2b", "axis": "#555555", "grid": "#dddddd", "text": "#222222"}


# --------------------------------------------------------------------------------------------------------------
# SVG charts


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


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fit_label(text: str, width: int = 19) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_LEFT, _PLOT_W, _RIGHT, _TOP = 150, 250, 70, 46  # chart layout (px): labels, plot, values, heading


def _svg_frame(
    title: str,
    direction: str,
    metric: str,
    span: tuple[float, float],
    rows: int,
    row_h: int,
    *,
    aria: str,
    css: str,
    suffix: str,
) -> tuple[Callable[[float], float], list[str]]:
    """The frame both charts draw their rows in: the value-to-x mapping over nice ticks covering `span`, and the
    opening SVG lines (heading with the direction arrow and its words, vertical grid lines with tick labels)."""
    left, plot_w, right, top = _LEFT, _PLOT_W, _RIGHT, _TOP
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
        f'role="img" aria-label="{_esc(title)} {aria}" class="{css}" data-metric="{_esc(metric)}">',
        f'<text x="{left}" y="16" font-size="14" font-weight="bold" fill="{_COLOURS["text"]}">'
        f"{_esc(title)} {_esc(ARROWS.get(direction, ''))}{suffix}</text>",
        f'<text x="{left}" y="32" fill="{_COLOURS["axis"]}">{_esc(_DIRECTION_TEXT.get(direction, ""))}</text>',
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
            f"{_esc(_tick_text(tick, step))}</text>"
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
    left, top, row_h = _LEFT, _TOP, 22
    values = [b.value for b in bars if math.isfinite(b.value)]
    x, out = _svg_frame(
        title,
        direction,
        metric,
        (min([0.0, *values]), max([0.0, *values])) if values else (0.0, 1.0),
        len(bars),
        row_h,
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
            f"<title>{_esc(bar.label)}</title>{_esc(_fit_label(bar.label))}</text>"
        )
        if not math.isfinite(bar.value):
            out.append(f'<text x="{zero + 4:.1f}" y="{y + row_h / 2 + 4:.1f}" fill="{_COLOURS["axis"]}">–</text>')
            continue
        x0, x1 = sorted((zero, x(bar.value)))
        colour = _COLOURS["gt"] if bar.is_gt else _COLOURS["ours"]
        kind = "gt" if bar.is_gt else "ours"
        out.append(
            f'<rect class="bar {kind}" x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1.0):.1f}" '
            f'height="{row_h - 6}" fill="{colour}"><title>{_esc(bar.label)}: '
            f"{_esc(format_value(metric or title, bar.value))}</title></rect>"
        )
        style = ' font-weight="bold"' if bar.mark == "best" else ' text-decoration="underline"' if bar.mark else ""
        out.append(
            f'<text x="{max(x1, zero) + 4:.1f}" y="{y + row_h / 2 + 4:.1f}" fill="{_COLOURS["text"]}"{style}>'
            f"{_esc(format_value(metric or title, bar.value))}</text>"
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
    left, plot_w, top, row_h = _LEFT, _PLOT_W, _TOP, 30
    finite = [v for s in series for v in s.values if math.isfinite(v)]
    x, out = _svg_frame(
        title,
        direction,
        metric,
        (min(finite), max(finite)) if finite else (0.0, 1.0),
        len(series),
        row_h,
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
            f"<title>{_esc(s.label)}</title>{_esc(_fit_label(s.label))}</text>"
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
            f"<title>{_esc(s.label)}: median {med:.4g}, IQR [{q1:.4g}, {q3:.4g}], n={len(values)}</title></rect>"
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


# --------------------------------------------------------------------------------------------------------------
# run folders


def per_clip_values(run_dir: str | Path) -> dict[str, dict[str, float]]:
    """``{metric: {clip_id: value}}`` from a run's ``samples.jsonl`` (empty when the file is absent)."""
    out: dict[str, dict[str, float]] = {}
    for row in read_jsonl(Path(run_dir) / "samples.jsonl", missing_ok=True):
        clip_id = row.get("clip_id")
        for metric, value in (row.get("values") or {}).items():
            if isinstance(value, int | float) and clip_id is not None:
                out.setdefault(metric, {})[clip_id] = float(value)
    return out


def _clip_order(run_dir: Path) -> list[str]:
    rows = read_jsonl(run_dir / "samples.jsonl", missing_ok=True)
    rows = sorted((r for r in rows if "clip_id" in r), key=lambda r: r.get("index", 0))
    return list(dict.fromkeys(r["clip_id"] for r in rows))


def _video_file(clip_id: str) -> str:
    from benchmark.features import video_name  # the naming of generated clips; imported only for grids

    return video_name(clip_id)


def generated_video(run_dir: Path, result: Results, clip_id: str) -> Path | None:
    """The video a run produced for ``clip_id``: ``generated/<name>.mp4`` in its folder, or, for videos scored by
    ``bench evaluate --videos DIR`` (recorded in the run's notes), the file of that name in DIR."""
    name = _video_file(clip_id)
    candidates = [run_dir / "generated" / name]
    for note in result.run.notes:
        if note.startswith("videos: "):
            folder = Path(note.removeprefix("videos: "))
            candidates += [folder / name, folder / (clip_id.rsplit("/", 1)[-1] + ".mp4")]
    return next((p for p in candidates if p.is_file()), None)


def corpus_reference(run_dirs: Sequence[Path] = ()) -> ReferenceSource:
    """GT clips from the corpus a run used: the resolved ``config.yaml`` of one of ``run_dirs`` when there is
    one (the same root and overrides), else the dataset's default config."""

    def load(dataset: str, clip_ids: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        from omegaconf import OmegaConf

        from benchmark import runner
        from benchmark.config import compose

        configs = [d / "config.yaml" for d in run_dirs if (d / "config.yaml").is_file()]
        cfg = OmegaConf.load(configs[0]) if configs else compose(None, dataset)
        corpus = runner.build_corpus(cfg)
        corpus.ensure()
        wanted = set(clip_ids)
        out = {}
        for ref in corpus.refs("test"):
            if ref.clip_id in wanted:
                clip = corpus.store.get(ref)
                out[clip.clip_id] = (np.asarray(clip.video), np.asarray(clip.audio))
        return out

    return load


def _resize_nearest(video: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    h, w = hw
    if video.shape[1:3] == (h, w):
        return video
    rows = (np.arange(h) * video.shape[1] / h).astype(int)
    cols = (np.arange(w) * video.shape[2] / w).astype(int)
    return video[:, rows][:, :, cols]


def write_sample_grid(path: str | Path, tiles: Sequence[np.ndarray], audio: np.ndarray) -> int:
    """Tiles (uint8 [T_i, H, W, 3], GT first) side by side, cut to the shortest, with ``audio`` cut to match;
    an mp4 with sound through ``data.io.write_video``. Returns the number of frames."""
    from data.io import write_video

    if not tiles:
        raise ValueError(f"{path}: a sample grid needs at least one video")
    h, w = tiles[0].shape[1:3]
    frames = min(len(t) for t in tiles)
    if frames == 0:
        raise ValueError(f"{path}: a video of the grid has no frames")
    grid = np.concatenate([_resize_nearest(t[:frames], (h, w)) for t in tiles], axis=2)
    # H.264 in yuv420p needs even sides
    pad_h, pad_w = grid.shape[1] % 2, grid.shape[2] % 2
    if pad_h or pad_w:
        grid = np.pad(grid, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    sound = np.zeros(frames * SAMPLES_PER_FRAME, np.float32)
    clip = np.asarray(audio, np.float32)[: len(sound)]
    sound[: len(clip)] = clip
    write_video(path, grid, sound)
    return frames


@dataclass
class GridVideo:
    clip_id: str
    path: Path
    labels: list[str]  # tile labels, left to right
    frames: int


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    assets: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _run_folders(found: Sequence[tuple[Path, Results]]) -> dict[tuple[str, str, str], tuple[Path, Results]]:
    # the run the leaderboard shows for each (dataset, protocol, name): the newest, a later file winning a tie
    newest: dict[tuple[str, str, str], tuple[object, tuple[Path, Results]]] = {}
    for position, (path, result) in enumerate(found):
        key = (result.protocol.dataset, result.protocol.hash, result.run.name)
        stamp = (_finished_key(result), position)
        if key not in newest or stamp >= newest[key][0]:
            newest[key] = (stamp, (path.parent, result))
    return {key: value for key, (_, value) in newest.items()}


def _sample_grids(
    table: Table,
    folders: dict[str, tuple[Path, Results]],
    assets: Path,
    slug: str,
    reference: ReferenceSource | None,
    n_clips: int,
    notes: list[str],
) -> list[GridVideo]:
    from data.io import MediaError, read_audio, read_video

    gt_names = [str(n) for n, k in zip(table.frame["name"], table.frame["kind"]) if k == "gt"]
    methods = [
        (str(m), folders[str(n)])
        for m, n, k in zip(table.frame["method"], table.frame["name"], table.frame["kind"])
        if k != "gt" and str(n) in folders
    ]
    gt_folder = folders.get(gt_names[-1]) if gt_names else None
    order = _clip_order(gt_folder[0]) if gt_folder else []
    for _, (run_dir, _) in methods:
        order += [c for c in _clip_order(run_dir) if c not in order]
    if not methods:  # a GT-only or published-only block has nothing to put beside the GT
        return []
    usable = [c for c in order if all(generated_video(d, r, c) for _, (d, r) in methods)]
    if not usable:
        notes.append(f"{table.title}: no test clip has a generated video from every method; no sample grid")
        return []
    chosen = usable[:n_clips]
    gt_videos: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if gt_folder is not None:
        for clip_id in chosen:
            path = gt_folder[0] / "generated" / _video_file(clip_id)
            if path.is_file():
                gt_videos[clip_id] = (read_video(path), read_audio(path))
    missing = [c for c in chosen if c not in gt_videos]
    if missing and reference is not None:
        try:
            gt_videos.update(reference(table.dataset, missing))
        except Exception as err:  # the report is still worth having without the GT tile
            notes.append(f"{table.title}: GT videos could not be loaded ({err}); grids show the methods only")
    grids = []
    for clip_id in chosen:
        tiles, labels, audio = [], [], None
        if clip_id in gt_videos:
            video, audio = gt_videos[clip_id]
            tiles.append(np.asarray(video))
            labels.append("GT")
        for method, (run_dir, result) in methods:
            path = generated_video(run_dir, result, clip_id)
            try:
                size = (tiles[0].shape[2], tiles[0].shape[1]) if tiles else None
                tiles.append(read_video(path, size=size))
                if audio is None:
                    audio = read_audio(path)
            except MediaError as err:
                notes.append(f"{table.title}: {method} left out of the grid of {clip_id}: {err}")
                continue
            labels.append(method)
        if len(tiles) < 2 or audio is None:
            continue
        name = f"{slug}_grid_{re.sub(r'[^A-Za-z0-9_.-]+', '_', clip_id)}.mp4"
        frames = write_sample_grid(assets / name, tiles, audio)
        grids.append(GridVideo(clip_id, assets / name, labels, frames))
    if grids and "GT" not in grids[0].labels:
        notes.append(f"{table.title}: no GT video found for the sample grid (pass a reference source)")
    return grids


# --------------------------------------------------------------------------------------------------------------
# the report

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table.board { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
table.board th, table.board td { padding: .3em .7em; text-align: right; }
table.board th:first-child, table.board td:first-child { text-align: left; }
table.board thead th { border-top: 2px solid #222; border-bottom: 1px solid #222; }
table.board tbody tr:last-child td { border-bottom: 2px solid #222; }
table.board tr.gt td { border-top: 1px solid #999; background: #fff4e8; }
table.board tr.published td { font-style: italic; color: #555; }
table.board td.best { font-weight: bold; } table.board td.second { text-decoration: underline; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.small { font-size: .85em; color: #555; } ul.notes { font-size: .85em; color: #555; }
figure.grid { margin: 1em 1em 1em 0; display: inline-block; vertical-align: top; max-width: 100%; }
figure.grid video { max-width: 100%; display: block; }
.tiles { display: flex; } .tiles span { flex: 1; text-align: center; font-size: .85em; }
"""


def _cell_class(mark: str | None) -> str:
    return f' class="{mark}"' if mark else ""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_esc(c.header)} {_esc(c.arrow)}</th>" for c in table.columns)
    rows = []
    ours = _our_rows(table)
    for method, is_gt, cells in ours:
        if is_gt:
            continue
        tds = "".join(f"<td{_cell_class(mark)}>{_esc(text)}</td>" for text, mark in cells)
        rows.append(f'<tr class="ours"><td>{_esc(method)}</td>{tds}</tr>')
    for method, texts in _published_rows(table):
        tds = "".join(f"<td>{_esc(text)}</td>" for text in texts)
        rows.append(f'<tr class="published"><td>{_esc(method)}{PUBLISHED_MARK}</td>{tds}</tr>')
    for method, is_gt, cells in ours:
        if is_gt:
            tds = "".join(f"<td>{_esc(text)}</td>" for text, _ in cells)
            rows.append(f'<tr class="gt"><td>{_esc(method)}</td>{tds}</tr>')
    return (
        f'<table class="board"><thead><tr><th>Method</th>{head}</tr></thead><tbody>'
        + "\n".join(rows)
        + "</tbody></table>"
    )


def _bars(table: Table, column: Column) -> list[Bar]:
    bars = []
    for index, row in table.frame.iterrows():
        if row["kind"] == "gt":
            continue
        bars.append(Bar(str(row["method"]), float(row[column.key]), False, table.mark(index, column.key)))
    for _, row in table.frame[table.gt_mask].iterrows():
        bars.append(Bar(str(row["method"]), float(row[column.key]), True, None))
    return bars


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def _table_legend(table: Table) -> str:
    clips = f", {table.n_clips} clips" if table.n_clips is not None else ""
    evaluators = "; ".join(table.evaluators) or "none recorded"
    return (
        f"Protocol <code>{_esc(table.protocol)}</code> hash <code>{_esc(table.protocol_hash)}</code>{clips}. "
        f"Evaluators: {_esc(evaluators)}. <b>Bold</b> best, <u>underlined</u> second per column; "
        "→GT: closer to the GT row is better; GT rows are not ranked."
        + (
            f" Rows in italics marked {PUBLISHED_MARK} are published numbers"
            f"{' from ' + _esc(table.published_source) if table.published_source else ''}, not ranked."
            if table.published is not None
            else ""
        )
    )


def _embed_video(path: Path, limit: int) -> str:
    if path.stat().st_size <= limit:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<video controls preload="metadata" src="data:video/mp4;base64,{data}"></video>'
    return f'<video controls preload="metadata" src="{_esc(path.parent.name + "/" + path.name)}"></video>'


def write_report(
    runs: str | Path | Sequence[str | Path],
    dataset: str | None = None,
    out: str | Path | None = None,
    *,
    reports_dir: str | Path = Path("reports"),
    published: str | Path | None = None,
    published_source: str | None = None,
    grid_clips: int = 3,
    reference: ReferenceSource | None | str = "corpus",
    embed_video_max_bytes: int = EMBED_VIDEO_MAX_BYTES,
) -> ReportFiles:
    """Write ``report_<dataset>.html`` (or ``out``), ``report_<dataset>.md`` beside it and their assets
    (``report_<dataset>_assets/``: one SVG per chart, the sample grid mp4s) for ``runs``: a folder searched for
    ``results.json`` files (``runs/``), or a list of run folders (say, the rows ``bench table1`` just made).

    ``reference`` finds the GT videos for the sample grids: ``"corpus"`` reads them from the corpus the runs
    used (:func:`corpus_reference`), a callable ``(dataset, clip_ids) -> {clip_id: (video, audio)}`` from
    anywhere, None leaves the GT tile out unless the GT run folder holds ``generated/`` videos.
    ``grid_clips=0`` writes no grid.
    """
    if isinstance(runs, str | Path):
        where, found = str(runs), find_results(runs)
    else:
        where, found = (
            "the given run folders",
            [(Path(d) / "results.json", load_results(Path(d) / "results.json")) for d in runs],
        )
    found = [(p, r) for p, r in found if dataset is None or r.protocol.dataset == dataset]
    tables = leaderboard_frame([r for _, r in found], dataset, published=published, published_source=published_source)
    if not tables:
        raise ValueError(
            f"no results in {where}{' for dataset ' + repr(dataset) if dataset else ''}: nothing to report"
        )
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset) if dataset is not None else "all"
    html_path = Path(out) if out is not None else Path(reports_dir) / f"report_{stem}.html"
    if html_path.suffix.lower() != ".html":
        raise ValueError(f"{html_path}: the report is an .html file")
    md_path = html_path.with_suffix(".md")
    assets = html_path.with_name(html_path.stem + "_assets")
    assets.mkdir(parents=True, exist_ok=True)
    all_folders = _run_folders(found)
    files = ReportFiles(html_path, md_path)

    body = [f"<h1>talkbench report: {_esc(', '.join(dict.fromkeys(dataset_label(t.dataset) for t in tables)))}</h1>"]
    markdown = [f"# talkbench report: {', '.join(dict.fromkeys(dataset_label(t.dataset) for t in tables))}", ""]
    for table in tables:
        slug = _slug(f"{table.dataset}-{table.protocol_hash}")
        folders = {
            name: value
            for (ds, digest, name), value in all_folders.items()
            if ds == table.dataset and digest == table.protocol_hash
        }
        body += [
            f'<section id="{_esc(slug)}">',
            f"<h2>{_esc(dataset_label(table.dataset))} — protocol {_esc(table.protocol)} "
            f"({_esc(table.protocol_hash)})</h2>",
        ]
        body.append(_html_table(table))
        body.append(f'<p class="small">{_table_legend(table)}</p>')
        remarks = [*table.footnotes, *table.notes]
        if remarks:
            body.append('<ul class="notes">' + "".join(f"<li>{_esc(n)}</li>" for n in remarks) + "</ul>")
        markdown += [to_markdown(table)]

        charts = []
        for column in table.columns:
            bars = _bars(table, column)
            if not any(math.isfinite(b.value) for b in bars):
                continue
            svg = bar_chart_svg(column.header, column.direction, bars, column.metric)
            path = assets / f"{slug}_bar_{_slug(column.key)}.svg"
            write_text_atomic(path, svg + "\n")
            files.assets.append(path)
            charts.append((column, svg, path))
        if charts:
            body += ["<h3>Metrics</h3>", '<div class="charts">', *(svg for _, svg, _ in charts), "</div>"]
            markdown += ["#### Metrics", ""]
            markdown += [f"![{c.header} {c.arrow}]({assets.name}/{p.name})" for c, _, p in charts]
            markdown.append("")

        dists = []
        per_run = {name: per_clip_values(folder) for name, (folder, _) in folders.items()}
        by_key = {c.key: c for c in table.columns}
        metrics = list(dict.fromkeys(m for values in per_run.values() for m in values))
        metrics.sort(key=lambda m: (list(by_key).index(m) if m in by_key else len(by_key), m))
        for metric in metrics:
            series = [
                Series(str(method), tuple(per_run.get(str(name), {}).get(metric, {}).values()), kind == "gt")
                for method, name, kind in zip(table.frame["method"], table.frame["name"], table.frame["kind"])
            ]
            if not any(s.values for s in series):
                continue
            column = by_key.get(metric)
            title = column.header if column else metric
            svg = distribution_svg(title, column.direction if column else "", series, metric)
            path = assets / f"{slug}_dist_{_slug(metric)}.svg"
            write_text_atomic(path, svg + "\n")
            files.assets.append(path)
            dists.append((title, svg, path))
        if dists:
            body += [
                "<h3>Per-clip distributions</h3>",
                '<p class="small">Box: quartiles and median; whiskers: furthest value within 1.5 IQR; dots: '
                "clips. Set metrics (FID, FVD) have no per-clip value.</p>",
                '<div class="charts">',
                *(svg for _, svg, _ in dists),
                "</div>",
            ]
            markdown += ["#### Per-clip distributions", ""]
            markdown += [f"![{t} per clip]({assets.name}/{p.name})" for t, _, p in dists]
            markdown.append("")

        if grid_clips > 0:
            source = corpus_reference([f for f, _ in folders.values()]) if reference == "corpus" else reference
            grids = _sample_grids(table, folders, assets, slug, source, grid_clips, files.notes)  # type: ignore[arg-type]
            if grids:
                body += ["<h3>Samples</h3>", '<p class="small">The same test clip and audio, side by side.</p>']
                markdown += ["#### Samples", ""]
                for grid in grids:
                    files.assets.append(grid.path)
                    tiles = "".join(f"<span>{_esc(label)}</span>" for label in grid.labels)
                    body += [
                        '<figure class="grid">',
                        _embed_video(grid.path, embed_video_max_bytes),
                        f'<div class="tiles">{tiles}</div>',
                        f'<figcaption class="small">{_esc(grid.clip_id)}, {grid.frames} frames '
                        f'(<a href="{_esc(assets.name + "/" + grid.path.name)}">mp4</a>)</figcaption>',
                        "</figure>",
                    ]
                    markdown.append(
                        f"- [{grid.clip_id}]({assets.name}/{grid.path.name}): {' | '.join(grid.labels)} "
                        f"({grid.frames} frames)"
                    )
                markdown.append("")
        body.append("</section>")
    if files.notes:
        body.append('<ul class="notes">' + "".join(f"<li>{_esc(n)}</li>" for n in files.notes) + "</ul>")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>talkbench report: {_esc(stem)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    write_text_atomic(html_path, page)
    write_text_atomic(md_path, "\n".join(markdown).rstrip() + "\n")
    return files
