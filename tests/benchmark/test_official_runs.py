"""Official weights score without training: `bench run ... run.checkpoint=NAME` loads, generates and scores."""

from __future__ import annotations

import pytest
import torch
from test_runner import small_overrides

from benchmark.cli import main
from benchmark.results import load_results
from benchmark.weights import import_weights


@pytest.fixture
def official_wav2lip(tmp_path, monkeypatch):
    """`wav2lip.pth` in the official training-checkpoint layout (DataParallel prefix, optimiser entries), imported
    into a fresh weights store. The paper-width generator has the official keys (test_weights checks the table)."""
    from models.wav2lip.nets import Wav2LipGenerator

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    net = Wav2LipGenerator(width=1.0)
    path = tmp_path / "wav2lip.pth"
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": sd, "optimizer": {}, "global_step": 250000, "global_epoch": 9}, path)
    import_weights(path, "wav2lip")
    return path


def _args(out, preset: str) -> list[str]:
    return [
        "run",
        "--model",
        "wav2lip",
        "--dataset",
        "synthetic",
        "--preset",
        preset,
        *small_overrides(out, expert=False, **{"run.checkpoint": "wav2lip", "run.limit": 2}),
    ]


def test_official_wav2lip_scores_without_training_anything(official_wav2lip, tmp_path, capsys):
    assert main(_args(tmp_path / "runs", "paper")) == 0
    out = capsys.readouterr().out
    assert "[train]" not in out and "[load] wav2lip" in out
    assert not (tmp_path / "runs" / "synthetic" / "syncnet_expert").exists()  # the expert was never trained
    res = load_results(tmp_path / "runs" / "synthetic" / "wav2lip" / "results.json")
    ckpt = res.run.checkpoint
    assert ckpt["source"] == "checkpoint" and ckpt["name"] == "wav2lip" and ckpt["status"] == "unverified"
    assert all(m.n == 2 for m in res.metrics.values())


def test_a_checkpoint_of_another_preset_is_refused_before_anything_runs(official_wav2lip, tmp_path, capsys):
    assert main(_args(tmp_path / "runs", "tiny")) == 2
    captured = capsys.readouterr()
    assert "'paper'" in captured.err and "[calibrate]" not in captured.out and "[train]" not in captured.out
