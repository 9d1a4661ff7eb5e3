"""The loop every `bench run` goes through: corpus -> (needs) -> train -> generate -> evaluate -> record.

Run directory: <run.out_dir>/<dataset>/<run.name>/ with config.yaml, checkpoints/, model.pt, generated/*.mp4,
results.json and samples.jsonl. Finished work is reused: a trained model whose config hash matches is loaded,
and clips already recorded in samples.jsonl are not scored again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from benchmark import registry
from benchmark.config import compose, config_hash, save_config
from benchmark.distributed import EvalGroup, eval_group, rank_file
from benchmark.results import (
    MetricResult,
    Protocol,
    Results,
    RunInfo,
    append_jsonl,
    environment_info,
    git_hash,
    load_results,
    protocol_hash,
    read_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
)
from data.clip import FPS, SAMPLE_RATE, Clip
from data.corpus import LayoutCorpus, SyntheticCorpus
from data.io import MediaError, read_video, write_video
from metrics import METRICS, MetricSpec
from metrics.base import ClipFeatures, ClipMetric, ClipScoreError, EvalSample, SetMetric, SetScoreError
from metrics.weights import sha256_file

REPO_DIR = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    if _rank() == 0:
        print(msg, flush=True)


def _rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) + int(os.environ.get("NODE_RANK", "0")) * 1000


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------- corpus


def build_corpus(cfg: DictConfig) -> LayoutCorpus:
    d = OmegaConf.to_container(cfg.dataset, resolve=True)
    cls = registry.datasets().get(d.pop("target"))
    return cls(**d)


# ----------------------------------------------------------------------------------------------- models


def model_class(name: str):
    return registry.models().get(name)


def model_params(cfg: DictConfig, cls) -> Any:
    """The model's hyperparameters: its config dataclass at the run's preset, with the YAML's non-null params."""
    config_cls = getattr(cls, "config_class", None)
    raw = cfg.model.get("params")
    raw = OmegaConf.to_container(raw, resolve=True) if isinstance(raw, DictConfig) else dict(raw or {})
    params = {k: v for k, v in raw.items() if v is not None}
    if config_cls is None:
        if params:
            raise ValueError(f"model {cfg.model.name!r} takes no params, got {sorted(params)}")
        return None
    if hasattr(config_cls, "preset"):
        return config_cls.preset(cfg.run.preset, **params)
    return config_cls(**params)


def build_model(cfg: DictConfig, needs: dict[str, Any] | None = None):
    cls = model_class(cfg.model.name)
    params = model_params(cfg, cls)
    return cls(params, **(needs or {})) if params is not None else cls(**(needs or {}))


def build_untrained(cfg: DictConfig):
    """The model of `cfg` and every model it needs, built but neither trained nor loaded (`bench validate`)."""
    needs = {
        arg: build_untrained(compose(needed, cfg.dataset.name, cfg.run.preset, _carry_overrides(cfg)))
        for arg, needed in (cfg.model.get("needs") or {}).items()
    }
    return build_model(cfg, needs)


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.run.out_dir) / cfg.dataset.name / cfg.run.name


def training_hash(cfg: DictConfig, corpus: LayoutCorpus) -> str:
    """What cached weights depend on: the model config and its resolved hyperparameters (a preset's values live
    in code, so a changed preset must not reuse old weights), trainer settings, corpus and seed."""
    params = model_params(cfg, model_class(cfg.model.name))
    return config_hash(
        {
            "model": OmegaConf.to_container(cfg.model, resolve=True),
            "params": dataclasses.asdict(params) if dataclasses.is_dataclass(params) else params,
            "trainer": {k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if k != "progress"},
            "corpus": corpus.fingerprint(),
            "seed": cfg.run.seed,
        }
    )


def _trainer(cfg: DictConfig, run_dir: Path):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    if os.environ.get("TALKBENCH_DEBUG") != "1":
        # banners and advice ("GPU available", tips) out of the users' output; set after import, which resets them
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    t = cfg.trainer
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        max_steps=t.max_steps,
        max_time=dt.timedelta(seconds=float(t.max_time_s)) if t.max_time_s else None,
        val_check_interval=int(t.val_every_n_steps),
        check_val_every_n_epoch=None,
        limit_val_batches=t.limit_val_batches,
        log_every_n_steps=t.log_every_n_steps,
        gradient_clip_val=t.gradient_clip_val,
        logger=CSVLogger(run_dir, name="logs", version=""),
        callbacks=[ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0)],
        enable_progress_bar=bool(t.progress),
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def _datamodule(cfg: DictConfig, corpus: LayoutCorpus, module):
    from data.datamodule import TalkingFaceDataModule

    return TalkingFaceDataModule(
        corpus,
        window_kind=module.window_kind,
        window_kwargs=module.window_kwargs(),
        batch_size=module.cfg.batch_size,
        num_workers=int(cfg.trainer.num_workers),
        seed=int(cfg.run.seed),
    )


