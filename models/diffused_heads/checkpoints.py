"""Diffused Heads checkpoint files: which layout a file has, which params it implies, which tensors are the UNet.

Layouts (docs/diffused_heads.md, docs/checkpoints.md):
- `official_lightning`: the non-scripted CREMA checkpoint of the `train` branch, a Lightning 1.x `.ckpt`.
  `LightningDiffusion` registers one UNet as both `self.unet` and `self.diffusion.nn_backbone`, so every UNet
  tensor is saved twice, under `unet.` and `diffusion.nn_backbone.`: the copies must agree and one is kept. Its
  `hyper_parameters` are `LightningDiffusion`'s init arguments (image_size, model_channels, channel_mult,
  n_motion_frames, grayscale_motion, n_audio_motion_embs, ...; lightning_modules/model.py) and may pickle foreign
  classes (a torchvision `Compose`, hydra's list containers): models.checkpoints reads those as inert objects,
  and only plain values are used here.
- `torchscript`: `crema_script.pt` of the `main` branch, the scripted UNet alone (keys without prefix); scripted
  modules may keep the UNet's int attributes (n_motion_frames, motion_channels, ...), which are used when present.
- `module`: talkbench's own files (a run's model.pt, our Lightning checkpoints): `net.*` (UNet), `audio_encoder.*`
  (the trainable mel front end, absent with a frozen one), `ema_net.*` (with EMA); our Lightning checkpoints keep
  the config under `hyper_parameters["cfg"]`.
- `unet_state_dict`: a bare `torch.save(unet.state_dict())`.
Neither official layout carries audio-encoder weights: the official UNet was trained on embeddings of the frozen
SDA encoder (`audio_frontend: sda`, models/common/audio_frontends.py), so the params a file implies say so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from models.checkpoints import CheckpointError, LoadedStateDict, read_checkpoint, state_dict_of
from models.common.audio_frontends import SDA_DIM
from models.diffused_heads.nets import DiffusedHeadsUNet, UNetConfig

OFFICIAL_PREFIXES = ("unet.", "diffusion.nn_backbone.")
FIRST_LAYER = "input_blocks.0.0.weight"  # [C, 3 + n_motion_frames * motion_channels + 3, 3, 3]
TIME_LAYER = "time_embed.fc.0.weight"  # [4 * model_channels, model_channels]
AUDIO_LAYER = "audio_embed.0.weight"  # [4 * model_channels, audio_dim * (2 * n_audio_motion_embs + 1)]

# LightningDiffusion init arguments (hyper_parameters) with the same name and meaning in DiffusedHeadsConfig and
# that shape the network; training settings (lr, bsz, dropout, ...) are the run's business
OFFICIAL_HPARAMS = (
    "image_size",
    "model_channels",
    "channel_mult",
    "num_res_blocks",
    "attention_resolutions",
    "num_heads",
    "num_head_channels",
    "n_timesteps",
    "n_motion_frames",
    "grayscale_motion",
    "n_audio_motion_embs",
)
# our config fields that define a trained model (its keys, shapes, or how its outputs are read)
MODEL_FIELDS = (
    *OFFICIAL_HPARAMS,
    "norm_groups",
    "audio_dim",
    "audio_encoder_width",
    "audio_frontend",
    "audio_frontend_weights",
    "prediction",
    "motion_mask",
    "identity_residual",
)
# how the official UNet's inputs and outputs are read (unet.py, diffusion.py): fixed, not in any file
OFFICIAL_SEMANTICS = {"prediction": "eps", "identity_residual": False, "motion_mask": "none", "norm_groups": 32}
SCRIPT_ATTRS = ("image_size", "model_channels", "n_motion_frames", "n_audio_motion_embs")


@dataclass
class DiffusedHeadsCheckpoint:
    """What a checkpoint file holds, read once: every tensor (prefixes kept), the file's own description of the
    model (hyper_parameters or TorchScript attributes, plain values only), its layout and where it came from."""

    source: str
    layout: str  # official_lightning | torchscript | module | unet_state_dict
    state_dict: LoadedStateDict
    described: dict[str, Any] = field(default_factory=dict)

    def part(self, prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in self.state_dict.items() if k.startswith(prefix)}

    def unet(self) -> LoadedStateDict:
        """The UNet's tensors (official twins checked and merged; `net.` stripped from our files)."""
        if self.layout == "official_lightning":
            sd = merge_official_twins(self.state_dict, self.source)
        else:
            sd = self.part("net.") if self.layout == "module" else dict(self.state_dict)
        out = LoadedStateDict(sd)
        out.source, out.format = self.source, self.layout
        return out


