"""Leaderboard ranking and exports on hand-made results whose best/second cells are known."""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from benchmark.results import MetricResult, Protocol, Results, RunInfo
from benchmark.tables import (
    format_value,
    leaderboard_frame,
    published_rows,
    render_terminal,
    to_csv,
    to_latex,
    to_markdown,
    write_leaderboard,
)

DIRECTIONS = {"fvd_16f": "lower", "av_conf": "higher", "av_offset": "match_gt", "blinks_per_s": "match_gt"}
DIRECTIONS.update(lse_c="higher", lse_d="lower")
PUBLISHED_CSV = """\
# a comment line, as in reports/reference/diffused_heads_table1.csv
dataset,method,FVD,FID,blinks_per_s,blink_dur_s,OFM,F_MSE,AV_offset,AV_conf,WER
LRW,Diffused Heads,71.88,3.94,0.35,0.28,70.71,19.69,-2,4.61,0.77
LRW,GT,,,0.53,0.28,72.02,27.34,-2,5.83,
CREMA,SDA,376.48,79.82,0.25,0.26,68.21,6.83,2,5.50,
"""


def result(
    name: str,
    label: str,
    kind: str,
    values: dict[str, float],
    *,
    finished: str = "2025-03-01T12:00:00+00:00",
    protocol: str = "abc123def456",
    dataset: str = "lrw",
    n_failed: int = 0,
) -> Results:
    run = RunInfo(name, kind, dataset, None, label, None, 0, None, {}, "2025-03-01T11:00:00+00:00", finished)
    return Results(
        run=run,
        protocol=Protocol("table1", protocol, dataset, "test", 10, {}),
        evaluators={"syncnet": {"weights": "syncnet_v2", "sha256": "deadbeef" * 8}},
        metrics={k: MetricResult(v, 10 - n_failed, n_failed, DIRECTIONS[k]) for k, v in values.items()},
    )


@pytest.fixture
def runs() -> list[Results]:
    # fvd lower: B best, A second; av_conf higher: C best, A second;
    # av_offset match_gt (GT +1): C exact, B one away, A three away; blinks match_gt (GT 0.5): B 0.45, A 0.3, C 0.1
    return [
        result("a", "Alpha", "model", {"fvd_16f": 150.0, "av_conf": 6.0, "av_offset": -2, "blinks_per_s": 0.3}),
        result("b", "Beta", "external", {"fvd_16f": 80.25, "av_conf": 5.0, "av_offset": 0, "blinks_per_s": 0.45}),
        result("c", "Gamma", "baseline", {"fvd_16f": 300.0, "av_conf": 7.25, "av_offset": 1, "blinks_per_s": 0.1}),
        result("gt", "GT", "gt", {"fvd_16f": math.nan, "av_conf": 5.5, "av_offset": 1, "blinks_per_s": 0.5}),
    ]


def test_direction_aware_marks_in_markdown(runs: list[Results]) -> None:
    (table,) = leaderboard_frame(runs, "LRW")
    text = to_markdown(table)
    assert "| Method | FVD ↓ | Blinks/s →GT | AV offset →GT | AV conf. ↑ |" in text
    assert "- FVD is fvd\\_16f: I3D Kinetics-400 logits of 16-frame windows" in text  # the variant, in a footnote
    assert "| Alpha | <u>150.00</u> | <u>0.30</u> | -2 | <u>6.00</u> |" in text
    assert "| Beta | **80.25** | **0.45** | <u>0</u> | 5.00 |" in text
    assert "| Gamma | 300.00 | 0.10 | **+1** | **7.25** |" in text
    assert "| GT | – | 0.50 | +1 | 5.50 |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Method")]
    assert rows[-1].startswith("| GT |")
    assert "hash `abc123def456`" in text and "syncnet=syncnet\\_v2 (deadbeef)" in text


