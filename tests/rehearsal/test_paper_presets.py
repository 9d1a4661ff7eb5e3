"""The paper-preset rehearsal tier (`pytest -m rehearsal`): every model's `--preset paper` wired end to end.

For each model, on a synthetic corpus written in CREMA-D's on-disk layout (read through the real-corpus path:
`bench data prepare` with the model's own crop, manifest, shards): train 2 optimiser batches at batch 1, writing a
checkpoint after each; die after the first; run the same command again, which resumes and finishes; generate one
clip on the run's device; score it with a SyncNet calibrated on the corpus. It proves the paper configs, the
crops, the checkpoints and the scoring wire together; no number here means anything. On a GPU machine the same
tests run on CUDA (scripts/gpu_check.sh).
"""

from __future__ import annotations

import re

import pytest
from lightning.pytorch.callbacks import Callback

from benchmark import train
from benchmark.cli import main
from benchmark.config import compose
from benchmark.results import load_results
from benchmark.runner import build_corpus
from data.faces.crops import CROPS

pytestmark = pytest.mark.rehearsal

#: model -> (Lightning steps per batch: 2 for the GAN models' generator + discriminator steps, overrides). Batches
#: of 2 for the networks with BatchNorm (a 1x1 feature map of one sample has no batch statistics), 1 otherwise.
EXPERT = ["syncnet_expert.trainer.max_steps=2", "syncnet_expert.model.params.batch_size=2"]
MODELS = {
    "wav2lip": (1, ["model.params.batch_size=2", *EXPERT]),
    "wav2lip_gan": (2, ["model.params.batch_size=2", *EXPERT]),
    "lipgan": (2, ["model.params.batch_size=2"]),
    # the paper's 100 respaced steps per frame are ~2,000 UNet calls for one short clip: 2 prove the wiring
    "diffused_heads": (1, ["model.params.batch_size=1", "model.params.sample_steps=2"]),
    "vasa": (
        1,
        ["model.params.batch_size=2", "model.params.sample_steps=2"]
        + ["vasa_face.trainer.max_steps=2", "vasa_face.model.params.batch_size=2"],
    ),
}
#: clip lengths (seconds) of the corpus each model rehearses on: as short as the model's windows allow (the paper
#: UNet of Diffused Heads costs seconds per frame on a CPU); the VASA-style motion model needs 50-frame windows
SECONDS = {"vasa": (2.0, 2.2)}


@pytest.fixture(scope="module")
def crema_copies(tmp_path_factory):
    """Synthetic corpora written in CREMA-D's layout, one per clip-length range, made when first asked for."""
    from data.synthetic.writer import synth_main

    made = {}

    def get(seconds: tuple[float, float]):
        if seconds not in made:
            root = tmp_path_factory.mktemp("crema_layout")
            lo, hi = seconds
            synth_main("crema", root, seed=0, n_clips=16, n_speakers=4, min_seconds=lo, max_seconds=hi, progress=False)
            made[seconds] = root
        return made[seconds]

    return get


class _Killed(RuntimeError):
    pass