def _plain(value: Any) -> Any | None:
    """`value` if it is a plain int / float / bool / str or a list / tuple of them (tuples for lists), else None."""
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, bool | int | float | str) for v in value):
        return tuple(value)
    return None


def _layout(sd: Mapping[str, torch.Tensor], how: str) -> str:
    if any(k.startswith(OFFICIAL_PREFIXES) for k in sd):
        return "official_lightning"
    if any(k.startswith("net.") for k in sd):
        return "module"
    return "torchscript" if how == "torchscript" else "unet_state_dict"


def read_dh_checkpoint(path: str | os.PathLike) -> DiffusedHeadsCheckpoint:
    """Read any Diffused Heads checkpoint file (layouts in the module docstring), without running pickled code."""
    payload, how = read_checkpoint(path)
    sd = state_dict_of(payload, how, path)
    layout = _layout(sd, how)
    described: dict[str, Any] = {}
    if how == "torchscript":
        for name in (*SCRIPT_ATTRS, "motion_channels"):
            value = _plain(getattr(payload, name, None))
            if isinstance(value, int) and not isinstance(value, bool):
                described[name] = value
        if "motion_channels" in described:
            described["grayscale_motion"] = described.pop("motion_channels") == 1
    elif isinstance(payload, Mapping) and isinstance(payload.get("hyper_parameters"), Mapping):
        hp = payload["hyper_parameters"]
        # ours: {"cfg": DiffusedHeadsConfig as a dict}; official: LightningDiffusion's init arguments
        own = hp.get("cfg") if layout == "module" and isinstance(hp.get("cfg"), Mapping) else None
        names = MODEL_FIELDS if own is not None else OFFICIAL_HPARAMS
        for name in names:
            value = _plain((own if own is not None else hp).get(name))
            if value is not None or (own is not None and name in own):
                described[name] = value
        if own is None:
            for name, want in (("id_condition_type", "frame"), ("audio_condition_type", "double_pre_gn")):
                if hp.get(name, want) != want:
                    raise CheckpointError(
                        f"checkpoint {path}: {name}={hp.get(name)!r}; only the released configs' {want!r} is built "
                        "(models/diffused_heads/nets.py)"
                    )
    return DiffusedHeadsCheckpoint(str(path), layout, sd, described)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    # torch.save stores a shared tensor once, so in a genuine file both names view one storage: no compare needed
    if a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype:
        return True
    return a.shape == b.shape and torch.equal(a, b)


