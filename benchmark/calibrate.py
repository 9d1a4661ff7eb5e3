"""`bench calibrate`: train an evaluation SyncNet on a corpus's train split and register it.

Used where no pretrained evaluator applies (the synthetic corpus: syncnet_v2 was trained on real faces). The
weights are named `<network>-<corpus>-<sha8>` and results record that name and hash, so a number scored with
a calibrated evaluator is never mistaken for one scored with syncnet_v2.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from omegaconf import DictConfig

from data.corpus import LayoutCorpus
from metrics import weights as store


def _network_name(arch: str) -> str:
    return f"sync_eval_{arch}"


def find_calibrated(corpus: LayoutCorpus) -> store.WeightsEntry | None:
    """The newest evaluator calibrated on exactly this corpus (same clip list), if any."""
    fp = corpus.fingerprint()
    matches = [e for e in store.list_weights().values() if e.calibrated and e.meta.get("corpus") == fp]
    return max(matches, key=lambda e: e.registered) if matches else None


def calibrate_corpus(cfg: DictConfig, corpus: LayoutCorpus) -> store.WeightsEntry:
    from metrics.calibration import calibrate_sync_evaluator

    c = cfg.metrics.calibrate
    train = corpus.clips("train")
    val = corpus.clips("val")
    model, report = calibrate_sync_evaluator(
        train, val, seconds=float(c.seconds), seed=int(cfg.run.seed), arch=c.arch, progress=bool(cfg.trainer.progress)
    )
    blob = {"config": model.evaluator_config, "state_dict": model.state_dict()}
    tmp = store.weights_dir() / f".calibrating{os.getpid()}.pt"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, tmp)
    try:
        sha = store.sha256_file(tmp)
        name = f"{_network_name(c.arch)}-{corpus.name}-{sha[:8]}"
        return store.register_file(
            tmp,
            name,
            network=_network_name(c.arch),
            source=f"calibrated on {corpus.name} ({corpus.root})",
            calibrated=True,
            meta={"corpus": corpus.fingerprint(), "report": _plain(report.to_dict()), "seed": int(cfg.run.seed)},
        )
    finally:
        Path(tmp).unlink(missing_ok=True)


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return _plain(asdict(obj))
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return float(obj) if hasattr(obj, "__float__") else str(obj)


def load_sync_evaluator(name: str):
    """Build the evaluator network registered as `name` and describe it for results."""
    from benchmark.runner import Evaluator
    from benchmark.weights import how_to_get
    from metrics.backbones.syncnet import build_sync_evaluator, load_sync_evaluator_state, sync_evaluator_from_config
    from models.checkpoints import load_official_state_dict

    path, entry = store.resolve(name, how_to_get(name))
    if entry.calibrated:
        blob, _ = store.load(name)
        net = sync_evaluator_from_config(blob["config"])
        load_sync_evaluator_state(net, blob["state_dict"], source=str(path))
    else:
        net = build_sync_evaluator("syncnet_v2")
        load_sync_evaluator_state(net, load_official_state_dict(path), source=str(path))
    net.eval()
    info = {
        "name": entry.name,
        "sha256": entry.sha256,
        "network": entry.network,
        "calibrated": entry.calibrated,
        "source": entry.source,
    }
    return Evaluator(net=net, info=info)
