"""`bench perf`: a registry of speed benchmarks, each measured side by side with its baseline in one run.

Figures go to a table on stdout and to JSON (with the machine description) so they can be compared across
machines and commits. Speed targets live here, never in timed tests.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Figure:
    benchmark: str
    what: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_what: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


def _timeit(fn: Callable[[], object], repeat: int) -> float:
    """Best-of-`repeat` wall time of fn(), seconds (the minimum is the least noisy on a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _clips(n: int, size: int = 96, seconds: float = 2.0):
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    cfg = SyntheticConfig(seed=11, n_speakers=4, n_clips=n, size=size, min_seconds=seconds, max_seconds=seconds)
    spec = make_corpus_spec(cfg)
    return [render_clip(spec, i) for i in range(n)]


def bench_corpus_decode(quick: bool) -> list[Figure]:
    """Clips/s decoding mp4 (+audio) from disk into the clip contract, vs reading the decode-once cache."""
    from data.corpus import ClipStore, load_clip
    from data.io import write_video
    from data.layouts import ClipRef

    n = 4 if quick else 12
    clips = _clips(n, size=128)
    with tempfile.TemporaryDirectory() as td:
        refs = []
        for c in clips:
            p = Path(td) / f"{c.clip_id.replace('/', '_')}.mp4"
            write_video(p, c.video, c.audio)
            refs.append(ClipRef(p.stem, p, None, c.speaker_id, "test"))
        decode = _timeit(lambda: [load_clip(r) for r in refs], 1 if quick else 2)
        store = ClipStore(Path(td) / "cache")
        for r in refs:
            store.get(r)
        cached = _timeit(lambda: [np.asarray(store.get(r).video).sum() for r in refs], 2 if quick else 3)
    return [
        Figure(
            "corpus_decode",
            "cache read (clips/s)",
            n / cached,
            "clips/s",
            n / decode,
            "ffmpeg decode (clips/s)",
            {"clips": n, "seconds_per_clip": 2.0, "size": 128},
        )
    ]


def bench_sync_scoring(quick: bool) -> list[Figure]:
    """SyncNet scoring clips/s: the batched path vs syncnet_python's per-clip, per-shift loop, same clips."""
    import torch

    from metrics.backbones.syncnet import build_sync_evaluator
    from metrics.functional.sync import sync_scores, sync_scores_reference

    n = 2 if quick else 6
    clips = _clips(n)
    out = []
    for arch in ("small", "syncnet_v2"):
        if arch == "syncnet_v2" and quick:
            continue
        torch.manual_seed(0)
        net = build_sync_evaluator(arch).eval()
        fast = _timeit(lambda net=net: [sync_scores(net, c.video, c.audio) for c in clips], 1 if quick else 2)
        ref = _timeit(lambda net=net: [sync_scores_reference(net, c.video, c.audio) for c in clips], 1)
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


def bench_wav2lip(quick: bool) -> list[Figure]:
    """Wav2Lip tiny: training steps/s (batch of the tiny preset) and generation frames/s."""
    import torch

    from data.windows import WINDOWS
    from models.syncnet.module import SyncNetExpertConfig, SyncNetExpertModule
    from models.wav2lip.module import Wav2LipConfig, Wav2LipModule

    clips = _clips(3 if quick else 6)
    figures = []
    for preset in ("tiny",) if quick else ("tiny", "paper"):
        torch.manual_seed(0)
        module = Wav2LipModule(
            Wav2LipConfig.preset(preset), expert=SyncNetExpertModule(SyncNetExpertConfig.preset(preset))
        )
        ds = WINDOWS[module.window_kind](clips, seed=0, **module.window_kwargs())
        loader = torch.utils.data.DataLoader(ds, batch_size=module.cfg.batch_size)
        batch = next(iter(loader))
        opt = module.configure_optimizers()
        opt = opt[0] if isinstance(opt, list | tuple) else opt
        module.train()

        def step(module=module, batch=batch, opt=opt):
            opt.zero_grad()
            loss = module.training_step(batch, 0)
            loss.backward()
            opt.step()

        module.log = lambda *a, **k: None  # outside a Trainer
        step()
        steps = 3 if quick else 10
        t = _timeit(lambda step=step, steps=steps: [step() for _ in range(steps)], 1)
        module.eval()
        c = clips[0]
        g = _timeit(
            lambda module=module, c=c: module.generate(c.video[None, 0], c.audio[None], pose_prior=c.video[None]), 2
        )
        figures.append(
            Figure(
                "wav2lip_train",
                f"{preset}: training (steps/s)",
                steps / t,
                "steps/s",
                extra={"batch_size": module.cfg.batch_size},
            )
        )
        figures.append(
            Figure(
                "wav2lip_generate",
                f"{preset}: generation (frames/s)",
                c.num_frames / g,
                "frames/s",
                extra={"frames": c.num_frames, "size": list(c.video.shape[1:3])},
            )
        )
    return figures


BENCHMARKS: dict[str, Callable[[bool], list[Figure]]] = {
    "corpus_decode": bench_corpus_decode,
    "sync_scoring": bench_sync_scoring,
    "wav2lip": bench_wav2lip,
}


def machine() -> dict:
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


def run_perf(only: list[str] | None, out: Path, quick: bool = False) -> list[Figure]:
    import torch

    from benchmark.registry import suggest
    from benchmark.results import write_json_atomic

    torch.set_num_threads(min(2, torch.get_num_threads()))
    names = only or list(BENCHMARKS)
    figures: list[Figure] = []
    for name in names:
        if name not in BENCHMARKS:
            raise suggest("benchmark", name, BENCHMARKS)
        print(f"[perf] {name} ...", flush=True)
        figures.extend(BENCHMARKS[name](quick))
    print(format_table(figures))
    payload = {"machine": machine(), "quick": quick, "figures": [asdict(f) | {"ratio": f.ratio} for f in figures]}
    write_json_atomic(out, payload)
    print(f"wrote {out}")
    return figures


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(machine(), indent=2))
