"""`bench perf --run <Diffused Heads run> --only dh_samplers`: the speed-quality curve of its samplers.

Every sampler of `models/diffused_heads/process.py` generates the same test clips with the run's weights and the
same seeds: the official chain (ancestral sampling over all 1000 steps), ancestral sampling over the respaced
chains (200/100/50/25 steps) and DDIM over them (50/25/10/5). For each: generation frames/s (the `bench run`
path, `generate_batch`; median of `--repeats` passes after a one-frame warm-up) and the protocol's quality
metrics of those clips (AV confidence, F-MSE, OFM, FVD by default: `CurveConfig.metrics`), scored as `bench run`
scores them (encoded to mp4, decoded, benchmark.scoring). Per-clip metrics get seeded bootstrap intervals
(benchmark.tables.intervals, the leaderboard's); the verdict of a sampler is its speed-up over the official chain
and, per metric, whether its value lies inside the official chain's interval. A set metric (FVD) gets its
interval by resampling the clip set with the same draws (benchmark.tables.set_intervals); without its feature
files it is reported and marked untested.

Output: `reports/dh_samplers_<dataset>.json` and `.md`, with `reports/dh_samplers_<dataset>_speedup.svg`; the
generated clips and their per-clip records stay in `<run>/samplers/`.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.perf.speed import SpeedSettings, apply_threads, device_name, load_run_config, load_run_module

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from data.clip import Clip
    from models.base import TalkingFaceModule

__all__ = [
    "CurveConfig",
    "SamplerPoint",
    "SamplerSpec",
    "Verdict",
    "parse_samplers",
    "run_sampler_curve",
    "verdicts",
]


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler of process.SAMPLERS over a chain of `steps` respaced steps (steps = T: the whole chain)."""

    method: str
    steps: int

    @property
    def name(self) -> str:
        return f"{self.method} {self.steps}"


def parse_samplers(text: str) -> list[SamplerSpec]:
    """`ancestral:1000,ddim:50` -> specs; the first is the reference the others are judged against."""
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        method, _, steps = item.partition(":")
        if not steps.isdigit() or int(steps) < 1:
            raise ValueError(f"sampler {item!r}: write method:steps, e.g. ddim:25")
        out.append(SamplerSpec(method.strip(), int(steps)))
    if not out:
        raise ValueError("no samplers given")
    return out


@dataclass(frozen=True)
class CurveConfig:
    """What the curve compares. `samplers`: method:steps, the official chain first (the reference);
    `metrics`: registry names scored with the run's metric settings; `target_speedup`: the speed-up over the
    reference a default sampler must reach (issue 16: 20x) with every tested metric inside the reference's
    interval."""

    samplers: str = (
        "ancestral:1000,ancestral:200,ancestral:100,ancestral:50,ancestral:25,ddim:50,ddim:25,ddim:10,ddim:5"
    )
    metrics: tuple[str, ...] = ("av_conf", "fmse", "ofm", "fvd_16f")
    target_speedup: float = 20.0


@dataclass
class SamplerPoint:
    """One sampler's measurement: frames/s, each metric's value, and the bootstrap interval of the per-clip ones."""

    name: str
    fps: float
    values: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Features:
    """A sampler's set-metric feature files: ``fake[metric][clip]`` relative to ``folder`` (its records) and
    ``real[metric][clip]`` relative to ``real_dir`` (the real clips' cache)."""

    folder: Path
    real_dir: Path
    fake: dict[str, dict[str, str]] = field(default_factory=dict)
    real: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Verdict:
    """A sampler against the reference: its speed-up, per metric True (inside the reference's interval), False
    (outside) or None (no interval to test against: a set metric or a missing value), and whether it meets the
    target (speed-up >= target and no metric outside)."""

    name: str
    speedup: float
    within: dict[str, bool | None]
    meets_target: bool

    @property
    def untested(self) -> list[str]:
        return [m for m, ok in self.within.items() if ok is None]


