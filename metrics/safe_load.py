"""The one reader of pickled checkpoint files: tensors and plain containers come back, nothing else runs.

Every `.pt` / `.pth` / `.ckpt` / `.model` file the suite opens (official downloads, imported weights, registered
calibrations, a run's model.pt, Lightning checkpoints) goes through `load_checkpoint_file`. It first asks torch's
own `weights_only` unpickler; a file that pickles other classes (the official Diffused Heads checkpoint pickles a
torchvision `Compose` in its hyper-parameters) is read again by `RestrictedUnpickler`, which rebuilds tensors,
storages, dtypes and plain containers and turns every other class into an inert `ForeignObject`: never imported,
never called. Both torch formats are covered, the zip archive and the legacy stream (old PyTorch: syncnet_v2.model,
wav2lip.pth), whose header records (magic number, protocol, system info, storage keys) are separate pickles: the
restricted reader reads every one of them, never Python's own `pickle.load`.
"""

from __future__ import annotations

import collections
import os
import pickle
import types
from pathlib import Path
from typing import IO, Any

import torch


class CheckpointReadError(ValueError):
    """A file that cannot be read as a checkpoint (truncated, not a pickle, TorchScript where a pickle is expected)."""


class ForeignObject:
    """Stand-in for an instance of a class that may not be imported; keeps what it was built from, does nothing."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> ForeignObject:
        return type(self)(*args, **kwargs)

    # pickles of dict / list subclasses fill the new object with SETITEMS / APPENDS: keep what they put in
    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("values", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("values", []).extend(values)

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


def _restricted_load(file: IO[bytes], **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


#: a `pickle_module` for torch.load: torch supplies persistent_load for its storages, the module the rest; `load`
#: reads the legacy format's header records through the same allow-list
restricted_pickle = types.SimpleNamespace(
    Unpickler=RestrictedUnpickler, load=_restricted_load, __name__="restricted_pickle"
)


def is_torchscript(path: str | os.PathLike[str]) -> bool:
    """A TorchScript archive (constants.pkl and code/ beside data.pkl), not a torch.save file."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.endswith("/constants.pkl") or name == "constants.pkl" for name in zf.namelist())


def load_checkpoint_file(path: str | os.PathLike[str], *, mmap: bool = False) -> tuple[Any, bool]:
    """(payload, restricted) of a pickled checkpoint on the CPU; `restricted` is True when foreign classes in it
    were replaced by `ForeignObject`s. CheckpointReadError naming the file when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointReadError(f"{path}: no such file")
    if is_torchscript(path):
        raise CheckpointReadError(f"{path}: a TorchScript archive, not a checkpoint of tensors")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap), False
    except Exception as err:  # torch raises many types for files that are not its own
        first = err
    try:
        # weights_only=False only because torch takes no pickle_module with it: the module given here replaces the
        # unpickler of every record (torch's own wrapper defers to its find_class), so each global resolves through
        # the allow-list above (tensor rebuilds, storages, dtypes, plain containers) or to an inert ForeignObject;
        # nothing from the file is imported or called (tests/faults/test_foreign_code.py, one payload per door)
        payload = torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted_pickle)
    except Exception as err:  # arbitrary bytes: any error means "not a checkpoint"
        raise CheckpointReadError(
            f"{path}: not a readable checkpoint ({type(first).__name__}: {str(first)[:200]}); a truncated download "
            "gives this error"
        ) from err
    return payload, True
