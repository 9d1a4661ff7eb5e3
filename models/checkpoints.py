"""Loading official and our own checkpoints into the Wav2Lip-family networks.

Formats met in the wild (reference/official_repos.md section 2.1):
- Wav2Lip's training scripts save `{"state_dict", "optimizer", "global_step", "global_epoch"}`, sometimes with
  DataParallel's `module.` prefix on every key (wav2lip_train.py strips it before a strict load);
- the newer Wav2Lip downloads (`Wav2Lip-SD-*.pt`) are TorchScript archives, for which `checkpoint["state_dict"]`
  fails and `.state_dict()` works (Wav2Lip#743);
- our Lightning checkpoints keep the network under the `net.` attribute of the LightningModule;
- plain `torch.save(net.state_dict())` files.
Pickles are always read with `weights_only=True`: a checkpoint is data, never code to run.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

LIGHTNING_NET_PREFIX = "net."  # attribute holding the network in every talkbench LightningModule
_DATAPARALLEL_PREFIX = "module."
_SHOW = 3  # how many offending keys an error message names


class CheckpointError(ValueError):
    """A checkpoint file cannot be read, or does not fit the network it is meant for."""


class LoadedStateDict(dict):
    """A state dict that remembers the file it came from (for error messages) and the format it was in."""

    source: str = ""
    format: str = ""


def _is_torchscript(path: Path) -> bool:
    # torch.save zips hold data.pkl only; TorchScript archives also hold constants.pkl and code/.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.endswith("/constants.pkl") or name == "constants.pkl" for name in zf.namelist())


# Official checkpoints whose pickles hold foreign classes (refused by weights_only=True): "module:function" readers
# taking a path and returning the network's LoadedStateDict, or None when the file is not in their layout. They
# rebuild tensors only and never import the foreign classes.
FOREIGN_PICKLE_READERS: list[str] = ["models.diffused_heads.checkpoints:read_for_loader"]


def import_reader(target: str):
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _strip_dataparallel(key: str) -> str:
    while key.startswith(_DATAPARALLEL_PREFIX):
        key = key[len(_DATAPARALLEL_PREFIX) :]
    return key


def load_official_state_dict(path: str | os.PathLike, *, prefix: str | None = None) -> LoadedStateDict:
    """Read a network state dict from any supported checkpoint format, on the CPU.

    Accepts a raw state dict, a dict with a `state_dict` entry (Wav2Lip's training checkpoints, Lightning
    checkpoints), a TorchScript archive, with or without `module.` prefixes (removed). `prefix` selects and
    strips a sub-network's keys (e.g. `"expert.net."` inside a Wav2LipModule checkpoint); for a whole-module
    checkpoint (Lightning's, or a runner's model.pt) it defaults to `"net."` when such keys exist.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if _is_torchscript(path):
        try:
            payload: object = torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception as err:  # a broken archive surfaces as many error types
            raise CheckpointError(f"checkpoint {path}: cannot read TorchScript archive: {err}") from err
        fmt = "torchscript"
    else:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
            for reader in FOREIGN_PICKLE_READERS:
                found = import_reader(reader)(path)
                if found is not None:
                    return found
            raise CheckpointError(
                f"checkpoint {path}: cannot be read as tensors only ({err}). A truncated download gives this "
                "error (Wav2Lip#141); a file that pickles code objects is refused on purpose."
            ) from err
        fmt = "raw"

    if not isinstance(payload, Mapping):
        raise CheckpointError(f"checkpoint {path}: expected a dict of tensors, got {type(payload).__name__}")
    lightning = "pytorch-lightning_version" in payload
    if isinstance(payload.get("state_dict"), Mapping):
        fmt = "lightning" if lightning else "dict[state_dict]"
        payload = payload["state_dict"]
    non_tensors = [k for k, v in payload.items() if not isinstance(v, torch.Tensor)]
    if non_tensors or not payload:
        raise CheckpointError(
            f"checkpoint {path}: found no state dict (entries that are not tensors: {non_tensors[:_SHOW]}; "
            f"top-level keys: {list(payload)[:8]})"
        )

    sd = {_strip_dataparallel(k): v for k, v in payload.items()}
    # a whole-module checkpoint (Lightning's, or talkbench's model.pt {"state_dict": module.state_dict()}) keeps
    # the network under "net."; official network files never use that prefix
    if (
        prefix is None
        and fmt in ("lightning", "dict[state_dict]")
        and any(k.startswith(LIGHTNING_NET_PREFIX) for k in sd)
    ):
        prefix = LIGHTNING_NET_PREFIX
    if prefix:
        sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if not sd:
            raise CheckpointError(f"checkpoint {path}: no key starts with {prefix!r}")

    out = LoadedStateDict(sd)
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
    from models.syncnet.nets import PRESET_WIDTHS as EXPERT_WIDTHS
    from models.syncnet.nets import SyncNetColor
    from models.wav2lip.nets import PRESET_WIDTHS as GENERATOR_WIDTHS
    from models.wav2lip.nets import Wav2LipGenerator

    table = {"lipsync_expert": (SyncNetColor, EXPERT_WIDTHS), "wav2lip": (Wav2LipGenerator, GENERATOR_WIDTHS)}
    if name not in table:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(table)}")
    cls, widths = table[name]
    if preset not in widths:
        raise KeyError(f"unknown preset {preset!r} for {name}; known: {', '.join(widths)}")
    return cls(width=widths[preset])
