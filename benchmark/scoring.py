"""Score videos against a corpus's test clips: metrics built once per run, per-clip records, resume, aggregate.

`evaluate_videos` is the one entry point `bench run` and `bench evaluate` share: it makes sure the protocol's GT
row exists (the real test clips scored by the same metrics, once per protocol), scores the videos, and records
`results.json` + `samples.jsonl` in the run directory. Scoring resumes from the per-clip records of an interrupted
pass; with several processes clip i is scored by rank i % world and rank 0 aggregates in dataset order, so the
values equal a 1-process run's.

Every metric resolves its own evaluator network (SyncNet, Inception, I3D, lipreader, landmarks) from its config
section and the corpus; what a metric needs calibrated on the corpus first (`calibration_needed`) is calibrated by
`prepare_evaluators` before anything is trained or scored.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from benchmark import registry
from benchmark.clips import pairs_setting
from benchmark.clips import test_clips as test_clips
from benchmark.distributed import EvalGroup, log, rank_file
from benchmark.features import clip_set_features, features_missing, gt_dir, load_features, reference_features
from benchmark.results import (
    MetricResult,
    Protocol,
    Results,
    RunInfo,
    append_jsonl,
    load_results,
    protocol_hash,
    read_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
)
from benchmark.video_folders import SOURCE as SOURCE
from benchmark.video_folders import VIDEO_SUFFIXES as VIDEO_SUFFIXES
from benchmark.video_folders import Decoded as Decoded
from benchmark.video_folders import claim_run_dir as claim_run_dir
from benchmark.video_folders import frames_note
from benchmark.video_folders import match_videos as match_videos
from benchmark.video_folders import resampling_notes as resampling_notes
from benchmark.video_folders import video_key as video_key
from data.clip import FPS, SAMPLE_RATE, Clip
from data.corpus import LayoutCorpus
from data.io import MediaError
from data.pairs import real_counterpart
from metrics import METRICS
from metrics.base import ClipMetric, ClipScoreError, EvalSample, SetMetric, SetScoreError

Metrics = dict[str, ClipMetric | SetMetric]
Row = dict[str, Any]  # one clip's record in samples.jsonl
RowKey = Callable[[int, Clip], dict[str, Any]]  # what a clip's record was made from (`score_clips`)


def now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------- metrics


def prepare_evaluators(cfg: DictConfig, corpus: LayoutCorpus) -> list[str]:
    """Calibrate, on `corpus`, every evaluator network the configured metrics need and do not have yet (an
    evaluation SyncNet, landmark regressor, lipreader...). Returns the names of the weights registered now."""
    from benchmark.calibrate import calibrations_needed, run_calibration

    registered = []
    for name in calibrations_needed(cfg, corpus):
        log(f"[calibrate] the metrics need a {name} network calibrated on {corpus.name}: calibrating it")
        entry = run_calibration(name, cfg, corpus)
        report = entry.meta.get("report", {})
        summary = ", ".join(f"{k} {v:.3g}" for k, v in report.items() if isinstance(v, float))
        log(f"[calibrate] registered {entry.name}" + (f" ({summary})" if summary else ""))
        registered.append(entry.name)
    return registered


def metric_groups(names: Sequence[str]) -> dict[str, list[str]]:
    """Metric values grouped by the class that computes them (one SyncNet pass gives four values)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(registry.metrics().entry(name).target, []).append(name)
    return groups


def build_metrics(
    cfg: DictConfig, names: Sequence[str], corpus: LayoutCorpus | None = None, device: str | None = None
) -> Metrics:
    """Fresh metric objects for `names`: each class gets its config section's settings as keyword arguments, the
    corpus when it declares `needs_corpus`, and `device` (where its evaluator network runs) when it takes one."""
    out: Metrics = {}
    for target in metric_groups(names):
        cls = registry.import_target(target)
        section = cls.config_section
        kwargs = _container(cfg.metrics[section], resolve=True) if section else {}
        if getattr(cls, "needs_corpus", False):
            if corpus is None:
                raise ValueError(f"metric {target} needs the corpus being scored")
            kwargs["corpus"] = corpus
        if device is not None and _takes_device(cls):
            kwargs["device"] = device
        out[target] = cls(**kwargs)
    return out


def _container(section: DictConfig, resolve: bool = False) -> dict[str, Any]:
    """A config section as a plain dict."""
    return OmegaConf.to_container(section, resolve=resolve)  # type: ignore[return-value]  # a DictConfig: a dict