def train_or_load(cfg: DictConfig, corpus: LayoutCorpus, trail: tuple[str, ...] = ()):
    """Build the model of `cfg` (and, first, every model it needs), then train it or load its cached weights."""
    import torch

    name = cfg.model.name
    if name in trail:
        raise ValueError(f"model dependency cycle: {' -> '.join((*trail, name))}")
    needs = {}
    for arg, needed in (cfg.model.get("needs") or {}).items():
        extra = list((cfg.run.get("dep_overrides") or {}).get(needed, []))
        sub = compose(needed, cfg.dataset.name, cfg.run.preset, _carry_overrides(cfg) + extra)
        needs[arg] = train_or_load(sub, corpus, (*trail, name))[0]
    torch.manual_seed(int(cfg.run.seed))  # the initial weights (and so an untrained row) repeat
    module = build_model(cfg, needs)
    run_dir = run_dir_of(cfg)
    weights_path = run_dir / "model.pt"
    info: dict[str, Any] = {"source": "initialised"}
    thash = training_hash(cfg, corpus)
    if cfg.run.checkpoint:
        info = load_checkpoint_into(module, cfg.run.checkpoint)
    elif getattr(module, "trainable", True) and cfg.run.train:
        cached = _load_cached(module, weights_path, thash)
        if cached is None:
            log(f"[train] {name}: training on {corpus.name} (preset {cfg.run.preset}) -> {run_dir}")
            _fit(cfg, corpus, module, run_dir, thash)
            if _rank() == 0:
                torch.save({"state_dict": module.state_dict(), "training_hash": thash}, weights_path)
            info = {"source": "trained", "path": str(weights_path), "training_hash": thash}
        else:
            log(f"[train] {name}: reusing {weights_path} (same config and corpus)")
            info = cached
        if weights_path.exists():
            info["sha256"] = sha256_file(weights_path)
    module.eval()
    return module, info


def _carry_overrides(cfg: DictConfig) -> list[str]:
    """Settings a needed model inherits from the run that needs it (where to store, devices, seed)."""
    keep = {
        "run.out_dir": cfg.run.out_dir,
        "run.seed": cfg.run.seed,
        "trainer.accelerator": cfg.trainer.accelerator,
        "trainer.devices": cfg.trainer.devices,
        "trainer.strategy": cfg.trainer.strategy,
        "trainer.num_nodes": cfg.trainer.num_nodes,
        "trainer.progress": cfg.trainer.progress,
    }
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in keep.items()] + [
        f"dataset={json.dumps(ds)}"
    ]


def _load_cached(module, path: Path, thash: str) -> dict | None:
    import torch

    if not path.exists():
        return None
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("training_hash") != thash:
        return None
    module.load_state_dict(blob["state_dict"])
    return {"source": "cached", "path": str(path), "training_hash": thash}


def load_checkpoint_into(module, ref: str) -> dict:
    """Load a registered weights name or a checkpoint file (any official format) into the model's network."""
    from metrics import weights as store
    from models.checkpoints import load_network_weights

    net = getattr(module, "net", None)
    if net is None:
        raise ValueError(f"{type(module).__name__} has no network weights to load (run.checkpoint={ref!r})")
    path = Path(ref)
    if not path.exists():
        path, _ = store.resolve(ref)
    load_network_weights(net, path)
    return {"source": "checkpoint", "path": str(path), "sha256": sha256_file(path)}


def _fit(cfg: DictConfig, corpus: LayoutCorpus, module, run_dir: Path, thash: str) -> None:
    import lightning as L

    L.seed_everything(int(cfg.run.seed), workers=True, verbose=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    trainer = _trainer(cfg, run_dir)
    dm = _datamodule(cfg, corpus, module)
    last = run_dir / "checkpoints" / "last.ckpt"
    marker = run_dir / "checkpoints" / "training_hash"
    resume = last.exists() and marker.exists() and marker.read_text() == thash
    if trainer.global_rank == 0:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(thash)
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None)
    log(f"[train] {cfg.model.name}: {trainer.global_step} steps in {trainer.world_size} process(es)")


# ----------------------------------------------------------------------------------------------- evaluation


@dataclass
class Evaluator:
    """A sync evaluator network and what identifies its weights in results."""

    net: Any
    info: dict[str, Any]


