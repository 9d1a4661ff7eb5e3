"""`bench calibrate`: train evaluator networks on a corpus's train split and register them.

Used where no pretrained evaluator applies (the synthetic corpus: syncnet_v2 was trained on real faces). The
weights are named `<network>-<corpus>-<sha8>` and results record that name and hash, so a number scored with
a calibrated evaluator is never mistaken for one scored with syncnet_v2.

CALIBRATORS maps a calibration name to its "module:function(cfg, corpus) -> WeightsEntry"; a metric class says
which one it needs through `calibration_needed`, and the runner runs it before scoring.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Protocol

from omegaconf import DictConfig

from data.corpus import LayoutCorpus
from metrics import weights as store

CALIBRATORS: dict[str, str] = {
    "sync": "benchmark.calibrate:calibrate_corpus",
    "lipreader": "benchmark.calibrate:calibrate_lipreader_corpus",
    "landmarks": "benchmark.calibrate:calibrate_landmarks_corpus",
    "capp": "benchmark.calibrate:calibrate_capp_corpus",
}


class _Report(Protocol):
    """What a calibration (metrics.calibration.*) reports: what it did and how the result measured."""

    def to_dict(self) -> dict[str, Any]: ...


def run_calibration(name: str, cfg: DictConfig, corpus: LayoutCorpus) -> store.WeightsEntry:
    from benchmark.registry import import_target, suggest

    if name not in CALIBRATORS:
        raise suggest("calibration", name, CALIBRATORS)
    entry: store.WeightsEntry = import_target(CALIBRATORS[name])(cfg, corpus)
    return entry


def calibrations_needed(cfg: DictConfig, corpus: LayoutCorpus) -> list[str]:
    """Calibrations the configured metrics still need on `corpus` (each metric class says which), in order."""
    from omegaconf import OmegaConf

    from benchmark.registry import import_target, metrics

    needed: list[str] = []
    for target in dict.fromkeys(metrics().entry(n).target for n in cfg.metrics.names):
        cls = import_target(target)
        section = getattr(cls, "config_section", None)
        settings = OmegaConf.to_container(cfg.metrics[section], resolve=True) if section else {}
        names = cls.calibration_needed(settings, corpus)  # one name, several, or None
        for name in [names] if isinstance(names, str) else names or []:
            if name not in needed:
                needed.append(name)
    return needed


def calibrate_corpus(cfg: DictConfig, corpus: LayoutCorpus) -> store.WeightsEntry:
    """Calibrate the evaluation SyncNet on `corpus` for the configured crop (`metrics.sync.crop`): a tracked
    evaluator is trained on face-track crops and registered under the tracked prefix, so a wholeframe lookup
    never finds it (metrics.functional.sync.CALIBRATED_PREFIXES)."""
    from benchmark.config import section_dict
    from metrics.calibration.sync import calibrate_sync_evaluator
    from metrics.functional.sync import calibrated_network_prefix

    c = cfg.metrics.calibrate
    sync = cfg.metrics.get("sync")
    crop = str(sync.get("crop", "wholeframe")) if sync is not None else "wholeframe"
    track_cfg = sync.get("track") if sync is not None else None
    track = section_dict(track_cfg) if track_cfg is not None else {}
    if crop == "tracked" and track.get("detector") == "landmarks":
        track["corpus"] = corpus  # `landmarks: learned` finds this corpus's regressor
    train = corpus.clips("train")
    val = corpus.clips("val")
    model, report = calibrate_sync_evaluator(
        train,
        val,
        seconds=float(c.seconds),
        min_steps=int(c.get("min_steps", 100)),
        max_steps=None if c.get("max_steps") is None else int(c.max_steps),
        seed=int(cfg.run.seed),
        arch=c.arch,
        progress=bool(cfg.run.progress),
        crop=crop,
        track=track if crop == "tracked" else None,
    )
    if report.stop_reason == "time" and report.steps < int(c.get("min_steps", 100)):
        # registered anyway (the metrics still run), but results would separate rows poorly: say so loudly
        print(
            f"warning: the evaluation SyncNet got {report.steps} steps in its {c.seconds} s training budget "
            f"(min_steps {c.get('min_steps', 100)}); raise metrics.calibrate.seconds on a busy machine",
            file=sys.stderr,
        )
    blob = {"config": model.evaluator_config, "state_dict": model.state_dict()}
    extra = {"crop": crop} if crop == "wholeframe" else {"crop": crop, "track": report.track}
    return _register(blob, f"{calibrated_network_prefix(crop)}{c.arch}", cfg, corpus, report, extra)


def _register(
    blob: dict[str, Any],
    network: str,
    cfg: DictConfig,
    corpus: LayoutCorpus,
    report: _Report,
    extra_meta: dict[str, Any] | None = None,
) -> store.WeightsEntry:
    """Register a calibrated network as `<network>-<corpus>-<content8>` (its content digest: the same weights get
    the same name on every machine), with its corpus and report (and `extra_meta`)."""
    meta: dict[str, Any] = {"corpus": corpus.fingerprint(), "report": _plain(report.to_dict())}
    meta["seed"] = int(cfg.run.seed)
    meta.update({k: _plain(v) for k, v in (extra_meta or {}).items()})
    return store.register_object(
        blob,
        f"{network}-{corpus.name}-{{content8}}",
        network=network,
        source=f"calibrated on {corpus.name} ({corpus.root})",
        calibrated=True,
        meta=meta,
    )


def _plain(obj: object) -> object:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(dataclasses.asdict(obj))
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return float(obj) if hasattr(obj, "__float__") else str(obj)


def calibrate_lipreader_corpus(cfg: DictConfig, corpus: LayoutCorpus) -> store.WeightsEntry:
    """Train the small lipreader on the corpus's train-split words (metrics.calibration.lipreader) and register it
    as `lipreader_<preset>-<corpus>-<sha8>`, calibrated on this corpus (found by metrics.wer's `calibrated` and
    `auto`)."""
    from benchmark.config import section_dict
    from metrics.calibration.lipreader import LipreaderCalibrationConfig, calibrate_lipreader
    from metrics.wer import CALIBRATED_PREFIX

    c = LipreaderCalibrationConfig.from_dict(section_dict(cfg.metrics.lipreader.calibrate))
    model, report = calibrate_lipreader(
        corpus.clips("train"),
        corpus.clips("val"),
        config=c,
        seed=int(cfg.run.seed),
        progress=bool(cfg.run.progress),
    )
    blob = {"config": model.evaluator_config, "state_dict": model.state_dict()}
    return _register(blob, f"{CALIBRATED_PREFIX}{c.preset}", cfg, corpus, report)


def calibrate_landmarks_corpus(cfg: DictConfig, corpus: LayoutCorpus) -> store.WeightsEntry:
    """Train the landmark regressor on the corpus's train-split truth landmarks (metrics.calibration.landmarks) and
    register it as `landmark_regressor-<corpus>-<sha8>`, calibrated on this corpus (found by `landmarks: learned`)."""
    from metrics.backbones.landmark_regressor import regressor_blob
    from metrics.backbones.landmarks import REGRESSOR_NETWORK, clear_cache
    from metrics.calibration.landmarks import train_regressor

    c = cfg.metrics.landmarks
    net, report = train_regressor(
        corpus.clips("train"),
        corpus.clips("val"),
        seconds=float(c.seconds),
        max_steps=None if c.get("max_steps") is None else int(c.max_steps),
        seed=int(cfg.run.seed),
        batch_size=int(c.batch_size),
        max_frames=int(c.max_frames),
        progress=bool(cfg.run.progress),
    )
    entry = _register(regressor_blob(net), REGRESSOR_NETWORK, cfg, corpus, report)
    clear_cache()  # backends built before now must not hide the new regressor
    return entry


def calibrate_capp_corpus(cfg: DictConfig, corpus: LayoutCorpus) -> store.WeightsEntry:
    """Train the CAPP-style audio/head-pose model on the corpus's train split (head angles from its landmarks)
    and register it, calibrated on this corpus (found by the `capp` metric when `weights` is null)."""
    from benchmark.config import section_dict
    from metrics.backbones.capp import CappConfig
    from metrics.calibration.capp import calibrate_capp

    c = section_dict(cfg.metrics.capp.calibrate)
    seconds, max_steps = float(c.pop("seconds")), int(c.pop("max_steps"))
    return calibrate_capp(corpus, CappConfig(**c), seconds=seconds, seed=int(cfg.run.seed), max_steps=max_steps)
