"""`bench table1` and protocols: one command writes the table; rows are reused; protocols are frozen overlays."""

from __future__ import annotations

import pytest
from test_runner import small_overrides

from benchmark.cli import main
from benchmark.config import ConfigError, compose, default_protocol, protocol_names
from benchmark.results import load_results
from benchmark.table1 import default_rows


def test_protocols_compose_and_are_checked():
    assert {"dh_table1_crema", "dh_table1_lrw", "dh_table1_synthetic", "standard"} <= set(protocol_names())
    assert default_protocol("crema") == "dh_table1_crema" and default_protocol("voxceleb2") is None
    cfg = compose("static", "synthetic", None, [], protocol="standard")
    assert cfg.run.protocol == "standard" and cfg.metrics.flow.mode == "standard"
    paper = compose("static", "synthetic", None, [], protocol="dh_table1_synthetic")
    assert paper.metrics.flow.mode == "paper" and "fvd_16f" in paper.metrics.names
    with pytest.raises(ConfigError, match="defined for dataset 'crema'"):
        compose("static", "synthetic", None, [], protocol="dh_table1_crema")
    with pytest.raises(ConfigError, match="Did you mean 'standard'"):
        compose("static", "synthetic", None, [], protocol="standart")


def test_default_rows_are_the_generators():
    rows = default_rows()
    assert {"wav2lip", "diffused_heads"} <= set(rows)
    assert not {"syncnet_expert", "static", "vasa_face"} & set(rows)  # components and baselines are not rows


def test_table1_writes_tables_and_reuses_finished_rows(tmp_path, capsys):
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    args = [
        "table1",
        "--dataset",
        "synthetic",
        "--models",
        "static",
        "--protocol",
        "standard",
        "--limit",
        "2",
        "--reports",
        str(reports),
        "--formats",
        "csv,markdown,latex,html",
        *small_overrides(runs, expert=False, **{"metrics.names": "[ofm,fmse]"}),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "protocol standard: 1 rows" in out
    csv = (reports / "table1_synthetic.csv").read_text()
    assert "Identity frame repeated" in csv and "GT" in csv and "ofm" in csv
    assert (reports / "table1_synthetic.md").exists()
    tex = (reports / "table1_synthetic.tex").read_text()
    assert "\\documentclass" in tex and "\\begin{table*}" in tex and "\\end{document}" in tex
    html = (reports / "table1_synthetic.html").read_text()
    assert "Identity frame repeated" in html and "<svg" in html
    res = load_results(runs / "synthetic" / "static" / "results.json")
    assert res.protocol.name == "standard" and res.protocol.settings["flow"]["mode"] == "standard"
    assert res.protocol.settings["fps"] == 25 and res.metrics["ofm"].n == 2

    assert main(args) == 0  # everything finished: nothing is trained, generated or scored again
    assert "1 reused" in capsys.readouterr().out


def test_scoring_the_gt_videos_with_evaluate_gives_the_gt_row(tmp_path):
    """`bench evaluate --videos` on the corpus's own files (flv in the CREMA-D layout) reproduces the GT row.

    SyncNet hears the corpus clip's audio here (`audio: reference`): CREMA-D's clips take their audio from
    AudioWAV/*.wav, while each flv carries its own lossy MP3 copy, which `audio: file` would score instead."""
    from benchmark import runner
    from benchmark.results import find_results

    runs = tmp_path / "runs"
    names = {"metrics.names": "[ofm,fmse,av_offset,av_conf,lse_d]", "metrics.sync.audio": "reference"}
    overrides = small_overrides(runs, expert=False, **names)
    corpus = runner.build_corpus(compose(None, "synthetic", None, overrides))
    corpus.ensure()
    folder = corpus.root / "VideoFlash"
    assert main(["evaluate", "--videos", str(folder), "--dataset", "synthetic", "--name", "gt_again", *overrides]) == 0
    (gt,) = [r for _, r in find_results(runs) if r.run.kind == "gt"]
    again = load_results(runs / "synthetic" / "gt_again" / "results.json")
    assert again.protocol.hash == gt.protocol.hash
    assert again.metrics.keys() == gt.metrics.keys()
    for name, m in gt.metrics.items():
        assert again.metrics[name].value == m.value, name
        assert again.metrics[name].n == m.n == 3