def sync_evaluator(cfg: DictConfig, corpus: LayoutCorpus, calibrate_if_missing: bool = True) -> Evaluator:
    """The SyncNet that scores AV offset / confidence / LSE-D / LSE-C on this corpus.

    `metrics.sync.evaluator: auto` takes syncnet_v2 for real corpora when it is registered; the synthetic
    corpus (cartoon faces, far from syncnet_v2's training data) uses an evaluator calibrated on its own
    train split, calibrated now if none exists.
    """
    from benchmark.calibrate import calibrate_corpus, find_calibrated, load_sync_evaluator
    from metrics import weights as store

    choice = cfg.metrics.sync.evaluator
    if choice != "auto":
        return load_sync_evaluator(choice)
    if not isinstance(corpus, SyntheticCorpus) and "syncnet_v2" in store.list_weights():
        return load_sync_evaluator("syncnet_v2")
    entry = find_calibrated(corpus)
    if entry is None:
        if not calibrate_if_missing:
            raise store.WeightsError(
                f"no evaluation SyncNet for {corpus.name!r}: run `bench calibrate --dataset {corpus.name}` "
                "or import syncnet_v2 with `bench weights import syncnet_v2.model --as syncnet_v2`"
            )
        log(f"[calibrate] no evaluation SyncNet for this corpus yet: calibrating one on {corpus.name}")
        entry = calibrate_corpus(cfg, corpus)
        r = entry.meta.get("report", {})
        log(
            f"[calibrate] registered {entry.name}: on {r.get('n_val')} held-out val clips, in-sync |offset|<=1 "
            f"{r.get('in_sync_rate', 0):.0%}, +3 shift measured 3+-1 {r.get('plus3_rate', 0):.0%}, "
            f"confidence in-sync {r.get('conf_in_sync', 0):.3f} vs frozen {r.get('conf_frozen', 0):.3f}"
        )
    return load_sync_evaluator(entry.name)


def prepare_evaluators(cfg: DictConfig, corpus: LayoutCorpus) -> Evaluator | None:
    """Everything the configured metrics need before scoring: the sync evaluator (when a metric needs it) and
    every corpus calibration a metric asks for (landmark regressor, lipreader...), calibrated now if missing."""
    from benchmark.calibrate import calibrations_needed, run_calibration

    evaluator = sync_evaluator(cfg, corpus) if _needs_sync(cfg) else None
    for name in calibrations_needed(cfg, corpus):
        log(f"[calibrate] the metrics need a {name} network for {corpus.name}: calibrating it")
        entry = run_calibration(name, cfg, corpus)
        log(f"[calibrate] registered {entry.name}")
    return evaluator


def metric_groups(names: Sequence[str]) -> dict[str, list[str]]:
    """Metric values grouped by the class that computes them (one SyncNet pass gives four values)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        spec: MetricSpec = registry.metrics().entry(name)
        groups.setdefault(spec.target, []).append(name)
    return groups


def build_metrics(
    cfg: DictConfig, names: Sequence[str], evaluator: Evaluator | None, corpus: LayoutCorpus | None = None
) -> dict[str, ClipMetric]:
    """Fresh metric objects for `names`: each class gets its config section's settings as keyword arguments,
    the sync evaluator when it declares `needs_evaluator`, and the corpus when it declares `needs_corpus`."""
    out = {}
    for target in metric_groups(names):
        cls = registry.import_target(target)
        section = cls.config_section
        kwargs = OmegaConf.to_container(cfg.metrics[section], resolve=True) if section else {}
        if getattr(cls, "needs_evaluator", False):
            kwargs.pop("evaluator", None)  # the weights name: resolved into `evaluator` by the caller
            kwargs.update(
                evaluator=evaluator.net, weights_name=evaluator.info["name"], weights_sha256=evaluator.info["sha256"]
            )
        if getattr(cls, "needs_corpus", False):
            if corpus is None:
                raise ValueError(f"metric {target} needs the corpus being scored")
            kwargs["corpus"] = corpus
        out[target] = cls(**kwargs)
    return out


def metric_evaluators(metrics: dict[str, ClipMetric], evaluator: Evaluator | None = None) -> dict[str, dict]:
    """What produced each metric's values, by evaluator key (recorded in results, hashed into the protocol)."""
    out: dict[str, dict] = {"syncnet": dict(evaluator.info)} if evaluator else {}
    for metric in metrics.values():
        key, info = getattr(metric, "evaluator_key", None), getattr(metric, "evaluator_info", None)
        if key and info:
            out[key] = {**out.get(key, {}), **info}
    return out


