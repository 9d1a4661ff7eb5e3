"""The one reader of pickled checkpoint files: tensors and plain containers come back, nothing else runs.

Every `.pt` / `.pth` / `.ckpt` / `.model` file the suite opens (official downloads, imported weights, registered
calibrations, a run's model.pt, Lightning checkpoints) goes through `load_checkpoint_file`, and every read is torch's
own `weights_only` unpickler, whose allow-list holds tensor rebuilds, storages, dtypes and plain containers. A file
that pickles other classes (the official Diffused Heads checkpoint pickles a torchvision `Compose` in its
hyper-parameters) is read again with each such name allow-listed as a stand-in of ours: an inert `ForeignObject`
subclass named after it, so the class itself is never imported and never called. Both torch formats are covered, the
zip archive and the legacy stream (old PyTorch: syncnet_v2.model, wav2lip.pth), whose header records go through
the same unpickler.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

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


#: the name in torch's refusal of a global outside its weights-only allow-list
_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
#: stand-ins one file may need before it is refused (a checkpoint's hyper-parameters hold a handful of classes)
MAX_FOREIGN_CLASSES = 64


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
    stand_ins: dict[str, type] = {}
    while True:
        try:
            with torch.serialization.safe_globals([(cls, name) for name, cls in stand_ins.items()]):
                payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            return payload, bool(stand_ins)
        except Exception as err:  # torch raises many types for files that are not its own
            refused = _REFUSED_GLOBAL.search(str(err))
            if refused is None or refused.group(1) in stand_ins or len(stand_ins) >= MAX_FOREIGN_CLASSES:
                raise CheckpointReadError(
                    f"{path}: not a readable checkpoint ({type(err).__name__}: {str(err)[:200]}); a truncated "
                    "download gives this error"
                ) from err
            # allow-list the refused name as an inert stand-in, and read the file again from the start
            module, _, name = refused.group(1).rpartition(".")
            stand_ins[refused.group(1)] = _foreign(module, name)
