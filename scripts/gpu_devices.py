"""Device checks of scripts/gpu_check.sh: where every network sits, and what bf16 autocast changes.

For each generator (tiny preset, a few training steps on the synthetic corpus):
1. after training (Lightning's teardown leaves the module on the CPU) and after loading its model.pt through
   `run.checkpoint`, the runner's move puts every parameter and buffer on the run's device (asserted);
2. the metrics built for the run put their evaluator networks there too (asserted);
3. the test clips are generated in fp32 and under bf16 autocast, and both are scored in fp32 (pixel and metric
   differences recorded), and the fp32 clips are scored again with the evaluators under bf16 autocast.
`--device cpu` runs the same checks without a GPU (a rehearsal of the script itself). Writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.config import compose  # noqa: E402
from benchmark.distributed import run_device  # noqa: E402
from benchmark.generation import generate_batch  # noqa: E402
from benchmark.runner import build_corpus  # noqa: E402
from benchmark.scoring import build_metrics, prepare_evaluators, test_clips  # noqa: E402
from benchmark.train import run_dir_of, train_or_load  # noqa: E402
from metrics.base import EvalSample  # noqa: E402

MODELS = ("wav2lip", "lipgan", "diffused_heads", "vasa")
METRICS = ["ofm", "fmse", "av_offset", "av_conf", "lse_d", "lse_c", "fid_tf1"]


def misplaced(module: torch.nn.Module, device: torch.device) -> list[str]:
    """Names of parameters and buffers that are not on `device`."""
    tensors = [*module.named_parameters(), *module.named_buffers()]
    return [name for name, t in tensors if t.device.type != device.type or (t.device.index or 0) != (device.index or 0)]


def evaluator_networks(metrics: dict) -> dict[str, torch.nn.Module]:
    out = {}
    for target, metric in metrics.items():
        for attr in ("evaluator", "net", "inception", "i3d"):
            net = getattr(metric, attr, None)
            if isinstance(net, torch.nn.Module):
                out[f"{target}.{attr}"] = net
    return out


def scores(metrics: dict, clips, videos, autocast: bool, device: torch.device) -> dict[str, float]:
    """Mean of each clip metric's outputs over `videos` (fresh states), optionally under bf16 autocast."""
    import contextlib

    out = {}
    ctx = torch.autocast(device_type=device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    for metric in metrics.values():
        metric.reset()
        if not hasattr(metric, "per_clip"):
            continue  # set metrics: a handful of clips gives no meaningful covariance
        samples = [
            EvalSample(index=i, clip_id=c.clip_id, fake=v, audio=c.audio, real=np.asarray(c.video))
            for i, (c, v) in enumerate(zip(clips, videos))
        ]
        with ctx:
            metric.update(samples)
        for name, value in metric.compute().items():
            out[name] = float(value)
    return out


def check_model(name: str, device: str, tmp: Path) -> dict:
    settings = {
        "run.out_dir": tmp,
        "run.device": device,
        "run.limit": 4,
        "trainer.accelerator": "cpu" if device == "cpu" else "gpu",
        "trainer.max_steps": 6,
        "trainer.val_check_interval": 3,
        "trainer.limit_val_batches": 1,
        "trainer.max_time": "null",
        "run.progress": "false",
        "dataset.synth.n_clips": 24,
        "dataset.synth.size": 96,
        "metrics.calibrate.min_steps": 20,
        "metrics.calibrate.max_steps": 20,
        "metrics.names": json.dumps(METRICS),
    }
    needs = compose(name, "synthetic", "tiny").model.get("needs") or {}
    settings.update({f"{dep}.trainer.max_steps": 4 for dep in needs.values()})
    overrides = [f"{k}={v}" for k, v in settings.items()]
    cfg = compose(name, "synthetic", "tiny", overrides)
    corpus = build_corpus(cfg)
    corpus.ensure()
    prepare_evaluators(cfg, corpus)
    dev = torch.device(run_device(cfg))
    report: dict = {"model": name, "device": str(dev)}
    module, _ = train_or_load(cfg, corpus)
    module.to(dev)
    report["misplaced_after_training"] = misplaced(module, dev)
    loaded_cfg = compose(name, "synthetic", "tiny", [*overrides, f"run.checkpoint={run_dir_of(cfg) / 'model.pt'}"])
    loaded, _ = train_or_load(loaded_cfg, corpus)
    loaded.to(dev)
    report["misplaced_after_loading"] = misplaced(loaded, dev)
    metrics = build_metrics(cfg, METRICS, corpus, str(dev))
    report["misplaced_evaluators"] = {k: misplaced(n, dev)[:3] for k, n in evaluator_networks(metrics).items()}
    clips = test_clips(cfg, corpus)
    same = [i for i, c in enumerate(clips) if c.num_frames == clips[0].num_frames]
    clips = [clips[i] for i in same]
    bf16_cfg = compose(name, "synthetic", "tiny", [*overrides, "run.generate_precision=bf16"])
    t0 = time.perf_counter()
    fp32 = generate_batch(module, clips, list(range(len(clips))), cfg)
    t1 = time.perf_counter()
    bf16 = generate_batch(module, clips, list(range(len(clips))), bf16_cfg)
    t2 = time.perf_counter()
    diff = np.abs(np.stack(fp32).astype(int) - np.stack(bf16).astype(int))
    report["bf16_generation"] = {
        "clips": len(clips),
        "seconds_fp32": round(t1 - t0, 3),
        "seconds_bf16": round(t2 - t1, 3),
        "pixel_mean_abs_diff": float(diff.mean()),
        "pixel_max_abs_diff": int(diff.max()),
        "metrics_fp32": scores(metrics, clips, fp32, False, dev),
        "metrics_bf16_videos": scores(metrics, clips, bf16, False, dev),
    }
    report["bf16_evaluators"] = {
        "metrics_fp32": report["bf16_generation"]["metrics_fp32"],
        "metrics_bf16": scores(metrics, clips, fp32, True, dev),
    }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    parser.add_argument("--out", type=Path, default=Path("reports/gpu_check/devices.json"))
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: no CUDA device (use --device cpu to rehearse the checks)", file=sys.stderr)
        return 2
    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            reports.append(check_model(name, args.device, Path(tmp)))
            print(json.dumps(reports[-1], indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reports, indent=1))
    bad = [
        r["model"]
        for r in reports
        if r["misplaced_after_training"] or r["misplaced_after_loading"] or any(r["misplaced_evaluators"].values())
    ]
    print(f"wrote {args.out}; " + (f"networks off the device: {bad}" if bad else "every network on the run's device"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
