"""Wav2Lip generator: official layout, checkpoints, generate() contract, training schedule, static baseline."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import Subset

from data.audio import wav2lip_melspectrogram
from data.clip import Clip
from models.checkpoints import build_network, load_network_weights, load_official_state_dict
from models.static import StaticFrameModel
from models.syncnet.module import SyncNetExpertConfig, SyncNetExpertModule
from models.syncnet.nets import SyncNetColor
from models.wav2lip.module import Wav2LipConfig, Wav2LipModule
from models.wav2lip.nets import Wav2LipGenerator
from models.wav2lip.process import mel_chunks
from models.wav2lip.windows import Wav2LipWindows

TABLE = Path(__file__).resolve().parents[1] / "data_files" / "wav2lip_Wav2Lip_state_dict.tsv"
SMALL = {"width": 0.0625, "expert_width": 0.0625}  # fastest networks with the official key set
REPO = Path(__file__).resolve().parents[2]

# Wav2Lip @5c90fa9 (docs/official_recipes.md): what the paper preset must equal
OFFICIAL_HPARAMS = {
    "width": 1.0,  # models/wav2lip.py Wav2Lip(), the network of wav2lip.pth
    "expert_width": 1.0,  # models/syncnet.py SyncNet_color(), lipsync_expert.pth
    "lr": 1e-4,  # hparams.initial_learning_rate
    "betas": (0.9, 0.999),  # wav2lip_train.py: optim.Adam(..., lr=...) with torch's default betas
    "batch_size": 16,  # hparams.batch_size
    "syncnet_wt": 0.0,  # hparams.syncnet_wt
    "syncnet_wt_after": 0.01,  # wav2lip_train.py: hparams.set_hparam('syncnet_wt', 0.01)
    "sync_threshold": 0.75,  # wav2lip_train.py: if average_sync_loss < .75
    "mel_frame_offset": -1,  # get_segmented_mels: start id + 1, then crop_audio_window(spec, i - 2)
    "generate_batch_size": 128,  # inference.py --wav2lip_batch_size
}
OFFICIAL_TRAINER = {
    "max_steps": 250_000,  # no official budget (hparams.nepochs 2e17): the released wav2lip.pth's step (Wav2Lip#53)
    "val_check_interval": 3000,  # hparams.eval_interval
    "limit_val_batches": 701,  # wav2lip_train.py eval_model returns once step > 700 (eval_steps)
    "precision": "32-true",  # torch 1.1 fp32 training
}


def paper_trainer(model: str) -> dict:
    """The `paper` preset's trainer settings in configs/models/<model>.yaml."""
    cfg = OmegaConf.load(REPO / "configs" / "models" / f"{model}.yaml")
    return OmegaConf.to_container(cfg.presets.paper.trainer)


def read_table(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in path.read_text().splitlines()[1:]:
        key, shape, dtype = line.split("\t")
        rows.append((key, tuple(int(d) for d in shape.strip("[]").split(",") if d.strip()), dtype))
    return rows


def synthetic_clips(n: int, seconds: tuple[float, float] = (1.2, 1.6)) -> list[Clip]:
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    cfg = SyntheticConfig(n_clips=n, size=96, min_seconds=seconds[0], max_seconds=seconds[1], seed=2)
    spec = make_corpus_spec(cfg)
    return [render_clip(spec, i) for i in range(n)]


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    return synthetic_clips(2)


def small_module(**overrides: object) -> Wav2LipModule:
    torch.manual_seed(0)
    return Wav2LipModule(Wav2LipConfig.preset("tiny", **{**SMALL, **overrides}))


# ----- network ----------------------------------------------------------------------------------------------


def test_state_dict_equals_reference_table() -> None:
    sd = Wav2LipGenerator().state_dict()
    assert [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in sd.items()] == read_table(TABLE)


def test_strict_load_from_table(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    sd = {
        k: torch.randint(0, 9, s, generator=gen) if d == "int64" else torch.rand(s, generator=gen) * 0.05
        for k, s, d in read_table(TABLE)
    }
    net = Wav2LipGenerator()
    net.load_state_dict(sd, strict=True)
    # the official wav2lip.pth layout: training dict, DataParallel prefixes
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "global_step": 1}, tmp_path / "w.pth")
    fresh = load_network_weights(build_network("wav2lip"), tmp_path / "w.pth")
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in sd.items())


