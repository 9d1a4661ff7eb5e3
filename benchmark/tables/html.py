"""The HTML report: what a reader of a leaderboard wants to see.

Per table (dataset and protocol, see :mod:`benchmark.tables.collect`): the ranked table, a bar chart per metric
(GT highlighted, direction stated), per-clip distributions from each run's ``samples.jsonl`` (box + strip plots),
the evaluator footnotes, and side-by-side sample grid videos (:mod:`benchmark.tables.grids`).

One self-contained ``report_<dataset>.html`` (charts inline, grid videos embedded up to a size limit and linked
always), plus ``report_<dataset>.md`` that shows the same tables with the charts as separate ``.svg`` files, for
a report committed under ``reports/``.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from benchmark.results import Results, find_results, load_results, write_text_atomic
from benchmark.stress_card import card_path  # metric stress cards
from benchmark.tables import grids
from benchmark.tables.charts import Bar, Series, bar_chart_svg, distribution_svg, escape
from benchmark.tables.collect import leaderboard_frame
from benchmark.tables.health import health_html, health_markdown, health_of_folders
from benchmark.tables.intervals import DEFAULT_BOOTSTRAP, BootstrapSettings
from benchmark.tables.model import Column, Table, dataset_label, finished_key, our_rows, published_cells
from benchmark.tables.published import PUBLISHED_MARK
from benchmark.tables.text import to_markdown

__all__ = ["EMBED_VIDEO_MAX_BYTES", "ReportFiles", "write_report"]

#: grid videos up to this size are embedded in the HTML as data URIs (one file to mail around); larger ones are
#: only linked, so a report over a real test set does not become hundreds of megabytes of base64
EMBED_VIDEO_MAX_BYTES = 8 * 1024 * 1024


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    assets: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _run_folders(found: Sequence[tuple[Path, Results]]) -> dict[tuple[str, str, str], tuple[Path, Results]]:
    # the run the leaderboard shows for each (dataset, protocol, name): the newest, a later file winning a tie
    newest: dict[tuple[str, str, str], tuple[tuple[datetime, int], tuple[Path, Results]]] = {}
    for position, (path, result) in enumerate(found):
        key = (result.protocol.dataset, result.protocol.hash, result.run.name)
        stamp = (finished_key(result), position)
        if key not in newest or stamp >= newest[key][0]:
            newest[key] = (stamp, (path.parent, result))
    return {key: value for key, (_, value) in newest.items()}


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
.health table.board td:nth-child(2), .health table.board th:nth-child(2) { text-align: left; }
"""


def _cell_class(mark: str | None) -> str:
    return f' class="{mark}"' if mark else ""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(c.header)} {escape(c.arrow)}</th>" for c in table.columns)
    rows = []
    ours = our_rows(table)
    for method, is_gt, cells in ours:
        if is_gt:
            continue
        tds = "".join(f"<td{_cell_class(mark)}>{escape(text)}</td>" for text, mark in cells)
        rows.append(f'<tr class="ours"><td>{escape(method)}</td>{tds}</tr>')
    for method, texts in published_cells(table):
        tds = "".join(f"<td>{escape(text)}</td>" for text in texts)
        rows.append(f'<tr class="published"><td>{escape(method)}{PUBLISHED_MARK}</td>{tds}</tr>')
    for method, is_gt, cells in ours:
        if is_gt:
            tds = "".join(f"<td>{escape(text)}</td>" for text, _ in cells)
            rows.append(f'<tr class="gt"><td>{escape(method)}</td>{tds}</tr>')
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
        f"Protocol <code>{escape(table.protocol)}</code> hash <code>{escape(table.protocol_hash)}</code>{clips}. "
        f"Evaluators: {escape(evaluators)}. <b>Bold</b> best, <u>underlined</u> second per column; "
        "→GT: closer to the GT row is better; GT rows are not ranked."
        + (
            f" Rows in italics marked {PUBLISHED_MARK} are published numbers"
            f"{' from ' + escape(table.published_source) if table.published_source else ''}, not ranked."
            if table.published is not None
            else ""
        )
        + (f" {escape(table.intervals.caption())}." if table.intervals is not None else "")
    )


def _embed_video(path: Path, limit: int) -> str:
    if path.stat().st_size <= limit:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<video controls preload="metadata" src="data:video/mp4;base64,{data}"></video>'
    return f'<video controls preload="metadata" src="{escape(path.parent.name + "/" + path.name)}"></video>'


