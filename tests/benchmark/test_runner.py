"""End to end on a small synthetic corpus: corpus -> calibrate -> train -> generate -> evaluate -> record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.results import load_results


def small_overrides(out_dir: Path, expert: bool = True, **extra) -> list[str]:
    synth = {"seed": 3, "n_speakers": 4, "n_clips": 24, "size": 96, "min_seconds": 1.2, "max_seconds": 1.8}
    items = {f"dataset.synth.{k}": v for k, v in synth.items()}
    items.update(
        {
            "run.out_dir": str(out_dir),
            "run.limit": 3,
            "run.progress": "false",
            "trainer.max_steps": 4,
            "trainer.max_time": "00:00:01:00",
            "trainer.val_check_interval": 2,
            "trainer.limit_val_batches": 2,
            "metrics.calibrate.seconds": 8,
            "metrics.calibrate.min_steps": 10,
        }
    )
    if expert:
        items.update(
            {
                "syncnet_expert.trainer.max_steps": 4,
                "syncnet_expert.trainer.val_check_interval": 2,
                "syncnet_expert.trainer.limit_val_batches": 2,
            }
        )
    items.update(extra)
    return [f"{k}={v}" for k, v in items.items()]


def run_args(out_dir: Path, **extra) -> list[str]:
    return [
        "run",
        "--model",
        "wav2lip",
        "--dataset",
        "synthetic",
        "--preset",
        "tiny",
        *small_overrides(out_dir, **extra),
    ]


def assert_same_scores(out: Path, name_a: str, name_b: str) -> None:
    a = load_results(out / "synthetic" / name_a / "results.json")
    b = load_results(out / "synthetic" / name_b / "results.json")
    assert b.protocol.hash == a.protocol.hash
    for metric, m in a.metrics.items():
        assert b.metrics[metric].value == pytest.approx(m.value, abs=1e-9), metric


@pytest.fixture(scope="module")
def wav2lip_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    args = run_args(out)
    assert main(args) == 0
    return out, args


def test_run_records_results_gt_and_samples(wav2lip_run, capsys):
    out, _ = wav2lip_run
    run_dir = out / "synthetic" / "wav2lip"
    res = load_results(run_dir / "results.json")
    assert res.run.kind == "model" and res.run.model == "wav2lip"
    assert set(res.metrics) == {"ofm", "fmse", "av_offset", "av_conf", "lse_d", "lse_c"}
    assert all(m.n + m.n_failed == 3 for m in res.metrics.values())
    assert res.metrics["ofm"].mode == "paper"
    ev = res.evaluators["syncnet"]
    assert ev["calibrated"] is True and len(ev["sha256"]) == 64
    assert res.run.checkpoint["source"] == "trained" and len(res.run.checkpoint["sha256"]) == 64
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all("lse_c" in r["values"] for r in rows)
    assert len(list((run_dir / "generated").glob("*.mp4"))) == 3
    gts = list((out / "synthetic").glob("GT-*/results.json"))
    assert len(gts) == 1
    gt = load_results(gts[0])
    assert gt.protocol.hash == res.protocol.hash and gt.run.kind == "gt"
    # the expert was trained first, as its own run
    assert (out / "synthetic" / "syncnet_expert" / "model.pt").exists()


def test_second_run_reuses_trained_model(wav2lip_run, capsys):
    out, args = wav2lip_run
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "reusing" in text and "[train] wav2lip: training" not in text
    assert "GT" in text  # the printed leaderboard has the GT row


def test_a_generation_setting_reuses_the_weights_and_regenerates_the_clips(wav2lip_run, capsys):
    """A setting only generate() reads (here the frames per forward pass) neither retrains the model nor keeps
    clips made with the old setting."""
    out, args = wav2lip_run
    stamp = out / "synthetic" / "wav2lip" / "generated" / "stamp.json"
    before = json.loads(stamp.read_text())
    assert main([*args, "model.params.generate_batch_size=8"]) == 0
    text = capsys.readouterr().out
    assert "reusing" in text and "[train] wav2lip: training" not in text
    after = json.loads(stamp.read_text())
    assert after["weights"] == before["weights"] and after["settings"] != before["settings"]


def test_evaluate_folder_matches_run(wav2lip_run, capsys):
    out, _ = wav2lip_run
    gen = out / "synthetic" / "wav2lip" / "generated"
    args = [
        "evaluate",
        "--videos",
        str(gen),
        "--dataset",
        "synthetic",
        "--name",
        "copy",
        *small_overrides(out, expert=False),
    ]
    assert main(args) == 0
    assert load_results(out / "synthetic" / "copy" / "results.json").run.kind == "external"
    assert_same_scores(out, "wav2lip", "copy")


def test_leaderboard_exports(wav2lip_run, tmp_path, capsys):
    out, _ = wav2lip_run
    path = tmp_path / "board.md"
    assert (
        main(["leaderboard", "--runs", str(out), "--dataset", "synthetic", "--format", "markdown", "--out", str(path)])
        == 0
    )
    text = path.read_text()
    assert "| GT |" in text and "Wav2Lip" in text and "↑" in text
    csv = tmp_path / "board.csv"
    assert (
        main(["leaderboard", "--runs", str(out), "--dataset", "synthetic", "--format", "csv", "--out", str(csv)]) == 0
    )
    assert "lse_c" in csv.read_text()


def test_ddp_two_processes_train(wav2lip_run, tmp_path):
    """`trainer.devices=2 trainer.strategy=ddp` trains on CPU (gloo) in two processes, then evaluates."""
    out, _ = wav2lip_run
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    ddp = {"trainer.devices": 2, "trainer.strategy": "ddp", "trainer.accelerator": "cpu", "run.limit": 1}
    cmd = [sys.executable, "-m", "benchmark.cli", *run_args(tmp_path, **ddp)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics_csv = tmp_path / "synthetic" / "wav2lip" / "logs" / "metrics.csv"
    assert metrics_csv.exists()
    assert (tmp_path / "synthetic" / "wav2lip" / "results.json").exists()
    assert "[train] wav2lip: 4 steps in 2 process(es)" in proc.stdout


def test_run_from_checkpoint_reproduces_scores(wav2lip_run):
    """run.checkpoint loads weights (our model.pt, a Lightning-style dict) instead of training."""
    out, _ = wav2lip_run
    ckpt = out / "synthetic" / "wav2lip" / "model.pt"
    assert main(run_args(out, **{"run.checkpoint": str(ckpt), "run.name": "from_ckpt"})) == 0
    assert load_results(out / "synthetic" / "from_ckpt" / "results.json").run.checkpoint["source"] == "checkpoint"
    assert_same_scores(out, "wav2lip", "from_ckpt")
