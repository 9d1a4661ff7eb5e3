"""Metric benchmarks: SyncNet scoring against syncnet_python's loop, and every registered metric class batched
against a per-clip loop."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.perf.core import Figure, synthetic_clips, timeit

if TYPE_CHECKING:
    from torch import nn

    from metrics.base import ClipMetric, SetMetric


def bench_sync_scoring(quick: bool) -> list[Figure]:
    """SyncNet scoring clips/s: the batched path vs syncnet_python's per-clip, per-shift loop, same clips."""
    import torch

    from metrics.backbones.syncnet import build_sync_evaluator
    from metrics.functional.sync import sync_scores, sync_scores_reference

    n = 2 if quick else 6
    clips = synthetic_clips(n)
    out: list[Figure] = []
    for arch in ("small", "syncnet_v2"):
        if arch == "syncnet_v2" and quick:
            continue
        torch.manual_seed(0)
        net = build_sync_evaluator(arch).eval()

        def batched(net: nn.Module = net) -> object:
            return [sync_scores(net, c.video, c.audio) for c in clips]

        def reference(net: nn.Module = net) -> object:
            return [sync_scores_reference(net, c.video, c.audio) for c in clips]

        fast = timeit(batched, 1 if quick else 2)
        ref = timeit(reference, 1)
        out.append(
            Figure(
                "sync_scoring",
                f"{arch}: batched (clips/s)",
                n / fast,
                "clips/s",
                n / ref,
                "per-shift reference loop (clips/s)",
                {"clips": n, "seconds_per_clip": 2.0, "arch": arch},
            )
        )
    return out


def _metric_for_perf(cls: type[ClipMetric | SetMetric], settings: dict[str, Any]) -> ClipMetric | SetMetric:
    """A metric built as the runner would on the synthetic corpus (`settings` carry its CPU protocol), with a
    seeded small SyncNet where an evaluator is needed; corpus-bound metrics get no corpus."""
    import torch

    settings = {k: v for k, v in settings.items() if k != "evaluator"}
    if cls.evaluator_key == "syncnet":
        from metrics.backbones.syncnet import build_sync_evaluator

        torch.manual_seed(0)
        settings["evaluator"] = build_sync_evaluator("small")
    if getattr(cls, "needs_corpus", False):
        settings["corpus"] = None
    return cls(**settings)


def bench_metrics(quick: bool) -> list[Figure]:
    """Clips/s of every registered metric class: one `update` with all clips (what batches across clips) vs a
    per-clip loop of `update([clip])`, same clips, fresh metric each. Set metrics (FID, FVD) run the synthetic
    corpus's CPU protocol; classes that cannot be built here (e.g. need calibrated weights) are listed as skipped."""
    from omegaconf import OmegaConf

    from benchmark.config import load_group
    from benchmark.registry import import_target
    from metrics import METRICS
    from metrics.base import EvalSample

    n = 2 if quick else 6
    clips = synthetic_clips(n)

    def fresh_samples() -> list[EvalSample]:
        # new objects for every timed path: metrics cache per-clip work (landmarks) on the sample, and a path
        # that found the other's cache filled would time nothing
        return [
            EvalSample(
                index=i,
                clip_id=c.clip_id,
                fake=np.ascontiguousarray(c.video[:, :, ::-1]),  # a different video of the same size
                audio=c.audio,
                real=np.asarray(c.video),
                fake_landmarks=c.landmarks,
                real_landmarks=c.landmarks,
            )
            for i, c in enumerate(clips)
        ]

    config = load_group("metrics", "default")
    # the synthetic corpus's CPU protocol: the FID/FVD frame selection of its dataset config's `metrics:` block
    cpu_protocol = load_group("datasets", "synthetic").get("metrics") or {}
    figures: list[Figure] = []
    skipped: dict[str, str] = {}
    for target in dict.fromkeys(spec.target for spec in METRICS.values()):
        cls = import_target(target)
        section = cls.config_section
        settings: dict[str, Any] = (
            OmegaConf.to_container(config[section], resolve=True)  # type: ignore[assignment]  # a section: a dict
            if section and section in config
            else {}
        )
        if section in ("fid", "fvd"):
            settings.update({str(k): v for k, v in (cpu_protocol.get(section) or {}).items()})
        try:
            # one clip first: weights hashing, imports and lazily loaded detectors stay out of the timings
            _metric_for_perf(cls, settings).update(fresh_samples()[:1])
        except Exception as err:  # a metric that needs calibrated weights or a corpus: say so, measure the rest
            skipped[target] = f"{type(err).__name__}: {err}"[:200]
            continue
        # fresh metrics built outside the timings; best of `repeat` for each path
        t_batch = t_loop = float("inf")
        for _ in range(1 if quick else 2):
            m, samples = _metric_for_perf(cls, settings), fresh_samples()
            t0 = time.perf_counter()
            m.update(samples)
            t_batch = min(t_batch, time.perf_counter() - t0)
            m, samples = _metric_for_perf(cls, settings), fresh_samples()
            t0 = time.perf_counter()
            for s in samples:
                m.update([s])
            t_loop = min(t_loop, time.perf_counter() - t0)
        figures.append(
            Figure(
                "metrics",
                f"{target.split(':')[1]}: batched update (clips/s)",
                n / t_batch,
                "clips/s",
                n / t_loop,
                "per-clip update loop (clips/s)",
                {"clips": n, "seconds_per_clip": 2.0, "size": 96, "target": target},
            )
        )
    if skipped:
        print("[perf] metrics skipped: " + "; ".join(f"{t} ({why})" for t, why in skipped.items()), flush=True)
        for f in figures:
            f.extra["skipped"] = skipped
    return figures
