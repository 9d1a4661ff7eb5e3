"""Model benchmarks, one entry per registered model, generated from the registry (`models/__init__.py` MODELS and
each class's declared `kind`, read without importing it): every model and component gets training steps/s, and
generation frames/s for the models, at the tiny preset on the CPU and on the GPU when there is one. A model whose
paper calls for more (samplers, presets, streaming) names its own benchmark in SETTINGS."""

from __future__ import annotations

from functools import partial
from typing import Any

from benchmark.perf import papers
from benchmark.perf.core import Benchmark, Figure
from benchmark.perf.generic import bench_registered_model

#: the kinds `bench perf` trains (a "baseline" only generates: it is measured by `--only generation`)
TRAINED_KINDS = ("model", "component")

#: settings the registry cannot give, keyed by registry name; a model not here gets the generic entry
#: (bench_registered_model) and, unless it is a component, a line in `--only generation`.
#: "entry": its own benchmark in benchmark.perf.papers (which runs the generic one too where that still applies)
#: "gpu_paper": `--only generation` also measures it at the paper preset on a GPU, with these overrides, which
#: keep one measure under a minute
SETTINGS: dict[str, dict[str, Any]] = {
    "wav2lip": {"entry": "bench_wav2lip"},
    "diffused_heads": {"entry": "bench_diffused_heads", "gpu_paper": ["model.params.sample_steps=10"]},
    "vasa": {"entry": "bench_vasa"},
}


def registered_kinds() -> dict[str, str]:
    """Every registered model's declared kind ("model", "component", "baseline"), importing none of them."""
    from benchmark.registry import models

    registry = models()
    return {name: registry.declared(name, "kind") for name in registry.names()}


def _paper_entry(name: str) -> Benchmark:
    """`papers.<name>`, under its own name in the results."""

    def run(quick: bool) -> list[Figure]:
        bench: Benchmark = getattr(papers, name)
        return bench(quick)

    run.__name__ = run.__qualname__ = name
    return run


def model_benchmarks() -> dict[str, Benchmark]:
    """One benchmark per trained registered model: its own (SETTINGS "entry") or the generic one."""
    out: dict[str, Benchmark] = {}
    for name, kind in registered_kinds().items():
        if kind in TRAINED_KINDS:
            entry = SETTINGS.get(name, {}).get("entry")
            out[name] = _paper_entry(entry) if entry else partial(bench_registered_model, name)
    return out