def test_tiny_width_keeps_keys_and_forms_agree() -> None:
    net = build_network("wav2lip", "tiny").eval()
    assert list(net.state_dict()) == [k for k, _, _ in read_table(TABLE)]
    audio, face = torch.randn(2, 3, 1, 80, 16), torch.rand(2, 6, 3, 96, 96)
    with torch.no_grad():
        out5 = net(audio, face)
        out4 = net(audio[:, 1], face[:, :, 1])
    assert out5.shape == (2, 3, 3, 96, 96) and out4.shape == (2, 3, 96, 96)
    torch.testing.assert_close(out5[:, :, 1], out4)
    assert 0.0 <= float(out5.min()) and float(out5.max()) <= 1.0


def test_torchscript_and_lightning_checkpoints(tmp_path: Path) -> None:
    module = small_module()
    traced = torch.jit.trace(module.net.eval(), (torch.randn(1, 1, 80, 16), torch.rand(1, 6, 96, 96)))
    traced.save(str(tmp_path / "Wav2Lip-SD-NOGAN.pt"))
    net = load_network_weights(Wav2LipGenerator(width=0.0625), tmp_path / "Wav2Lip-SD-NOGAN.pt")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in module.net.state_dict().items())

    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "w2l.ckpt")
    gen_sd = load_official_state_dict(tmp_path / "w2l.ckpt")  # "net." by default
    assert set(gen_sd) == set(module.net.state_dict())
    expert_sd = load_official_state_dict(tmp_path / "w2l.ckpt", prefix="expert.")
    assert set(expert_sd) == set(module.expert.state_dict())


# ----- generate ---------------------------------------------------------------------------------------------


def test_mel_chunks_follow_inference_alignment() -> None:
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    mel = wav2lip_melspectrogram(audio)  # 81 columns
    chunks = mel_chunks(audio, 25)
    assert chunks.shape == (25, 1, 80, 16) and chunks.dtype == np.float32
    for i in (0, 1, 7, 20):
        start = int(i * 80 / 25)
        np.testing.assert_array_equal(chunks[i, 0], mel[:, start : start + 16])
    # frames whose window runs past the end reuse the last 16 columns (inference.py)
    np.testing.assert_array_equal(chunks[24, 0], mel[:, -16:])
    short = mel_chunks(audio[:1280], 2)  # 0.08 s: shorter than one window, padded with silence
    assert short.shape == (2, 1, 80, 16) and float(short[0, 0, :, -1].max()) == -4.0


def test_generate_contract_and_determinism(clips: list[Clip]) -> None:
    module = small_module()
    identity = np.stack([c.video[0] for c in clips])
    n = 17 * 640 + 300  # T = N // 640 = 17
    audio = np.stack([c.audio[:n] for c in clips])
    out = module.generate(identity, audio, seed=0)
    assert out.shape == (2, 17, 96, 96, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, module.generate(identity, audio, seed=0))
    assert module.training  # generate() restores the mode it found


