"""`bench perf --only generation`: test-split generation frames/s, clips batched vs one clip at a time.

The path `bench run` takes (`benchmark.generation.generate_batch`: clips of equal length together, each with its
own seed), for every registered generator at its tiny preset, on the CPU and, when CUDA is present, on the GPU;
there also the models with a "gpu_paper" setting at the paper preset (Diffused Heads: its 215 M-parameter UNet,
with a shortened sampling chain so the measure fits a GPU check; frames/s scale with 1 / steps). The baseline is
the same clips one per call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from benchmark.perf.core import Figure, available_devices, synthetic_clips, timeit
from benchmark.perf.models import SETTINGS, registered_kinds

if TYPE_CHECKING:
    from data.clip import Clip


def generators() -> list[str]:
    """The models compared: every registered model that generates video (all kinds but "component")."""
    return [name for name, kind in registered_kinds().items() if kind != "component"]


def gpu_paper() -> dict[str, list[str]]:
    """Models also measured at the paper preset on a GPU, with the overrides that keep one measure under a minute
    (benchmark.perf.models SETTINGS)."""
    return {name: s["gpu_paper"] for name, s in SETTINGS.items() if "gpu_paper" in s}


def _measure(name: str, preset: str, device: str, clips: Sequence[Clip], overrides: list[str]) -> Figure:
    import torch

    from benchmark.config import compose
    from benchmark.generation import generate_batch
    from benchmark.train import build_untrained

    cfg = compose(name, "synthetic", preset, [f"run.generate_batch_size={len(clips)}", *overrides])
    torch.manual_seed(0)
    module = build_untrained(cfg).to(device).eval()
    everyone = list(range(len(clips)))

    def run(groups: list[list[int]]) -> None:
        for g in groups:
            generate_batch(module, clips, g, cfg)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    run([[0]])  # warm-up: kernels, allocator
    batched = timeit(lambda: run([everyone]), 1)
    alone = timeit(lambda: run([[i] for i in everyone]), 1)
    frames = sum(c.num_frames for c in clips)
    extra = {"clips": len(clips), "frames": frames, "device": device, "overrides": overrides, "at": time.time()}
    return Figure(
        "generation",
        f"{name} {preset}, {device}: {len(clips)} clips batched (frames/s)",
        frames / batched,
        "frames/s",
        frames / alone,
        "one clip at a time (frames/s)",
        extra,
    )


def bench_generation(quick: bool) -> list[Figure]:
    """Frames/s of the test-split generation path, batched vs one clip at a time, per model and device."""
    n = 4 if quick else 8
    clips = synthetic_clips(n, size=96, seconds=1.0)
    figures = []
    for device in available_devices():
        for name in generators():
            figures.append(_measure(name, "tiny", device, clips, []))
        if device != "cpu":
            for name, overrides in gpu_paper().items():
                figures.append(_measure(name, "paper", device, clips, overrides))
    return figures
