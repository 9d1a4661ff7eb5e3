"""Diffused Heads checkpoints: every official layout and ours, the params a file implies, loading into the module."""

from __future__ import annotations

import dataclasses
import math
import pickle
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics.safe_load import ForeignObject
from models.checkpoints import (
    CheckpointError,
    check_state_dict,
    checkpoint_params,
    load_module_checkpoint,
    load_official_state_dict,
)
from models.diffused_heads.checkpoints import read_dh_checkpoint, read_official_checkpoint
from models.diffused_heads.module import DiffusedHeadsConfig, DiffusedHeadsModule
from models.diffused_heads.nets import DiffusedHeadsUNet, UNetConfig

DATA = Path(__file__).resolve().parents[1] / "data_files"
GRAY, RGB = "diffused_heads_UNet_state_dict.tsv", "diffused_heads_UNet_rgbmotion_state_dict.tsv"
# LightningDiffusion's init arguments as train.py passes them (lightning_modules/model.py), plain values only
OFFICIAL_HPARAMS = {
    "image_size": 128,
    "in_channels": 3,
    "model_channels": 256,
    "out_channels": 6,
    "num_res_blocks": 2,
    "attention_resolutions": [32],
    "dropout": 0.1,
    "channel_mult": [1, 2, 3],
    "num_heads": 4,
    "num_head_channels": 64,
    "resblock_updown": True,
    "n_timesteps": 1000,
    "id_condition_type": "frame",
    "audio_condition_type": "double_pre_gn",
    "lr": 5e-5,
    "bsz": 10,
    "n_motion_frames": 2,
    "grayscale_motion": False,
    "n_audio_motion_embs": 2,
    "n_epochs": 5000,
    "log_dir": "/logs",
}
# a CPU-sized network in the official layout (RGB motion frames, 256-d SDA embeddings)
SMALL = dict(
    image_size=16,
    model_channels=16,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(8,),
    num_heads=1,
    num_head_channels=-1,
    norm_groups=4,
)