def write_report(
    runs: str | Path | Sequence[str | Path],
    dataset: str | None = None,
    out: str | Path | None = None,
    *,
    reports_dir: str | Path = Path("reports"),
    published: str | Path | None = None,
    published_source: str | None = None,
    grid_clips: int = 3,
    reference: grids.ReferenceSource | None | str = "corpus",
    embed_video_max_bytes: int = EMBED_VIDEO_MAX_BYTES,
    bootstrap: BootstrapSettings | None = DEFAULT_BOOTSTRAP,
    speed: bool = False,
) -> ReportFiles:
    """Write ``report_<dataset>.html`` (or ``out``), ``report_<dataset>.md`` beside it and their assets
    (``report_<dataset>_assets/``: one SVG per chart, the sample grid mp4s) for ``runs``: a folder searched for
    ``results.json`` files (``runs/``), or a list of run folders (say, the rows ``bench table1`` just made).

    ``reference`` finds the GT videos for the sample grids: ``"corpus"`` reads them from the corpus the runs
    used (:func:`~benchmark.tables.grids.corpus_reference`), a callable
    ``(dataset, clip_ids) -> {clip_id: (video, audio)}`` from anywhere, None leaves the GT tile out unless the GT
    run folder holds ``generated/`` videos.
    ``grid_clips=0`` writes no grid. ``speed``: the runs' speed blocks per device under each table
    (:mod:`benchmark.tables.speed`).
    """
    if isinstance(runs, str | Path):
        where, found = str(runs), find_results(runs)
    else:
        where, found = (
            "the given run folders",
            [(Path(d) / "results.json", load_results(Path(d) / "results.json")) for d in runs],
        )
    found = [(p, r) for p, r in found if dataset is None or r.protocol.dataset == dataset]
    tables = leaderboard_frame(
        [r for _, r in found], dataset, published=published, published_source=published_source, bootstrap=bootstrap
    )
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

    body = [f"<h1>talkbench report: {escape(', '.join(dict.fromkeys(dataset_label(t.dataset) for t in tables)))}</h1>"]
    markdown = [f"# talkbench report: {', '.join(dict.fromkeys(dataset_label(t.dataset) for t in tables))}", ""]
    for table in tables:
        slug = _slug(f"{table.dataset}-{table.protocol_hash}")
        folders = {
            name: value
            for (ds, digest, name), value in all_folders.items()
            if ds == table.dataset and digest == table.protocol_hash
        }
        body += [
            f'<section id="{escape(slug)}">',
            f"<h2>{escape(dataset_label(table.dataset))} — protocol {escape(table.protocol)} "
            f"({escape(table.protocol_hash)})</h2>",
        ]
        body.append(_html_table(table))
        body.append(f'<p class="small">{_table_legend(table)}</p>')
        remarks = [*table.footnotes, *table.notes]
        if remarks:
            body.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in remarks) + "</ul>")
        markdown += [to_markdown(table)]
        if speed:
            from benchmark.tables.speed import speed_html, speed_markdown, speed_table

            measured = speed_table(table, {name: folder for name, (folder, _) in folders.items()})
            body.append(speed_html(measured))
            markdown += [speed_markdown(measured)]
        card = card_path(html_path.parent, table.dataset, table.protocol_hash, "html")
        if card.exists():
            body.append(
                f'<p class="small"><a href="{escape(card.name)}">Metric stress card</a>: how far controlled '
                "perturbations of the GT clips move each metric, in units of the between-model spread.</p>"
            )
            markdown += [f"[Metric stress card]({card.with_suffix('.md').name}) of this protocol.", ""]
        for health in health_of_folders([f for f, r in folders.values() if r.run.kind == "gt"]):
            body.append(health_html(health))
            markdown += [health_markdown(health)]

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
        per_run = {name: grids.per_clip_values(folder) for name, (folder, _) in folders.items()}
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
            metric_column = by_key.get(metric)
            title = metric_column.header if metric_column else metric
            svg = distribution_svg(title, metric_column.direction if metric_column else "", series, metric)
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
            # looked up on the module when called, so a test (or a caller) can swap in its own reference source
            source = grids.corpus_reference([f for f, _ in folders.values()]) if reference == "corpus" else reference
            made = grids.sample_grids(table, folders, assets, slug, source, grid_clips, files.notes)  # type: ignore[arg-type]
            if made:
                body += ["<h3>Samples</h3>", '<p class="small">The same test clip and audio, side by side.</p>']
                markdown += ["#### Samples", ""]
                for grid in made:
                    files.assets.append(grid.path)
                    tiles = "".join(f"<span>{escape(label)}</span>" for label in grid.labels)
                    body += [
                        '<figure class="grid">',
                        _embed_video(grid.path, embed_video_max_bytes),
                        f'<div class="tiles">{tiles}</div>',
                        f'<figcaption class="small">{escape(grid.clip_id)}, {grid.frames} frames '
                        f'(<a href="{escape(assets.name + "/" + grid.path.name)}">mp4</a>)</figcaption>',
                        "</figure>",
                    ]
                    markdown.append(
                        f"- [{grid.clip_id}]({assets.name}/{grid.path.name}): {' | '.join(grid.labels)} "
                        f"({grid.frames} frames)"
                    )
                markdown.append("")
        body.append("</section>")
    if files.notes:
        body.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in files.notes) + "</ul>")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>talkbench report: {escape(stem)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    write_text_atomic(html_path, page)
    write_text_atomic(md_path, "\n".join(markdown).rstrip() + "\n")
    return files
