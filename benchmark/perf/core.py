"""What every perf benchmark shares: the figure record, timing, the synthetic clips timed, each benchmark in its
own process for its peak memory, and the output (a table on stdout, JSON with the machine description)."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from data.clip import Clip


@dataclass
class Figure:
    benchmark: str
    what: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_what: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


#: a benchmark: `quick` in, figures out
Benchmark = Callable[[bool], list[Figure]]


def timeit(fn: Callable[[], object], repeat: int) -> float:
    """Best-of-`repeat` wall time of fn(), seconds (the minimum is the least noisy on a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def synthetic_clips(n: int, size: int = 96, seconds: float = 2.0) -> list[Clip]:
    """`n` seeded synthetic clips of `size` pixels and `seconds` each (the clip contract)."""
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    cfg = SyntheticConfig(seed=11, n_speakers=4, n_clips=n, size=size, min_seconds=seconds, max_seconds=seconds)
    spec = make_corpus_spec(cfg)
    return [render_clip(spec, i) for i in range(n)]


def available_devices() -> list[str]:
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def machine() -> dict[str, Any]:
    import os

    from benchmark.results import environment_info

    info = environment_info()
    info.update({"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count()})
    return info


def format_table(figures: list[Figure]) -> str:
    rows = [("benchmark", "measure", "value", "baseline", "ratio")]
    for f in figures:
        rows.append(
            (
                f.benchmark,
                f.what,
                f"{f.value:.2f} {f.unit}",
                f"{f.baseline:.2f} ({f.baseline_what})" if f.baseline else "-",
                f"{f.ratio:.1f}x" if f.ratio else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def write_report(figures: list[Figure], out: Path, quick: bool) -> None:
    """The JSON `bench perf` writes: the machine, --quick, and every figure with its ratio."""
    from benchmark.results import write_json_atomic

    payload = {"machine": machine(), "quick": quick, "figures": [asdict(f) | {"ratio": f.ratio} for f in figures]}
    write_json_atomic(out, payload)


def _run_one(bench: Benchmark, quick: bool, conn: Connection[Any, Any]) -> None:
    import resource

    try:
        figures = bench(quick)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        conn.send(("ok", figures, peak_mib))
    except BaseException as err:  # reported by the parent with the benchmark's name
        conn.send(("error", f"{type(err).__name__}: {err}", None))
    finally:
        conn.close()


def isolated(name: str, bench: Benchmark, quick: bool) -> list[Figure]:
    """Run one benchmark in a forked child so its peak memory (RSS) is its own, not the largest so far."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_run_one, args=(bench, quick, child))
    proc.start()
    child.close()
    try:
        status, payload, peak_mib = parent.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f"benchmark {name!r} died (exit code {proc.exitcode})") from None
    proc.join()
    if status != "ok":
        raise RuntimeError(f"benchmark {name!r} failed: {payload}")
    return [*payload, Figure(name, "peak memory (RSS of its process)", peak_mib, "MiB")]
