"""Wav2Lip + visual-quality discriminator: official layout, strict loads, GAN losses and schedule."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import Subset

from data.clip import Clip
from models.checkpoints import load_network_weights, load_official_state_dict
from models.wav2lip.gan import Wav2LipGANConfig, Wav2LipGANModule, build_disc_qual
from models.wav2lip.nets import Wav2LipDiscQual
from models.wav2lip.process import disc_losses, gan_generator_loss, perceptual_loss

TABLE = Path(__file__).resolve().parents[1] / "data_files" / "wav2lip_Wav2Lip_disc_qual_state_dict.tsv"
SMALL = {"width": 0.0625, "expert_width": 0.0625, "disc_width": 0.0625}
REPO = Path(__file__).resolve().parents[2]
LRS2_VAL_VIDEOS = 1082  # LRS2 val list (filelists/val.txt of the official training)

# Wav2Lip @5c90fa9 hparams.py and hq_wav2lip_train.py (docs/official_recipes.md)
OFFICIAL_HQ_HPARAMS = {
    "width": 1.0,  # wav2lip_gan.pth
    "expert_width": 1.0,  # lipsync_expert.pth
    "disc_width": 1.0,  # visual_quality_disc.pth
    "lr": 1e-4,  # hparams.initial_learning_rate
    "betas": (0.5, 0.999),  # optim.Adam(..., betas=(0.5, 0.999)) for G
    "batch_size": 16,  # hparams.batch_size
    "syncnet_wt": 0.0,  # hparams.syncnet_wt
    "syncnet_wt_after": 0.03,  # hq_wav2lip_train.py: hparams.set_hparam('syncnet_wt', 0.03)
    "sync_threshold": 0.75,  # if average_sync_loss < .75
    "disc_wt": 0.07,  # hparams.disc_wt
    "disc_lr": 1e-4,  # hparams.disc_initial_learning_rate
    "disc_betas": (0.5, 0.999),  # optim.Adam(..., betas=(0.5, 0.999)) for D
    "mel_frame_offset": -1,  # get_segmented_mels, as wav2lip_train.py
}
OFFICIAL_HQ_TRAINER = {
    "max_steps": 2 * 258_000,  # released wav2lip_gan.pth: global_step 258,000 (Wav2Lip#253); G + D steps here
    "val_check_interval": 3000,  # hparams.eval_interval (Lightning's val_check_interval counts batches)
    "limit_val_batches": math.ceil(LRS2_VAL_VIDEOS / 16),  # eval_model: one pass over the val loader
    "precision": "32-true",
}


def read_table(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in path.read_text().splitlines()[1:]:
        key, shape, dtype = line.split("\t")
        rows.append((key, tuple(int(d) for d in shape.strip("[]").split(",") if d.strip()), dtype))
    return rows


def test_disc_state_dict_equals_reference_table() -> None:
    sd = Wav2LipDiscQual().state_dict()
    assert [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in sd.items()] == read_table(TABLE)
    assert sum(p.numel() for p in Wav2LipDiscQual().parameters()) == 14_113_793  # docs/checkpoints.md
    assert list(build_disc_qual("tiny").state_dict()) == [k for k, _, _ in read_table(TABLE)]


def test_disc_strict_load_official_checkpoint_format(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    sd = {k: torch.rand(s, generator=gen) * 0.05 for k, s, _ in read_table(TABLE)}
    # visual_quality_disc.pth: hq_wav2lip_train.py save_checkpoint dict, DataParallel prefixes
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "global_step": 3}, tmp_path / "d.pth")
    net = load_network_weights(Wav2LipDiscQual(), tmp_path / "d.pth")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in sd.items())


def test_disc_sees_only_the_lower_half_frame_major() -> None:
    torch.manual_seed(0)
    disc = Wav2LipDiscQual(width=0.0625).eval()
    faces = torch.rand(2, 3, 4, 96, 96)
    out = disc(faces)
    assert out.shape == (8, 1) and bool(((out > 0) & (out < 1)).all())
    changed = faces.clone()
    changed[:, :, :, :48] = 0.0  # the upper half does not matter
    torch.testing.assert_close(disc(changed), out)
    # frame-major folding (official to_2d): row t * B + b is frame t of sample b
    torch.testing.assert_close(out[1 * 2 + 1], disc(faces[1:2, :, 1])[0])


def test_gan_losses_match_their_formulas() -> None:
    torch.manual_seed(0)
    disc = Wav2LipDiscQual(width=0.0625)
    real, fake = torch.rand(2, 3, 5, 96, 96), torch.rand(2, 3, 5, 96, 96)
    p_real, p_fake = disc(real), disc(fake)
    r, f = disc_losses(disc, real, fake)
    torch.testing.assert_close(r, -torch.log(p_real).mean())
    torch.testing.assert_close(f, -torch.log(1 - p_fake).mean())
    torch.testing.assert_close(perceptual_loss(disc, fake), -torch.log(p_fake).mean())
    loss = gan_generator_loss(torch.tensor(0.2), torch.tensor(0.5), torch.tensor(0.7), 0.03, 0.07)
    assert float(loss) == pytest.approx(0.03 * 0.5 + 0.07 * 0.7 + 0.9 * 0.2)


def test_paper_preset_matches_official_hq_wav2lip_train() -> None:
    paper = Wav2LipGANConfig.preset("paper")
    assert paper == Wav2LipGANConfig()
    assert {key: getattr(paper, key) for key in OFFICIAL_HQ_HPARAMS} == OFFICIAL_HQ_HPARAMS
    assert paper.expert_train_mode_bn is False  # documented departure (models/wav2lip/module.py)
    trainer = OmegaConf.load(REPO / "configs" / "models" / "wav2lip_gan.yaml").presets.paper.trainer
    assert OmegaConf.to_container(trainer) == OFFICIAL_HQ_TRAINER
    assert OFFICIAL_HQ_TRAINER["limit_val_batches"] == 68
    opt_g, opt_d = Wav2LipGANModule({**SMALL, "syncnet_wt": 0.0}).configure_optimizers()
    assert (opt_g.defaults["lr"], opt_g.defaults["betas"]) == (1e-4, (0.5, 0.999))
    assert (opt_d.defaults["lr"], opt_d.defaults["betas"]) == (1e-4, (0.5, 0.999))


def test_config_presets_follow_hq_wav2lip_train() -> None:
    paper = Wav2LipGANConfig()
    assert (paper.betas, paper.disc_betas, paper.disc_wt, paper.syncnet_wt, paper.syncnet_wt_after) == (
        (0.5, 0.999),
        (0.5, 0.999),
        0.07,
        0.0,
        0.03,
    )
    assert (paper.lr, paper.disc_lr, paper.batch_size) == (1e-4, 1e-4, 16)
    with pytest.raises(ValueError, match="unknown keys"):
        Wav2LipGANModule({"disc_weight": 0.1})
    module = Wav2LipGANModule(Wav2LipGANConfig.preset("tiny", **SMALL))
    assert module.update_syncnet_wt(0.8) == 0.03  # tiny starts on
    paper_small = Wav2LipGANModule({**SMALL, "syncnet_wt": 0.0})
    assert paper_small.update_syncnet_wt(0.76) == 0.0 and paper_small.update_syncnet_wt(0.74) == 0.03


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(SyntheticConfig(n_clips=2, size=96, min_seconds=1.2, max_seconds=1.4, seed=2))
    return [render_clip(spec, i) for i in range(2)]


def test_training_steps_update_generator_and_discriminator(clips: list[Clip], tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = Wav2LipGANModule(Wav2LipGANConfig.preset("tiny", **SMALL, lr=1e-2, disc_lr=1e-2))
    g0 = module.net.output_block[1].weight.clone()
    d0 = module.disc.binary_pred[0].weight.clone()
    e0 = module.expert.face_encoder[0].conv_block[0].weight.clone()
    ds = Subset(module.train_dataset(clips, seed=0, fixed=True), range(4))
    trainer = L.Trainer(
        max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.fit(module, torch.utils.data.DataLoader(ds, batch_size=2))
    assert trainer.global_step == 6  # G and D steps: 3 batches
    assert not torch.equal(module.net.output_block[1].weight, g0)
    assert not torch.equal(module.disc.binary_pred[0].weight, d0)
    assert torch.equal(module.expert.face_encoder[0].conv_block[0].weight, e0)  # frozen
    assert not module.expert.training
    trainer.save_checkpoint(tmp_path / "g.ckpt")
    disc_sd = load_official_state_dict(tmp_path / "g.ckpt", prefix="disc.")
    assert set(disc_sd) == set(module.disc.state_dict())
    restored = Wav2LipGANModule.load_from_checkpoint(tmp_path / "g.ckpt", weights_only=True)
    assert restored.cfg == module.cfg and torch.equal(
        restored.disc.binary_pred[0].weight, module.disc.binary_pred[0].weight
    )
    out = restored.generate(clips[0].video[None, 0], clips[0].audio[None, : 7 * 640])
    assert out.shape == (1, 7, 96, 96, 3) and out.dtype == np.uint8


def test_registry_has_both_variants() -> None:
    from models import MODELS

    assert MODELS["wav2lip"].endswith(":Wav2LipModule") and MODELS["wav2lip_gan"].endswith(":Wav2LipGANModule")
