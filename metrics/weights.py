"""The local weights store: registered checkpoint files, pinned by sha256, loaded with weights_only=True.

Pretrained evaluators (SyncNet, InceptionV3, I3D, lipreader, FAN) cannot be downloaded by the suite: a user
fetches the official file and registers it (`bench weights import FILE --as NAME`); weights trained here
(`bench calibrate`) are registered as `<network>-<corpus>-<sha8>`. Every result records the hash it used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch


class WeightsError(RuntimeError):
    """A weights file is missing, unregistered, corrupt, or not the network it claims to be."""


def weights_dir() -> Path:
    home = Path(os.environ.get("TALKBENCH_HOME", Path.home() / ".cache" / "talkbench")).expanduser()
    return home / "weights"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class WeightsEntry:
    name: str
    file: str  # file name inside the store
    sha256: str
    network: str  # what it loads into, e.g. "syncnet_v2" (S), "sync_eval_small", "lipsync_expert"
    source: str  # "official" | "calibrated" | "trained" | a path
    registered: str
    calibrated: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def short(self) -> str:
        return self.sha256[:8]


def _registry_path() -> Path:
    return weights_dir() / "registry.json"


def list_weights() -> dict[str, WeightsEntry]:
    path = _registry_path()
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise WeightsError(f"{path}: weights registry is not valid JSON ({err}); fix or delete it") from err
    return {k: WeightsEntry(**v) for k, v in raw.items()}


def _save_registry(entries: dict[str, WeightsEntry]) -> None:
    path = _registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({k: asdict(v) for k, v in sorted(entries.items())}, indent=2))
    os.replace(tmp, path)


def register_file(
    path: str | Path, name: str, network: str, source: str, calibrated: bool = False, meta: dict | None = None
) -> WeightsEntry:
    """Copy `path` into the store as `<name><suffix>` and record its sha256."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    digest = sha256_file(path)
    dest = weights_dir() / f"{name}{path.suffix or '.pt'}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if path.resolve() != dest.resolve():
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)
    entry = WeightsEntry(
        name=name,
        file=dest.name,
        sha256=digest,
        network=network,
        source=source,
        registered=time.strftime("%Y-%m-%dT%H:%M:%S"),
        calibrated=calibrated,
        meta=meta or {},
    )
    entries = list_weights()
    entries[name] = entry
    _save_registry(entries)
    return entry


def register_object(obj: Any, name: str, network: str, source: str, calibrated: bool, meta: dict | None = None):
    """torch.save `obj` (tensors and plain containers only) and register it."""
    weights_dir().mkdir(parents=True, exist_ok=True)
    tmp = weights_dir() / f".{name}.tmp{os.getpid()}.pt"
    torch.save(obj, tmp)
    try:
        return register_file(tmp, name, network, source, calibrated, meta)
    finally:
        tmp.unlink(missing_ok=True)


def resolve(name: str, how_to_get: str = "") -> tuple[Path, WeightsEntry]:
    """Path of registered weights `name`, after checking the file's sha256 against the registry."""
    entries = list_weights()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise WeightsError(
            f"weights {name!r} are not registered (registered: {known}). "
            + (how_to_get or f"Register a file with: bench weights import FILE --as {name}")
        )
    entry = entries[name]
    path = weights_dir() / entry.file
    if not path.exists():
        raise WeightsError(f"{path}: registered file for {name!r} is missing; import it again")
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise WeightsError(
            f"{path}: sha256 {digest[:12]}... does not match the registered {entry.sha256[:12]}... "
            f"for {name!r}; the file changed or is corrupt. Import it again."
        )
    return path, entry


def load(name: str, how_to_get: str = "") -> tuple[Any, WeightsEntry]:
    """Load registered weights with weights_only=True (no foreign classes are unpickled)."""
    path, entry = resolve(name, how_to_get)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated/foreign files
        raise WeightsError(f"{path}: cannot be loaded as weights ({type(err).__name__}: {err})") from err
    return obj, entry


def newest(prefix: str) -> WeightsEntry | None:
    """The most recently registered entry whose name starts with `prefix`."""
    matches = [e for n, e in list_weights().items() if n.startswith(prefix)]
    return max(matches, key=lambda e: e.registered) if matches else None


def find_calibrated(corpus_fingerprint: str, network_prefix: str) -> WeightsEntry | None:
    """The newest weights calibrated on exactly this corpus (same clip list) for a network named `network_prefix*`."""
    matches = [
        e
        for e in list_weights().values()
        if e.calibrated and e.meta.get("corpus") == corpus_fingerprint and e.network.startswith(network_prefix)
    ]
    return max(matches, key=lambda e: e.registered) if matches else None
