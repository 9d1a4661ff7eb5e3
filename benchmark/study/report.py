"""`bench study report`: the stored votes as the Diffused Heads paper's Table 2: one row per method and one for the
real clips, with how often raters judged its clips real (Wilson interval) and its mean opinion scores (t-interval),
plus Fleiss' kappa over the raters' real/generated answers.

Attention checks: a rater who called any attention clip real failed; all their votes are left out and counted in
the caption. A rater who has not reached an attention clip yet has not failed one.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.results import write_text_atomic
from benchmark.study.manifest import VOTES_DB, Manifest, load_manifest
from benchmark.study.stats import Interval, fleiss_kappa, mean_interval, wilson_interval
from benchmark.study.store import ANSWERS, Vote, VoteStore

__all__ = ["FORMATS", "StudyReport", "StudyRow", "render", "study_report", "write_study_report"]

FORMATS = {"csv": "csv", "latex": "tex", "markdown": "md", "html": "html"}
_HEADERS = ("Method", "Judged real (%) ↑", "Lip sync ↑", "Naturalness ↑", "Votes")


@dataclass(frozen=True)
class StudyRow:
    method: str
    kind: str  # generated | real
    judged_real: Interval  # a proportion in [0, 1]
    lipsync: Interval
    naturalness: Interval
    clips: int


@dataclass
class StudyReport:
    dataset: str
    level: float
    rows: list[StudyRow]
    kappa: float
    kappa_clips: int  # clips with two or more answers, the items kappa is over
    raters: int  # raters with at least one vote counted
    failed_raters: int  # raters left out for a failed attention check
    failed_votes: int  # the votes left out with them
    notes: list[str] = field(default_factory=list)

    @property
    def caption(self) -> str:
        pct = f"{self.level * 100:g}%"
        kappa = "–" if self.kappa != self.kappa else f"{self.kappa:.3f}"
        return (
            f"Human study on {self.dataset}: share of answers 'real' with its {pct} Wilson interval [low, high]; "
            f"mean opinion scores (1–5) ± half their {pct} t-interval. Fleiss' κ = {kappa} over {self.kappa_clips} "
            f"clips rated by two or more raters. {self.raters} raters counted; {self.failed_raters} failed an "
            f"attention check and their {self.failed_votes} votes are excluded."
        )


def study_report(study_dir: str | Path, level: float = 0.95) -> StudyReport:
    """The report of the study in ``study_dir`` from its stored votes."""
    manifest = load_manifest(study_dir)
    votes = VoteStore(Path(study_dir) / VOTES_DB, [c.token for c in manifest.clips]).votes()
    return compute_report(manifest, votes, level)


def compute_report(manifest: Manifest, votes: list[Vote], level: float = 0.95) -> StudyReport:
    clips = manifest.by_token()
    votes = [v for v in votes if v.clip in clips]
    failed = {v.rater for v in votes if clips[v.clip].kind == "attention" and v.answer == "real"}
    counted = [v for v in votes if v.rater not in failed and clips[v.clip].kind != "attention"]
    rows = []
    for method in manifest.rows():
        mine = [v for v in counted if clips[v.clip].method == method]
        kind = next(c.kind for c in manifest.clips if c.method == method)
        rows.append(
            StudyRow(
                method,
                kind,
                wilson_interval(sum(v.answer == "real" for v in mine), len(mine), level),
                mean_interval([float(v.lipsync) for v in mine if v.lipsync is not None], level),
                mean_interval([float(v.naturalness) for v in mine if v.naturalness is not None], level),
                sum(c.method == method for c in manifest.clips),
            )
        )
    per_clip: dict[str, list[int]] = {}
    for v in counted:
        per_clip.setdefault(v.clip, [0] * len(ANSWERS))[ANSWERS.index(v.answer)] += 1
    items = [c for c in per_clip.values() if sum(c) >= 2]
    notes = []
    if not counted:
        notes.append("no votes counted yet")
    return StudyReport(
        dataset=manifest.dataset,
        level=level,
        rows=rows,
        kappa=fleiss_kappa(items),
        kappa_clips=len(items),
        raters=len({v.rater for v in counted}),
        failed_raters=len(failed),
        failed_votes=sum(v.rater in failed for v in votes),
        notes=notes,
    )


def _pct(interval: Interval) -> str:
    if interval.n == 0:
        return "–"
    # Wilson intervals are not symmetric about k/n (they lean towards 50%): both bounds, not ± half the width
    return f"{100 * interval.value:.1f} [{100 * interval.low:.1f}, {100 * interval.high:.1f}]"


def _mos(interval: Interval) -> str:
    if interval.n == 0:
        return "–"
    if interval.n == 1:
        return f"{interval.value:.2f}"
    return f"{interval.value:.2f} ± {interval.half_width:.2f}"


def _cells(report: StudyReport) -> list[list[str]]:
    return [
        [r.method, _pct(r.judged_real), _mos(r.lipsync), _mos(r.naturalness), str(r.judged_real.n)] for r in report.rows
    ]


def _frame(report: StudyReport) -> pd.DataFrame:
    records = []
    for r in report.rows:
        record: dict[str, object] = {"method": r.method, "kind": r.kind, "clips": r.clips, "votes": r.judged_real.n}
        record["judged_real"] = r.judged_real.value
        record["judged_real_ci_low"], record["judged_real_ci_high"] = r.judged_real.low, r.judged_real.high
        for name, interval in (("lipsync", r.lipsync), ("naturalness", r.naturalness)):
            record[f"{name}_mos"], record[f"{name}_n"] = interval.value, interval.n
            record[f"{name}_ci_low"], record[f"{name}_ci_high"] = interval.low, interval.high
        records.append(record)
    frame = pd.DataFrame(records)
    # study-wide facts on every row, as the leaderboard CSV repeats its protocol: one file stays self-describing
    frame["dataset"], frame["level"], frame["fleiss_kappa"] = report.dataset, report.level, report.kappa
    frame["raters"], frame["failed_raters"] = report.raters, report.failed_raters
    return frame


def to_text(report: StudyReport) -> str:
    rows = [list(_HEADERS), *_cells(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADERS))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows
    ]
    rule = "-" * len(lines[0])
    return "\n".join([rule, lines[0], rule, *lines[1:], rule, report.caption, *report.notes]) + "\n"


def _md(text: str) -> str:
    return re.sub(r"([\\|*_<>\[\]`])", r"\\\1", text)


def to_markdown(report: StudyReport) -> str:
    lines = [f"### Human study: {_md(report.dataset)}", "", "| " + " | ".join(_HEADERS) + " |"]
    lines.append("|:---|" + "---:|" * (len(_HEADERS) - 1))
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in _cells(report)]
    return "\n".join([*lines, "", _md(report.caption), *(f"- {_md(n)}" for n in report.notes)]) + "\n"


def to_latex(report: StudyReport) -> str:
    from benchmark.tables.latex import latex_escape

    def cell(text: str) -> str:
        text = latex_escape(text)
        return text.replace("[", "{[}").replace("]", "{]}")  # a bracket opening a row would read as \\[..]

    body = [" & ".join(cell(c) for c in row[:4]) + r" \\" for row in _cells(report)]
    real = [i for i, r in enumerate(report.rows) if r.kind == "real"]
    if real and real[0] > 0:
        body.insert(real[0], r"\midrule")
    head = " & ".join(latex_escape(h) for h in _HEADERS[:4]) + r" \\"
    return (
        "\n".join(
            [
                r"\begin{table}[t]",
                r"\centering",
                r"\begin{tabular}{lccc}",
                r"\toprule",
                head,
                r"\midrule",
                *body,
                r"\bottomrule",
                r"\end{tabular}",
                r"\caption{" + latex_escape(report.caption).replace("κ", r"$\kappa$") + "}",
                r"\end{table}",
            ]
        )
        + "\n"
    )


def to_html(report: StudyReport) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEADERS)
    body = "".join(
        f'<tr class="{r.kind}">' + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
        for r, cells in zip(report.rows, _cells(report))
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    title = html.escape(f"Human study: {report.dataset}")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>'
        "body{font-family:sans-serif;margin:2rem}table{border-collapse:collapse}td,th{padding:.3rem .8rem;"
        "border-bottom:1px solid #ccc;text-align:right}td:first-child,th:first-child{text-align:left}"
        "tr.real td{border-top:2px solid #333}</style></head><body>"
        f"<h1>{title}</h1><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"<p>{html.escape(report.caption)}</p>" + (f"<ul>{notes}</ul>" if notes else "") + "</body></html>\n"
    )


def render(report: StudyReport, fmt: str) -> str:
    """The report as ``fmt``: csv | latex | markdown | html (the leaderboard's formats), or text (the terminal)."""
    if fmt == "csv":
        text: str = _frame(report).to_csv(index=False, lineterminator="\n")
        return text
    renderers = {"latex": to_latex, "markdown": to_markdown, "html": to_html, "text": to_text}
    if fmt not in renderers:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return renderers[fmt](report)


def write_study_report(report: StudyReport, fmt: str, out: Path) -> Path:
    return write_text_atomic(out, render(report, fmt))
