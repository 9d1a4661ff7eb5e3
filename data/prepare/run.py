"""Plan, run and collect a preparation: which clips need work, the worker pool; the manifest is then built from
the records (data.manifest.build_manifest).

A clip is finished exactly when its record `<prepared>/records/<clip_id>.json` exists; for each clip the plan
is one of:
- `full`: no record, or one made under other clip settings (landmark source and its folder, acceptance
  limits) or from a changed file: decode, find landmarks, cut the crops, compute the features;
- `extend`: a finished clip lacking some of the configured crops or features: cut them from the cached
  landmarks (data.prepare.clip.extend_clip), no landmark detection;
- `done`: nothing to do (rejected clips stay rejected until their clip settings change).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.faces import CROPS, LandmarkSourceError, build_source, fan_available, resolve_source
from data.io import MediaError
from data.layouts import ClipRef, Layout, get_layout
from data.manifest import REJECTS, build_manifest
from data.prepare.clip import extend_clip, prepare_clip, source_stamp
from data.prepare.config import ClipRejected, PrepareConfig, PrepareError
from data.workers import init_pool_worker


def record_path(out: Path, clip_id: str) -> Path:
    return out / "records" / f"{clip_id}.json"


def _write_record(out: Path, record: dict[str, Any]) -> None:
    path = record_path(out, record["clip_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, sort_keys=True))
    os.replace(tmp, path)


def read_record(out: Path, clip_id: str) -> dict[str, Any] | None:
    path = record_path(out, clip_id)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


AUTO_SOURCES = ("truth", "fan", "dlib")  # what data.faces.resolve_source may resolve `auto` to


@dataclass
class Plan:
    ref: ClipRef
    source: str  # the landmark source the clip resolves to
    kind: str  # full | extend | done
    record: dict[str, Any] | None = None
    crops: list[str] = field(default_factory=list)  # to add (extend)
    features: list[str] = field(default_factory=list)


def plan_clip(out: Path, ref: ClipRef, cfg: PrepareConfig, source: str) -> Plan:
    """What clip `ref` needs; `source` is the landmark source it resolves to now."""
    rec = read_record(out, ref.clip_id)
    if cfg.landmarks == "auto" and rec is not None and rec.get("landmark_source") in AUTO_SOURCES:
        # under `auto`, cached landmarks of any source auto may pick are kept: installing FAN's weights later
        # does not re-detect a corpus prepared with dlib (name the source to redo it)
        if rec.get("settings") == cfg.clip_settings(rec["landmark_source"]):
            source = rec["landmark_source"]
    if rec is None or rec.get("settings") != cfg.clip_settings(source) or rec.get("stamp") != source_stamp(ref):
        return Plan(ref, source, "full")
    if rec.get("status") != "ok":
        return Plan(ref, source, "done", rec)
    d = out / rec.get("dir", "\0")
    if not d.is_dir() or not (d / "landmarks.npy").exists():
        return Plan(ref, source, "full")
    versions = rec.get("crop_versions", {})
    crops = [c for c in cfg.crops if c not in rec.get("crops", {}) or versions.get(c) != CROPS[c].version]
    features = [f for f in cfg.features if f not in rec.get("features", {})]
    return Plan(ref, source, "extend" if crops or features else "done", rec, crops, features)


def _work(args: tuple) -> tuple[str, dict[str, Any]]:
    plan, root, out, cfg = args
    if plan.kind == "extend":
        try:
            rec = extend_clip(plan.ref, out, plan.record, cfg, plan.crops, plan.features)
            _write_record(out, rec)
            return "extend", rec
        except (MediaError, ClipRejected, OSError, ValueError):
            pass  # the cached arrays do not fit the video any more: prepare the clip again from scratch
    rec = prepare_clip(plan.ref, root, out, cfg, plan.source)
    _write_record(out, rec)
    return "full", rec


@dataclass
class PrepareSummary:
    dataset: str
    out: str
    total: int
    prepared: int  # clips prepared from scratch now (landmarks found now)
    skipped: int  # clips that needed nothing
    accepted: int
    rejected: dict[str, int]
    splits: dict[str, int]
    elapsed_s: float
    clips_per_s: float
    extended: int = 0  # finished clips that got crops or features from their cached landmarks
    landmarks_cached: int = 0  # accepted clips whose landmarks came from the cache
    crops_added: dict[str, int] = field(default_factory=dict)
    features_added: dict[str, int] = field(default_factory=dict)
    landmark_sources: dict[str, int] = field(default_factory=dict)  # accepted clips per resolved source

    def format(self) -> str:
        lines = [
            f"{self.dataset}: {self.total} clips, {self.prepared} prepared now, {self.extended} extended, "
            f"{self.skipped} already done",
            f"  accepted {self.accepted} ({', '.join(f'{k} {v}' for k, v in self.splits.items())})",
        ]
        if self.rejected:
            lines.append("  rejected " + ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())))
        else:
            lines.append("  rejected 0")
        sources = ", ".join(f"{k} {v}" for k, v in sorted(self.landmark_sources.items()))
        line = f"  landmarks: {self.prepared} detected, {self.landmarks_cached} from cache" + (
            f" (sources: {sources})" if sources else ""
        )
        added = [f"{k} x {v}" for k, v in sorted(self.crops_added.items())]
        added += [f"{k} x {v}" for k, v in sorted(self.features_added.items())]
        lines.append(line + (f"; crops added: {', '.join(added)}" if added else ""))
        lines.append(f"  {self.elapsed_s:.1f} s, {self.clips_per_s:.2f} clips/s -> {self.out}")
        return "\n".join(lines)


def _check_sources(cfg: PrepareConfig, plans: list[Plan]) -> None:
    """Build each detector that clips to prepare from scratch resolve to, once, so missing weights or packages
    fail now with their message, not once per clip (and not at all when only cached landmarks are needed)."""
    for source in sorted({p.source for p in plans if p.kind == "full"}):
        try:
            build_source(source, cfg.landmarks_dir, cfg.device, cfg.detect_batch)
        except LandmarkSourceError as err:
            raise PrepareError(str(err)) from None


def prepare_corpus(
    name: str,
    root: str | os.PathLike,
    layout: str | Layout,
    out: str | os.PathLike,
    cfg: PrepareConfig | None = None,
    *,
    split_dir: str | os.PathLike | None = None,
    val_speakers: int = 0,
    strict: bool = False,
    progress: bool = True,
    limit: int | None = None,
) -> PrepareSummary:
    """Prepare every clip of a corpus (skipping finished ones, extending those that lack a crop or feature)
    and rebuild the manifest. See data.prepare's module doc."""
    cfg = cfg or PrepareConfig()
    cfg.validate()
    root, out = Path(root).expanduser(), Path(out).expanduser()
    lay = get_layout(layout) if isinstance(layout, str) else layout
    refs = lay.scan(root, split_dir)
    if limit:
        refs = refs[:limit]
    out.mkdir(parents=True, exist_ok=True)
    for leftover in (out / "clips").glob("**/*.tmp*"):  # a killed run's half-written clip folders
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
    fan_ok = fan_available() if cfg.landmarks == "auto" else None  # looked up once, not per clip
    t0 = time.perf_counter()
    plans = [plan_clip(out, ref, cfg, resolve_source(cfg.landmarks, ref.video, fan_ok)) for ref in refs]
    _check_sources(cfg, plans)
    # a `done` plan always carries its record (plan_clip)
    records = {p.ref.clip_id: p.record for p in plans if p.kind == "done" and p.record is not None}
    todo = [p for p in plans if p.kind != "done"]
    bar = _Bar(progress, len(refs), f"prepare {name}")
    bar.update(len(records), sum(r["status"] != "ok" for r in records.values()))
    jobs = [(plan, root, out, cfg) for plan in todo]
    done_as: Counter = Counter()
    crops_added: Counter = Counter()
    features_added: Counter = Counter()

    def collect(plan: Plan, kind: str, rec: dict[str, Any]) -> None:
        records[rec["clip_id"]] = rec
        done_as[kind] += 1
        done_as["full_ok"] += kind == "full" and rec["status"] == "ok"
        if kind == "extend":
            crops_added.update(plan.crops)
            features_added.update(plan.features)
        bar.update(1, rec["status"] != "ok")

    try:
        if cfg.workers <= 1 or len(jobs) <= 1:
            # in this process: its thread settings stay those of the training or scoring that may follow
            for job in jobs:
                collect(job[0], *_work(job))
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx, initializer=init_pool_worker) as pool:
                futures = {pool.submit(_work, job): job[0] for job in jobs}
                for fut in as_completed(futures):
                    collect(futures[fut], *fut.result())
    finally:
        bar.stop()
    elapsed = time.perf_counter() - t0
    counts = build_manifest(name, root, lay, out, refs, records, cfg, split_dir=split_dir, val_speakers=val_speakers)
    summary = PrepareSummary(
        dataset=name,
        out=str(out),
        total=len(refs),
        prepared=done_as["full"],
        skipped=len(refs) - len(todo),
        accepted=counts["accepted"],
        rejected=counts["rejected"],
        splits=counts["splits"],
        elapsed_s=round(elapsed, 2),
        clips_per_s=round(len(todo) / elapsed, 3) if todo and elapsed > 0 else 0.0,
        extended=done_as["extend"],
        landmarks_cached=max(0, counts["accepted"] - done_as["full_ok"]),
        crops_added=dict(crops_added),
        features_added=dict(features_added),
        landmark_sources=counts["landmark_sources"],
    )
    if strict and summary.rejected:
        raise PrepareError(
            f"{sum(summary.rejected.values())} clips rejected ({summary.rejected}); see {out / REJECTS} (strict mode)"
        )
    return summary


class _Bar:
    """rich progress with counts of done / rejected; silent when disabled."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.label, self.done, self.failed = label, 0, 0
        self._p = None
        if enabled:
            from rich.progress import Progress

            self._p = Progress(transient=False)
            self._p.start()
            self._task = self._p.add_task(label, total=total)

    def update(self, n: int, failed: int | bool) -> None:
        self.done += n
        self.failed += int(failed)
        if self._p is not None:
            self._p.update(
                self._task, completed=self.done, description=f"{self.label}: {self.done} done, {self.failed} rejected"
            )

    def stop(self) -> None:
        if self._p is not None:
            self._p.stop()
