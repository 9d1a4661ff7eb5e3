"""Reading checkpoint files of any format, checking them against a network, and the two hooks every model's
checkpoint goes through (`checkpoint_params`, `load_module_checkpoint`).

Formats met in the wild (docs/checkpoints.md, docs/diffused_heads.md):
- Wav2Lip's training scripts save `{"state_dict", "optimizer", "global_step", "global_epoch"}`, sometimes with
  DataParallel's `module.` prefix on every key (wav2lip_train.py strips it before a strict load);
- the newer Wav2Lip downloads (`Wav2Lip-SD-*.pt`) and Diffused Heads' `crema_script.pt` are TorchScript archives,
  for which `checkpoint["state_dict"]` fails and `.state_dict()` works (Wav2Lip#743);
- Lightning checkpoints, ours (the network under the `net.` attribute of the LightningModule) and official ones
  whose `hyper_parameters` may pickle foreign classes (Diffused Heads pickles a torchvision `Compose`);
- plain `torch.save(net.state_dict())` files.
A checkpoint is data, never code to run: pickles go through the suite's one reader (metrics/safe_load.py), which
rebuilds tensors and plain containers and turns every other class into an inert `ForeignObject` (nothing foreign
is imported or called), in both torch formats.

Which keys of a file belong to which network is the model's business (a model's `checkpoint_params` and
`load_checkpoint`, e.g. models/diffused_heads/module.py); this module stays generic.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metrics.safe_load import CheckpointReadError, is_torchscript, load_checkpoint_file
from models.common.config import Presets

LIGHTNING_NET_PREFIX = "net."  # attribute holding the network in every talkbench LightningModule
_DATAPARALLEL_PREFIX = "module."
_SHOW = 3  # how many offending keys an error message names


class CheckpointError(ValueError):
    """A checkpoint file cannot be read, or does not fit the network it is meant for."""


class LoadedStateDict(dict):
    """A state dict that remembers the file it came from (for error messages) and the format it was in."""

    source: str = ""
    format: str = ""


# ----------------------------------------------------------------------------------------------- reading files


def _strip_dataparallel(key: str) -> str:
    while key.startswith(_DATAPARALLEL_PREFIX):
        key = key[len(_DATAPARALLEL_PREFIX) :]
    return key


def read_checkpoint(path: str | os.PathLike) -> tuple[Any, str]:
    """(payload, how it was read) of a checkpoint file, on the CPU: ("torchscript", the loaded ScriptModule),
    ("pickle", tensors and plain containers) or ("pickle-restricted", the same with foreign classes come back as
    inert `ForeignObject`s). Pickles go through the suite's one reader, `metrics.safe_load`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if is_torchscript(path):
        try:
            return torch.jit.load(str(path), map_location="cpu"), "torchscript"
        except Exception as err:  # a broken archive surfaces as many error types
            raise CheckpointError(f"checkpoint {path}: cannot read TorchScript archive: {err}") from err
    try:
        payload, restricted = load_checkpoint_file(path)
    except CheckpointReadError as err:
        raise CheckpointError(f"checkpoint {err} (Wav2Lip#141)") from err
    return payload, "pickle-restricted" if restricted else "pickle"


def state_dict_of(payload: Any, how: str, source: str | os.PathLike) -> LoadedStateDict:
    """Every tensor entry of a payload from `read_checkpoint`, `module.` prefixes removed, other prefixes kept.

    The payload is a TorchScript module, a raw state dict, or a dict with a `state_dict` entry (Wav2Lip's training
    checkpoints, Lightning checkpoints). `.format` says which: torchscript | raw | dict[state_dict] | lightning.
    """
    if how == "torchscript":
        payload, fmt = payload.state_dict(), "torchscript"
    else:
        fmt = "raw"
        if not isinstance(payload, Mapping):
            raise CheckpointError(f"checkpoint {source}: expected a dict of tensors, got {type(payload).__name__}")
        if isinstance(payload.get("state_dict"), Mapping):
            fmt = "lightning" if "pytorch-lightning_version" in payload else "dict[state_dict]"
            payload = payload["state_dict"]
    non_tensors = [k for k, v in payload.items() if not isinstance(v, torch.Tensor)]
    if non_tensors or not payload:
        raise CheckpointError(
            f"checkpoint {source}: found no state dict (entries that are not tensors: {non_tensors[:_SHOW]}; "
            f"top-level keys: {list(payload)[:8]})"
        )
    out = LoadedStateDict({_strip_dataparallel(k): v for k, v in payload.items()})
    out.source = str(source)
    out.format = fmt
    return out


