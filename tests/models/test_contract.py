"""Every registered model keeps the written contract of models/base.py (TalkingFaceModule).

Parametrised over the model registry, so a new model is checked by adding its registry line: its kind, its
tiny preset's `generate` (shape, dtype, frame count, determinism, the base's input checks) and its training
windows with one `training_step` (or, for a baseline, that it says it has nothing to train).
"""

from __future__ import annotations

import dataclasses
import math

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from benchmark.config import compose, load_group
from benchmark.registry import models
from benchmark.train import build_untrained
from data.clip import SAMPLES_PER_FRAME
from models.base import KINDS, TalkingFaceModule

NAMES = models().names()
SECONDS = 1.0  # training clips
AUDIO_SAMPLES = 8300  # the audio generated from: 0.52 s, not a whole number of frames (T = N // 640 = 12)


@pytest.fixture(scope="module")
def clips():
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(
        SyntheticConfig(seed=2, n_speakers=4, n_clips=2, size=64, min_seconds=SECONDS, max_seconds=SECONDS)
    )
    return [render_clip(spec, i) for i in range(2)]


# the tiny preset, with shorter sampling chains and smaller networks where generating 25 frames would take seconds
FASTER = {
    "diffused_heads": ["image_size=16", "channel_mult=[1,2]", "sample_steps=2"],
    "vasa": ["layers=1", "sample_steps=2"],
}


def tiny(name: str) -> TalkingFaceModule:
    torch.manual_seed(0)
    return build_untrained(compose(name, "synthetic", "tiny", [f"model.params.{o}" for o in FASTER.get(name, [])]))


@pytest.mark.parametrize("name", NAMES)
def test_class_declares_the_contract(name: str) -> None:
    cls = models().get(name)
    assert issubclass(cls, TalkingFaceModule)
    assert cls.kind in KINDS
    assert cls.kind == load_group("models", name).get("kind", "model")  # the config's kind agrees with the class
    assert models().declared(name, "kind") == cls.kind  # what `bench ls models` reads without importing torch
    assert cls.config_class is not None and isinstance(cls.trainable, bool)
    if cls.redraws_faces:  # `bench generate` can use it
        assert callable(cls.face_audio_windows) and callable(cls.redraw_faces)
    # the settings the training hash sets aside are fields of the schema (a misspelt one breaks every training hash)
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    assert set(getattr(cls.config_class, "generation_fields", ())) <= fields


@pytest.mark.parametrize("name", NAMES)
def test_generate(name: str, clips) -> None:
    module = tiny(name).eval()
    identity = clips[0].video[None, 0]
    audio = np.resize(clips[0].audio, AUDIO_SAMPLES)[None].astype(np.float32)
    if module.kind == "component":
        with pytest.raises(TypeError, match="generates no video"):
            module.generate(identity, audio)
        return
    out = module.generate(identity, audio, seed=3)
    assert out.dtype == np.uint8 and out.shape == (1, AUDIO_SAMPLES // SAMPLES_PER_FRAME, *identity.shape[1:])
    assert np.array_equal(module.generate(identity, audio, seed=3), out)  # the same seed, the same frames
    # the input checks live in the base, whatever the model
    with pytest.raises(ValueError, match="identity must be uint8"):
        module.generate(identity.astype(np.float32), audio)
    with pytest.raises(ValueError, match="audio must be float32"):
        module.generate(identity, audio[0])
    with pytest.raises(ValueError, match="seed has 2 values"):
        module.generate(identity, audio, seed=[1, 2])


class _Loss(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))


@pytest.mark.parametrize("name", NAMES)
def test_train_dataset_and_one_training_step(name: str, clips) -> None:
    module = tiny(name)
    if not module.trainable:
        with pytest.raises(TypeError, match="nothing to train"):
            module.train_dataset(clips, seed=0, fixed=True)
        return
    ds = module.train_dataset(clips, seed=0, fixed=True)
    assert len(ds) > 0
    again = module.train_dataset(clips, seed=0, fixed=True)
    first, repeat = ds[1], again[1]  # fixed: item i is a function of (seed, i)
    for key, value in first.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, repeat[key]), key
    loss = _Loss()
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[loss],
    )
    trainer.fit(module, DataLoader(ds, batch_size=2))
    assert len(loss.losses) == 1 and math.isfinite(loss.losses[0])


def test_an_incomplete_model_fails_where_it_is_defined() -> None:
    with pytest.raises(TypeError, match="must define: config_class.*_generate.*train_dataset"):

        class Sketch(TalkingFaceModule):
            pass

    with pytest.raises(TypeError, match="redraw_faces"):

        class Redrawer(TalkingFaceModule):
            config_class = dict
            trainable = False
            redraws_faces = True

            def _generate(self, identity, audio, **kwargs):  # noqa: ANN001, ANN003
                return identity

            def face_audio_windows(self, audio, num_frames):  # noqa: ANN001
                return audio

    with pytest.raises(TypeError, match="kind is 'method'"):

        class Odd(TalkingFaceModule):
            kind = "method"