def test_direction_aware_marks_in_latex(runs: list[Results]) -> None:
    (table,) = leaderboard_frame(runs, "lrw")
    text = to_latex(table)
    header = r"Method & FVD $\downarrow$ & Blinks/s $\rightarrow$GT & AV offset $\rightarrow$GT"
    assert header + r" & AV conf. $\uparrow$ \\" in text
    assert r"Alpha & \underline{150.00} & \underline{0.30} & $-$2 & \underline{6.00} \\" in text
    assert r"Beta & \textbf{80.25} & \textbf{0.45} & \underline{0} & 5.00 \\" in text
    gamma_then_gt = [
        r"Gamma & 300.00 & 0.10 & \textbf{+1} & \textbf{7.25} \\",
        r"\midrule",
        r"GT & -- & 0.50 & +1 & 5.50 \\",
    ]
    assert "\n".join(gamma_then_gt) in text
    lines = text.splitlines()
    assert lines.index("\\toprule") < lines.index("\\bottomrule")
    assert lines[lines.index("\\bottomrule") - 1].startswith("GT &")
    assert "\\begin{tabular}{lrrrr}" in text and "\\caption{" in text and "abc123def456" in text
    assert text.count("\\begin{table}") == 1 and text.count("\\end{table}") == 1


def test_gt_row_is_last_and_never_ranked(runs: list[Results]) -> None:
    # a GT row that would win every column if it were ranked
    runs[-1] = result("gt", "GT", "gt", {"fvd_16f": 1.0, "av_conf": 99.0, "av_offset": 1, "blinks_per_s": 0.5})
    (table,) = leaderboard_frame(list(reversed(runs)), "lrw")
    assert list(table.frame["method"]) == ["Alpha", "Beta", "Gamma", "GT"]
    assert table.ranks.iloc[-1].isna().all()
    assert table.mark(1, "fvd_16f") == "best"


def test_match_gt_is_not_ranked_without_a_gt_row(runs: list[Results]) -> None:
    (table,) = leaderboard_frame(runs[:3], "lrw")
    assert table.ranks["av_offset"].isna().all() and table.ranks["blinks_per_s"].isna().all()
    assert table.ranks["fvd_16f"].notna().all()
    assert any("not ranked" in note for note in table.notes)


def test_ties_share_the_rank_and_nan_never_ranks() -> None:
    runs = [
        result("a", "A", "model", {"fvd_16f": 10.0, "blinks_per_s": 0.25}),
        result("b", "B", "model", {"fvd_16f": 10.0, "blinks_per_s": 0.23}),  # |0.25-0.24| == |0.23-0.24|
        result("c", "C", "model", {"fvd_16f": 12.0, "blinks_per_s": math.nan}),
        result("d", "D", "model", {"fvd_16f": math.nan, "blinks_per_s": 0.5}),
        result("gt", "GT", "gt", {"blinks_per_s": 0.24}),
    ]
    (table,) = leaderboard_frame(runs, "lrw")
    marks = {m: [table.mark(i, m) for i in range(4)] for m in ("fvd_16f", "blinks_per_s")}
    assert marks["fvd_16f"] == ["best", "best", "second", None]
    assert marks["blinks_per_s"] == ["best", "best", None, "second"]


def test_rows_that_read_the_same_are_a_tie() -> None:
    """Every model's 0.00 blink rate is nobody's best; two FVDs printed alike are one rank."""
    runs = [
        result("a", "A", "model", {"blinks_per_s": 0.0, "fvd_16f": 10.001, "av_conf": 0.3}),
        result("b", "B", "model", {"blinks_per_s": 0.0, "fvd_16f": 10.0012, "av_conf": 0.2}),
        result("c", "C", "model", {"blinks_per_s": 0.0, "fvd_16f": 11.0, "av_conf": 0.1}),
        result("gt", "GT", "gt", {"blinks_per_s": 0.41}),
    ]
    (table,) = leaderboard_frame(runs, "lrw")
    assert [table.mark(i, "blinks_per_s") for i in range(3)] == [None, None, None]
    assert format_value("fvd_16f", 10.001) == format_value("fvd_16f", 10.0012)
    assert [table.mark(i, "fvd_16f") for i in range(3)] == ["best", "best", "second"]
    assert [table.mark(i, "av_conf") for i in range(3)] == ["best", "second", None]
    md_rows = [line for line in to_markdown(table).splitlines() if line.startswith("| A ") or line.startswith("| B ")]
    assert md_rows and all("**0.00**" not in line for line in md_rows)


