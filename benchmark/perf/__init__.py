"""`bench perf`: a registry of speed benchmarks, each measured side by side with its baseline in one run.

Figures go to a table on stdout and to JSON (with the machine description) so they can be compared across
machines and commits. Speed targets live here, never in timed tests.

core.py: the figure record, timing, per-benchmark peak memory, table and JSON; corpora.py, metrics.py: the
corpus and metric benchmarks; models.py: one entry per registered model, generated from the registry, with the
few per-model settings; papers.py: the models whose benchmarks time more; generation.py: `--only generation`.
speed.py, samplers.py: measurements of one run's model (`--run DIR`, RUN_BENCHMARKS; docs/speed.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.perf.core import Benchmark, Figure, format_table, isolated, machine, write_report
from benchmark.perf.corpora import bench_corpora, bench_corpus_decode, bench_prepare
from benchmark.perf.generic import bench_registered_model
from benchmark.perf.metrics import bench_metrics, bench_sync_scoring
from benchmark.perf.models import model_benchmarks

if TYPE_CHECKING:
    from benchmark.perf.speed import SpeedSettings

__all__ = [
    "BENCHMARKS",
    "GROUPS",
    "RUN_BENCHMARKS",
    "Figure",
    "bench_corpora",
    "bench_registered_model",
    "format_table",
    "machine",
    "run_model_perf",
    "run_perf",
]


def _generation(quick: bool) -> list[Figure]:
    from benchmark.perf.generation import bench_generation

    return bench_generation(quick)


_MODELS = model_benchmarks()

BENCHMARKS: dict[str, Benchmark] = {
    "corpus_decode": bench_corpus_decode,
    "corpora": bench_corpora,
    "prepare": bench_prepare,
    "sync_scoring": bench_sync_scoring,
    **_MODELS,
    "metrics": bench_metrics,
    "generation": _generation,
}
#: names that stand for several benchmarks (`bench perf --only models metrics`)
GROUPS: dict[str, tuple[str, ...]] = {"models": (*_MODELS, "generation")}


def _run_speed(run_dir: Path, settings: SpeedSettings) -> list[str]:
    from benchmark.perf.speed import run_speed

    return run_speed(run_dir, settings)


def _run_dh_samplers(run_dir: Path, settings: SpeedSettings) -> list[str]:
    from benchmark.perf.samplers import run_sampler_curve

    return run_sampler_curve(run_dir, settings)


#: name -> (run folder, settings) -> lines to print; "speed" (stored as <run>/speed.json) is the default
RUN_BENCHMARKS: dict[str, Callable[[Path, SpeedSettings], list[str]]] = {
    "speed": _run_speed,
    "dh_samplers": _run_dh_samplers,
}


def run_model_perf(run_dirs: list[Path], only: list[str] | None, settings: SpeedSettings) -> int:
    """Run the RUN_BENCHMARKS named in `only` (default "speed") on each run folder; returns the failures."""
    from benchmark.registry import suggest

    names = only or ["speed"]
    for name in names:
        if name not in RUN_BENCHMARKS:
            raise suggest("run benchmark", name, list(RUN_BENCHMARKS))
    failed = 0
    for run_dir in run_dirs:
        for name in names:
            print(f"[perf] {name}: {run_dir} ...", flush=True)
            try:
                lines = RUN_BENCHMARKS[name](run_dir, settings)
            except (ValueError, KeyError, FileNotFoundError) as err:  # one run that cannot be measured: say so, go on
                if len(run_dirs) == 1:
                    raise
                print(f"[perf] {name}: {run_dir}: not measured: {err}", flush=True)
                failed += 1
                continue
            print("\n".join(lines), flush=True)
    return failed


def run_perf(only: list[str] | None, out: Path, quick: bool = False) -> list[Figure]:
    """Run the benchmarks named in `only` (names or GROUPS; all when None), each in its own process; print the
    table and write the JSON to `out`."""
    import torch

    from benchmark.registry import suggest

    torch.set_num_threads(min(2, torch.get_num_threads()))
    names = list(dict.fromkeys(n for name in only or list(BENCHMARKS) for n in GROUPS.get(name, (name,))))
    for name in names:
        if name not in BENCHMARKS:
            raise suggest("benchmark", name, [*BENCHMARKS, *GROUPS])
    figures: list[Figure] = []
    for name in names:
        print(f"[perf] {name} ...", flush=True)
        figures.extend(isolated(name, BENCHMARKS[name], quick))
    print(format_table(figures))
    write_report(figures, out, quick)
    print(f"wrote {out}")
    return figures