def verdicts(points: Sequence[SamplerPoint], target_speedup: float) -> list[Verdict]:
    """Each point against points[0] (the official chain)."""
    if not points:
        return []
    ref = points[0]
    out = []
    for p in points:
        within: dict[str, bool | None] = {}
        for metric, value in p.values.items():
            interval = ref.intervals.get(metric)
            if interval is None or not all(math.isfinite(v) for v in (*interval, value)):
                within[metric] = None
            else:
                within[metric] = interval[0] <= value <= interval[1]
        speedup = p.fps / ref.fps if ref.fps > 0 else math.nan
        meets = bool(speedup >= target_speedup) and all(ok is not False for ok in within.values())
        out.append(Verdict(p.name, speedup, within, meets))
    return out


def recommended(results: Sequence[Verdict], points: Sequence[SamplerPoint]) -> str | None:
    """The fastest sampler that meets the target, or None."""
    passing = [(p.fps, v.name) for v, p in zip(results, points) if v.meets_target]
    return max(passing)[1] if passing else None


# --------------------------------------------------------------------------------------------------------------
# measuring


def _generate(
    module: TalkingFaceModule, cfg: DictConfig, clips: Sequence[Clip], repeats: int
) -> tuple[float, list[np.ndarray]]:
    """Median seconds of `repeats` generation passes over `clips` (the `bench run` batching), and the videos of
    the last pass (every pass gives the same videos: the seeds are fixed)."""
    import torch

    from benchmark.generation import generate_batch, generation_batches

    batches = generation_batches(clips, int(cfg.run.generate_batch_size))
    videos: list[np.ndarray] = [np.zeros(0, np.uint8)] * len(clips)
    times = []
    device = str(module.device)
    for _ in range(repeats):
        t0 = time.perf_counter()
        for positions in batches:
            for i, video in zip(positions, generate_batch(module, clips, positions, cfg)):
                videos[i] = video
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), videos


def _first_frames(clip: Clip, frames: int | None) -> Clip:
    """`clip` cut to its first `frames` frames (video, audio, landmarks), so the official 1000-step chain fits a
    CPU; every sampler gets the same cut clips, and clips of one length are generated in one batch."""
    from data.clip import SAMPLES_PER_FRAME

    if frames is None or frames >= clip.num_frames:
        return clip
    landmarks = clip.landmarks[:frames] if clip.landmarks is not None else None
    return dataclasses.replace(
        clip,
        video=np.asarray(clip.video[:frames]),
        audio=np.asarray(clip.audio[: frames * SAMPLES_PER_FRAME]),
        landmarks=landmarks,
    )


def _warm_up(module: TalkingFaceModule, clip: Clip, cfg: DictConfig) -> None:
    """One frame through the current sampler: kernels and allocator warm, without paying for a whole pass."""
    from data.clip import SAMPLES_PER_FRAME

    module.generate(np.asarray(clip.video[:1]), np.asarray(clip.audio[:SAMPLES_PER_FRAME])[None], seed=0)


def _score(
    cfg: DictConfig,
    corpus: Any,
    clips: Sequence[Clip],
    videos: Mapping[str, Path],
    names: list[str],
    folder: Path,
    device: str,
) -> tuple[dict[str, float], dict[str, dict[str, float]], list[str], Features]:
    """Values, per-clip values, notes and set-metric feature files of `videos` scored as `bench run` scores (fresh
    records in `folder`)."""
    from benchmark.features import clip_set_features, feature_path
    from benchmark.scoring import build_metrics, score_clips
    from data.io import read_video
    from metrics.base import ClipFeatures, ClipScoreError, SetMetric

    metrics = build_metrics(cfg, names, corpus, device)
    gt_features = folder.parent / "gt_features"

    def reference(metric: SetMetric) -> None:
        for i, clip in enumerate(clips):
            try:
                video = np.asarray(clip.video)
                feats, _ = clip_set_features(metric, clip.clip_id, video, gt_features, reuse=True, real=True)
            except ClipScoreError:
                continue  # a real clip the metric cannot use is not in the reference set (benchmark.features)
            metric.update([ClipFeatures(index=i, clip_id=clip.clip_id, features=feats, real=True)])

    samples = folder / "samples.jsonl"
    samples.unlink(missing_ok=True)  # every curve scores its clips afresh: they were generated afresh
    notes: list[str] = []
    results, rows = score_clips(
        clips,
        lambda i, c: read_video(videos[c.clip_id]),
        metrics,
        names,
        samples,
        progress=False,
        reference=reference,
        notes=notes,
    )
    per_clip: dict[str, dict[str, float]] = {}
    for row in rows:
        for metric, value in row.get("values", {}).items():
            per_clip.setdefault(metric, {})[row["clip_id"]] = float(value)
    # the set metrics' per-clip features, generated and real, for their intervals (benchmark.tables.set_intervals)
    features = Features(folder, gt_features)
    for target, metric in metrics.items():
        if not isinstance(metric, SetMetric):
            continue
        out = metric.outputs[0]
        for row in rows:
            entry = row.get("features", {}).get(target)
            if entry:
                features.fake.setdefault(out, {})[row["clip_id"]] = entry["file"]
            # every real clip the reference took, whether or not its generated twin could be scored
            real = feature_path(gt_features, metric, row["clip_id"], real=True)
            if real.exists():
                features.real.setdefault(out, {})[row["clip_id"]] = str(real.relative_to(gt_features))
    return {k: float(v.value) for k, v in results.items()}, per_clip, notes, features