def test_one_number_is_one_column() -> None:
    """LSE-C is the clip mean of the AV confidence: equal in every row, one column under both names; a protocol
    where they differ keeps both."""
    same = [
        result("a", "A", "model", {"av_conf": 0.31, "lse_c": 0.31, "lse_d": 0.9}),
        result("b", "B", "model", {"av_conf": 0.12, "lse_c": 0.12, "lse_d": 1.1}),
    ]
    (table,) = leaderboard_frame(same, "lrw")
    assert [c.header for c in table.columns] == ["AV conf. / LSE-C", "LSE-D"]
    assert "lse_c" not in table.frame.columns and table.mark(0, "av_conf") == "best"
    assert "AV conf. / LSE-C" in to_markdown(table)
    csv = pd.read_csv(io.StringIO(to_csv(table)))
    assert list(csv["lse_c"]) == list(csv["av_conf"]) == [0.31, 0.12]  # the data keeps both names
    differ = [same[0], result("b", "B", "model", {"av_conf": 0.12, "lse_c": 0.13, "lse_d": 1.1})]
    (table,) = leaderboard_frame(differ, "lrw")
    assert [c.header for c in table.columns] == ["AV conf.", "LSE-D", "LSE-C"]
    assert any("LSE-C differs from AV conf." in n for n in table.notes)


def test_different_protocols_make_different_tables(runs: list[Results]) -> None:
    other = result("a", "Alpha", "model", {"fvd_16f": 1.0}, protocol="fff000fff000")
    crema = result("a", "Alpha", "model", {"fvd_16f": 2.0}, dataset="crema")
    tables = leaderboard_frame([*runs, other, crema], None)
    assert [(t.dataset, t.protocol_hash) for t in tables] == [
        ("crema", "abc123def456"),
        ("lrw", "abc123def456"),
        ("lrw", "fff000fff000"),
    ]
    # the run with FVD 1.0 under another protocol does not take "best" from Beta
    assert tables[1].mark(1, "fvd_16f") == "best"
    assert "fff000fff000" in tables[2].title and "lrw" in tables[2].title and "table1" in tables[2].title
    assert len(leaderboard_frame([*runs, other, crema], "crema")) == 1


def test_newest_duplicate_run_wins(runs: list[Results]) -> None:
    newer = result("a", "Alpha", "model", {"fvd_16f": 50.0}, finished="2025-03-02T09:00:00+00:00")
    older = result("b", "Beta", "external", {"fvd_16f": 1.0}, finished="2025-02-01T09:00:00+00:00")
    (table,) = leaderboard_frame([newer, *runs, older], "lrw")
    assert list(table.frame["name"]) == ["a", "b", "c", "gt"]
    assert table.frame.set_index("name").at["a", "fvd_16f"] == 50.0
    assert table.frame.set_index("name").at["b", "fvd_16f"] == 80.25
    assert table.mark(0, "fvd_16f") == "best"


def test_duplicate_labels_are_told_apart() -> None:
    runs = [result("w-seed0", "Wav2Lip", "model", {"fvd_16f": 1.0}), result("w-seed1", "Wav2Lip", "model", {})]
    (table,) = leaderboard_frame(runs, "lrw")
    assert list(table.frame["method"]) == ["Wav2Lip (w-seed0)", "Wav2Lip (w-seed1)"]


