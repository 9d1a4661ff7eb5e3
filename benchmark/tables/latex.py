"""LaTeX renderers (booktabs): one table per leaderboard (:func:`to_latex`) and all of them as one table shaped
like Table 1 of Diffused Heads (Stypulkowski et al., WACV 2023), a block per dataset (:func:`to_latex_table1`).

Headers and number formats come from the metric registry through :class:`~benchmark.tables.model.Column` and
:func:`~benchmark.tables.cells.format_value`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from benchmark.tables.cells import MISSING, column_sort_key
from benchmark.tables.intervals import Intervals
from benchmark.tables.model import Column, Table, dataset_label, legend, our_rows, published_cells

__all__ = ["TABLE1_DATASETS", "latex_document", "latex_escape", "to_latex", "to_latex_table1"]

_LATEX_ARROWS = {"lower": r"$\downarrow$", "higher": r"$\uparrow$", "match_gt": r"$\rightarrow$GT"}
#: the published-row marker (:data:`benchmark.tables.published.PUBLISHED_MARK`) in math mode
_LATEX_PUBLISHED_MARK = r"$^{\S}$"

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "—": "---",
    "–": "--",
    "→": r"$\rightarrow$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "†": r"$\dagger$",
    "‡": r"$\ddagger$",
    "§": r"$\S$",
    "⚠": r"$\star$",
    "±": r"$\pm$",
    "<": r"$<$",
    ">": r"$>$",
    "×": r"$\times$",
}


def _interval_caption(intervals: Intervals | None, shown: bool) -> str:
    """' Sentence.' on the marks' significance test (and the ± when ``shown``), or ''."""
    if intervals is None:
        return ""
    text = latex_escape(intervals.caption("±" if shown else None))
    return " " + text[:1].upper() + text[1:] + "."


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)


# math-mode symbols come from the Computer Modern math fonts every TeX has as Type 1; text-mode \dag (TS1, EC
# fonts) makes pdflatex run METAFONT to build bitmap fonts where cm-super is not installed
_LATEX_MARKS = {"†": r"$^{\dagger}$", "‡": r"$^{\ddagger}$", "§": r"$^{\S}$", "⚠": r"$^{\star}$"}


def _latex_number(text: str) -> str:
    suffix = ""
    while text and text[-1] in _LATEX_MARKS:
        suffix = _LATEX_MARKS[text[-1]] + suffix
        text = text[:-1]
    if text == MISSING:
        return "--" + suffix
    text = text.replace(" ± ", " $\\pm$ ")  # an interval's half-width (to_latex(..., intervals=True))
    # a typeset minus, not a hyphen
    return ("$-$" + text[1:] if text.startswith("-") else text) + suffix


