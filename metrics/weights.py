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

from data.io import sweep_stale_temps, temp_beside


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


def content_digest(obj: Any) -> str:
    """sha256 of what a checkpoint holds, not of how it is stored: every tensor's place in the nested containers,
    dtype, shape and bytes, and every other value, in key order. torch.save writes the file name into its archive
    and its records change between versions; this digest does not, so the same weights have one identity on every
    machine."""
    h = hashlib.sha256()

    def walk(prefix: str, x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"{prefix}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                walk(f"{prefix}/{k}", x[k])
        elif isinstance(x, list | tuple):
            for i, v in enumerate(x):
                walk(f"{prefix}[{i}]", v)
        else:
            h.update(f"{prefix}={x!r}|".encode())

    walk("", obj)
    return h.hexdigest()


def file_content_digest(path: str | Path) -> str:
    """`content_digest` of a checkpoint file's payload; the file's sha256 for what is not a pickle of tensors
    (a TorchScript archive is the same bytes wherever it was copied)."""
    from metrics.safe_load import CheckpointReadError, load_checkpoint_file

    try:
        payload, _ = load_checkpoint_file(path)
    except CheckpointReadError:
        return sha256_file(path)
    return content_digest(payload)


@dataclass
class WeightsEntry:
    name: str
    file: str  # file name inside the store
    sha256: str  # of the file: checked on every use (a changed or damaged file is refused)
    network: str  # what it loads into, e.g. "syncnet_v2" (S), "sync_eval_small", "lipsync_expert"
    source: str  # "official" | "calibrated" | "trained" | a path
    registered: str
    calibrated: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    content: str = ""  # content_digest of the weights: their identity in results and protocol hashes

    @property
    def short(self) -> str:
        return self.sha256[:8]

    @property
    def status(self) -> str:
        """calibrated (trained here by `bench calibrate`) | official (imported, and its sha256 is a pinned official
        digest) | unofficial (its sha256 differs from the pinned one: imported with --allow-unofficial) |
        unverified (imported under an official name without a pinned digest to check it against, or registered
        otherwise): only `official` goes unmarked in tables."""
        if self.calibrated:
            return "calibrated"
        labels: dict[bool | None, str] = {True: "official", False: "unofficial"}
        return labels.get(self.meta.get("sha256_official"), "unverified")

    @property
    def identity(self) -> str:
        """What results record and protocols hash: the content digest (the file's sha256 for older entries)."""
        return self.content or self.sha256


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
    sweep_stale_temps(path.parent)  # copies and registrations killed earlier
    with temp_beside(path) as tmp:
        tmp.write_text(json.dumps({k: asdict(v) for k, v in sorted(entries.items())}, indent=2))
        os.replace(tmp, path)


def register_file(
    path: str | Path,
    name: str,
    network: str,
    source: str,
    calibrated: bool = False,
    meta: dict[str, Any] | None = None,
) -> WeightsEntry:
    """Copy `path` into the store as `<name><suffix>` and record its sha256."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    digest = sha256_file(path)
    dest = weights_dir() / f"{name}{path.suffix or '.pt'}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if path.resolve() != dest.resolve():
        with temp_beside(dest) as tmp:
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
        content=file_content_digest(dest),
    )
    entries = list_weights()
    entries[name] = entry
    _save_registry(entries)
    return entry


def register_object(
    obj: Any, name: str, network: str, source: str, calibrated: bool, meta: dict[str, Any] | None = None
) -> WeightsEntry:
    """torch.save `obj` (tensors and plain containers only) and register it as `name` (`{content8}` in the name is
    replaced by the first 8 hex digits of its content digest)."""
    weights_dir().mkdir(parents=True, exist_ok=True)
    name = name.replace("{content8}", content_digest(obj)[:8])
    tmp = weights_dir() / f".{name}.tmp{os.getpid()}.pt"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)  # through a file object: the archive then holds no file name
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
    """Load registered weights through the suite's one reader (metrics.safe_load: tensors and containers only)."""
    from metrics.safe_load import CheckpointReadError, load_checkpoint_file

    path, entry = resolve(name, how_to_get)
    try:
        obj, _ = load_checkpoint_file(path)
    except CheckpointReadError as err:
        raise WeightsError(f"cannot be loaded as weights: {err}") from err
    return obj, entry


def newest(prefix: str) -> WeightsEntry | None:
    """The most recently registered entry whose name starts with `prefix`."""
    matches = [e for n, e in list_weights().items() if n.startswith(prefix)]
    return max(matches, key=lambda e: e.registered) if matches else None


def find_calibrated(corpus_fingerprint: dict[str, Any], network_prefix: str) -> WeightsEntry | None:
    """The newest weights calibrated on exactly this corpus (same clip list) for a network named `network_prefix*`."""
    matches = [
        e
        for e in list_weights().values()
        if e.calibrated and e.meta.get("corpus") == corpus_fingerprint and e.network.startswith(network_prefix)
    ]
    return max(matches, key=lambda e: e.registered) if matches else None