def test_published_rows_are_a_separate_unranked_block(tmp_path: Path, runs: list[Results]) -> None:
    csv_path = tmp_path / "table1.csv"
    csv_path.write_text(PUBLISHED_CSV)
    published = published_rows(csv_path, "lrw")
    assert list(published["method"]) == ["Diffused Heads", "GT"]
    assert {"fvd", "fid", "blink_dur", "fmse", "av_offset", "wer"} <= set(published.columns)
    assert math.isnan(published.at[1, "fvd"]) and published.at[0, "av_offset"] == -2

    # the published FVD (71.88) is below every FVD of ours: it must not take "best"
    (table,) = leaderboard_frame(runs, "lrw", published=csv_path)
    assert table.mark(1, "fvd_16f") == "best"
    md = to_markdown(table)
    ours, theirs = md.split("*Published")
    assert "**" in ours and "**" not in theirs and "<u>" not in theirs
    assert "| Diffused Heads | 71.88 | 3.94 | 0.35 | 0.28 | 70.71 | 19.69 | -2 | 4.61 | 0.77 |" in theirs
    tex = to_latex(table)
    block = tex.split("Published")[-1]
    assert "\\textbf" not in block and "\\underline" not in block
    assert "Diffused Heads & 71.88 & 3.94 & 0.35 & 0.28 & 70.71 & 19.69 & $-$2 & 4.61 & 0.77 \\\\" in block
    # our GT row stays the last row of our block, with the rule before it
    assert "\\midrule\nGT & -- & -- & 0.50 & -- & -- & -- & +1 & 5.50 & -- \\\\\n\\midrule\n\\multicolumn" in tex
    term = render_terminal(table)
    assert "published (not ranked)" in term and "*" not in term.split("published (not ranked)")[1].split("\n* ")[0]

    only = leaderboard_frame([], "crema", published=csv_path)
    assert len(only) == 1 and only[0].frame.empty and list(only[0].published["method"]) == ["SDA"]


def test_csv_export_has_full_precision_and_meta_columns(runs: list[Results]) -> None:
    runs[0].metrics["fvd_16f"].value = 1 / 3
    (table,) = leaderboard_frame(runs, "lrw")
    frame = pd.read_csv(io.StringIO(to_csv(table)))
    assert list(frame.columns[:7]) == ["method", "kind", "name", "dataset", "protocol", "protocol_hash", "n_clips"]
    assert list(frame.columns[7:]) == ["fvd_16f", "blinks_per_s", "av_offset", "av_conf"]
    assert frame.at[0, "fvd_16f"] == 1 / 3
    assert list(frame["kind"]) == ["model", "external", "baseline", "gt"]
    assert (frame["n_clips"] == 10).all()


def test_write_leaderboard_paths_and_errors(tmp_path: Path, runs: list[Results]) -> None:
    path = write_leaderboard(runs, "lrw", "markdown", reports_dir=tmp_path)
    assert path == tmp_path / "leaderboard_lrw.md" and "**80.25**" in path.read_text()
    assert write_leaderboard(runs, "lrw", "latex", reports_dir=tmp_path).suffix == ".tex"
    out = write_leaderboard(runs, None, "csv", out=tmp_path / "x" / "board.csv")
    assert out.read_text().startswith("method,kind,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leaderboard_lrw.md", "leaderboard_lrw.tex", "x"]
    with pytest.raises(ValueError, match="crema.*lrw"):
        write_leaderboard(runs, "crema", "csv", reports_dir=tmp_path)
    with pytest.raises(ValueError, match="format.*write_report"):
        write_leaderboard(runs, "lrw", "html", reports_dir=tmp_path)