def load_official_state_dict(path: str | os.PathLike, *, prefix: str | None = None) -> LoadedStateDict:
    """Read a network state dict from any supported checkpoint format, on the CPU.

    Accepts a raw state dict, a dict with a `state_dict` entry, a TorchScript archive, with or without `module.`
    prefixes (removed). `prefix` selects and strips a sub-network's keys (e.g. `"expert.net."` inside a
    Wav2LipModule checkpoint); for a whole-module checkpoint (Lightning's, or a runner's model.pt) it defaults to
    `"net."` when such keys exist. `prefix=""` keeps every key.
    """
    payload, how = read_checkpoint(path)
    sd = state_dict_of(payload, how, path)
    fmt = sd.format
    # a whole-module checkpoint (Lightning's, or talkbench's model.pt {"state_dict": module.state_dict()}) keeps
    # the network under "net."; official network files never use that prefix
    if (
        prefix is None
        and fmt in ("lightning", "dict[state_dict]")
        and any(k.startswith(LIGHTNING_NET_PREFIX) for k in sd)
    ):
        prefix = LIGHTNING_NET_PREFIX
    state: dict[str, torch.Tensor] = sd
    if prefix:
        state = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if not state:
            raise CheckpointError(f"checkpoint {path}: no key starts with {prefix!r}")
    out = LoadedStateDict(state)
    out.source = str(path)
    out.format = fmt
    return out


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _common_prefix_hint(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor]) -> str:
    # Suggest `prefix=` when every expected key appears behind one common leading string.
    first = next(iter(expected), None)
    if first is None:
        return ""
    for key in got:
        if key.endswith("." + first):
            prefix = key[: -len(first)]
            if all(prefix + k in got for k in expected):
                return f" The keys carry a {prefix!r} prefix: load with prefix={prefix!r}."
    return ""


def check_state_dict(net: nn.Module, sd: Mapping[str, torch.Tensor], *, source: str | None = None) -> None:
    """Raise CheckpointError unless `sd` has exactly `net`'s keys with the same shapes (a strict load).

    The message names the file, the first missing, unexpected and mis-shaped keys (with expected and found
    shapes), so a user can tell a wrong file from a wrong preset.
    """
    source = source or getattr(sd, "source", "") or "<state dict>"
    expected = net.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mis_shaped = [k for k in expected if k in sd and _shape(sd[k]) != _shape(expected[k])]
    if not (missing or unexpected or mis_shaped):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:_SHOW])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:_SHOW])})")
    if mis_shaped:
        shown = "; ".join(f"{k}: expected {_shape(expected[k])}, got {_shape(sd[k])}" for k in mis_shaped[:_SHOW])
        parts.append(f"{len(mis_shaped)} keys with the wrong shape ({shown})")
    hint = _common_prefix_hint(expected, sd) if missing else ""
    if mis_shaped and not missing and not unexpected:
        hint = " Same layers, different widths: was it saved from another preset (width)?"
    raise CheckpointError(f"checkpoint {source} does not fit {type(net).__name__}: {'; '.join(parts)}.{hint}")


def load_network_weights(net: nn.Module, path: str | os.PathLike, *, prefix: str | None = None) -> nn.Module:
    """Load a checkpoint file into `net` after checking it fits (strict); returns `net`."""
    sd = load_official_state_dict(path, prefix=prefix)
    check_state_dict(net, sd)
    net.load_state_dict(sd, strict=True)
    return net


NETWORKS: dict[str, str] = {
    "lipsync_expert": "SyncNetColor (Wav2Lip's expert discriminator, lipsync_expert.pth)",
    "wav2lip": "Wav2LipGenerator (Wav2Lip's generator, wav2lip.pth / wav2lip_gan.pth / Wav2Lip-SD-*.pt)",
}