def merge_official_twins(sd: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """One UNet from the `unet.` and `diffusion.nn_backbone.` copies of an official checkpoint (checked equal)."""
    unet = {k[len("unet.") :]: v for k, v in sd.items() if k.startswith("unet.")}
    twin = {k[len("diffusion.nn_backbone.") :]: v for k, v in sd.items() if k.startswith("diffusion.nn_backbone.")}
    if not unet:
        unet, twin = twin, {}
    if not unet:
        raise CheckpointError(
            f"checkpoint {source}: no key starts with {' or '.join(map(repr, OFFICIAL_PREFIXES))}; "
            f"not the official Diffused Heads layout (first keys: {list(sd)[:3]})"
        )
    differing = [k for k, v in twin.items() if k in unet and not _same(v, unet[k])]
    if differing or (twin and set(twin) != set(unet)):
        shown = differing[:3] or sorted(set(twin) ^ set(unet))[:3]
        raise CheckpointError(
            f"checkpoint {source}: 'unet.' and 'diffusion.nn_backbone.' copies differ ({shown}); the file is not a "
            "checkpoint of LightningDiffusion (which shares one UNet between them)"
        )
    others = [k for k in sd if not k.startswith(OFFICIAL_PREFIXES)]
    if others:
        raise CheckpointError(
            f"checkpoint {source}: {len(others)} tensors outside the UNet (first: {', '.join(others[:3])}); "
            "not the official LightningDiffusion layout"
        )
    return unet


def read_official_checkpoint(path: str | os.PathLike) -> tuple[LoadedStateDict, dict[str, Any]]:
    """(UNet state dict, the plain hyper_parameters the file describes) of an official non-scripted checkpoint."""
    ck = read_dh_checkpoint(path)
    if ck.layout != "official_lightning":
        raise CheckpointError(f"checkpoint {path}: not the official Lightning layout (found {ck.layout})")
    return ck.unet(), dict(ck.described)


def read_crema_unet(path: str | os.PathLike) -> LoadedStateDict:
    """Reader of `bench weights import FILE --as diffused_heads_crema`: the UNet of the official CREMA model from
    the non-scripted Lightning `.ckpt` (either way its hyper_parameters were pickled) or `crema_script.pt`."""
    ck = read_dh_checkpoint(path)
    if ck.layout == "module":
        raise CheckpointError(
            f"checkpoint {path}: a talkbench training checkpoint, not the official CREMA model; use it directly as "
            "run.checkpoint (or register it under another name)"
        )
    return ck.unet()


def _motion_channels(width: int, n_motion_frames: int, source: str) -> int:
    c, rest = divmod(width - 6, max(1, n_motion_frames))
    if rest or c not in (1, 3) or n_motion_frames < 1:
        raise CheckpointError(
            f"checkpoint {source}: {FIRST_LAYER} takes {width} input channels, which is not 3 + "
            f"{n_motion_frames} motion frames x (1 grayscale | 3 RGB) + 3; set model.params.n_motion_frames to the "
            "number of motion frames the file was trained with"
        )
    return c


def implied_params(ck: DiffusedHeadsCheckpoint, n_motion_frames: int = 2) -> dict[str, Any]:
    """The DiffusedHeadsConfig values checkpoint `ck` fixes (see DiffusedHeadsModule.checkpoint_params).

    The file's own description comes first; the rest is read from tensor shapes: model_channels, the motion
    channels (from the first layer's width, with the file's n_motion_frames when it says, else `n_motion_frames`),
    the audio front end (`mel` when the file holds its weights, else the official `sda`), audio_dim and
    n_audio_motion_embs.
    """
    out = dict(ck.described)
    if ck.layout != "module":  # the official model reads its network only one way
        out.update(OFFICIAL_SEMANTICS)
    unet = ck.unet()
    if FIRST_LAYER not in unet or TIME_LAYER not in unet or AUDIO_LAYER not in unet:
        raise CheckpointError(
            f"checkpoint {ck.source}: not a Diffused Heads UNet (no {FIRST_LAYER} / {TIME_LAYER} / {AUDIO_LAYER}; "
            f"first keys: {list(unet)[:3]})"
        )
    out.setdefault("model_channels", int(unet[TIME_LAYER].shape[1]))
    n_motion = out.get("n_motion_frames") or n_motion_frames
    grayscale = _motion_channels(int(unet[FIRST_LAYER].shape[1]), int(n_motion), ck.source) == 1
    if out.get("grayscale_motion", grayscale) != grayscale:
        raise CheckpointError(
            f"checkpoint {ck.source}: its hyper_parameters say grayscale_motion={out['grayscale_motion']} but "
            f"{FIRST_LAYER} has {unet[FIRST_LAYER].shape[1]} input channels; the file is inconsistent"
        )
    out["grayscale_motion"] = grayscale
    encoder = ck.part("audio_encoder.") if ck.layout == "module" else {}
    if "audio_frontend" not in out:
        out["audio_frontend"] = "mel" if encoder else "sda"
    if out["audio_frontend"] == "mel" and "proj.weight" in encoder:
        out.setdefault("audio_dim", int(encoder["proj.weight"].shape[0]))
        out.setdefault("audio_encoder_width", int(encoder["conv.0.weight"].shape[0]))
    elif out["audio_frontend"] == "sda":
        out.setdefault("audio_dim", SDA_DIM)
    if "audio_dim" in out and "n_audio_motion_embs" not in out:
        per_window, rest = divmod(int(unet[AUDIO_LAYER].shape[1]), int(out["audio_dim"]))
        if rest or per_window % 2 == 0:
            raise CheckpointError(
                f"checkpoint {ck.source}: the UNet's audio input takes {unet[AUDIO_LAYER].shape[1]} values, not "
                f"(2 m + 1) embeddings of {out['audio_dim']}: the {out['audio_frontend']!r} front end cannot drive it"
            )
        out["n_audio_motion_embs"] = (per_window - 1) // 2
    return out


def unet_layout(**params: Any) -> torch.nn.Module:
    """A UNet (nets.UNetConfig defaults = the paper's, with `params`) on the meta device: keys and shapes for
    checks, no memory."""
    with torch.device("meta"):
        return DiffusedHeadsUNet(UNetConfig(**params))


def crema_unet_layout() -> torch.nn.Module:
    """What `diffused_heads_crema` is checked against: the paper UNet with RGB motion frames (12 input channels),
    on the meta device (the paper UNet is 216 M parameters; a key and shape check needs none of them).

    config_crema.yaml fixes motion_channels 3, n_motion_frames 2, n_audio_motion_embs 2, image_size 128; its other
    widths are not stated in the released code, so the train config's are assumed (the strict check tells).
    """
    return unet_layout(grayscale_motion=False)


def build_crema_unet() -> torch.nn.Module:
    """The UNet of the released CREMA model (see `crema_unet_layout`), with real (untrained) weights."""
    return DiffusedHeadsUNet(UNetConfig(grayscale_motion=False))
