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


@pytest.mark.rehearsal
def test_released_diffused_heads_generates_end_to_end(tmp_path, monkeypatch, capsys):
    """The official CREMA Lightning checkpoint (RGB motion UNet under `unet.` and `diffusion.nn_backbone.`) and the
    SDA audio encoder, imported; `bench run --model diffused_heads --dataset crema run.checkpoint=...` then loads
    the UNet with RGB motion and the SDA front end read from the file, trains nothing, generates and scores. (The
    weights are random stand-ins of the official shapes; 2 sampling steps instead of 100 keep it to minutes.)"""
    from test_weights import _dh_views, _official_ckpt, _sda_file

    from data.synthetic.writer import synth_main

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))
    unet = _dh_views("diffused_heads_UNet_rgbmotion_state_dict.tsv")
    import_weights(_official_ckpt(tmp_path / "crema.ckpt", unet, foreign=True), "diffused_heads_crema")
    import_weights(_sda_file(tmp_path / "audio_encoder.pt"), "sda_audio_encoder")
    root = tmp_path / "crema"
    synth_main("crema", root, seed=0, n_clips=16, n_speakers=4, min_seconds=0.5, max_seconds=0.6, progress=False)
    settings = {
        "dataset.root": root,
        "run.out_dir": tmp_path / "runs",
        "run.limit": 1,
        "run.checkpoint": "diffused_heads_crema",
        "model.params.sample_steps": 2,
        "run.progress": "false",
        "metrics.sync.evaluator": "calibrated",
        "metrics.calibrate.min_steps": 5,
        "metrics.calibrate.max_steps": 5,
    }
    args = ["run", "--model", "diffused_heads", "--dataset", "crema", "--preset", "paper"]
    assert main([*args, *(f"{k}={v}" for k, v in settings.items())]) == 0
    out = capsys.readouterr().out
    assert "[train]" not in out and "[load] diffused_heads" in out
    res = load_results(tmp_path / "runs" / "crema" / "diffused_heads" / "results.json")
    ckpt = res.run.checkpoint
    assert ckpt["name"] == "diffused_heads_crema" and ckpt["audio_frontend"]["name"] == "sda"
    assert res.metrics["lse_c"].n == 1