def build_network(name: str, preset: str = "paper") -> nn.Module:
    """The bare network a checkpoint named `name` belongs to, at the width of `preset` ("paper" | "tiny")."""
    from models.syncnet.module import SyncNetExpertConfig
    from models.syncnet.nets import SyncNetColor
    from models.wav2lip.module import Wav2LipConfig
    from models.wav2lip.nets import Wav2LipGenerator

    table: dict[str, tuple[type[SyncNetColor | Wav2LipGenerator], type[SyncNetExpertConfig | Wav2LipConfig]]] = {
        "lipsync_expert": (SyncNetColor, SyncNetExpertConfig),
        "wav2lip": (Wav2LipGenerator, Wav2LipConfig),
    }
    if name not in table:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(table)}")
    cls, config = table[name]
    if preset not in config.preset_names():
        raise KeyError(f"unknown preset {preset!r} for {name}; known: {', '.join(config.preset_names())}")
    return cls(width=config.preset(preset).width)


# ----------------------------------------------------------------------------------------------- model hooks


def _preset_config(cls: type) -> type[Presets] | None:
    """Model class `cls`'s config class when it has presets (models.common.config.Presets), else None."""
    config = getattr(cls, "config_class", None)
    return config if hasattr(config, "preset_names") else None


def fitting_presets(
    cls: type, sd: Mapping[str, torch.Tensor], params: Mapping[str, Any] | None = None, attr: str = "net"
) -> list[str]:
    """The presets of model class `cls` (with `params` on top) whose network `attr` takes `sd` strictly.

    Networks are built on the meta device (shapes only, no memory); a preset whose module cannot be built alone
    (one that needs other models) is skipped.
    """
    config = _preset_config(cls)
    if config is None:
        return []
    fits = []
    for name in config.preset_names():
        try:
            with torch.device("meta"):
                net = getattr(cls(config.preset(name, **dict(params or {}))), attr)
            check_state_dict(net, sd)
        except Exception:  # an unbuildable or non-fitting preset is simply not a hint
            continue
        fits.append(name)
    return fits


def preset_hint(cls: type, sd: Mapping[str, torch.Tensor], params: Mapping[str, Any] | None = None) -> str:
    """A sentence for error messages: which preset (with `params`) the checkpoint would fit."""
    fits = fitting_presets(cls, sd, params)
    with_params = f" with params {dict(params)}" if params else ""
    if fits:
        return f" It fits the {' / '.join(map(repr, fits))} preset{with_params}: run with that preset."
    config = _preset_config(cls)
    names = config.preset_names() if config is not None else []
    return f" It fits none of the {', '.join(map(repr, names))} presets{with_params}."


def checkpoint_params(cls: type, path: str | os.PathLike, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config overrides checkpoint `path` implies for model class `cls`: the class's own
    `checkpoint_params(path, params=...)` hook when it has one (e.g. Diffused Heads reads its motion channels and
    audio front end from the file), else {}.

    `params`: the model params the run asks for so far (a hook may need some, e.g. n_motion_frames to tell the
    motion channels from the first layer's width). Build the module with `{**params, **returned}`: the file fixes
    the architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    hook = getattr(cls, "checkpoint_params", None)
    if hook is None:
        return {}
    out = dict(hook(path, params=dict(params or {})))
    cfg_class = getattr(cls, "config_class", None)
    if dataclasses.is_dataclass(cfg_class):
        known = {f.name for f in dataclasses.fields(cfg_class)}
        unknown = sorted(set(out) - known)
        if unknown:  # a hook bug, not a user error; caught here rather than as a confusing config error later
            raise CheckpointError(f"{cls.__name__}.checkpoint_params({path}) returned unknown params {unknown}")
    return out


def load_module_checkpoint(module: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load checkpoint `path` into a model's LightningModule; returns what was loaded ({"format": ..., ...}).

    The module's own `load_checkpoint(path) -> dict` when it has one (every format that model knows, e.g. the
    official Diffused Heads files); otherwise a strict load of the file's network into `module.net`. Errors name
    the file and, on mismatched keys or shapes, the preset that would fit.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    hook = getattr(module, "load_checkpoint", None)
    if callable(hook):
        info = dict(hook(path))
        info.setdefault("format", "unknown")
        return info
    net = getattr(module, "net", None)
    if not isinstance(net, nn.Module):
        raise CheckpointError(f"checkpoint {path}: {type(module).__name__} has no network (`net`) to load it into")
    sd = load_official_state_dict(path)
    try:
        check_state_dict(net, sd, source=str(path))
    except CheckpointError as err:
        raise CheckpointError(f"{err}{preset_hint(type(module), sd)}") from err
    net.load_state_dict(sd, strict=True)
    return {"format": sd.format, "loaded": ["net"]}
