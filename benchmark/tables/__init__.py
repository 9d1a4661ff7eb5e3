"""Leaderboards: results collected into tables, ranked per column by each metric's direction, and rendered.

Every per-metric fact a table shows (column label, decimals, position, default direction, the evaluator network
behind a value) is read from the metric registry, :data:`metrics.METRICS`; this package holds none of its own.

- :mod:`~benchmark.tables.cells`: what a column and a cell show for a metric name;
- :mod:`~benchmark.tables.model`: :class:`Table`, :class:`Column`, the ranking, rows as text;
- :mod:`~benchmark.tables.collect`: results -> tables (:func:`leaderboard_frame`);
- :mod:`~benchmark.tables.evaluators`: marks for values from non-official evaluator weights;
- :mod:`~benchmark.tables.published`: a paper's published rows, an unranked block;
- :mod:`~benchmark.tables.text`, :mod:`~benchmark.tables.latex`: CSV / Markdown / terminal, LaTeX;
- :mod:`~benchmark.tables.export`: leaderboard files (:func:`write_leaderboard`);
- :mod:`~benchmark.tables.charts`, :mod:`~benchmark.tables.grids`, :mod:`~benchmark.tables.html`: the HTML
  report with SVG charts and sample-grid videos (:func:`write_report`).
"""

from benchmark.tables.cells import (
    ARROWS,
    MISSING,
    column_sort_key,
    default_direction,
    display_name,
    format_value,
    metric_evaluator_key,
    metric_family,
)
from benchmark.tables.charts import MAX_STRIP_POINTS, Bar, Series, bar_chart_svg, distribution_svg, nice_ticks
from benchmark.tables.collect import TIME_CAP_MARK, leaderboard_frame, time_capped
from benchmark.tables.evaluators import EVALUATOR_STATUSES, evaluator_status
from benchmark.tables.export import EXTENSIONS, write_leaderboard
from benchmark.tables.grids import (
    GridVideo,
    ReferenceSource,
    corpus_reference,
    generated_video,
    per_clip_values,
    write_sample_grid,
)
from benchmark.tables.html import EMBED_VIDEO_MAX_BYTES, ReportFiles, write_report
from benchmark.tables.latex import TABLE1_DATASETS, latex_document, latex_escape, to_latex, to_latex_table1
from benchmark.tables.model import EVALUATOR_MARKS, META_COLUMNS, Column, Table, dataset_label
from benchmark.tables.published import PUBLISHED_MARK, attach_published, published_columns, published_rows
from benchmark.tables.text import CSV_META_COLUMNS, render_terminal, to_csv, to_markdown

__all__ = [
    "ARROWS",
    "CSV_META_COLUMNS",
    "EMBED_VIDEO_MAX_BYTES",
    "EVALUATOR_MARKS",
    "EVALUATOR_STATUSES",
    "EXTENSIONS",
    "MAX_STRIP_POINTS",
    "META_COLUMNS",
    "MISSING",
    "PUBLISHED_MARK",
    "TABLE1_DATASETS",
    "TIME_CAP_MARK",
    "Bar",
    "Column",
    "GridVideo",
    "ReferenceSource",
    "ReportFiles",
    "Series",
    "Table",
    "attach_published",
    "bar_chart_svg",
    "column_sort_key",
    "corpus_reference",
    "dataset_label",
    "default_direction",
    "display_name",
    "distribution_svg",
    "evaluator_status",
    "format_value",
    "generated_video",
    "latex_document",
    "latex_escape",
    "leaderboard_frame",
    "metric_evaluator_key",
    "metric_family",
    "nice_ticks",
    "per_clip_values",
    "published_columns",
    "published_rows",
    "render_terminal",
    "time_capped",
    "to_csv",
    "to_latex",
    "to_latex_table1",
    "to_markdown",
    "write_leaderboard",
    "write_report",
    "write_sample_grid",
]