def protocol_for(
    cfg: DictConfig,
    corpus: LayoutCorpus,
    evaluator: Evaluator | None,
    n_clips: int,
    metrics: dict[str, ClipMetric] | None = None,
) -> Protocol:
    """The frozen evaluation settings: corpus, split, clip selection, every metric's settings and the sha256 of
    every network that produced a value. Rows are ranked together only when this hash matches."""
    names = list(cfg.metrics.names)
    if metrics is None:
        metrics = build_metrics(cfg, names, evaluator, corpus)
    sections = sorted({m.config_section for m in metrics.values() if m.config_section})
    settings = {
        "corpus": corpus.fingerprint(),
        "split": "test",
        "fps": FPS,
        "sample_rate": SAMPLE_RATE,
        "seed": int(cfg.run.seed),
        "limit": cfg.run.limit,
        "identity_frame": cfg.run.identity_frame,
        "pose_prior": cfg.run.pose_prior,
        "metrics": names,
        **{
            sec: {k: v for k, v in OmegaConf.to_container(cfg.metrics[sec]).items() if k != "evaluator"}
            for sec in sections
        },
        "evaluator_sha256": {k: v.get("sha256") for k, v in sorted(metric_evaluators(metrics, evaluator).items())},
    }
    h = protocol_hash(settings)
    return Protocol(
        name=cfg.run.get("protocol") or f"{corpus.name}-test",
        hash=h,
        dataset=corpus.name,
        split="test",
        n_clips=n_clips,
        settings=settings,
    )