def test_terminal_marks_and_failures(runs: list[Results]) -> None:
    runs[1] = result(
        "b", "Beta", "external", {"fvd_16f": 80.25, "av_conf": 5.0, "av_offset": 0, "blinks_per_s": 0.45}, n_failed=2
    )
    (table,) = leaderboard_frame(runs, "lrw")
    text = render_terminal(table)
    beta = next(line for line in text.splitlines() if line.startswith("Beta"))
    # 2 clips unscored: never marked best against rows that scored every clip, and the table says why
    assert "*" not in beta and "_" not in beta.removeprefix("Beta")
    assert "Beta: 2 of 10 clips could not be scored" in text and "Beta: not ranked on" in text
    widths = {len(line) for line in text.splitlines()[1:4]}
    assert len(widths) == 1  # rule and header are aligned


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("av_offset", -2.0, "-2"),
        ("av_offset", 1.0, "+1"),
        ("av_offset", 0.0, "0"),
        ("av_offset", 0.4, "+0.4"),
        ("av_offset", -0.04, "0.0"),
        ("fvd_16f", 198.844, "198.84"),
        ("blinks_per_s", 0.5234, "0.52"),
        ("lse_d", 6.4689, "6.469"),
        ("wer", 0.771, "0.77"),
        ("fid", math.nan, "–"),
        ("fid", None, "–"),
        ("something_new", 0.12345, "0.123"),
    ],
)
def test_format_value(metric: str, value: float | None, text: str) -> None:
    assert format_value(metric, value) == text


# ------------------------------------------------------------------ honest marking of non-official evaluators


def _marked_runs() -> list[Results]:
    runs = []
    for name, label, kind, wer, conf in (("a", "Alpha", "model", 0.4, 6.0), ("g", "GT", "gt", 0.1, 7.0)):
        run = RunInfo(name, kind, "synthetic", None, label, None, 0, None, {}, "2025-03-01T11:00:00+00:00", "x")
        runs.append(
            Results(
                run=run,
                protocol=Protocol("synthetic-test", "feedc0ffee12", "synthetic", "test", 10, {}),
                evaluators={
                    "lipreader": {"arch": "lipreader", "weights": None, "sha256": "ab" * 32, "status": "random"},
                    # the SyncNet record of the spine: calibrated: bool, no status
                    "syncnet": {"name": "sync_eval_small-synthetic-1234abcd", "sha256": "cd" * 32, "calibrated": True},
                },
                metrics={
                    "wer": MetricResult(wer, 10, 0, "lower"),
                    "av_conf": MetricResult(conf, 10, 0, "higher"),
                },
            )
        )
    return runs


def test_evaluator_status_normalisation() -> None:
    from benchmark.tables import evaluator_status

    assert evaluator_status({"status": "random"}) == "random"
    assert evaluator_status({"calibrated": True}) == "calibrated"
    assert evaluator_status({"calibrated": False, "source": "official (syncnet_v2.model)"}) == "official"
    assert evaluator_status({"calibrated": False, "source": "/home/me/mine.pt"}) == "trained"
    assert evaluator_status({"weights": "syncnet_v2"}) is None


def test_random_and_calibrated_evaluators_are_marked_in_every_export(tmp_path: Path) -> None:
    runs = _marked_runs()
    (table,) = leaderboard_frame(runs, "synthetic")
    csv = pd.read_csv(io.StringIO(to_csv(table)))
    assert list(csv.columns[-1:]) == ["evaluator_marks"]
    assert csv.at[0, "wer"] == 0.4  # numbers stay numbers
    assert set(csv["evaluator_marks"]) == {"av_conf: calibrated; wer: random"}

    md = to_markdown(table)
    assert f"{format_value('wer', 0.4)}†" in md and f"{format_value('av_conf', 6.0)}‡" in md
    assert "random-init evaluator: not comparable to published numbers (lipreader)" in md
    assert "sync\\_eval\\_small-synthetic-1234abcd" in md

    tex = to_latex(table)
    assert r"$^{\dagger}$" in tex and r"$^{\ddagger}$" in tex
    assert "not comparable to published numbers" in tex

    term = render_terminal(table)
    assert "†" in term and "‡ evaluator calibrated" in term

    # a results.json round trip keeps the status, and the written files carry the marks
    for result, name in zip(runs, ("a", "g")):
        result.save(tmp_path / name / "results.json")
    from benchmark.results import load_results

    loaded = [load_results(tmp_path / n / "results.json") for n in ("a", "g")]
    for fmt, mark in (("csv", "wer: random"), ("latex", r"\dag"), ("markdown", "†")):
        assert mark in write_leaderboard(loaded, "synthetic", fmt, reports_dir=tmp_path).read_text()


