"""Wav2Lip's lip-sync expert: official state-dict layout, checkpoint formats, training module."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import Subset

from data.clip import Clip
from models.checkpoints import (
    CheckpointError,
    build_network,
    check_state_dict,
    load_network_weights,
    load_official_state_dict,
)
from models.syncnet.module import SyncNetExpertConfig, SyncNetExpertModule
from models.syncnet.nets import SyncNetColor, sync_probability
from models.syncnet.windows import SyncExpertWindows

TABLE = Path(__file__).resolve().parents[1] / "data_files" / "wav2lip_SyncNet_color_state_dict.tsv"
REPO = Path(__file__).resolve().parents[2]
LRS2_VAL_VIDEOS = 1082  # LRS2 val list (filelists/val.txt of the official training)

# Wav2Lip @5c90fa9 hparams.py and color_syncnet_train.py (docs/official_recipes.md)
OFFICIAL_EXPERT_HPARAMS = {
    "width": 1.0,  # models/syncnet.py SyncNet_color(), lipsync_expert.pth
    "lr": 1e-4,  # hparams.syncnet_lr
    "betas": (0.9, 0.999),  # optim.Adam(..., lr=hparams.syncnet_lr): torch's default betas
    "batch_size": 64,  # hparams.syncnet_batch_size
    "negative_min_shift": 1,  # __getitem__: any wrong_img_name != img_name
}
OFFICIAL_EXPERT_TRAINER = {
    "max_steps": 700_000,  # no official budget (nepochs 2e17); "around 700K steps" for LRS2 (Wav2Lip#122)
    "val_check_interval": 10_000,  # hparams.syncnet_eval_interval
    "limit_val_batches": math.ceil(LRS2_VAL_VIDEOS / 64),  # eval_model: one pass over the val loader
    "precision": "32-true",
}


def read_table(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in path.read_text().splitlines()[1:]:
        key, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("[]").split(",") if d.strip())
        rows.append((key, dims, dtype))
    return rows


def state_dict_from_table(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with exactly the table's keys, shapes and dtypes (stands in for the official file)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape, dtype in read_table(path):
        if dtype == "int64":
            out[key] = torch.randint(0, 1000, shape, generator=gen)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            out[key] = torch.randn(shape, generator=gen) * 0.05
    return out


def synthetic_clips(n: int) -> list[Clip]:
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(SyntheticConfig(n_clips=n, size=96, min_seconds=1.2, max_seconds=1.6, seed=1))
    return [render_clip(spec, i) for i in range(n)]


def test_state_dict_equals_reference_table() -> None:
    sd = SyncNetColor().state_dict()
    mine = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in sd.items()]
    assert mine == read_table(TABLE)


def test_strict_load_from_table_and_forward() -> None:
    net = SyncNetColor()
    net.load_state_dict(state_dict_from_table(TABLE), strict=True)
    net.eval()
    audio_emb, face_emb = net(torch.randn(2, 1, 80, 16), torch.rand(2, 15, 48, 96))
    assert audio_emb.shape == face_emb.shape == (2, 512)
    torch.testing.assert_close(audio_emb.norm(dim=1), torch.ones(2))
    assert float(audio_emb.min()) >= 0 and float(face_emb.min()) >= 0  # ReLU'd: cosine in [0, 1]
    p = sync_probability(audio_emb, face_emb)
    assert bool(((p >= 0) & (p <= 1)).all())


def test_width_keeps_the_key_set() -> None:
    tiny = build_network("lipsync_expert", "tiny")
    assert isinstance(tiny, SyncNetColor) and tiny.width == 0.25
    assert list(tiny.state_dict()) == [k for k, _, _ in read_table(TABLE)]
    audio_emb, face_emb = tiny.eval()(torch.randn(1, 1, 80, 16), torch.rand(1, 15, 48, 96))
    assert audio_emb.shape == face_emb.shape == (1, tiny.embedding_dim) == (1, 128)
    with pytest.raises(KeyError, match="unknown network"):
        build_network("wav3lip")


# ----- checkpoint formats ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def official_sd() -> dict[str, torch.Tensor]:
    return state_dict_from_table(TABLE, seed=1)


def _assert_loads(path: Path, expected: dict[str, torch.Tensor], **kw: object) -> None:
    net = build_network("lipsync_expert")
    load_network_weights(net, path, **kw)
    for key, value in net.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_raw_state_dict(tmp_path: Path, official_sd: dict[str, torch.Tensor]) -> None:
    torch.save(official_sd, tmp_path / "raw.pth")
    sd = load_official_state_dict(tmp_path / "raw.pth")
    assert sd.format == "raw" and sd.source.endswith("raw.pth")
    _assert_loads(tmp_path / "raw.pth", official_sd)


def test_official_training_dict_with_module_prefix(tmp_path: Path, official_sd: dict[str, torch.Tensor]) -> None:
    # color_syncnet_train.py save_checkpoint, saved from a DataParallel model
    params = [torch.zeros(3)]
    optimizer = torch.optim.Adam(params)
    payload = {
        "state_dict": {f"module.{k}": v for k, v in official_sd.items()},
        "optimizer": optimizer.state_dict(),
        "global_step": 120000,
        "global_epoch": 41,
    }
    torch.save(payload, tmp_path / "lipsync_expert.pth")
    assert load_official_state_dict(tmp_path / "lipsync_expert.pth").format == "dict[state_dict]"
    _assert_loads(tmp_path / "lipsync_expert.pth", official_sd)


def test_torchscript_archive(tmp_path: Path) -> None:
    net = SyncNetColor(width=0.125).eval()
    traced = torch.jit.trace(net, (torch.randn(1, 1, 80, 16), torch.rand(1, 15, 48, 96)))
    traced.save(str(tmp_path / "expert.pt"))
    sd = load_official_state_dict(tmp_path / "expert.pt")
    assert sd.format == "torchscript"
    fresh = SyncNetColor(width=0.125)
    check_state_dict(fresh, sd)
    fresh.load_state_dict(sd, strict=True)
    for key, value in net.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


def test_lightning_checkpoint_net_prefix(tmp_path: Path) -> None:
    module = SyncNetExpertModule(SyncNetExpertConfig.preset("tiny", width=0.125))
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "expert.ckpt")
    sd = load_official_state_dict(tmp_path / "expert.ckpt")
    assert sd.format == "lightning" and all(not k.startswith("net.") for k in sd)
    net = SyncNetColor(width=0.125)
    load_network_weights(net, tmp_path / "expert.ckpt")
    for key, value in module.net.state_dict().items():
        assert torch.equal(net.state_dict()[key], value)
    restored = SyncNetExpertModule.load_from_checkpoint(tmp_path / "expert.ckpt", weights_only=True)
    assert restored.cfg == module.cfg


def test_rejects_wrong_width_naming_key_and_shapes(tmp_path: Path) -> None:
    torch.save(SyncNetColor(width=0.25).state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(CheckpointError) as err:
        load_network_weights(build_network("lipsync_expert"), tmp_path / "tiny.pth")
    msg = str(err.value)
    assert "tiny.pth" in msg and "SyncNetColor" in msg
    assert "face_encoder.0.conv_block.0.weight: expected (32, 15, 7, 7), got (8, 15, 7, 7)" in msg
    assert "another preset" in msg


def test_rejects_missing_and_unexpected_keys(tmp_path: Path, official_sd: dict[str, torch.Tensor]) -> None:
    broken = dict(official_sd)
    del broken["audio_encoder.13.conv_block.0.bias"]
    broken["classifier.weight"] = torch.zeros(2)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="1 missing keys \\(first: audio_encoder.13.conv_block.0.bias\\)") as err:
        load_network_weights(build_network("lipsync_expert"), tmp_path / "broken.pth")
    assert "1 unexpected keys (first: classifier.weight)" in str(err.value)


def test_prefix_hint_and_selection(tmp_path: Path, official_sd: dict[str, torch.Tensor]) -> None:
    torch.save({f"expert.net.{k}": v for k, v in official_sd.items()}, tmp_path / "nested.pth")
    with pytest.raises(CheckpointError, match="prefix='expert.net.'"):
        load_network_weights(build_network("lipsync_expert"), tmp_path / "nested.pth")
    _assert_loads(tmp_path / "nested.pth", official_sd, prefix="expert.net.")
    with pytest.raises(CheckpointError, match="no key starts with 'disc.'"):
        load_official_state_dict(tmp_path / "nested.pth", prefix="disc.")


def test_rejects_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "truncated.pth").write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(CheckpointError, match="truncated.pth"):
        load_official_state_dict(tmp_path / "truncated.pth")
    torch.save({"epoch": 3, "note": "no weights"}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="found no state dict"):
        load_official_state_dict(tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        load_official_state_dict(tmp_path / "missing.pth")


# ----- module ---------------------------------------------------------------------------------------------


def test_paper_preset_matches_official_color_syncnet_train() -> None:
    paper = SyncNetExpertConfig.preset("paper")
    assert {key: getattr(paper, key) for key in OFFICIAL_EXPERT_HPARAMS} == OFFICIAL_EXPERT_HPARAMS
    trainer = OmegaConf.load(REPO / "configs" / "models" / "syncnet_expert.yaml").presets.paper.trainer
    assert OmegaConf.to_container(trainer) == OFFICIAL_EXPERT_TRAINER
    assert OFFICIAL_EXPERT_TRAINER["limit_val_batches"] == 17
    opt = SyncNetExpertModule(SyncNetExpertConfig.preset("paper", width=0.125)).configure_optimizers()
    assert (opt.defaults["lr"], opt.defaults["betas"], opt.defaults["eps"]) == (1e-4, (0.9, 0.999), 1e-8)


def test_config_presets_and_unknown_keys() -> None:
    assert SyncNetExpertConfig() == SyncNetExpertConfig.preset("paper")
    assert SyncNetExpertConfig().batch_size == 64 and SyncNetExpertConfig().lr == 1e-4
    structured = OmegaConf.merge(OmegaConf.structured(SyncNetExpertConfig), {"width": 0.5, "betas": [0.5, 0.9]})
    module = SyncNetExpertModule(structured)
    assert module.cfg.width == 0.5 and module.cfg.betas == (0.5, 0.9)
    with pytest.raises(ValueError, match="unknown keys \\['widht'\\]"):
        SyncNetExpertModule({"widht": 0.5})
    with pytest.raises(KeyError, match="unknown preset"):
        SyncNetExpertConfig.preset("huge")
    ds = module.train_dataset(synthetic_clips(1), seed=0, fixed=True)
    assert isinstance(ds, SyncExpertWindows) and ds.negative_min_shift == 1 and ds.fixed


class _LossLog(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.losses.append(float(outputs["loss"]))


def test_training_steps_reduce_loss() -> None:
    torch.manual_seed(0)
    module = SyncNetExpertModule(SyncNetExpertConfig.preset("tiny", width=0.125, lr=1e-3, batch_size=16))
    # a fixed set of 16 windows, seen every step: the loss must go down quickly
    ds = Subset(module.train_dataset(synthetic_clips(2), seed=0, fixed=True), range(16))
    loader = torch.utils.data.DataLoader(ds, batch_size=16)
    log = _LossLog()
    trainer = L.Trainer(
        max_steps=20,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[log],
    )
    trainer.fit(module, loader)
    assert len(log.losses) == 20
    assert sum(log.losses[-4:]) / 4 < 0.8 * sum(log.losses[:4]) / 4
    (metrics,) = trainer.validate(module, loader, verbose=False)
    assert set(metrics) == {"val/loss", "val/acc"}