def to_latex(table: Table, *, intervals: bool = False) -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``): arrows in the header, ``\\textbf`` best,
    ``\\underline`` second, ``\\midrule`` before the GT row, published rows in a labelled block below;
    ``intervals``: cells carry ``$\\pm$`` the half-width of their bootstrap interval.
    """
    n = len(table.columns) + 1
    label = re.sub(r"[^A-Za-z0-9]+", "-", f"{table.dataset}-{table.protocol_hash}").strip("-").lower()
    clips = f", {table.n_clips} clips" if table.n_clips is not None else ""
    caption = (
        f"{latex_escape(table.dataset)}, protocol \\texttt{{{latex_escape(table.protocol)}}} "
        f"({latex_escape(table.protocol_hash)}){clips}. "
        + legend(table, r"\textbf{bold}", r"\underline{underlined}", _LATEX_ARROWS["match_gt"])
        + "."
        + _interval_caption(table.intervals, intervals)
    )
    if table.published is not None:
        caption += " Published rows are quoted from the paper and not ranked."
    lines = [
        "% requires \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{caption}}}",
        f"\\label{{tab:talkbench-{label}}}",
        f"\\begin{{tabular}}{{l{'r' * len(table.columns)}}}",
        "\\toprule",
        " & ".join(["Method", *(f"{latex_escape(c.header)} {_LATEX_ARROWS[c.direction]}" for c in table.columns)])
        + " \\\\",
        "\\midrule",
    ]
    previous_gt = False
    for method, is_gt, cells in our_rows(table, intervals):
        if is_gt and not previous_gt and lines[-1] != "\\midrule":
            lines.append("\\midrule")
        previous_gt = is_gt
        shown = []
        for text, mark in cells:
            number = _latex_number(text)
            shown.append(
                f"\\textbf{{{number}}}"
                if mark == "best"
                else f"\\underline{{{number}}}"
                if mark == "second"
                else number
            )
        lines.append(" & ".join([latex_escape(method), *shown]) + " \\\\")
    published = published_cells(table)
    if published:
        if lines[-1] != "\\midrule":
            lines.append("\\midrule")
        source = f" ({latex_escape(table.published_source)})" if table.published_source else ""
        lines.append(f"\\multicolumn{{{n}}}{{l}}{{\\textit{{Published{source}, not ranked}}}} \\\\")
        for method, texts in published:
            lines.append(" & ".join([latex_escape(method), *(_latex_number(t) for t in texts)]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if table.evaluators:
        lines.append(f"\\par\\smallskip{{\\footnotesize Evaluators: {latex_escape('; '.join(table.evaluators))}.}}")
    for note in table.footnotes:
        mark, rest = note[0], note[1:]
        lines.append(f"\\par{{\\footnotesize {_LATEX_MARKS.get(mark, latex_escape(mark))}{latex_escape(rest)}}}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def _block_label(table: Table, repeated: bool) -> str:
    name = latex_escape(dataset_label(table.dataset))
    if table.protocol_hash == "-":  # published rows only
        return f"\\textbf{{{name}}}"
    clips = f", {table.n_clips} clips" if table.n_clips is not None else ""
    protocol = f"protocol \\texttt{{{latex_escape(table.protocol)}}} ({latex_escape(table.protocol_hash)}){clips}"
    # the protocol is part of the label only where it tells two blocks of one dataset apart, else it is small print
    if repeated:
        return f"\\textbf{{{name}}}, {protocol}"
    return f"\\textbf{{{name}}} {{\\footnotesize {protocol}}}"


def _merged_columns(tables: Sequence[Table]) -> tuple[list[Column], list[str]]:
    """The union of the tables' columns (Table 1 order); a key whose direction differs between tables gets no
    arrow, since one header cannot state two directions."""
    by_key: dict[str, list[Column]] = {}
    for table in tables:
        for column in table.columns:
            by_key.setdefault(column.key, []).append(column)
    columns, notes = [], []
    for key in sorted(by_key, key=column_sort_key):
        found = by_key[key]
        directions = sorted({c.direction for c in found})
        if len(directions) > 1:
            notes.append(f"{found[0].header}: blocks rank by different directions ({', '.join(directions)})")
            columns.append(replace(found[0], direction=""))
        else:
            columns.append(found[0])
    return columns, notes


def _latex_cell(text: str, mark: str | None) -> str:
    number = _latex_number(text)
    if mark == "best":
        return f"\\textbf{{{number}}}"
    if mark == "second":
        return f"\\underline{{{number}}}"
    return number


def to_latex_table1(
    tables: Sequence[Table],
    *,
    caption: str | None = None,
    label: str = "tab:talkbench-table1",
    wide: bool = True,
    fit_width: bool = False,
    intervals: bool = False,
) -> str:
    """All ``tables`` as one booktabs table shaped like Table 1 of Diffused Heads.

    One block per table (dataset and protocol), opened by a ``\\midrule`` and the dataset's name; metric
    columns carry their direction (``$\\downarrow$`` / ``$\\uparrow$`` / ``$\\rightarrow$GT``, explained in the
    caption); within a block, the best value of a column is bold and the second underlined, ``match_gt`` columns
    judged by the distance to that block's GT row; published rows (italic, marked with ``\\S``) follow ours,
    unranked; the GT row closes the block. ``wide`` uses ``table*`` (Table 1 spans both columns of a two-column
    paper); ``fit_width`` shrinks a table wider than the line (needs ``\\usepackage{graphicx}``).
    """
    if not tables:
        raise ValueError("no tables to put in a LaTeX table")
    tables = sorted(tables, key=_block_order)
    columns, notes = _merged_columns(tables)
    n = len(columns) + 1
    env = "table*" if wide else "table"
    datasets = [t.dataset.casefold() for t in tables]
    lines = [
        "% talkbench Table 1 export: requires \\usepackage{booktabs}" + (" and graphicx" if fit_width else ""),
        f"\\begin{{{env}}}[t]",
        "\\centering",
        "\\small",
        f"\\caption{{{caption if caption is not None else _table1_caption(tables, columns, intervals)}}}",
        f"\\label{{{label}}}",
    ]
    if fit_width:
        # shrink only: a narrow table keeps its natural size (graphicx exposes \width inside \resizebox)
        lines.append("\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%")
    lines += [
        f"\\begin{{tabular}}{{l{'r' * len(columns)}}}",
        "\\toprule",
        " & ".join(
            ["Method", *(f"{latex_escape(c.header)} {_LATEX_ARROWS.get(c.direction, '')}".rstrip() for c in columns)]
        )
        + " \\\\",
    ]
    for table in tables:
        keys = {c.key for c in table.columns}
        lines += [
            "\\midrule",
            f"\\multicolumn{{{n}}}{{l}}{{{_block_label(table, datasets.count(table.dataset.casefold()) > 1)}}} \\\\",
        ]
        positions = {c.key: i for i, c in enumerate(table.columns)}
        ours = our_rows(table, intervals)
        for method, is_gt, cells in ours:
            if is_gt:
                continue
            shown = [_latex_cell(*cells[positions[c.key]]) if c.key in keys else "--" for c in columns]
            lines.append(" & ".join([latex_escape(method), *shown]) + " \\\\")
        for method, texts in published_cells(table):
            shown = [
                f"\\textit{{{_latex_number(texts[positions[c.key]])}}}" if c.key in keys else "--" for c in columns
            ]
            name = f"\\textit{{{latex_escape(method)}}}{_LATEX_PUBLISHED_MARK}"
            lines.append(" & ".join([name, *shown]) + " \\\\")
        gt_rows = [row for row in ours if row[1]]
        if gt_rows:
            if len(ours) > len(gt_rows) or table.published is not None:
                lines.append(f"\\cmidrule{{1-{n}}}")
            for method, _, cells in gt_rows:
                shown = [_latex_cell(*cells[positions[c.key]]) if c.key in keys else "--" for c in columns]
                lines.append(" & ".join([latex_escape(method), *shown]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}" + ("}" if fit_width else "")]
    evaluators = list(dict.fromkeys(e for t in tables for e in t.evaluators))
    if evaluators:
        lines.append(f"\\par\\smallskip{{\\footnotesize Evaluators: {latex_escape('; '.join(evaluators))}.}}")
    for note in dict.fromkeys(f for t in tables for f in t.footnotes):
        mark, rest = note[0], note[1:]
        lines.append(f"\\par{{\\footnotesize {_LATEX_MARKS.get(mark, latex_escape(mark))}{latex_escape(rest)}.}}")
    for note in notes:
        lines.append(f"\\par{{\\footnotesize {latex_escape(note)}.}}")
    lines.append(f"\\end{{{env}}}")
    return "\n".join(lines) + "\n"


#: the paper's block order (LRW above CREMA); other datasets follow alphabetically
TABLE1_DATASETS = ("lrw", "crema")


def _block_order(table: Table) -> tuple[int, str, str, str]:
    name = table.dataset.casefold()
    position = TABLE1_DATASETS.index(name) if name in TABLE1_DATASETS else len(TABLE1_DATASETS)
    return position, name, table.protocol.casefold(), table.protocol_hash


def _table1_caption(tables: Sequence[Table], columns: Sequence[Column], intervals: bool = False) -> str:
    names = ", ".join(dict.fromkeys(latex_escape(dataset_label(t.dataset)) for t in tables))
    parts = [f"Results on {names}."]
    used = {c.direction for c in columns}
    arrows = [
        f"{_LATEX_ARROWS[d]}: {text}"
        for d, text in (
            ("lower", "lower is better"),
            ("higher", "higher is better"),
            ("match_gt", "closer to the block's GT row is better"),
        )
        if d in used
    ]
    if arrows:
        parts.append("; ".join(arrows) + ".")
    parts.append(
        "Per column and block, the best value is in \\textbf{bold} and the second best \\underline{underlined}; "
        "GT rows are not ranked."
    )
    bootstrap = next((t.intervals for t in tables if t.intervals is not None), None)
    if bootstrap is not None:
        parts.append(_interval_caption(bootstrap, intervals).strip())
    sources = sorted({t.published_source or "the paper" for t in tables if t.published is not None})
    if sources:
        parts.append(
            f"Rows in \\textit{{italics}} marked {_LATEX_PUBLISHED_MARK} are published numbers quoted from "
            f"{latex_escape(', '.join(sources))}, not computed here and not ranked."
        )
    return " ".join(parts)


def latex_document(body: str) -> str:
    """``body`` (a ``table``/``table*`` from :func:`to_latex_table1` or :func:`to_latex`) as a document that
    compiles on its own with pdflatex (packages: booktabs, graphicx)."""
    return (
        "\\documentclass{article}\n"
        "\\usepackage{booktabs}\n"
        "\\usepackage{graphicx}\n"
        "\\usepackage[margin=2cm]{geometry}\n"
        "\\begin{document}\n" + body + "\\end{document}\n"
    )