def _resize_video(video: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    import cv2

    if video.shape[1:3] == hw:
        return video
    return np.stack([cv2.resize(f, (hw[1], hw[0]), interpolation=cv2.INTER_AREA) for f in video])


def feature_key(metric: SetMetric) -> str:
    """Folder name of a set metric's per-clip feature files: its output and a digest of what made the features
    (backbone weights, frame selection), so changed settings never reuse stale features."""
    info = json.dumps(metric.evaluator_info or {}, sort_keys=True, default=str)
    return f"{metric.outputs[0]}-{hashlib.sha256(info.encode()).hexdigest()[:8]}"


def _feature_path(features_dir: Path, metric: SetMetric, clip_id: str) -> Path:
    return features_dir / feature_key(metric) / (video_name(clip_id).removesuffix(".mp4") + ".npy")


def _save_features(path: Path, feats) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    np.save(tmp, np.asarray(feats, dtype=np.float32))
    os.replace(tmp, path)


def _load_features(path: Path):
    import torch

    return torch.from_numpy(np.load(path))


def clip_set_features(
    metric: SetMetric, clip_id: str, video: np.ndarray, features_dir: Path, reuse: bool = False
) -> tuple[Any, Path]:
    """The features a set metric takes from one clip's video, extracted and written to `features_dir` (one .npy
    per clip: a crash loses no finished clip), or read from there when `reuse` and already extracted (the real
    clips, fixed by the protocol). ClipScoreError when the metric cannot use the clip."""
    path = _feature_path(features_dir, metric, clip_id)
    if reuse and path.exists():
        return _load_features(path), path
    feats = metric.clip_features(video)
    _save_features(path, feats)
    return feats, path


def reference_features(cfg: DictConfig, clips: Sequence[Clip], protocol: Protocol) -> Callable[[SetMetric], None]:
    """Adds the real test clips' features to a set metric (FID/FVD's reference set).

    Cached per protocol in the GT run directory (`GT-<hash8>/features/`, where scoring the GT row writes them), so
    the real set is extracted once per protocol whatever the number of runs scored against it.
    """
    features_dir = Path(cfg.run.out_dir) / cfg.dataset.name / f"GT-{protocol.hash[:8]}" / "features"

    def add(metric: SetMetric) -> None:
        for i, clip in enumerate(clips):
            try:
                feats, _ = clip_set_features(metric, clip.clip_id, np.asarray(clip.video), features_dir, reuse=True)
            except ClipScoreError:
                continue  # a real clip the metric cannot use (too short) is simply not in the reference set
            metric.update([ClipFeatures(index=i, clip_id=clip.clip_id, features=feats, real=True)])

    return add


def _features_missing(row: dict, set_metrics: dict, base: Path) -> bool:
    for target in set_metrics:
        if target in row.get("failed", {}):
            continue
        entry = row.get("features", {}).get(target)
        if entry is None or not (base / entry["file"]).exists():
            return True
    return False


def score_clips(
    clips: Sequence[Clip],
    fetch: Callable[[int, Clip], np.ndarray],
    metrics: dict[str, ClipMetric | SetMetric],
    names: Sequence[str],
    samples_path: Path,
    progress: bool = True,
    reference: Callable[[SetMetric], None] | None = None,
    notes: list[str] | None = None,
    only: Callable[[int], bool] | None = None,
    aggregate: bool = True,
) -> tuple[dict[str, MetricResult], list[dict]]:
    """Score every clip (resuming from samples_path) and aggregate with the metric objects.

    Clip metrics record per-clip values; set metrics (FID, FVD) write each clip's features to
    `<samples_path's folder>/features/` and record their count. A set metric's value needs `reference` (adds the
    real set's features); without it (the GT row) set metrics report nothing. A set metric that refuses its sets
    (too few samples) reports NaN and its reason goes to `notes`.

    `only(i)` restricts scoring to some clips (a rank's shard) and `aggregate=False` skips the values: a shard
    only writes its rows (see `score_clips_distributed`).
    """
    features_dir = samples_path.parent / "features"
    clip_metrics = {t: m for t, m in metrics.items() if not isinstance(m, SetMetric)}
    set_metrics = {t: m for t, m in metrics.items() if isinstance(m, SetMetric)}
    done = {row["clip_id"]: row for row in read_jsonl(samples_path, missing_ok=True)}
    for cid, row in list(done.items()):
        if _features_missing(row, set_metrics, samples_path.parent):
            del done[cid]  # a finished clip whose feature file went missing is scored again
    rows: list[dict] = []
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("scoring", total=len(clips))
        for i, clip in enumerate(clips):
            if only is not None and not only(i):
                continue
            row = done.get(clip.clip_id)
            if row is not None:
                for target, metric in clip_metrics.items():
                    vals = row["raw"].get(target)
                    if vals is not None:
                        metric.values.append(_t([vals]))
                        metric.index.append(_t([i], long=True))
                    elif target in row.get("failed", {}):
                        metric.n_failed += 1
                        metric.failures.append((clip.clip_id, row["failed"][target]))
                for target, metric in set_metrics.items():
                    if target in row.get("failed", {}):
                        metric.n_failed += 1
                        metric.failures.append((clip.clip_id, row["failed"][target]))
                    else:
                        feats = _load_features(samples_path.parent / row["features"][target]["file"])
                        metric.update([ClipFeatures(index=i, clip_id=clip.clip_id, features=feats)])
                rows.append(row)
                bar.advance(task)
                continue
            row = {"clip_id": clip.clip_id, "index": i, "values": {}, "raw": {}, "failed": {}}
            if set_metrics:
                row["features"] = {}
            try:
                fake = fetch(i, clip)
            except MediaError as err:
                fake = None
                row["failed"] = {t: str(err) for t in metrics}
                for metric in metrics.values():
                    metric.n_failed += 1
                    metric.failures.append((clip.clip_id, str(err)))
            if fake is not None:
                row.update(_frames_note(fake, clip))
                t = min(len(fake), clip.num_frames)
                sample = EvalSample(
                    index=i,
                    clip_id=clip.clip_id,
                    fake=_resize_video(fake[:t], clip.video.shape[1:3]),
                    audio=clip.audio,
                    real=np.asarray(clip.video[:t]),
                    real_landmarks=clip.landmarks[:t] if clip.landmarks is not None else None,
                )
                for target, metric in clip_metrics.items():
                    n_before = len(metric.failures)
                    metric.update([sample])
                    if len(metric.failures) > n_before:
                        row["failed"][target] = metric.failures[-1][1]
                    else:
                        row["raw"][target] = metric.values[-1].flatten().tolist()
                for target, metric in set_metrics.items():
                    try:
                        feats, path = clip_set_features(metric, clip.clip_id, sample.fake, features_dir)
                    except ClipScoreError as err:
                        metric.n_failed += 1
                        metric.failures.append((clip.clip_id, str(err)))
                        row["failed"][target] = str(err)
                        continue
                    metric.update([ClipFeatures(index=i, clip_id=clip.clip_id, features=feats)])
                    rel = str(path.relative_to(samples_path.parent))
                    row["features"][target] = {"file": rel, "n": int(feats.shape[0])}
            for target, metric in clip_metrics.items():
                for out, v in zip(metric.outputs, row["raw"].get(target, [])):
                    row["values"][out] = v
            row["values"] = {k: v for k, v in row["values"].items() if k in names}
            append_jsonl(samples_path, row)
            rows.append(row)
            bar.advance(task)
    if not aggregate:
        return {}, rows
    for metric in metrics.values():
        _local(metric)
    results: dict[str, MetricResult] = {}
    for metric in clip_metrics.values():
        _, vals = metric.per_clip()
        agg = metric.compute()
        for j, out in enumerate(metric.outputs):
            if out not in names:
                continue
            spec = METRICS[out]
            col = vals[:, j].numpy() if vals.shape[0] else np.zeros(0)
            results[out] = MetricResult(
                value=float(agg[out]),
                n=int(vals.shape[0]),
                n_failed=int(metric.n_failed),
                direction=spec.direction,
                mode=getattr(metric, "mode", None),
                std=float(col.std(ddof=1)) if col.size > 1 and np.isfinite(col).all() else None,
            )
    for metric in set_metrics.values():
        if reference is None:
            continue  # the GT row: the real set against itself is no result (Table 1 leaves GT FID/FVD empty)
        reference(metric)
        out = metric.outputs[0]
        try:
            value = float(metric.compute()[out])
        except SetScoreError as err:
            value = float("nan")
            log(f"[evaluate] {out}: not computed: {err}")
            if notes is not None:
                notes.append(f"{out} not computed: {err}")
        results[out] = MetricResult(
            value=value,
            n=metric.n_clips(),
            n_failed=int(metric.n_failed),
            direction=METRICS[out].direction,
            mode=metric.mode,
        )
    return {n: results[n] for n in names if n in results}, rows


def _local(metric) -> None:
    """Aggregate this process's states only: ranks' rows are merged through files (`score_clips_distributed`),
    never by torchmetrics' all-gather, which would wait forever for ranks that are done."""
    metric.sync_on_compute = False
    metric._to_sync = False


def score_clips_distributed(
    group: EvalGroup,
    clips: Sequence[Clip],
    fetch: Callable[[int, Clip], np.ndarray],
    metrics: dict[str, ClipMetric | SetMetric],
    names: Sequence[str],
    samples_path: Path,
    **kwargs,
) -> tuple[dict[str, MetricResult], list[dict]] | None:
    """`score_clips` with clip i scored by rank i % world only; rank 0 gathers every rank's rows (and feature
    files) and aggregates in dataset order, so the values equal a 1-process run's. Other ranks return None."""
    if group.world == 1:
        return score_clips(clips, fetch, metrics, names, samples_path, **kwargs)
    finished = {row["clip_id"] for row in read_jsonl(samples_path, missing_ok=True)}
    shard_kwargs = {k: v for k, v in kwargs.items() if k == "progress"}
    score_clips(
        clips,
        fetch,
        metrics,
        names,
        rank_file(samples_path, group.rank),
        only=lambda i: group.mine(i) and clips[i].clip_id not in finished,
        aggregate=False,
        **shard_kwargs,
    )
    group.barrier()
    if not group.main:
        return None
    for r in range(group.world):
        part = rank_file(samples_path, r)
        for row in read_jsonl(part, missing_ok=True):
            if row["clip_id"] not in finished:
                append_jsonl(samples_path, row)
                finished.add(row["clip_id"])
        part.unlink(missing_ok=True)
    return score_clips(clips, fetch, metrics, names, samples_path, **kwargs)


def _frames_note(fake: np.ndarray, clip: Clip) -> dict:
    note = {}
    if len(fake) != clip.num_frames:
        note["frames"] = {"generated": int(len(fake)), "reference": clip.num_frames}
    if fake.shape[1:3] != clip.video.shape[1:3]:
        note["resized_from"] = list(fake.shape[1:3])
    return note


def _t(x, long: bool = False):
    import torch

    return torch.tensor(x, dtype=torch.long if long else torch.float64)


def _versions_and_git() -> tuple[dict, str | None]:
    return environment_info(), git_hash(REPO_DIR)


def record(
    run_dir: Path,
    run: RunInfo,
    protocol: Protocol,
    evaluators: dict[str, dict],
    metrics: dict[str, MetricResult],
    rows: list[dict],
) -> Results:
    res = Results(
        run=run,
        protocol=protocol,
        evaluators=evaluators,
        metrics=metrics,
    )
    write_jsonl_atomic(run_dir / "samples.jsonl", rows)
    write_json_atomic(run_dir / "results.json", res.to_dict())
    return res


def test_clips(cfg: DictConfig, corpus: LayoutCorpus) -> list[Clip]:
    return corpus.clips("test", limit=cfg.run.limit)


def _run_info(
    cfg: DictConfig, kind: str, name: str, label: str, started: str, model=None, ckpt=None, notes=None
) -> RunInfo:
    versions, git = _versions_and_git()
    return RunInfo(
        name=name,
        kind=kind,
        dataset=cfg.dataset.name,
        model=model,
        label=label,
        preset=cfg.run.preset if model else None,
        seed=int(cfg.run.seed),
        git=git,
        versions=versions,
        started=started,
        finished=_now(),
        config_hash=config_hash(cfg) if model else None,
        checkpoint=ckpt,
        notes=list(notes or []),
    )


def evaluate_gt(
    cfg: DictConfig,
    corpus: LayoutCorpus,
    clips: list[Clip],
    evaluator: Evaluator | None,
    protocol: Protocol,
    group: EvalGroup | None = None,
) -> Results | None:
    """The GT row: the real test clips scored by the same metrics (computed once per protocol).

    With several processes (`group`) each scores its shard; rank 0 records and returns the row, others None."""
    group = group or EvalGroup()
    run_dir = Path(cfg.run.out_dir) / cfg.dataset.name / f"GT-{protocol.hash[:8]}"
    if (run_dir / "results.json").exists():
        log(f"[evaluate] GT row of protocol {protocol.hash[:8]}: reusing {run_dir}")
        return load_results(run_dir / "results.json")
    log(f"[evaluate] GT: scoring {len(clips)} real test clips")
    started = _now()
    names = list(cfg.metrics.names)
    metrics = build_metrics(cfg, names, evaluator, corpus)
    scored = score_clips_distributed(
        group,
        clips,
        lambda i, c: np.asarray(c.video),
        metrics,
        names,
        run_dir / "samples.partial.jsonl",
        progress=bool(cfg.trainer.progress),
    )
    if scored is None:
        return None
    res, rows = scored
    info = _run_info(cfg, "gt", "GT", "GT", started)
    out = record(run_dir, info, protocol, metric_evaluators(metrics, evaluator), res, rows)
    (run_dir / "samples.partial.jsonl").unlink(missing_ok=True)
    return out


def evaluate_folder(
    cfg: DictConfig,
    corpus: LayoutCorpus,
    videos: dict[str, Path],
    run_dir: Path,
    run: Callable[[], RunInfo],
    evaluator: Evaluator | None,
    clips: list[Clip],
    group: EvalGroup | None = None,
) -> Results | None:
    """Score `videos` (clip id -> file) against the test clips and record the row in `run_dir` (rank 0; other
    ranks of `group` score their shard and return None)."""
    group = group or EvalGroup()
    names = list(cfg.metrics.names)
    metrics = build_metrics(cfg, names, evaluator, corpus)
    protocol = protocol_for(cfg, corpus, evaluator, len(clips), metrics)
    partial = run_dir / "samples.partial.jsonl"

    def fetch(i: int, clip: Clip) -> np.ndarray:
        path = videos.get(clip.clip_id)
        if path is None:
            raise MediaError(clip.clip_id, "no video for this test clip in the folder")
        return read_video(path)

    notes: list[str] = []
    scored = score_clips_distributed(
        group,
        clips,
        fetch,
        metrics,
        names,
        partial,
        progress=bool(cfg.trainer.progress),
        reference=reference_features(cfg, clips, protocol),
        notes=notes,
    )
    if scored is None:
        return None
    res, rows = scored
    info = run()
    info.notes = [*info.notes, *notes]
    out = record(run_dir, info, protocol, metric_evaluators(metrics, evaluator), res, rows)
    partial.unlink(missing_ok=True)
    return out


def video_name(clip_id: str) -> str:
    """File name of a generated clip: the clip id with '/' replaced, so ids stay unique and readable."""
    return clip_id.replace("/", "__") + ".mp4"


VIDEO_SUFFIXES = (".mp4", ".avi", ".flv", ".mov", ".mkv", ".webm")


def match_videos(folder: Path, clips: Sequence[Clip], mapping: dict[str, str] | None = None) -> dict[str, Path]:
    """Match video files to test clips by file stem: the full id (with '__' for '/'), or the base name if unique.

    Any container ffmpeg reads is accepted (mp4 first when a stem has several); frames are decoded at 25 fps and
    resized to the reference's size when scored, and each clip's record notes what was resampled."""
    files: dict[str, Path] = {}
    for suffix in reversed(VIDEO_SUFFIXES):
        files.update({p.stem: p for p in sorted(Path(folder).glob(f"*{suffix}"))})
    if not files and not mapping:
        raise FileNotFoundError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)}) to evaluate")
    by_base: dict[str, list[str]] = {}
    for c in clips:
        by_base.setdefault(c.clip_id.rsplit("/", 1)[-1], []).append(c.clip_id)
    out: dict[str, Path] = {}
    for clip in clips:
        full = clip.clip_id.replace("/", "__")
        base = clip.clip_id.rsplit("/", 1)[-1]
        if mapping and clip.clip_id in mapping:
            out[clip.clip_id] = Path(folder) / mapping[clip.clip_id]
        elif full in files:
            out[clip.clip_id] = files[full]
        elif base in files and len(by_base[base]) == 1:
            out[clip.clip_id] = files[base]
    return out