def _intervals(
    per_clip: Sequence[dict[str, dict[str, float]]],
    speakers: dict[str, str],
    points: Sequence[SamplerPoint] = (),
    features: Sequence[Features] = (),
) -> list[dict[str, tuple[float, float]]]:
    """Bootstrap intervals of every sampler's metrics, one set of replicates for all (the leaderboard's helpers and
    settings): per-clip metrics from `per_clip`; set metrics (FVD) from each sampler's `features` against the real
    clips' (a table row of kind "gt" holds the real side), with the values of `points`."""
    import pandas as pd

    from benchmark.tables.intervals import DEFAULT_BOOTSTRAP, ClipRecords, table_intervals

    set_metrics = sorted({m for f in features for m in f.fake})
    metrics = sorted({m for p in per_clip for m in p} | set(set_metrics))
    records: list[ClipRecords | None] = []
    for i, values in enumerate(per_clip):
        sampler = features[i] if i < len(features) else None
        records.append(
            ClipRecords(
                values={m: v for m, v in values.items() if m not in set_metrics},
                speakers=speakers,
                features=sampler.fake if sampler else {},
                run_dir=sampler.folder if sampler else None,
            )
        )
    rows: dict[str, list[Any]] = {
        m: [points[i].values.get(m, math.nan) if i < len(points) else math.nan for i in range(len(per_clip))]
        for m in metrics
    }
    kinds = ["model"] * len(per_clip)
    if features and set_metrics:  # the real side, as a GT row
        real = features[0]
        records.append(ClipRecords(speakers=speakers, features=real.real, run_dir=real.real_dir))
        for m in metrics:
            rows[m].append(math.nan)
        kinds.append("gt")
    frame = pd.DataFrame({"kind": kinds, **rows})
    found = table_intervals(frame, [(m, m) for m in metrics], records, DEFAULT_BOOTSTRAP)
    out: list[dict[str, tuple[float, float]]] = [{} for _ in per_clip]
    if found is None:
        return out
    for i in range(len(per_clip)):
        for m in metrics:
            low, high = float(found.low.at[i, m]), float(found.high.at[i, m])
            if math.isfinite(low) and math.isfinite(high):
                out[i][m] = (low, high)
    return out


