"""Reading the official Diffused Heads checkpoints without running their pickled code.

The non-scripted CREMA checkpoint (diffused-heads `train` branch, README; reference/official_repos.md 4.1) is a
Lightning 1.x `.ckpt` whose `hyper_parameters` pickle foreign classes (a torchvision `Compose` of motion transforms),
so `torch.load(weights_only=True)` refuses it and `weights_only=False` would import and run them. Here the pickle is
read by torch's own zip loader with a restricted unpickler: tensors, storages, dtypes and plain containers are
rebuilt; every other class becomes an inert `ForeignObject` that only records its name and arguments. Because
`LightningDiffusion` registers the UNet as both `unet` and `diffusion.nn_backbone`, every UNet tensor appears under
both prefixes; `unet_state_dict` checks that the copies agree and returns one.
"""

from __future__ import annotations

import collections
import os
import pickle
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from models.checkpoints import CheckpointError, LoadedStateDict

OFFICIAL_PREFIXES = ("unet.", "diffusion.nn_backbone.")


class ForeignObject:
    """Stand-in for an instance of a class that is not allowed to be imported; keeps what it was built from."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> ForeignObject:
        return type(self)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<foreign {self.qualname}>"


def _foreign(module: str, name: str) -> type:
    return type(name, (ForeignObject,), {"qualname": f"{module}.{name}"})


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
}
for _name in ("_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"):
    if hasattr(torch._utils, _name):
        _ALLOWED[("torch._utils", _name)] = getattr(torch._utils, _name)


def _allowed(module: str, name: str) -> Any | None:
    if (module, name) in _ALLOWED:
        return _ALLOWED[(module, name)]
    if module == "torch":
        obj = getattr(torch, name, None)
        # dtypes and the typed storages torch.save writes; never functions or modules
        if isinstance(obj, torch.dtype) or (isinstance(obj, type) and name.endswith("Storage")):
            return obj
    if module == "torch.storage" and name == "UntypedStorage":
        return torch.UntypedStorage
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds tensors and containers; any other global resolves to an inert `ForeignObject` subclass."""

    def find_class(self, module: str, name: str) -> Any:
        obj = _allowed(module, name)
        return obj if obj is not None else _foreign(module, name)


# a pickle_module for torch.load: torch's zip reader supplies persistent_load, we supply find_class
restricted_pickle = types.SimpleNamespace(Unpickler=RestrictedUnpickler, load=pickle.load, __name__="restricted_pickle")


def load_restricted(path: str | os.PathLike) -> Any:
    """The checkpoint's payload with foreign classes replaced by `ForeignObject`s (nothing foreign is imported)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted_pickle)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {path}: cannot be read ({err}); a truncated download gives this") from err


def unet_state_dict(payload: Mapping[str, Any], source: str) -> LoadedStateDict:
    """The UNet tensors of an official Lightning checkpoint payload (prefix `unet.`, checked against its twin)."""
    sd = payload.get("state_dict") if isinstance(payload, Mapping) else None
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"checkpoint {source}: no 'state_dict' entry (top-level keys: {list(payload)[:8]})")
    unet = {k[len("unet.") :]: v for k, v in sd.items() if k.startswith("unet.")}
    twin = {k[len("diffusion.nn_backbone.") :]: v for k, v in sd.items() if k.startswith("diffusion.nn_backbone.")}
    if not unet:
        unet, twin = twin, {}
    if not unet:
        raise CheckpointError(
            f"checkpoint {source}: no key starts with {' or '.join(map(repr, OFFICIAL_PREFIXES))}; "
            f"not the official Diffused Heads layout (first keys: {list(sd)[:3]})"
        )
    differing = [k for k, v in twin.items() if k in unet and not torch.equal(v, unet[k])]
    if differing:
        raise CheckpointError(
            f"checkpoint {source}: 'unet.' and 'diffusion.nn_backbone.' copies differ ({differing[:3]}); the file is "
            "not a checkpoint of LightningDiffusion (which shares one UNet between them)"
        )
    out = LoadedStateDict(unet)
    out.source = source
    out.format = "diffused_heads_lightning"
    return out


def read_official_checkpoint(path: str | os.PathLike) -> tuple[LoadedStateDict, dict[str, Any]]:
    """(UNet state dict, hyper_parameters with foreign objects inert) of the official non-scripted checkpoint."""
    payload = load_restricted(path)
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"checkpoint {path}: expected a dict, got {type(payload).__name__}")
    hparams = payload.get("hyper_parameters") or {}
    return unet_state_dict(payload, str(path)), dict(hparams) if isinstance(hparams, Mapping) else {}


def read_for_loader(path: str | os.PathLike) -> LoadedStateDict | None:
    """Hook for models.checkpoints: the UNet state dict when `path` has the official layout, else None."""
    try:
        payload = load_restricted(path)
    except CheckpointError:
        return None
    if not isinstance(payload, Mapping) or not isinstance(payload.get("state_dict"), Mapping):
        return None
    if not any(k.startswith(OFFICIAL_PREFIXES) for k in payload["state_dict"]):
        return None
    return unet_state_dict(payload, str(path))


def build_crema_unet() -> torch.nn.Module:
    """The UNet of the released CREMA model: paper widths with RGB motion frames (12 input channels).

    config_crema.yaml fixes motion_channels 3, n_motion_frames 2, n_audio_motion_embs 2, image_size 128; its other
    widths are not stated in the released code, so the train config's are assumed (a strict load tells).
    """
    from models.diffused_heads.nets import DiffusedHeadsUNet, UNetConfig

    return DiffusedHeadsUNet(UNetConfig(grayscale_motion=False))
