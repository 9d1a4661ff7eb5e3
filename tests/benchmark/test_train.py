"""Training that survives being killed: resumable checkpoints during training, the same final weights."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from test_runner import small_overrides

from benchmark import train
from benchmark.config import compose
from benchmark.runner import build_corpus


class _Killed(RuntimeError):
    pass


class _KillAt(Callback):
    """Dies after optimiser step `step`, before anything else of that step (a kill -9 at that moment)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise _Killed(f"killed at step {self.step}")


def _cfg(out, model: str):
    extra = {
        "trainer.max_steps": 7,
        "trainer.val_check_interval": 3,
        "run.checkpoint_every_n_steps": 2,
        "trainer.limit_val_batches": 1,
        "trainer.max_time": "null",
    }
    return compose(model, "synthetic", "tiny", small_overrides(out, expert=False, **extra))


def _weights(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("model, kill_at", [("syncnet_expert", 5), ("diffused_heads", 7)])
def test_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch, capsys, model, kill_at):
    """Killed after step 5 (last checkpoint: step 4), or after step 7 of Diffused Heads (whose losses draw timesteps
    and noise from the random state; last checkpoint: step 6, taken after that step's validation), then run again:
    it says where it resumes, ends at the same step count and with exactly the uninterrupted run's weights (CPU)."""
    corpus = build_corpus(_cfg(tmp_path / "a", model))
    corpus.ensure()
    reference, _ = train.train_or_load(_cfg(tmp_path / "a", model), corpus)
    assert f"[train] {model}: 7 steps" in capsys.readouterr().out

    make = train.make_trainer

    def dying(cfg, run_dir):
        trainer = make(cfg, run_dir)
        trainer.callbacks.append(_KillAt(kill_at))
        return trainer

    cfg = _cfg(tmp_path / "b", model)
    monkeypatch.setattr(train, "make_trainer", dying)
    with pytest.raises(_Killed):
        train.train_or_load(cfg, corpus)
    monkeypatch.setattr(train, "make_trainer", make)
    assert not (train.run_dir_of(cfg) / "model.pt").exists()
    resumed, info = train.train_or_load(cfg, corpus)
    out = capsys.readouterr().out
    assert f"resuming from step {kill_at - 1}" in out and f"[train] {model}: 7 steps" in out
    assert info["source"] == "trained"
    a, b = _weights(reference), _weights(resumed)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def test_resume_needs_the_same_training_hash(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert train.resume_checkpoint(run_dir, "abc") is None  # no marker: never ours to resume
    (run_dir / "checkpoints" / train.RESUME_MARKER).write_text("other")
    assert train.resume_checkpoint(run_dir, "abc") is None  # other settings: start afresh
    (run_dir / "checkpoints" / train.RESUME_MARKER).write_text("abc")
    assert train.resume_checkpoint(run_dir, "abc") == run_dir / "checkpoints" / "last.ckpt"


class _Fingerprinted:
    def fingerprint(self):
        return {"dataset": "synthetic", "clips": "training-hash-test"}


@pytest.mark.parametrize(
    "model, generation, training",
    [
        ("diffused_heads", ["model.params.sampler=ancestral", "model.params.sample_steps=25"], "model.params.lr=0.002"),
        ("vasa", ["model.params.sample_steps=10", "model.params.cfg_audio=1.5"], "model.params.window=40"),
        ("wav2lip", ["model.params.generate_batch_size=8"], "model.params.lr=0.0005"),
        ("lipgan", ["model.params.generate_batch_size=8"], "model.params.lr=0.0005"),
    ],
)
def test_generation_settings_leave_the_training_hash_alone(model, generation, training):
    """A sampler setting must not send a trained run back to step 0; a training setting must."""
    corpus = _Fingerprinted()
    base = train.training_hash(compose(model, "synthetic", "tiny", ["run.progress=false"]), corpus)
    assert train.training_hash(compose(model, "synthetic", "tiny", ["run.progress=false", *generation]), corpus) == base
    assert train.training_hash(compose(model, "synthetic", "tiny", ["run.progress=false", training]), corpus) != base


def test_a_run_at_the_default_generation_settings_keeps_its_training_hash(monkeypatch):
    """The paper presets keep the schema's generation defaults, so their runs hash as before generation settings
    were set aside: a long run in progress still resumes after the change."""
    from models.diffused_heads.module import DiffusedHeadsConfig

    corpus = _Fingerprinted()
    paper = compose("diffused_heads", "synthetic", "paper", ["run.progress=false"])
    tiny = compose("diffused_heads", "synthetic", "tiny", ["run.progress=false"])  # a DDIM sampler: not the default
    paper_now, tiny_now = train.training_hash(paper, corpus), train.training_hash(tiny, corpus)
    monkeypatch.setattr(DiffusedHeadsConfig, "generation_fields", ())  # the hash as it was computed before
    assert train.training_hash(paper, corpus) == paper_now
    assert train.training_hash(tiny, corpus) != tiny_now