class _DieAfter(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            raise _Killed(f"killed after step {self.step}")


def _args(model: str, root, out, steps_per_batch: int, extra: list[str]) -> list[str]:
    settings = {
        "dataset.root": root,
        "run.out_dir": out,
        "run.limit": 1,
        "trainer.max_steps": 2 * steps_per_batch,
        "run.checkpoint_every_n_steps": steps_per_batch,
        "trainer.val_check_interval": 2,
        "trainer.limit_val_batches": 1,
        "run.progress": "false",
        "metrics.sync.evaluator": "calibrated",
        "metrics.calibrate.seconds": 30,
        "metrics.calibrate.min_steps": 5,
        "metrics.calibrate.max_steps": 5,
    }
    items = [f"{k}={v}" for k, v in settings.items()] + extra
    return ["run", "--model", model, "--dataset", "crema", "--preset", "paper", *items]


@pytest.mark.parametrize("model", sorted(MODELS))
def test_paper_preset_trains_resumes_generates_and_scores(model, crema_copies, tmp_path, monkeypatch, capsys):
    steps_per_batch, extra = MODELS[model]
    crema_copy = crema_copies(SECONDS.get(model, (0.6, 0.8)))
    args = _args(model, crema_copy, tmp_path / "runs", steps_per_batch, extra)
    make = train.make_trainer

    def dying(cfg, run_dir):
        trainer = make(cfg, run_dir)
        if cfg.model.name == model:
            trainer.callbacks.append(_DieAfter(steps_per_batch))
        return trainer

    monkeypatch.setattr(train, "make_trainer", dying)
    assert main(args) == 2
    assert "killed after step" in capsys.readouterr().err
    monkeypatch.setattr(train, "make_trainer", make)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"[train] {model}: resuming from step {steps_per_batch}" in out
    assert f"[train] {model}: {2 * steps_per_batch} steps" in out
    run_dir = tmp_path / "runs" / "crema" / model
    res = load_results(run_dir / "results.json")
    assert res.metrics["lse_c"].n == 1 and res.evaluators["syncnet"]["status"] == "calibrated"
    assert res.run.checkpoint["source"] == "trained" and res.run.preset == "paper"
    # trained and scored on the model's own crop, prepared from the corpus's landmarks
    corpus = build_corpus(compose(model, "crema", "paper", [f"dataset.root={crema_copy}"]))
    crop = train.model_class(model).crop
    assert corpus.crop == crop and corpus.is_prepared()
    assert corpus.clips("test", limit=1)[0].video.shape[1:] == (CROPS[crop].size, CROPS[crop].size, 3)
    assert len(list((run_dir / "generated").glob("*.mp4"))) == 1
    import torch

    assert f"test clips on {'cuda:0' if torch.cuda.is_available() else 'cpu'}" in out


def test_kill_9_mid_training_then_the_same_command_resumes(tmp_path):
    """A real `kill -9` of `bench run` while it trains; the same command again says where it resumes and trains
    to the configured step count."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    settings = {
        "run.out_dir": tmp_path,
        "run.progress": "false",
        "trainer.max_steps": 150,
        "run.checkpoint_every_n_steps": 5,
        "trainer.max_time": "null",
        "dataset.synth.n_clips": 24,
        "dataset.synth.size": 96,
    }
    cmd = [sys.executable, "-m", "benchmark.cli", "run", "--model", "syncnet_expert", "--dataset", "synthetic"]
    cmd += [f"{k}={v}" for k, v in settings.items()]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    last = tmp_path / "synthetic" / "syncnet_expert" / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read()[-2000:]
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    step = int(re.search(r"resuming from step (\d+)", again.stdout).group(1))
    assert 5 <= step < 150 and step % 5 == 0
    assert "[train] syncnet_expert: 150 steps in 1 process(es)" in again.stdout


def test_a_second_crop_of_a_prepared_corpus_reuses_its_landmarks(crema_copies, capsys):
    """`bench run --model diffused_heads --dataset crema` prepares the 128 px aligned heads without any crop
    override; the next model's crop (Wav2Lip's 96 px face box) is cut from the landmarks found then."""
    root = crema_copies((0.5, 0.6))  # a copy of its own: the other tests prepare the shared ones with every crop
    heads = build_corpus(compose("diffused_heads", "crema", "paper", [f"dataset.root={root}"]))
    heads.ensure(progress=False)
    assert heads.crop == "diffused_heads" and heads.clips("train")[0].video.shape[1:3] == (128, 128)
    capsys.readouterr()
    boxes = build_corpus(compose("wav2lip", "crema", "paper", [f"dataset.root={root}"]))
    boxes.ensure(progress=False)
    log = capsys.readouterr().out
    found = re.search(r"landmarks: (\d+) detected, (\d+) from cache .*; crops added: wav2lip", log)
    assert found and found.group(1) == "0" and int(found.group(2)) == 16, log
    assert boxes.clips("train")[0].video.shape[1:3] == (96, 96)