def _takes_device(cls: type) -> bool:
    """Whether a metric class (or one of its bases in this suite) takes `device=` for its evaluator network."""
    return any(
        "device" in inspect.signature(vars(k)["__init__"]).parameters
        for k in cls.__mro__
        if "__init__" in k.__dict__ and k.__module__.startswith("metrics.")
    )


def metric_evaluators(metrics: Metrics) -> dict[str, dict[str, Any]]:
    """What produced each metric's values, by evaluator key (recorded in results, hashed into the protocol)."""
    out: dict[str, dict[str, Any]] = {}
    for metric in metrics.values():
        key, info = getattr(metric, "evaluator_key", None), getattr(metric, "evaluator_info", None)
        if key and info:
            out[key] = {**out.get(key, {}), **info}
    return out


def protocol_for(cfg: DictConfig, corpus: LayoutCorpus, clips: Sequence[Clip], metrics: Metrics) -> Protocol:
    """The frozen evaluation settings: corpus, split, clip selection, every metric's settings and the sha256 of
    every network that produced a value. Rows are ranked together only when this hash matches."""
    names = list(cfg.metrics.names)
    sections = {m.config_section: type(m) for m in metrics.values() if m.config_section}
    settings = {
        "corpus": corpus.fingerprint(),
        "split": "test",
        "fps": FPS,
        "sample_rate": SAMPLE_RATE,
        "seed": int(cfg.run.seed),
        "limit": cfg.run.limit,
        "identity_frame": cfg.run.identity_frame,
        "pose_prior": cfg.run.pose_prior,
        **pairs_setting(clips),
        "metrics": names,
        **{
            sec: cls.protocol_settings({k: v for k, v in _container(cfg.metrics[sec]).items() if k != "evaluator"})
            for sec, cls in sorted(sections.items())
        },
        # the weights' content digest where known: the same evaluator has one identity on every machine
        "evaluator_sha256": {
            k: v.get("content_sha256") or v.get("sha256") for k, v in sorted(metric_evaluators(metrics).items())
        },
    }
    return Protocol(
        name=cfg.run.get("protocol") or f"{corpus.name}-test",
        hash=protocol_hash(settings),
        dataset=corpus.name,
        split="test",
        n_clips=len(clips),
        settings=settings,
    )


# ----------------------------------------------------------------------------------------------- per clip


def _restore(
    row: Row, index: int, clip_metrics: Mapping[str, ClipMetric], set_metrics: Mapping[str, SetMetric], base: Path
) -> None:
    """Put a clip recorded by an earlier pass back into the metric states."""
    failed = row.get("failed", {})
    for target, metric in clip_metrics.items():
        if target in failed:
            metric.restore(index, row["clip_id"], failure=failed[target])
        elif row["raw"].get(target) is not None:
            metric.restore(index, row["clip_id"], values=row["raw"][target])
    for target, set_metric in set_metrics.items():
        if target in failed:
            set_metric.restore(index, row["clip_id"], failure=failed[target])
        elif target in row.get("capped", ()):
            set_metric.restore(index, row["clip_id"], features=torch.zeros(0, int(set_metric.feature_dim)))
        else:
            set_metric.restore(index, row["clip_id"], features=load_features(base / row["features"][target]["file"]))


def _stored(value: float) -> float | str:
    """A raw value as samples.jsonl keeps it: JSON has no infinity or NaN, and a resumed pass must put back exactly
    what was scored (PSNR of a frame equal to its reference is +inf), so those are written as "inf" / "nan"."""
    return value if math.isfinite(value) else repr(float(value))


def _restorable(row: Row) -> bool:
    """Whether a record can be put back as scored: records of earlier versions wrote a non-finite raw value as null,
    which cannot say which it was; their clips are scored again."""
    return not any(v is None for raw in row.get("raw", {}).values() for v in raw)