def run_sampler_curve(run_dir: Path, settings: SpeedSettings, curve: CurveConfig | None = None) -> list[str]:
    """Measure the curve for the Diffused Heads run in `run_dir` on its first `settings.clips` test clips and
    write the report; returns the lines to print."""
    from benchmark.runner import build_corpus
    from benchmark.scoring import prepare_evaluators, test_clips
    from data.clip import SAMPLES_PER_FRAME
    from data.io import write_video
    from metrics import METRICS
    from models.diffused_heads.process import SAMPLERS

    if curve is None:
        curve = CurveConfig(samplers=settings.samplers) if settings.samplers else CurveConfig()
    apply_threads(settings)
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if str(cfg.model.name) != "diffused_heads":
        raise ValueError(f"{run_dir}: dh_samplers measures a Diffused Heads run, this one is {cfg.model.name!r}")
    specs = parse_samplers(curve.samplers)
    unknown = sorted({s.method for s in specs} - set(SAMPLERS))
    if unknown:
        raise ValueError(
            f"samplers not offered by models/diffused_heads/process.py: {unknown}; offered: {list(SAMPLERS)}"
        )
    names = [m for m in curve.metrics if m in METRICS]
    cfg.run.limit = settings.clips
    cfg.metrics.names = names
    corpus = build_corpus(cfg)
    corpus.ensure()
    clips = [_first_frames(c, settings.frames) for c in test_clips(cfg, corpus)]
    prepare_evaluators(cfg, corpus)
    module = load_run_module(cfg, run_dir).to(settings.device).eval()
    base_cfg = module.cfg
    work = run_dir / "samplers"
    frames = sum(int(c.audio.shape[0]) // SAMPLES_PER_FRAME for c in clips)

    points: list[SamplerPoint] = []
    per_clip: list[dict[str, dict[str, float]]] = []
    features: list[Features] = []
    notes: list[str] = []
    try:
        for spec in specs:
            module.cfg = dataclasses.replace(base_cfg, sampler=spec.method, sample_steps=spec.steps)
            print(f"[dh_samplers] {spec.name}: generating {len(clips)} clips ({frames} frames)", flush=True)
            _warm_up(module, clips[0], cfg)
            seconds, videos = _generate(module, cfg, clips, settings.repeats)
            folder = work / spec.name.replace(" ", "_")
            paths = {}
            for clip, video in zip(clips, videos):
                paths[clip.clip_id] = folder / f"{clip.clip_id.replace('/', '_')}.mp4"
                write_video(paths[clip.clip_id], video, clip.audio)
            values, clip_values, score_notes, feats = _score(cfg, corpus, clips, paths, names, folder, settings.device)
            features.append(feats)
            notes += [f"{spec.name}: {n}" for n in score_notes]
            points.append(SamplerPoint(spec.name, frames / seconds, values, seconds=seconds))
            per_clip.append(clip_values)
            print(f"[dh_samplers] {spec.name}: {frames / seconds:.3f} frames/s, {values}", flush=True)
    finally:
        module.cfg = base_cfg
    speakers = {c.clip_id: c.speaker_id for c in clips}
    for point, interval in zip(points, _intervals(per_clip, speakers, points, features)):
        point.intervals = interval
    results = verdicts(points, curve.target_speedup)
    info = {
        "run": str(run_dir),
        "dataset": str(cfg.dataset.name),
        "preset": str(cfg.run.preset),
        "device": device_name(settings.device),
        "clips": [c.clip_id for c in clips],
        "frames": frames,
        "frames_per_clip": settings.frames,
        "repeats": settings.repeats,
        "metrics": names,
        "target_speedup": curve.target_speedup,
        "configured_sampler": f"{base_cfg.sampler} {base_cfg.sample_steps}",
        "weights": _weights_info(cfg, run_dir),
        "recommended": recommended(results, points),
        "notes": notes,
    }
    files = write_curve_report(settings.reports, info, points, results)
    return [format_curve(info, points, results), *(f"wrote {f}" for f in files)]


def _weights_info(cfg: DictConfig, run_dir: Path) -> str:
    """Which weights the curve was measured with: a curve of an under-trained model says little about the paper's."""
    import hashlib

    from metrics.safe_load import load_checkpoint_file

    if cfg.run.checkpoint:
        return f"checkpoint {cfg.run.checkpoint}"
    path = run_dir / "model.pt"
    if not path.exists():
        return "untrained (initialised under the run's seed)"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    blob, _ = load_checkpoint_file(path)
    note = blob.get("note") if isinstance(blob, dict) else None
    return f"{path.name} sha256 {digest}" + (f" ({note})" if isinstance(note, str) and note else "")


# --------------------------------------------------------------------------------------------------------------
# the report


def _interval_text(point: SamplerPoint, metric: str, digits: int) -> str:
    value = point.values.get(metric, math.nan)
    if not math.isfinite(value):
        return "—"
    interval = point.intervals.get(metric)
    if interval is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


_MARK = {True: "in", False: "OUT", None: "untested"}


def curve_markdown(info: dict[str, Any], points: Sequence[SamplerPoint], results: Sequence[Verdict]) -> str:
    from metrics import METRICS

    metrics = list(info["metrics"])
    header = ["Sampler", "frames/s", "speed-up", *(f"{m} ({METRICS[m].direction})" for m in metrics), "verdict"]
    lines = [
        f"# Diffused Heads samplers on {info['dataset']} ({info['preset']} preset)",
        "",
        f"Run `{info['run']}`, device {info['device']}, {len(info['clips'])} test clips ({info['frames']} frames"
        + (f", each cut to its first {info['frames_per_clip']}" if info.get("frames_per_clip") else "")
        + "), "
        f"median of {info['repeats']} generation pass(es). Weights: {info.get('weights', 'not recorded')}. "
        "Values with the 95% bootstrap interval over resampled clips (FID/FVD: the distance of the resampled sets); "
        "verdict per metric: inside the official chain's interval (in / OUT / untested where there is no interval). "
        f"Target: >= {info['target_speedup']:g}x the official chain with no metric OUT.",
        "",
        "| " + " | ".join(header) + " |",
        "|:---|" + "---:|" * (len(header) - 2) + ":---|",
    ]
    for p, v in zip(points, results):
        cells = [f"{_interval_text(p, m, 3)} ({_MARK[v.within.get(m)]})" for m in metrics]
        verdict = "meets target" if v.meets_target else "-"
        lines.append("| " + " | ".join([p.name, f"{p.fps:.3f}", f"{v.speedup:.1f}x", *cells, verdict]) + " |")
    rec = info["recommended"]
    lines += [
        "",
        f"Configured sampler of the run: {info['configured_sampler']}. "
        + (f"Fastest sampler meeting the target: **{rec}**." if rec else "No sampler meets the target on these clips."),
        "",
    ]
    lines += [f"- {n}" for n in info["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def format_curve(info: dict[str, Any], points: Sequence[SamplerPoint], results: Sequence[Verdict]) -> str:
    rows = [f"{'sampler':14s} {'frames/s':>9s} {'speed-up':>8s}  metrics (in/OUT/untested vs the official chain)"]
    for p, v in zip(points, results):
        marks = ", ".join(f"{m} {p.values.get(m, math.nan):.3g} {_MARK[ok]}" for m, ok in v.within.items())
        meets = "  <- meets target" if v.meets_target else ""
        rows.append(f"{p.name:14s} {p.fps:9.3f} {v.speedup:7.1f}x  {marks}{meets}")
    rows.append(f"recommended: {info['recommended'] or 'none meets the target'}")
    return "\n".join(rows)


def write_curve_report(
    reports: Path, info: dict[str, Any], points: Sequence[SamplerPoint], results: Sequence[Verdict]
) -> list[Path]:
    from benchmark.results import write_json_atomic, write_text_atomic
    from benchmark.tables.charts import Bar, bar_chart_svg

    stem = Path(reports) / f"dh_samplers_{info['dataset']}"
    payload = {
        **info,
        "samplers": [
            {
                **dataclasses.asdict(p),
                "intervals": {k: list(v) for k, v in p.intervals.items()},
                "speedup": v.speedup,
                "within_reference_interval": v.within,
                "meets_target": v.meets_target,
            }
            for p, v in zip(points, results)
        ],
    }
    files = [
        write_json_atomic(stem.with_suffix(".json"), payload),
        write_text_atomic(stem.with_suffix(".md"), curve_markdown(info, points, results)),
    ]
    bars = [Bar(v.name, v.speedup, mark="best" if v.meets_target else None) for v in results]
    svg = bar_chart_svg(f"Speed-up over {points[0].name} ({info['device']})", "higher", bars)
    files.append(write_text_atomic(stem.with_name(stem.name + "_speedup.svg"), svg + "\n"))
    return files