def resampling_notes(videos: dict[str, Path]) -> list[str]:
    """Run notes naming the videos whose frame rate was not 25 fps (decoded resampled to 25 fps)."""
    from data.io import probe

    by_fps: dict[float, list[str]] = {}
    for clip_id, path in videos.items():
        try:
            fps = probe(path).fps
        except MediaError:
            continue  # unreadable files are recorded as per-clip failures when scored
        if fps and abs(fps - FPS) > 1e-3:
            by_fps.setdefault(round(float(fps), 3), []).append(clip_id)
    return [
        f"{len(ids)} videos at {fps:g} fps resampled to {FPS} fps (e.g. {', '.join(ids[:3])})"
        for fps, ids in sorted(by_fps.items())
    ]


def generation_stamp(cfg: DictConfig, ckpt: dict) -> dict:
    """What the generated clips depend on: the weights (sha256 or the initialising config), seed, conditioning."""
    return {
        "model": cfg.model.name,
        "weights": ckpt.get("sha256") or config_hash(cfg, ("model",)),
        "source": ckpt.get("source"),
        "seed": int(cfg.run.seed),
        "identity_frame": cfg.run.identity_frame,
        "pose_prior": cfg.run.pose_prior,
    }


def _reset_if_stale(out_dir: Path, stamp: dict | None, also: Sequence[Path] = ()) -> None:
    """Drop generated clips (and partial scores) made by other weights or settings than `stamp` describes."""
    if stamp is None:
        return
    path = out_dir / "stamp.json"
    old = json.loads(path.read_text()) if path.exists() else None
    if old != stamp:
        if old is not None or any(out_dir.glob("*.mp4")):
            log(f"[generate] {out_dir}: clips were made by other weights or settings; generating them again")
        for f in out_dir.glob("*.mp4"):
            f.unlink()
        for f in also:
            f.unlink(missing_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, stamp)