def _score_one(
    i: int,
    clip: Clip,
    fetched: np.ndarray | Decoded,
    clip_metrics: Mapping[str, ClipMetric],
    set_metrics: Mapping[str, SetMetric],
    base: Path,
    real_side: bool = False,
) -> Row:
    """Score one clip with every metric; returns its record (values, raw outputs, failures, feature files).
    `fetched`: the frames, or a Decoded file (its frames stay at the file's size: each metric resizes once);
    `real_side`: the clip is a real one (the GT row), whose set-metric view some protocols sample differently."""
    decoded, fake = (fetched, fetched.frames) if isinstance(fetched, Decoded) else (None, fetched)
    row: Row = {"clip_id": clip.clip_id, "index": i, "speaker": clip.speaker_id, "values": {}, "raw": {}, "failed": {}}
    row.update(frames_note(fake, clip, decoded))
    if set_metrics:
        row["features"] = {}
    t = min(len(fake), clip.num_frames)
    sample = EvalSample(
        index=i,
        clip_id=clip.clip_id,
        fake=fake[:t],
        fake_file=decoded.file if decoded is not None else None,
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
            raw = metric.values[-1].flatten().tolist()
            row["raw"][target] = [_stored(v) for v in raw]
            row["values"].update(zip(metric.outputs, raw))
    for target, set_metric in set_metrics.items():
        if set_metric.is_capped(i):  # past a protocol's clip cap (StyleGAN-V's 2048): counted, not extracted
            set_metric.restore(i, clip.clip_id, features=torch.zeros(0, int(set_metric.feature_dim)))
            row.setdefault("capped", []).append(target)
            continue
        try:
            feats, path = clip_set_features(set_metric, clip.clip_id, sample.fake, base / "features", real=real_side)
        except ClipScoreError as err:
            set_metric.record_failure(clip.clip_id, str(err))
            row["failed"][target] = str(err)
            continue
        set_metric.restore(i, clip.clip_id, features=feats)
        row["features"][target] = {"file": str(path.relative_to(base)), "n": int(feats.shape[0])}
    return row


def score_clips(
    clips: Sequence[Clip],
    fetch: Callable[[int, Clip], np.ndarray | Decoded],
    metrics: Metrics,
    names: Sequence[str],
    samples_path: Path,
    progress: bool = True,
    reference: Callable[[SetMetric], None] | None = None,
    notes: list[str] | None = None,
    only: Callable[[int], bool] | None = None,
    aggregate: bool = True,
    key: RowKey | None = None,
    real_side: bool = False,
) -> tuple[dict[str, MetricResult], list[Row]]:
    """Score every clip (resuming from samples_path) and aggregate with the metric objects.

    `key(i, clip)` says what a clip's record was made from (the protocol hash, the video file's path, size and
    modification time): a record is reused only when its key is the current one, so a resumed pass never mixes
    scores of another folder, another file or another protocol into the row.

    Clip metrics record per-clip values; set metrics (FID, FVD) write each clip's features to
    `<samples_path's folder>/features/` and record their count. A set metric's value needs `reference` (adds the
    real set's features); without it (the GT row) set metrics report nothing. A set metric that refuses its sets
    (too few samples) reports NaN and its reason goes to `notes`. `only(i)` restricts scoring to some clips (a
    rank's shard) and `aggregate=False` skips the values: a shard only writes its rows. `real_side`: the clips are
    the real ones (the GT row): a set metric that samples real clips differently (fvd2048_16f) sees them so.
    """
    from rich.progress import Progress

    base = samples_path.parent
    clip_metrics = {t: m for t, m in metrics.items() if not isinstance(m, SetMetric)}
    set_metrics = {t: m for t, m in metrics.items() if isinstance(m, SetMetric)}
    done = reusable_rows(samples_path, clips, key)
    for cid, old in list(done.items()):
        if features_missing(old, set_metrics, base) or not _restorable(old):
            del done[cid]  # a finished clip whose feature file went missing is scored again
    if done:
        log(f"resuming: {len(done)} of {len(clips)} clips already scored in {samples_path}")
    rows: list[Row] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("scoring", total=len(clips))
        for i, clip in enumerate(clips):
            if only is not None and not only(i):
                continue
            row = done.get(clip.clip_id)
            if row is not None:
                _restore(row, i, clip_metrics, set_metrics, base)
            else:
                try:
                    row = _score_one(i, clip, fetch(i, clip), clip_metrics, set_metrics, base, real_side)
                except MediaError as err:
                    row = {"clip_id": clip.clip_id, "index": i, "speaker": clip.speaker_id, "values": {}, "raw": {}}
                    row["failed"] = {t: str(err) for t in metrics}
                    for metric in metrics.values():
                        metric.record_failure(clip.clip_id, str(err))
                row["values"] = {k: v for k, v in row["values"].items() if k in names}
                if key is not None:
                    row["key"] = key(i, clip)
                append_jsonl(samples_path, row)
            rows.append(row)
            bar.advance(task)
    if not aggregate:
        return {}, rows
    return aggregate_results(clip_metrics, set_metrics, names, reference, notes), rows


def reusable_rows(samples_path: Path, clips: Sequence[Clip], key: RowKey | None) -> dict[str, Row]:
    """clip id -> the last record of `samples_path` made from what `key` says the clip is now."""
    position = {c.clip_id: i for i, c in enumerate(clips)}
    done: dict[str, Row] = {}
    for row in read_jsonl(samples_path, missing_ok=True):
        i = position.get(row.get("clip_id"))
        if i is not None and (key is None or row.get("key") == key(i, clips[i])):
            done[row["clip_id"]] = row
    return done


def aggregate_results(
    clip_metrics: Mapping[str, ClipMetric],
    set_metrics: Mapping[str, SetMetric],
    names: Sequence[str],
    reference: Callable[[SetMetric], None] | None,
    notes: list[str] | None,
) -> dict[str, MetricResult]:
    """Each reported value from this process's metric states (ranks' rows were merged through files first)."""
    results: dict[str, MetricResult] = {}
    for metric in [*clip_metrics.values(), *set_metrics.values()]:
        # never torchmetrics' all-gather: ranks that are done would wait forever for the others
        metric.sync_on_compute = False
        metric._to_sync = False
    for metric in clip_metrics.values():
        _, vals = metric.per_clip()
        agg = metric.compute()
        for j, out in enumerate(metric.outputs):
            if out not in names:
                continue
            col = vals[:, j].numpy() if vals.shape[0] else np.zeros(0)
            results[out] = MetricResult(
                value=float(agg[out]),
                n=int(vals.shape[0]),
                n_failed=int(metric.n_failed),
                direction=METRICS[out].direction,
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
        if metric.n_capped() and notes is not None:
            notes.append(f"{out}: {metric.n_capped()} clips past its cap of {metric.max_clips} left out (not failures)")
        results[out] = MetricResult(
            value=value,
            n=metric.n_clips(),
            n_failed=int(metric.n_failed),
            direction=METRICS[out].direction,
            mode=metric.mode,
        )
    return {n: results[n] for n in names if n in results}


def score_clips_distributed(
    group: EvalGroup,
    clips: Sequence[Clip],
    fetch: Callable[[int, Clip], np.ndarray | Decoded],
    metrics: Metrics,
    names: Sequence[str],
    samples_path: Path,
    **kwargs: Any,
) -> tuple[dict[str, MetricResult], list[Row]] | None:
    """`score_clips` with clip i scored by rank i % world only; rank 0 gathers every rank's rows (and feature
    files) and aggregates in dataset order, so the values equal a 1-process run's. Other ranks return None."""
    if group.world == 1:
        return score_clips(clips, fetch, metrics, names, samples_path, **kwargs)
    finished = set(reusable_rows(samples_path, clips, kwargs.get("key")))
    shard_kwargs = {k: v for k, v in kwargs.items() if k in ("progress", "key", "real_side")}
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


# ----------------------------------------------------------------------------------------------- rows


def record(
    run_dir: Path, run: RunInfo, protocol: Protocol, metrics: Metrics, values: dict[str, MetricResult], rows: list[Row]
) -> Results:
    res = Results(run=run, protocol=protocol, evaluators=metric_evaluators(metrics), metrics=values)
    write_jsonl_atomic(run_dir / "samples.jsonl", rows)
    write_json_atomic(run_dir / "results.json", res.to_dict())
    return res


def run_info(
    cfg: DictConfig,
    kind: str,
    name: str,
    label: str,
    started: str,
    model: str | None = None,
    ckpt: dict[str, Any] | None = None,
    notes: Iterable[str] | None = None,
) -> RunInfo:
    from benchmark.config import config_hash
    from benchmark.results import environment_info, git_hash

    return RunInfo(
        name=name,
        kind=kind,
        dataset=cfg.dataset.name,
        model=model,
        label=label,
        preset=cfg.run.preset if model else None,
        seed=int(cfg.run.seed),
        git=git_hash(Path(__file__).resolve().parents[1]),
        versions=environment_info(),
        started=started,
        finished=now(),
        config_hash=config_hash(cfg) if model else None,
        checkpoint=ckpt,
        notes=list(notes or []),
        trained_against=_trained_against(model),
    )


def _trained_against(model: str | None) -> dict[str, Any]:
    """What the model was trained against, by evaluator family (its class's declaration), for the overlap marks."""
    if model is None:
        return {}
    from benchmark import registry

    return dict(registry.models().get(model).trained_against)


def _score_row(
    cfg: DictConfig,
    clips: Sequence[Clip],
    fetch: Callable[[int, Clip], np.ndarray | Decoded],
    key: RowKey,
    metrics: Metrics,
    run_dir: Path,
    info: Callable[[], RunInfo],
    group: EvalGroup,
    protocol: Protocol,
    reference: Callable[[SetMetric], None] | None,
) -> Results | None:
    notes: list[str] = []
    partial = run_dir / "samples.partial.jsonl"
    scored = score_clips_distributed(
        group,
        clips,
        fetch,
        metrics,
        list(cfg.metrics.names),
        partial,
        progress=bool(cfg.run.progress),
        reference=reference,
        notes=notes,
        key=key,
        real_side=reference is None,  # only the GT row is scored without a reference set
    )
    if scored is None:
        return None
    values, rows = scored
    run = info()
    run.notes = [*run.notes, *notes]
    out = record(run_dir, run, protocol, metrics, values, rows)
    partial.unlink(missing_ok=True)
    return out


def evaluate_videos(
    cfg: DictConfig,
    corpus: LayoutCorpus,
    clips: list[Clip],
    videos: dict[str, Path],
    run_dir: Path,
    info: Callable[[], RunInfo],
    *,
    group: EvalGroup | None = None,
    device: str | None = None,
) -> Results | None:
    """Score `videos` (clip id -> file) against the test `clips` and record the row in `run_dir`, after the
    protocol's GT row (scored now if missing). Metrics are built once and reset between the two rows. Rank 0
    returns the row; other ranks of `group` score their shard and return None."""
    group = group or EvalGroup()
    names = list(cfg.metrics.names)
    metrics = build_metrics(cfg, names, corpus, device)
    protocol = protocol_for(cfg, corpus, clips, metrics)
    ensure_gt_row(cfg, clips, metrics, protocol, group)

    def fetch(i: int, clip: Clip) -> Decoded:
        path = videos.get(clip.clip_id)
        if path is None:
            raise MediaError(clip.clip_id, "no video for this test clip in the folder")
        return Decoded.read(path)

    log(f"[evaluate] {cfg.run.name}: scoring {len(videos)} videos")
    reference = reference_features(cfg, clips, protocol)
    key = video_key(protocol.hash, videos)
    row = _score_row(cfg, clips, fetch, key, metrics, run_dir, info, group, protocol, reference)
    if group.main:  # after the row, so no other process waits at a barrier while the judges are checked
        _judge_health(cfg, corpus, clips, protocol, metrics)
    return row


def ensure_gt_row(
    cfg: DictConfig,
    clips: Sequence[Clip],
    metrics: Metrics,
    protocol: Protocol,
    group: EvalGroup | None = None,
    tag: str = "evaluate",
) -> Path:
    """The protocol's GT row (the real test clips scored by `metrics`), scored now when its folder has none; the
    metrics are reset afterwards for the next row. Returns the GT folder."""
    group = group or EvalGroup()
    gt = gt_dir(cfg, protocol)
    if (gt / "results.json").exists():
        log(f"[{tag}] GT row of protocol {protocol.hash[:8]}: reusing {gt}")
        return gt
    log(f"[{tag}] GT: scoring {len(clips)} real test clips")
    started = now()
    _score_row(
        cfg,
        [real_counterpart(c) for c in clips],  # a pair's video with its own audio: the real clip behind it
        lambda i, c: np.asarray(c.video),
        lambda i, c: {"protocol": protocol.hash},
        metrics,
        gt,
        lambda: run_info(cfg, "gt", "GT", "GT", started),
        group,
        protocol,
        None,
    )
    for metric in metrics.values():
        metric.reset()
    return gt


def _judge_health(
    cfg: DictConfig, corpus: LayoutCorpus, clips: list[Clip], protocol: Protocol, metrics: Metrics
) -> None:
    """How well the protocol's judges do on its GT clips (benchmark/health.py), computed once per protocol."""
    from benchmark.health import ensure_health

    try:
        ensure_health(cfg, corpus, [real_counterpart(c) for c in clips], protocol, metrics, log=log)
    except Exception as err:  # a report block must not cost a scored run: the tables say health is missing
        log(f"[health] judge health not computed: {type(err).__name__}: {err}")


def load_gt(cfg: DictConfig, protocol: Protocol) -> Results | None:
    path = gt_dir(cfg, protocol) / "results.json"
    return load_results(path) if path.exists() else None
