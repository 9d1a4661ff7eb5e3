"""Leaderboard files: every table of a dataset written as CSV, LaTeX or Markdown under ``reports/``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from benchmark.results import Results, write_text_atomic
from benchmark.tables.cells import column_sort_key
from benchmark.tables.collect import leaderboard_frame
from benchmark.tables.intervals import DEFAULT_BOOTSTRAP, BootstrapSettings
from benchmark.tables.latex import latex_document, to_latex_table1
from benchmark.tables.text import CSV_META_COLUMNS, csv_frame, to_markdown

__all__ = ["EXTENSIONS", "write_leaderboard"]

EXTENSIONS = {"csv": "csv", "latex": "tex", "markdown": "md"}


def write_leaderboard(
    results: Iterable[Results],
    dataset: str | None,
    fmt: str,  # csv | latex | markdown; anything else is a ValueError naming the choices
    out: str | Path | None = None,
    reports_dir: str | Path = Path("reports"),
    *,
    published: pd.DataFrame | str | Path | None = None,
    published_source: str | None = None,
    standalone: bool = False,
    bootstrap: BootstrapSettings | None = DEFAULT_BOOTSTRAP,
    speed: bool = False,
) -> Path:
    """Write every table of ``dataset`` (all datasets when None) to ``reports_dir/leaderboard_<dataset>.<ext>``
    or ``out``, atomically; returns the path. CSV stacks the tables (the protocol columns tell them apart);
    LaTeX is one Table-1-shaped table with a block per dataset and protocol (:func:`to_latex_table1`), a whole
    document when ``standalone``; Markdown is one table per block. The HTML report, which also needs the run
    folders, is :func:`benchmark.tables.html.write_report`. ``speed``: the runs' speed blocks per device under
    each table (:mod:`benchmark.tables.speed`; CSV: a ``<name>_speed.csv`` beside the leaderboard file).
    """
    if fmt not in EXTENSIONS:
        hint = " (the HTML report: benchmark.tables.write_report)" if fmt == "html" else ""
        raise ValueError(f"unknown leaderboard format {fmt!r}; choose one of {', '.join(EXTENSIONS)}{hint}")
    results = list(results)
    tables = leaderboard_frame(
        results, dataset, published=published, published_source=published_source, bootstrap=bootstrap
    )
    if not tables:
        known = sorted({r.protocol.dataset for r in results})
        where = f" for dataset {dataset!r}" if dataset is not None else ""
        hint = f"; results exist for: {', '.join(known)}" if known else "; no results were found at all"
        raise ValueError(f"nothing to put in a leaderboard{where}{hint}")
    speeds = []
    if speed:
        from benchmark.tables.speed import run_dirs_for, speed_table

        speeds = [(t, speed_table(t, run_dirs_for(t, results))) for t in tables]
    if fmt == "csv":
        frames = [csv_frame(t) for t in tables]
        keys = sorted(
            {k for f in frames for k in f.columns if k not in CSV_META_COLUMNS and k != "evaluator_marks"},
            key=column_sort_key,
        )  # the data's columns: a metric shown in another's column keeps its own here (text.csv_frame)
        stacked = pd.concat(frames, ignore_index=True)
        marks = ["evaluator_marks"] if "evaluator_marks" in stacked.columns else []
        stacked = stacked.reindex(columns=[*CSV_META_COLUMNS, *keys, *marks])
        stacked["n_clips"] = stacked["n_clips"].astype("Int64")
        text = stacked.to_csv(index=False, lineterminator="\n")
    elif fmt == "latex":
        text = to_latex_table1(tables, fit_width=standalone)
        if speeds:
            from benchmark.tables.speed import speed_latex

            text += "\n" + "\n".join(speed_latex(s) for _, s in speeds)
        if standalone:
            text = latex_document(text)
    else:
        from benchmark.tables.speed import speed_markdown

        blocks = {id(t): s for t, s in speeds}
        text = "\n".join(to_markdown(t) + (speed_markdown(blocks[id(t)]) if id(t) in blocks else "") for t in tables)
    if out is None:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset) if dataset is not None else "all"
        out = Path(reports_dir) / f"leaderboard_{stem}.{EXTENSIONS[fmt]}"
    if speeds and fmt == "csv":
        from benchmark.tables.speed import speed_csv_frame, speed_csv_path

        write_text_atomic(speed_csv_path(out), speed_csv_frame(speeds).to_csv(index=False, lineterminator="\n"))
    return write_text_atomic(out, text)
