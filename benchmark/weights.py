"""`bench weights`: which official checkpoints the suite knows, importing them strictly, listing and verifying.

A name is the official file's stem (SPEC section 5) so users recognise it. Import checks every key and shape
against the network the file is for before anything is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.registry import import_target, suggest
from metrics import weights as store


@dataclass(frozen=True)
class KnownWeights:
    network: str  # "module:factory" building the network the file must fit
    factory_args: tuple
    what: str
    how_to_get: str


KNOWN: dict[str, KnownWeights] = {
    "syncnet_v2": KnownWeights(
        "metrics.backbones.syncnet:build_sync_evaluator",
        ("syncnet_v2",),
        "syncnet_python SyncNet S: AV offset / confidence, LSE-D / LSE-C",
        "Get syncnet_v2.model with joonson/syncnet_python's download_model.sh, then "
        "`bench weights import syncnet_v2.model --as syncnet_v2`.",
    ),
    "lipsync_expert": KnownWeights(
        "models.checkpoints:build_network",
        ("lipsync_expert",),
        "Wav2Lip's SyncNet_color lip-sync expert",
        "Get lipsync_expert.pth from the Wav2Lip README's checkpoint table, then "
        "`bench weights import lipsync_expert.pth --as lipsync_expert`.",
    ),
    "wav2lip": KnownWeights(
        "models.checkpoints:build_network",
        ("wav2lip",),
        "Wav2Lip generator",
        "Get wav2lip.pth from the Wav2Lip README, then `bench weights import wav2lip.pth --as wav2lip`.",
    ),
    "wav2lip_gan": KnownWeights(
        "models.checkpoints:build_network",
        ("wav2lip",),
        "Wav2Lip generator trained with the visual-quality discriminator",
        "Get wav2lip_gan.pth from the Wav2Lip README, then `bench weights import wav2lip_gan.pth --as wav2lip_gan`.",
    ),
}


def import_weights(path: Path, name: str) -> store.WeightsEntry:
    """Strict-check `path` against the network `name` is for, then register it with its sha256."""
    if name not in KNOWN:
        raise suggest("weights name", name, KNOWN)
    known = KNOWN[name]
    from models.checkpoints import check_state_dict, load_official_state_dict

    net = import_target(known.network)(*known.factory_args)
    sd = load_official_state_dict(path)
    check_state_dict(net, sd, source=str(path))
    return store.register_file(path, name, network=name, source=f"official ({Path(path).name})")


def how_to_get(name: str) -> str:
    return KNOWN[name].how_to_get if name in KNOWN else ""


def format_list() -> str:
    entries = store.list_weights()
    lines = [f"weights store: {store.weights_dir()}"]
    if not entries:
        lines.append("  (nothing registered)")
    for name, e in sorted(entries.items()):
        tag = "calibrated here" if e.calibrated else e.source
        lines.append(f"  {name:40s} sha256 {e.sha256[:16]}  {e.network:16s} {tag}  {e.registered}")
    missing = [n for n in KNOWN if n not in entries]
    if missing:
        lines.append("known official weights not registered (download them yourself; the suite never does):")
        for n in missing:
            lines.append(f"  {n:16s} {KNOWN[n].what}. {KNOWN[n].how_to_get}")
    return "\n".join(lines)


def verify(names: list[str]) -> list[str]:
    entries = store.list_weights()
    out = []
    for name in names or sorted(entries):
        try:
            path, entry = store.resolve(name, how_to_get(name))
            out.append(f"ok      {name}  {path}  sha256 {entry.sha256[:16]}")
        except store.WeightsError as err:
            out.append(f"FAILED  {err}")
    return out