def test_official_evaluators_are_not_marked() -> None:
    runs = _marked_runs()
    for r in runs:
        r.evaluators["lipreader"]["status"] = "official"
        r.evaluators["syncnet"] = {"name": "syncnet_v2", "calibrated": False, "source": "official (syncnet_v2.model)"}
    (table,) = leaderboard_frame(runs, "synthetic")
    assert "evaluator_marks" not in pd.read_csv(io.StringIO(to_csv(table))).columns
    assert "†" not in to_markdown(table) and "‡" not in to_markdown(table) and not table.footnotes


# ------------------------------------------------------------------ Table 1 of Diffused Heads: one table, blocks


def _two_datasets() -> list[Results]:
    crema = [
        result("a", "Alpha", "model", {"fvd_16f": 10.0, "av_conf": 6.0}, dataset="crema"),
        result("b", "Beta", "model", {"fvd_16f": 20.0, "av_conf": 7.0}, dataset="crema"),
        result("gt", "GT", "gt", {"av_conf": 6.5}, dataset="crema"),
    ]
    lrw = [
        result("a", "Alpha", "model", {"fvd_16f": 150.0, "av_conf": 6.0, "av_offset": -2, "blinks_per_s": 0.3}),
        result("b", "Beta", "external", {"fvd_16f": 80.25, "av_conf": 5.0, "av_offset": 0, "blinks_per_s": 0.45}),
        result("gt", "GT", "gt", {"fvd_16f": math.nan, "av_conf": 5.5, "av_offset": 1, "blinks_per_s": 0.5}),
    ]
    return [*crema, *lrw]


def _blocks(tex: str) -> dict[str, list[str]]:
    """Block label -> its row lines, from a to_latex_table1 output."""
    body = tex.split("\\midrule\n", 1)[1].split("\\bottomrule")[0]
    blocks = {}
    for chunk in body.split("\\midrule\n"):
        lines = [line for line in chunk.splitlines() if line]
        label = re.match(r"\\multicolumn\{\d+\}\{l\}\{\\textbf\{([^}]+)\}", lines[0]).group(1)
        blocks[label] = lines[1:]
    return blocks