class EchoReference(nn.Module):
    """Returns the unmasked reference channels: isolates the pipeline around the network."""

    def forward(self, audio: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        return face[:, 3:6]


def test_generate_loops_a_short_pose_prior(clips: list[Clip]) -> None:
    # inference.py: a video shorter than the audio is looped (frame i uses frame i % len(frames))
    module = small_module()
    module.net = EchoReference()
    pose = clips[0].video[:4]
    audio = clips[0].audio[None, : 10 * 640]
    out = module.generate(pose[:1], audio, pose_prior=pose[None])
    assert out.shape == (1, 10, 96, 96, 3)
    for i in range(10):
        np.testing.assert_array_equal(out[0, i], pose[i % 4])
    # a longer pose video is truncated to T
    long = module.generate(pose[:1], audio[:, : 3 * 640], pose_prior=pose[None])
    np.testing.assert_array_equal(long[0], pose[:3])


def test_generate_pastes_into_boxes_at_input_resolution() -> None:
    module = small_module()
    frame = np.random.default_rng(0).integers(0, 256, (1, 120, 160, 3), dtype=np.uint8)
    audio = np.random.default_rng(1).standard_normal((1, 6 * 640)).astype(np.float32) * 0.1
    boxes = np.array([[[30, 10, 130, 110]]])  # (B, P, 4): x1, y1, x2, y2
    out = module.generate(frame, audio, boxes=boxes)
    assert out.shape == (1, 6, 120, 160, 3)
    outside = np.ones((120, 160), bool)
    outside[10:110, 30:130] = False
    for i in range(6):
        np.testing.assert_array_equal(out[0, i][outside], frame[0][outside])
    assert not np.array_equal(out[0, 0, 10:110, 30:130], frame[0, 10:110, 30:130])


def test_static_baseline() -> None:
    model = StaticFrameModel()
    assert model.trainable is False
    identity = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    out = model.generate(identity, np.zeros((2, 5 * 640 + 639), np.float32))
    assert out.shape == (2, 5, 8, 8, 3) and out.dtype == np.uint8
    assert all(np.array_equal(out[b, t], identity[b]) for b in range(2) for t in range(5))


# ----- training schedule ------------------------------------------------------------------------------------


def test_paper_preset_matches_official_hparams() -> None:
    paper = Wav2LipConfig.preset("paper")
    assert paper == Wav2LipConfig()
    assert {key: getattr(paper, key) for key in OFFICIAL_HPARAMS} == OFFICIAL_HPARAMS
    # the one documented departure (module docstring): the official expert runs train-mode BatchNorm
    assert paper.expert_train_mode_bn is False
    assert paper_trainer("wav2lip") == OFFICIAL_TRAINER
    # the optimizer is built from these values
    opt = small_module(**{k: OFFICIAL_HPARAMS[k] for k in ("lr", "betas", "batch_size")}).configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert (opt.defaults["lr"], opt.defaults["betas"], opt.defaults["eps"]) == (1e-4, (0.9, 0.999), 1e-8)


def test_config_and_expert_handling(clips: list[Clip]) -> None:
    paper = Wav2LipConfig()
    assert (paper.lr, paper.batch_size, paper.syncnet_wt, paper.syncnet_wt_after, paper.sync_threshold) == (
        1e-4,
        16,
        0.0,
        0.01,
        0.75,
    )
    tiny = Wav2LipConfig.preset("tiny")
    assert (tiny.width, tiny.batch_size, tiny.lr, tiny.syncnet_wt, tiny.expert_width) == (0.125, 8, 1e-3, 0.01, 0.25)
    with pytest.raises(ValueError, match="unknown keys"):
        Wav2LipModule({"syncnet_weight": 0.1})
    expert = SyncNetExpertModule(SyncNetExpertConfig.preset("tiny", width=0.125))
    module = Wav2LipModule(Wav2LipConfig.preset("tiny", width=0.0625), expert=expert)
    assert module.cfg.expert_width == 0.125  # taken from the expert, so checkpoints rebuild it
    assert not any(p.requires_grad for p in module.expert.parameters())
    assert all(p.requires_grad for p in expert.parameters())  # the caller's expert is left alone
    module.train()
    assert module.net.training and not module.expert.training
    ds = module.train_dataset(clips, seed=0, fixed=True)
    assert isinstance(ds, Wav2LipWindows) and ds.mel_frame_offset == -1 and ds.fixed


PAPER_SCHEDULE = {"syncnet_wt": 0.0, "syncnet_wt_after": 0.01, "sync_threshold": 0.75}


def test_syncnet_wt_switches_on_eval_sync_loss() -> None:
    module = small_module(**PAPER_SCHEDULE)
    assert module.update_syncnet_wt(0.80) == 0.0
    assert module.update_syncnet_wt(0.75) == 0.0  # strictly below the threshold
    assert module.update_syncnet_wt(0.74) == 0.01
    assert module.update_syncnet_wt(0.90) == 0.01  # never switched back (official)


class _StubSync:
    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, mel: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        return generated.mean() * 0 + self.value


def test_validation_drives_the_switch_and_checkpoint_keeps_it(clips: list[Clip], tmp_path: Path) -> None:
    module = small_module(**PAPER_SCHEDULE)
    val = Subset(module.train_dataset(clips, seed=0, fixed=True), range(4))
    loader = torch.utils.data.DataLoader(val, batch_size=2)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    module.sync_loss = _StubSync(0.9)
    trainer.validate(module, loader, verbose=False)
    assert module.syncnet_wt == 0.0
    module.sync_loss = _StubSync(0.6)
    (metrics,) = trainer.validate(module, loader, verbose=False)
    assert module.syncnet_wt == 0.01 and metrics["val/sync"] == pytest.approx(0.6)
    trainer.save_checkpoint(tmp_path / "w2l.ckpt")
    restored = Wav2LipModule.load_from_checkpoint(tmp_path / "w2l.ckpt", weights_only=True)
    assert restored.syncnet_wt == 0.01 and restored.cfg == module.cfg


class _LossLog(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []
        self.expert_training: list[bool] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.losses.append(float(outputs["loss"]))
        self.expert_training.append(pl_module.expert.training)


def _fit(module: Wav2LipModule, clips: list[Clip], steps: int) -> _LossLog:
    ds = Subset(module.train_dataset(clips, seed=0, fixed=True), range(2))
    log = _LossLog()
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[log],
    )
    trainer.fit(module, torch.utils.data.DataLoader(ds, batch_size=2))
    return log


def test_training_steps_reduce_loss_with_frozen_eval_expert(clips: list[Clip]) -> None:
    module = small_module(lr=1e-2, syncnet_wt=0.01)  # sync term on from the start, to exercise it
    running = module.expert.face_encoder[0].conv_block[1].running_mean.clone()
    weights = module.expert.face_encoder[0].conv_block[0].weight.clone()
    log = _fit(module, clips, steps=10)
    assert sum(log.losses[-3:]) / 3 < 0.9 * sum(log.losses[:3]) / 3
    assert not any(log.expert_training)
    assert torch.equal(module.expert.face_encoder[0].conv_block[1].running_mean, running)  # eval-mode BN
    assert torch.equal(module.expert.face_encoder[0].conv_block[0].weight, weights)  # frozen


def test_official_train_mode_expert_batchnorm(clips: list[Clip]) -> None:
    module = small_module(syncnet_wt=0.01, expert_train_mode_bn=True)
    running = module.expert.face_encoder[0].conv_block[1].running_mean.clone()
    log = _fit(module, clips, steps=2)
    assert all(log.expert_training)
    assert not torch.equal(module.expert.face_encoder[0].conv_block[1].running_mean, running)


def test_expert_from_module_or_network_loads_into_checkpoint(tmp_path: Path) -> None:
    expert = SyncNetColor(width=0.0625)
    module = Wav2LipModule(Wav2LipConfig.preset("tiny", width=0.0625), expert=expert)
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "w.ckpt")
    restored = Wav2LipModule.load_from_checkpoint(tmp_path / "w.ckpt", weights_only=True)
    for key, value in expert.state_dict().items():
        assert torch.equal(restored.expert.state_dict()[key], value)