def generate_split(
    cfg: DictConfig,
    module,
    clips: Sequence[Clip],
    out_dir: Path,
    progress: bool = True,
    stamp: dict | None = None,
    group: EvalGroup | None = None,
) -> dict:
    """Generate every test clip from its first frame and its audio; mp4 with the audio muxed.

    Clips already in `out_dir` are reused when `stamp` (see `generation_stamp`) matches the one they were made
    with, so an interrupted generation resumes; otherwise they are made again. With several processes
    (`group`) clip i is made by rank i % world, seeded by its position in the test list as always."""
    group = group or EvalGroup()
    from rich.progress import Progress

    if cfg.run.pose_prior not in ("none", "video"):
        raise ValueError(f"run.pose_prior must be 'none' or 'video', got {cfg.run.pose_prior!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if group.main:
        _reset_if_stale(out_dir, stamp, also=[out_dir.parent / "samples.partial.jsonl"])
    group.barrier()  # no rank writes a clip before stale ones are gone
    videos = {}
    t0 = time.perf_counter()
    n_frames = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("generating", total=len(clips))
        for i, clip in enumerate(clips):
            path = out_dir / video_name(clip.clip_id)
            if group.mine(i) and not path.exists():
                video = np.asarray(clip.video)
                prior = video[None] if cfg.run.pose_prior == "video" else None
                frames = module.generate(
                    video[None, 0], clip.audio[None], pose_prior=prior, seed=int(cfg.run.seed) + i
                )[0]
                write_video(path, frames, clip.audio)
                n_frames += len(frames)
            videos[clip.clip_id] = path
            bar.advance(task)
    dt_s = time.perf_counter() - t0
    if n_frames:
        log(f"[generate] {n_frames} frames in {dt_s:.1f} s ({n_frames / dt_s:.1f} frames/s incl. encoding)")
    return videos


def run(cfg: DictConfig) -> Results | None:
    """`bench run`: train (or load) the model, generate the test split, score it and the GT, record."""

    started = _now()
    corpus = build_corpus(cfg)
    # launched by torchrun: every process is here already; rank 0 writes the corpus and calibrates first.
    # (Lightning's own launcher starts the other processes later, at fit time, when both are done.)
    group = eval_group()
    if not group.main:
        group.barrier()
    if _rank() == 0 and group.main:
        corpus.ensure()
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    if group.main:
        save_config(cfg, run_dir / "config.yaml")
    evaluator = prepare_evaluators(cfg, corpus)
    if group.main:
        group.barrier()
    module, ckpt = train_or_load(cfg, corpus)
    group = eval_group()  # the processes training started (if any) stay for generation and scoring
    if cfg.model.get("kind") == "component":
        # a network other models need (the SyncNet expert, a first stage): trained or loaded, nothing to generate
        if group.main:
            log(f"[train] {cfg.run.name} is a component of other models: {ckpt.get('path') or ckpt.get('source')}")
        return None
    clips = test_clips(cfg, corpus)
    log(f"[generate] {cfg.run.name}: {len(clips)} test clips -> {run_dir / 'generated'}")
    videos = generate_split(
        cfg,
        module,
        clips,
        run_dir / "generated",
        progress=bool(cfg.trainer.progress),
        stamp=generation_stamp(cfg, ckpt),
        group=group,
    )
    protocol = protocol_for(cfg, corpus, evaluator, len(clips))
    evaluate_gt(cfg, corpus, clips, evaluator, protocol, group)
    log(f"[evaluate] {cfg.run.name}: scoring {len(videos)} generated clips")
    notes = list(cfg.model.get("notes") or [])
    res = evaluate_folder(
        cfg,
        corpus,
        videos,
        run_dir,
        lambda: _run_info(
            cfg,
            cfg.model.get("kind", "model"),
            cfg.run.name,
            cfg.model.label,
            started,
            model=cfg.model.name,
            ckpt=ckpt,
            notes=notes,
        ),
        evaluator,
        clips,
        group,
    )
    return res


def _needs_sync(cfg: DictConfig) -> bool:
    targets = metric_groups(list(cfg.metrics.names))
    return any(getattr(registry.import_target(t), "needs_evaluator", False) for t in targets)