def table_views(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every tensor of a key table as a view of one shared random storage: full-size layouts in small files."""
    shapes = {}
    for row in (DATA / name).read_text().splitlines()[1:]:
        key, shape, _ = row.split("\t")
        shapes[key] = [int(s) for s in shape.strip("[]").split(",") if s.strip()]
    base = torch.randn(max(math.prod(s) for s in shapes.values()), generator=torch.Generator().manual_seed(seed))
    return {k: base[: math.prod(s)].view(s) for k, s in shapes.items()}


def small_unet(seed: int = 0, **kw) -> DiffusedHeadsUNet:
    torch.manual_seed(seed)
    cfg = {**SMALL, "dropout": 0.0, "grayscale_motion": False, "audio_dim": 256, **kw}
    net = DiffusedHeadsUNet(UNetConfig(**cfg)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape) * 0.03)
    return net


def foreign_compose():
    """An instance of a class from a module that is gone when the file is read (torchvision's Compose stand-in)."""
    fake = types.ModuleType("torchvision_fake_transforms")

    class Compose:
        def __init__(self, transforms):
            self.transforms = transforms

    Compose.__module__, Compose.__qualname__ = fake.__name__, "Compose"
    fake.Compose = Compose
    return fake, Compose([1, 2])


def write_official(path: Path, sd: dict, form: str, hparams: dict | None = None) -> Path:
    """The official file forms: Lightning .ckpt (plain or foreign hyper_parameters), crema_script.pt, bare dict."""
    if form == "torchscript":
        net = DiffusedHeadsUNet(UNetConfig(**{**SMALL, "grayscale_motion": False, "audio_dim": 256}))
        net.load_state_dict(sd)
        torch.jit.script(net).save(str(path))
        return path
    if form == "unet_state_dict":
        torch.save(sd, path)
        return path
    hp = dict(hparams if hparams is not None else OFFICIAL_HPARAMS)
    payload = {
        "epoch": 4999,
        "global_step": 123,
        "pytorch-lightning_version": "1.9.0",
        # LightningDiffusion registers one UNet twice: the same tensors under both names
        "state_dict": {
            **{f"unet.{k}": v for k, v in sd.items()},
            **{f"diffusion.nn_backbone.{k}": v for k, v in sd.items()},
        },
        "hyper_parameters": hp,
    }
    if form == "lightning_foreign":
        fake, compose = foreign_compose()
        hp["motion_transforms"] = compose
        sys.modules[fake.__name__] = fake
        try:
            torch.save(payload, path)
        finally:
            del sys.modules[fake.__name__]
    else:
        torch.save(payload, path)
    return path


# ------------------------------------------------------------------------------------------- official layouts


@pytest.mark.parametrize("foreign", [False, True])
def test_official_lightning_ckpt_read_without_foreign_classes(tmp_path: Path, foreign: bool) -> None:
    sd = small_unet().state_dict()
    path = write_official(tmp_path / "crema.ckpt", sd, "lightning_foreign" if foreign else "lightning")
    if foreign:
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)
    else:
        torch.load(path, weights_only=True)  # tensors and plain hyper_parameters only
    loaded, described = read_official_checkpoint(path)
    assert set(loaded) == set(sd) and all(torch.equal(loaded[k], sd[k]) for k in sd)
    assert described["grayscale_motion"] is False and described["channel_mult"] == (1, 2, 3)
    assert "lr" not in described and "motion_transforms" not in described  # the run's business / not plain
    # the generic reader returns every tensor, both copies (648 keys for the paper UNet): layouts are the model's
    generic = load_official_state_dict(path)
    assert len(generic) == 2 * len(sd) and generic.format == "lightning"


def test_generic_reader_turns_foreign_classes_inert(tmp_path: Path) -> None:
    fake, compose = foreign_compose()
    sys.modules[fake.__name__] = fake
    try:
        torch.save({"state_dict": {"w": torch.ones(2)}, "hp": {"t": compose}}, tmp_path / "f.ckpt")
    finally:
        del sys.modules[fake.__name__]
    from models.checkpoints import read_checkpoint

    payload, how = read_checkpoint(tmp_path / "f.ckpt")
    assert how == "pickle-restricted" and isinstance(payload["hp"]["t"], ForeignObject)
    assert payload["hp"]["t"].qualname == "torchvision_fake_transforms.Compose"
    assert torch.equal(payload["state_dict"]["w"], torch.ones(2))


def test_official_ckpt_with_diverging_copies_is_refused(tmp_path: Path) -> None:
    sd = small_unet().state_dict()
    bad = {f"unet.{k}": v for k, v in sd.items()} | {f"diffusion.nn_backbone.{k}": v + 1 for k, v in sd.items()}
    torch.save({"state_dict": bad}, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match=r"bad\.ckpt.*differ"):
        read_official_checkpoint(tmp_path / "bad.ckpt")


@pytest.mark.parametrize(("table", "grayscale"), [(RGB, False), (GRAY, True)])
@pytest.mark.parametrize("described", [True, False])
def test_full_size_official_files_imply_their_motion_channels(
    tmp_path: Path, table: str, grayscale: bool, described: bool
) -> None:
    sd = table_views(table)
    hp = {**OFFICIAL_HPARAMS, "grayscale_motion": grayscale} if described else {}
    path = write_official(tmp_path / "official.ckpt", sd, "lightning", hp)
    implied = checkpoint_params(DiffusedHeadsModule, path)
    assert implied["grayscale_motion"] is grayscale
    assert implied["audio_frontend"] == "sda" and implied["audio_dim"] == 256
    assert implied["model_channels"] == 256 and implied["n_audio_motion_embs"] == 2
    assert implied["prediction"] == "eps" and implied["norm_groups"] == 32  # how the official UNet is read
    # the paper preset with what the file implies takes the file strictly (no other override)
    with torch.device("meta"):
        net = DiffusedHeadsUNet(DiffusedHeadsConfig.preset("paper", **implied).unet_config())
    check_state_dict(net, read_dh_checkpoint(path).unet())


def test_motion_channels_need_the_right_number_of_motion_frames(tmp_path: Path) -> None:
    # 12 input channels: 2 RGB motion frames, or 6 grayscale ones
    path = write_official(tmp_path / "unet.pt", small_unet().state_dict(), "unet_state_dict")
    assert checkpoint_params(DiffusedHeadsModule, path)["grayscale_motion"] is False
    assert checkpoint_params(DiffusedHeadsModule, path, {"n_motion_frames": 6})["grayscale_motion"] is True
    with pytest.raises(CheckpointError, match=r"unet\.pt.*12 input channels.*n_motion_frames"):
        checkpoint_params(DiffusedHeadsModule, path, {"n_motion_frames": 4})


def test_torchscript_attributes_describe_the_model(tmp_path: Path) -> None:
    path = write_official(tmp_path / "crema_script.pt", small_unet().state_dict(), "torchscript")
    ck = read_dh_checkpoint(path)
    assert ck.layout == "torchscript"
    assert ck.described == {"n_motion_frames": 2, "n_audio_motion_embs": 2, "grayscale_motion": False}


# ------------------------------------------------------------------------------------------- into the module


def small_module(sda: str | None, **kw) -> DiffusedHeadsModule:
    torch.manual_seed(1)
    extra = {"audio_frontend": "sda", "audio_frontend_weights": sda, "audio_dim": 256} if sda else {}
    return DiffusedHeadsModule(DiffusedHeadsConfig.preset("tiny", **{**SMALL, **extra, **kw}))


@pytest.mark.parametrize("form", ["lightning", "lightning_foreign", "torchscript", "unet_state_dict"])
def test_every_official_form_loads_into_the_module_and_generates(
    tmp_path: Path, sda_encoder_file: str, form: str
) -> None:
    src = small_unet(seed=3)
    hp = {**OFFICIAL_HPARAMS, "model_channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1, "image_size": 16}
    hp.update(attention_resolutions=[8], num_heads=1, num_head_channels=-1)
    path = write_official(tmp_path / "official.bin", src.state_dict(), form, hp)
    # what the runner does: the params the file implies, then the load
    implied = checkpoint_params(DiffusedHeadsModule, path)
    assert implied["grayscale_motion"] is False and implied["audio_frontend"] == "sda"
    assert implied["norm_groups"] == 32  # the official GroupNorm: this CPU-sized stand-in needs fewer groups
    params = {**SMALL, "audio_frontend_weights": sda_encoder_file, **implied, "norm_groups": 4}
    m = DiffusedHeadsModule(DiffusedHeadsConfig.preset("tiny", **params))
    info = load_module_checkpoint(m, path)
    expected_format = {"lightning_foreign": "official_lightning", "lightning": "official_lightning"}.get(form, form)
    assert info["format"] == expected_format and info["loaded"] == ["net"]
    assert info["audio_frontend"]["name"] == "sda" and info["audio_frontend"]["path"] == sda_encoder_file
    for k, v in src.state_dict().items():
        assert torch.equal(m.net.state_dict()[k], v), k
    rng = np.random.default_rng(0)
    ident = rng.integers(0, 255, (1, 32, 32, 3), dtype=np.uint8)
    out = m.generate(ident, rng.standard_normal((1, 1280)).astype(np.float32) * 0.1, seed=0)
    assert out.shape == (1, 2, 32, 32, 3)


def test_full_size_crema_ckpt_loads_into_the_paper_module_without_overrides(
    tmp_path: Path, sda_encoder_file: str
) -> None:
    sd = table_views(RGB)
    path = write_official(tmp_path / "crema.ckpt", sd, "lightning")
    implied = checkpoint_params(DiffusedHeadsModule, path)
    m = DiffusedHeadsModule(DiffusedHeadsConfig.preset("paper", audio_frontend_weights=sda_encoder_file, **implied))
    info = load_module_checkpoint(m, path)
    assert info["format"] == "official_lightning"
    assert m.net.input_blocks[0][0].weight.shape == (256, 12, 3, 3)
    for k in ("input_blocks.0.0.weight", "out.2.weight", "middle_block.1.qkv.weight"):
        assert torch.equal(m.net.state_dict()[k], sd[k])


def test_grayscale_default_refuses_the_rgb_crema_unet_naming_the_params_that_fit(tmp_path: Path) -> None:
    path = write_official(tmp_path / "crema.ckpt", table_views(RGB), "lightning")
    with torch.device("meta"):  # the paper module's shapes without its 216 M parameters
        m = DiffusedHeadsModule(DiffusedHeadsConfig.preset("paper"))
    with pytest.raises(CheckpointError) as err:
        load_module_checkpoint(m, path)
    msg = str(err.value)
    assert "crema.ckpt" in msg and "input_blocks.0.0.weight: expected (256, 8, 3, 3), got (256, 12, 3, 3)" in msg
    assert "'grayscale_motion': False" in msg and "'audio_frontend': 'sda'" in msg
    assert re.search(r"With the params it implies it fits the [^.]*'paper'[^.]* preset", msg)


def test_official_unet_refuses_an_untrained_mel_front_end(tmp_path: Path) -> None:
    path = write_official(tmp_path / "unet.pt", small_unet().state_dict(), "unet_state_dict")
    m = small_module(None, grayscale_motion=False, audio_dim=256)
    with pytest.raises(CheckpointError, match=r"unet\.pt.*audio_frontend=sda.*sda_audio_encoder"):
        load_module_checkpoint(m, path)


# ------------------------------------------------------------------------------------------- our own files


def _perturbed(m: DiffusedHeadsModule, seed: int) -> DiffusedHeadsModule:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)
    return m


@pytest.mark.parametrize("form", ["model.pt", "lightning"])
def test_own_files_restore_every_part(tmp_path: Path, form: str) -> None:
    src = _perturbed(small_module(None, grayscale_motion=False, audio_encoder_width=32, n_audio_motion_embs=1), 5)
    path = tmp_path / "own.ckpt"
    if form == "model.pt":  # the runner's cached weights
        torch.save({"state_dict": src.state_dict(), "training_hash": "abc"}, path)
    else:
        hp = {"cfg": dataclasses.asdict(src.cfg)}
        torch.save({"state_dict": src.state_dict(), "hyper_parameters": hp, "pytorch-lightning_version": "2.6"}, path)
    implied = checkpoint_params(DiffusedHeadsModule, path)
    assert implied["audio_frontend"] == "mel" and implied["grayscale_motion"] is False
    assert (implied["audio_dim"], implied["audio_encoder_width"], implied["n_audio_motion_embs"]) == (64, 32, 1)
    if form == "lightning":  # the saved config describes the rest
        assert implied["prediction"] == "x0" and implied["identity_residual"] is True
    m = DiffusedHeadsModule(DiffusedHeadsConfig.preset("tiny", **{**SMALL, **implied}))
    info = load_module_checkpoint(m, path)
    assert info["format"] == "module" and info["loaded"] == ["net", "audio_encoder"]
    for k, v in src.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k


def test_own_file_ema_weights(tmp_path: Path) -> None:
    src = _perturbed(small_module(None, ema_decay=0.9), 6)
    with torch.no_grad():
        for p in src.ema_net.parameters():
            p.add_(1.0)
    torch.save({"state_dict": src.state_dict()}, tmp_path / "ema.pt")
    plain = small_module(None)
    info = load_module_checkpoint(plain, tmp_path / "ema.pt")
    assert info["loaded"][0].startswith("net (from ema_net")  # what the trained model generated with
    assert torch.equal(plain.net.out[2].weight, src.ema_net.out[2].weight)
    torch.save({"state_dict": plain.state_dict()}, tmp_path / "plain.pt")
    with_ema = small_module(None, ema_decay=0.9)
    assert "ema_net (a copy of net)" in load_module_checkpoint(with_ema, tmp_path / "plain.pt")["loaded"]
    assert torch.equal(with_ema.ema_net.out[2].weight, plain.net.out[2].weight)


def test_own_file_mismatch_names_the_fitting_params(tmp_path: Path) -> None:
    src = small_module(None, grayscale_motion=False)
    torch.save({"state_dict": src.state_dict()}, tmp_path / "rgb.pt")
    with pytest.raises(CheckpointError, match=r"rgb\.pt.*'grayscale_motion': False") as err:
        load_module_checkpoint(small_module(None), tmp_path / "rgb.pt")
    assert "fits no preset" in str(err.value)  # the small widths are neither preset's


# ------------------------------------------------------------------------------------------- the generic hooks


def test_generic_hooks_for_a_model_without_its_own(tmp_path: Path) -> None:
    from models.syncnet.module import SyncNetExpertConfig, SyncNetExpertModule

    tiny = SyncNetExpertModule(SyncNetExpertConfig.preset("tiny"))
    torch.save(tiny.net.state_dict(), tmp_path / "expert.pth")
    assert checkpoint_params(SyncNetExpertModule, tmp_path / "expert.pth") == {}
    with torch.device("meta"):
        paper = SyncNetExpertModule(SyncNetExpertConfig.preset("paper"))
    with pytest.raises(CheckpointError, match=r"expert\.pth.*wrong shape.*It fits the 'tiny' preset"):
        load_module_checkpoint(paper, tmp_path / "expert.pth")
    fresh = SyncNetExpertModule(SyncNetExpertConfig.preset("tiny"))
    assert load_module_checkpoint(fresh, tmp_path / "expert.pth") == {"format": "raw", "loaded": ["net"]}
    for k, v in tiny.net.state_dict().items():
        assert torch.equal(fresh.net.state_dict()[k], v)
    with pytest.raises(CheckpointError, match=r"missing\.pth: no such file"):
        checkpoint_params(SyncNetExpertModule, tmp_path / "missing.pth")
