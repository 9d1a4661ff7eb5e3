"""The generic model benchmark: training steps/s and generation frames/s of any registered model at its tiny
preset (what benchmark.perf.models gives every model, and the papers' own entries run too)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from benchmark.perf.core import Figure, available_devices, synthetic_clips, timeit

if TYPE_CHECKING:
    from data.clip import Clip
    from models.base import TalkingFaceModule


def _fit_steps_per_s(module: TalkingFaceModule, clips: Sequence[Clip], steps: int, device: str = "cpu") -> float:
    """Training steps/s of `module` in a Lightning Trainer (models with manual optimisation need one), timed from
    the end of the first step so start-up and the first step's allocations are excluded."""
    import lightning as L
    import torch

    ds = module.train_dataset(clips, seed=0, fixed=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=module.cfg.batch_size, shuffle=True, drop_last=True)
    marks: list[float] = []

    class Clock(L.Callback):
        def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            marks.append(time.perf_counter())

    trainer = L.Trainer(
        max_steps=steps + 1,
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[Clock()],
    )
    trainer.fit(module, loader)
    return (len(marks) - 1) / (marks[-1] - marks[0])


def bench_registered_model(
    name: str, quick: bool, devices: list[str] | None = None, generate: bool = True
) -> list[Figure]:
    """Training steps/s and (for generators, unless `generate` is false because the model's own entry times its
    sampling in more detail) generation frames/s of model `name` at its tiny preset, on the CPU and, when CUDA is
    present, on the GPU (the GPU section)."""
    import torch

    from benchmark.config import compose
    from benchmark.train import build_model

    clips = synthetic_clips(3 if quick else 6)
    cfg = compose(name, "synthetic", "tiny")
    figures: list[Figure] = []
    for device in devices or available_devices():
        torch.manual_seed(0)
        needs = {arg: build_model(compose(dep, "synthetic", "tiny")) for arg, dep in (cfg.model.needs or {}).items()}
        module = build_model(cfg, needs)
        module.train()
        steps = 3 if quick else 10
        rate = _fit_steps_per_s(module, clips, steps, device)
        extra = {"batch_size": module.cfg.batch_size, "device": device}
        figures.append(Figure(f"{name}_train", f"tiny, {device}: training (steps/s)", rate, "steps/s", extra=extra))
        if cfg.model.kind == "component" or not generate:
            continue  # a component is trained for the models that need it and generates no video
        module = module.to(device).eval()
        c = clips[0]

        def gen(m: TalkingFaceModule = module, c: Clip = c, device: str = device) -> None:
            m.generate(c.video[None, 0], c.audio[None], pose_prior=c.video[None])
            if device == "cuda":
                torch.cuda.synchronize()

        g = timeit(gen, 2)
        figures.append(
            Figure(
                f"{name}_generate",
                f"tiny, {device}: generation (frames/s)",
                c.num_frames / g,
                "frames/s",
                extra={"frames": c.num_frames, "size": list(c.video.shape[1:3]), "device": device},
            )
        )
    return figures