def test_table1_latex_blocks_marks_and_gt_last(tmp_path: Path) -> None:
    from benchmark.tables import to_latex_table1

    csv_path = tmp_path / "table1.csv"
    csv_path.write_text(PUBLISHED_CSV)
    tables = leaderboard_frame(_two_datasets(), None, published=csv_path)
    tex = to_latex_table1(tables)
    assert tex.count("\\begin{table*}") == 1 and tex.count("\\begin{tabular}") == 1
    assert tex.index("\\toprule") < tex.index("\\bottomrule")
    header = tex.split("\\toprule\n")[1].splitlines()[0]
    assert header.startswith(r"Method & FVD $\downarrow$ & FID $\downarrow$ & Blinks/s $\rightarrow$GT")
    assert r"AV conf. $\uparrow$ & WER $\downarrow$ \\" in header
    assert r"$\rightarrow$GT: closer to the block's GT row is better" in tex  # the match_gt symbol, explained
    blocks = _blocks(tex)
    assert list(blocks) == ["LRW", "CREMA-D"]  # the paper's order, whatever the alphabet says
    lrw, crema = blocks["LRW"], blocks["CREMA-D"]
    # marks are per block: Alpha's FVD 10 is best in CREMA, not compared with LRW's 80.25
    assert lrw[0] == (
        r"Alpha & \underline{150.00} & -- & \underline{0.30} & -- & -- & -- & \underline{$-$2} & \textbf{6.00} & -- \\"
    )
    assert (
        lrw[1] == r"Beta & \textbf{80.25} & -- & \textbf{0.45} & -- & -- & -- & \textbf{0} & \underline{5.00} & -- \\"
    )
    assert crema[0].startswith(r"Alpha & \textbf{10.00} & ") and r"\underline{6.00}" in crema[0]
    assert crema[1].startswith(r"Beta & \underline{20.00} & ") and r"\textbf{7.00}" in crema[1]
    # published rows: italic, marked, never bold/underlined, listed before our GT, which closes each block
    published = [line for line in lrw if line.startswith("\\textit")]
    assert [line.split(" & ")[0] for line in published] == [
        r"\textit{Diffused Heads}$^{\S}$",
        r"\textit{GT}$^{\S}$",
    ]
    assert "\\textit{71.88}" in published[0] and not any("\\textbf" in line for line in published)
    assert crema[2].startswith(r"\textit{SDA}$^{\S}$ & \textit{376.48}")
    for block in (lrw, crema):
        assert block[-2] == "\\cmidrule{1-10}" and block[-1].startswith("GT & ")
    assert lrw[-1] == r"GT & -- & -- & 0.50 & -- & -- & -- & +1 & 5.50 & -- \\"
    assert r"marked $^{\S}$ are published numbers quoted from table1.csv" in tex


def test_table1_latex_through_write_leaderboard(tmp_path: Path) -> None:
    runs = [*_two_datasets(), *_marked_runs()]
    path = write_leaderboard(runs, None, "latex", reports_dir=tmp_path)
    tex = path.read_text()
    assert path.name == "leaderboard_all.tex" and "\\documentclass" not in tex
    assert list(_blocks(tex)) == ["LRW", "CREMA-D", "Synthetic"]
    assert r"0.40$^{\dagger}$" in tex and "not comparable to published numbers (lipreader)." in tex
    doc = write_leaderboard(runs, "lrw", "latex", out=tmp_path / "doc.tex", standalone=True).read_text()
    assert doc.startswith("\\documentclass") and doc.rstrip().endswith("\\end{document}")
    assert "\\resizebox" in doc and list(_blocks(doc)) == ["LRW"]
    # markdown and csv keep every dataset
    md = write_leaderboard(runs, None, "markdown", reports_dir=tmp_path).read_text()
    assert md.count("| Method |") == 3
    csv = pd.read_csv(tmp_path / write_leaderboard(runs, None, "csv", reports_dir=tmp_path).name)
    assert sorted(set(csv["dataset"])) == ["crema", "lrw", "synthetic"] and len(csv) == 8


@pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="pdflatex is not installed (apt-get install texlive-latex-recommended)"
)
@pytest.mark.parametrize("export", ["table1_fit", "table1", "per_table"])
def test_every_latex_export_compiles_with_pdflatex(tmp_path: Path, export: str) -> None:
    from benchmark.tables import latex_document, to_latex_table1

    csv_path = tmp_path / "table1.csv"
    csv_path.write_text(PUBLISHED_CSV)
    runs = [*_two_datasets(), *_marked_runs()]
    runs[0].run.label = "Method_with #special & chars 100%"
    tables = leaderboard_frame(runs, None, published=csv_path)
    if export == "per_table":
        body = "\n".join(to_latex(t) for t in tables)
    else:
        body = to_latex_table1(tables, fit_width=export == "table1_fit")
    (tmp_path / "t.tex").write_text(latex_document(body))
    # an empty font cache: a glyph that only METAFONT can make (text-mode \dag in TS1) would show as mktexpk
    env = {**os.environ, "TEXMFVAR": str(tmp_path / "texmf-var")}
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "t.pdf").stat().st_size > 1000
    assert "Undefined control sequence" not in proc.stdout and "Missing $" not in proc.stdout
    assert "mktex" not in proc.stdout + proc.stderr
