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


def bench_corpora(quick: bool) -> list[Figure]:
    """Every registered corpus through its real reading path: a miniature copy in the corpus's on-disk layout
    (LRW's word folders with txt headers, CREMA-D's flv + wav, VoxCeleb2's id folders, the synthetic corpus),
    then clips/s loaded for training (prepared memory-mapped arrays, or the synthetic corpus's decode-once cache)
    against decoding the raw files with ffmpeg, and Wav2Lip training windows/s through the shared DataModule
    (streamed from manifest shards where the corpus config streams)."""
    from benchmark.config import compose
    from benchmark.runner import build_corpus
    from benchmark.train import build_model
    from data.corpus import PreparedCorpus, load_clip
    from data.datamodule import TalkingFaceDataModule
    from data.synthetic.generator import SyntheticConfig
    from data.synthetic.writer import write_corpus

    n = 6 if quick else 16
    batches = 4 if quick else 16
    synth = SyntheticConfig(seed=5, n_speakers=4, n_clips=n, size=96, min_seconds=2.0, max_seconds=2.0)
    figures = []
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        for name in ("lrw", "crema", "voxceleb2", "synthetic"):
            overrides = [f"dataset.root={td / name}", "trainer.progress=false"]
            if name == "synthetic":
                overrides += [f"dataset.synth.{k}={v}" for k, v in asdict(synth).items() if k != "seed"]
            else:
                write_corpus(synth, td / name, name, workers=1, progress=False)
                overrides += [
                    f"dataset.prepared={td / (name + '_prepared')}",
                    "dataset.prepare.landmarks=truth",
                    "dataset.prepare.workers=1",
                    "dataset.val_speakers=0",
                ]
            cfg = compose("wav2lip", name, "tiny", overrides)
            corpus = build_corpus(cfg)
            t0 = time.perf_counter()
            if isinstance(corpus, PreparedCorpus):
                corpus.prepare(progress=False)
            else:
                corpus.ensure(progress=False)
            ready_s = time.perf_counter() - t0
            refs = corpus.layout.scan(corpus.root)
            raw = _timeit(lambda refs=refs: [load_clip(r) for r in refs], 1)
            loaded = len(corpus.clips("train"))  # the synthetic corpus's first read fills its decode-once cache
            load = _timeit(lambda c=corpus: [np.asarray(x.video).sum() for x in c.clips("train")], 2)

            needs = {arg: build_model(compose(dep, name, "tiny", overrides)) for arg, dep in cfg.model.needs.items()}
            module = build_model(cfg, needs)
            dm = TalkingFaceDataModule(
                corpus, module.window_kind, module.window_kwargs(), batch_size=module.cfg.batch_size, seed=0
            )
            dm.setup("fit")
            it = iter(dm.train_dataloader())
            next(it)
            t0 = time.perf_counter()
            for _ in range(batches):
                next(it)
            windows_s = batches * module.cfg.batch_size / (time.perf_counter() - t0)
            extra = {
                "clips": len(refs),
                "train_clips": loaded,
                "layout": corpus.layout.name,
                "streaming": bool(getattr(corpus, "streaming", False)),
                "prepare_or_write_s": round(ready_s, 2),
                "size": synth.size,
                "seconds_per_clip": synth.min_seconds,
            }
            figures.append(
                Figure(
                    f"corpus_{name}",
                    "load for training (clips/s)",
                    loaded / load,
                    "clips/s",
                    len(refs) / raw,
                    "ffmpeg decode of the raw files (clips/s)",
                    extra,
                )
            )
            figures.append(
                Figure(
                    f"corpus_{name}",
                    f"Wav2Lip windows through the DataModule (windows/s, batch {module.cfg.batch_size})",
                    windows_s,
                    "windows/s",
                    extra=extra,
                )
            )
    return figures


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
    if torch.cuda.is_available():
        figures += bench_registered_model("wav2lip", quick, devices=["cuda"])
    return figures


def bench_vasa(quick: bool) -> list[Figure]:
    """VASA-style: motion generation and decoding frames/s (offline) and streaming first-window latency.

    Baseline: real time (25 frames/s). The paper's anchor (VASA-1: 512x512, 40 fps streaming with ~170 ms
    latency, 45 fps offline, one RTX 4090) is recorded in `extra`; these networks are untrained (speed does not
    depend on the weights) and run at each preset's resolution. CPU always; CUDA too when present.
    """
    import torch

    from models.vasa.module import VasaConfig, VasaModule

    clip = _clips(1, size=128, seconds=2.0 if quick else 4.0)[0]
    anchor = {"paper_fps_streaming": 40.0, "paper_fps_offline": 45.0, "paper_latency_ms": 170.0, "paper_res": 512}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    figures = []
    for device in devices:
        for preset in ("tiny",) if quick and device == "cpu" else ("tiny", "paper"):
            torch.manual_seed(0)
            module = VasaModule(VasaConfig.preset(preset)).eval().to(device)
            module.stats_ready.fill_(True)  # identity normalisation: speed does not depend on it
            ident, audio = clip.video[None, 0], clip.audio[None]

            def sync(device=device):
                if device == "cuda":
                    torch.cuda.synchronize()

            def motion(module=module, audio=audio, sync=sync):
                out = torch.cat(list(module.motion_iter(audio, seed=0)), dim=1)
                sync()
                return out

            moved = motion()

            def decode(module=module, ident=ident, sync=sync, moved=moved):
                lat = module.encode_identity(ident)
                module.decode_motion(lat, 0, moved[0], ident.shape[1:3])
                sync()

            def first_window(module=module, ident=ident, audio=audio):
                next(iter(module.stream(ident, audio, seed=0)))

            t_motion = _timeit(motion, 1 if quick else 2)
            t_decode = _timeit(decode, 1 if quick else 2)
            t_first = _timeit(first_window, 2 if quick else 3)
            n = clip.num_frames
            extra = {
                "device": device,
                "frames": n,
                "face_resolution": module.face.resolution,
                "window": module.cfg.window,
                "sample_steps": module.cfg.sample_steps,
                **anchor,
            }
            where = f"{preset} {device}"
            figures += [
                Figure(
                    "vasa_motion",
                    f"{where}: motion generation (frames/s)",
                    n / t_motion,
                    "frames/s",
                    25.0,
                    "real time",
                    extra,
                ),
                Figure(
                    "vasa_decode", f"{where}: decoding (frames/s)", n / t_decode, "frames/s", 25.0, "real time", extra
                ),
                Figure("vasa_stream", f"{where}: streaming first-window latency", 1000.0 * t_first, "ms", extra=extra),
            ]
    figures += bench_registered_model("vasa", quick, generate=False)
    return figures


_PREPARE_CHILD = """
import json, resource, sys, time
from data.prepare import PrepareConfig, prepare_corpus
cfg = PrepareConfig(landmarks="file", landmarks_dir=sys.argv[3], crops=["wav2lip"], features=["mel"], workers=1)
t0 = time.perf_counter()
s = prepare_corpus("perf", sys.argv[1], "voxceleb2", sys.argv[2], cfg, progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "accepted": s.accepted,
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "ffmpeg_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _prepare_in_subprocess(root: Path, out: Path, landmarks: Path) -> dict:
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    proc = subprocess.run(
        [sys.executable, "-c", _PREPARE_CHILD, str(root), str(out), str(landmarks)],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"preparation benchmark failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_prepare(quick: bool) -> list[Figure]:
    """`bench data prepare`: clips/s on short clips (vs decoding them with load_clip), and the peak memory of
    preparing one long synthetic 25 fps video (10 minutes; 2 with --quick), measured in a fresh process with
    getrusage (the target is < 2 GiB: frames stream through ffmpeg pipes in fixed-size chunks)."""
    import subprocess

    from data.corpus import load_clip
    from data.io import ffmpeg_exe, write_video, write_wav
    from data.layouts import get_layout

    n = 4 if quick else 12
    minutes = 2 if quick else 10
    clips = _clips(n, size=96)
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)

        def place(root: Path, name: str, landmarks: np.ndarray) -> Path:
            path = root / "dev" / "mp4" / "id00001" / "perfvideo00" / f"{name}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            lm = td / "landmarks" / root.name / path.relative_to(root).with_suffix(".npy")
            lm.parent.mkdir(parents=True, exist_ok=True)
            np.save(lm, landmarks)
            return path

        for i, c in enumerate(clips):
            write_video(place(td / "short", f"{i + 1:05d}", c.landmarks), c.video, c.audio)
        short = _prepare_in_subprocess(td / "short", td / "out_short", td / "landmarks" / "short")
        refs = get_layout("voxceleb2").scan(td / "short")
        decode = _timeit(lambda: [load_clip(r) for r in refs], 1)

        # the long video: one 10 s clip repeated, encoded by piping its frames to ffmpeg `loops` times (never
        # the whole video in this process; ffmpeg's -stream_loop with stream copy drifts audio against video)
        base = _clips(1, size=96, seconds=10.0)[0]
        loops = minutes * 6
        long_path = place(td / "long", "00001", np.tile(base.landmarks, (loops, 1, 1)))
        write_wav(td / "long.wav", np.tile(base.audio, loops))
        t, h, w, _ = base.video.shape
        enc = subprocess.Popen(
            [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25",
             "-i", "pipe:", "-i", str(td / "long.wav"), "-map", "0:v", "-map", "1:a", "-c:v", "libx264",
             "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", str(long_path)],
            stdin=subprocess.PIPE,
        )  # fmt: skip
        frames = np.ascontiguousarray(base.video).tobytes()
        for _ in range(loops):
            enc.stdin.write(frames)
        enc.stdin.close()
        if enc.wait() != 0:
            raise RuntimeError("encoding the long benchmark video failed")
        long = _prepare_in_subprocess(td / "long", td / "out_long", td / "landmarks" / "long")
        if long["accepted"] != 1:
            rejects = (td / "out_long" / "rejects.jsonl").read_text()
            raise RuntimeError(f"the {minutes}-minute benchmark video was rejected, so no memory figure: {rejects}")
    return [
        Figure(
            "prepare",
            "prepare short clips (clips/s)",
            short["accepted"] / short["seconds"],
            "clips/s",
            n / decode,
            "load_clip decode only (clips/s)",
            {"clips": n, "seconds_per_clip": 2.0, "size": 96, "landmarks": "file", "crops": ["wav2lip"]},
        ),
        Figure(
            "prepare",
            f"peak RSS preparing a {minutes}-minute 25 fps video (MiB)",
            long["rss_kb"] / 1024,
            "MiB",
            extra={
                "minutes": minutes,
                "accepted": long["accepted"],  # 1: the whole video went through preparation
                "seconds": round(long["seconds"], 1),
                "ffmpeg_peak_rss_mib": round(long["ffmpeg_rss_kb"] / 1024, 1),
                "target_mib": 2048,
            },
        ),
    ]


def bench_diffused_heads(quick: bool) -> list[Figure]:
    """Diffused Heads frame sampling (frames/s): respaced-100 and DDIM-50 side by side with the 1000-step chain,
    and the preset's own sampler with clips batched (frame t of every clip in one UNet call) vs one clip at a time.

    Tiny network on the CPU (or the device there is); the paper network only when CUDA is present.
    """
    import torch

    from models.diffused_heads.module import DiffusedHeadsConfig, DiffusedHeadsModule

    n_clips = 4 if quick else 8
    clips = _clips(n_clips, size=128, seconds=1.0)
    figures = []
    presets = ("tiny", "paper") if torch.cuda.is_available() else ("tiny",)
    for preset in presets:
        torch.manual_seed(0)
        module = DiffusedHeadsModule(DiffusedHeadsConfig.preset(preset)).eval()
        if torch.cuda.is_available():
            module = module.cuda()
        own = (module.cfg.sampler, module.cfg.sample_steps)
        frames = 1 if quick else 2
        clip = clips[0]
        audio = clip.audio[None, : frames * 640]
        rates = {}
        for label, sampler, steps in (
            ("1000-step", "ancestral", 1000),
            ("respaced-100", "ancestral", 100),
            ("DDIM-50", "ddim", 50),
        ):
            module.cfg.sampler, module.cfg.sample_steps = sampler, steps
            rates[label] = frames / _timeit(
                lambda m=module, a=audio, v=clip.video: m.generate(v[None, 0], a, seed=0), 1
            )
        extra = {"frames": frames, "internal_size": module.cfg.image_size, "device": str(module.device)}
        for label in ("respaced-100", "DDIM-50"):
            figures.append(
                Figure(
                    "diffused_heads_sampling",
                    f"{preset}: {label} (frames/s)",
                    rates[label],
                    "frames/s",
                    rates["1000-step"],
                    "1000-step ancestral (frames/s)",
                    extra,
                )
            )
        # the preset's sampler over whole 1 s clips: all clips in one generate() call vs one call per clip
        module.cfg.sampler, module.cfg.sample_steps = own
        ident = np.stack([c.video[0] for c in clips])
        audios = np.stack([c.audio[:16000] for c in clips])
        module.cfg.generate_batch_size = n_clips
        batched = _timeit(lambda m=module, v=ident, a=audios: m.generate(v, a, seed=0), 1)
        per_clip = _timeit(
            lambda m=module, v=ident, a=audios: [m.generate(v[i : i + 1], a[i : i + 1], seed=i) for i in range(len(v))],
            1,
        )
        n_frames = n_clips * 25
        figures.append(
            Figure(
                "diffused_heads_sampling",
                f"{preset}: {own[0]}-{own[1]}, {n_clips} clips batched (frames/s)",
                n_frames / batched,
                "frames/s",
                n_frames / per_clip,
                "one clip per call (frames/s)",
                {**extra, "clips": n_clips, "frames": n_frames},
            )
        )
    figures += bench_registered_model("diffused_heads", quick, generate=False)
    return figures


def _devices() -> list[str]:
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _fit_steps_per_s(module, clips, steps: int, device: str = "cpu") -> float:
    """Training steps/s of `module` in a Lightning Trainer (models with manual optimisation need one), timed from
    the end of the first step so start-up and the first step's allocations are excluded."""
    import lightning as L
    import torch

    from data.windows import WINDOWS

    ds = WINDOWS[module.window_kind](clips, seed=0, **module.window_kwargs())
    loader = torch.utils.data.DataLoader(ds, batch_size=module.cfg.batch_size, shuffle=True, drop_last=True)
    marks: list[float] = []

    class Clock(L.Callback):
        def on_train_batch_end(self, *args, **kwargs) -> None:
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

    clips = _clips(3 if quick else 6)
    cfg = compose(name, "synthetic", "tiny")
    figures = []
    for device in devices or _devices():
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

        def gen(m=module, c=c, device=device):
            m.generate(c.video[None, 0], c.audio[None], pose_prior=c.video[None])
            if device == "cuda":
                torch.cuda.synchronize()

        g = _timeit(gen, 2)
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


def bench_wav2lip_gan(quick: bool) -> list[Figure]:
    """Wav2Lip + visual-quality discriminator (tiny): training steps/s (generator + discriminator) and frames/s."""
    return bench_registered_model("wav2lip_gan", quick)


def bench_lipgan(quick: bool) -> list[Figure]:
    """LipGAN re-implementation (tiny): training steps/s (generator + discriminator) and generation frames/s."""
    return bench_registered_model("lipgan", quick)


def bench_syncnet_expert(quick: bool) -> list[Figure]:
    """The Wav2Lip expert SyncNet (tiny): training steps/s of the frozen-expert component."""
    return bench_registered_model("syncnet_expert", quick)


def bench_vasa_face(quick: bool) -> list[Figure]:
    """The VASA-style face latent model (tiny): training steps/s of the appearance/motion autoencoder."""
    return bench_registered_model("vasa_face", quick)


def _metric_for_perf(cls, settings: dict):
    """A metric built as the runner would on the synthetic corpus (its `synthetic:` CPU protocol block applied),
    with a seeded small SyncNet where an evaluator is needed; corpus-bound metrics get no corpus."""
    import torch

    settings = {k: v for k, v in settings.items() if k != "evaluator"}
    settings.update(settings.pop("synthetic", None) or {})
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
    clips = _clips(n)

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
    figures, skipped = [], {}
    for target in dict.fromkeys(spec.target for spec in METRICS.values()):
        cls = import_target(target)
        section = cls.config_section
        settings = OmegaConf.to_container(config[section], resolve=True) if section and section in config else {}
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


BENCHMARKS: dict[str, Callable[[bool], list[Figure]]] = {
    "corpus_decode": bench_corpus_decode,
    "corpora": bench_corpora,
    "sync_scoring": bench_sync_scoring,
    "wav2lip": bench_wav2lip,
    "diffused_heads": bench_diffused_heads,
    "prepare": bench_prepare,
    "vasa": bench_vasa,
    "wav2lip_gan": bench_wav2lip_gan,
    "lipgan": bench_lipgan,
    "syncnet_expert": bench_syncnet_expert,
    "vasa_face": bench_vasa_face,
    "metrics": bench_metrics,
    "generation": lambda quick: _import_bench("benchmark.perf_generation:bench_generation")(quick),
}
#: names that stand for several benchmarks (`bench perf --only models metrics`)
GROUPS: dict[str, tuple[str, ...]] = {
    "models": (
        "wav2lip",
        "diffused_heads",
        "vasa",
        "wav2lip_gan",
        "lipgan",
        "syncnet_expert",
        "vasa_face",
        "generation",
    ),
}


def _import_bench(target: str):
    from benchmark.registry import import_target

    return import_target(target)


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


def _run_one(name: str, quick: bool, conn) -> None:
    import resource

    try:
        figures = BENCHMARKS[name](quick)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        conn.send(("ok", figures, peak_mib))
    except BaseException as err:  # reported by the parent with the benchmark's name
        conn.send(("error", f"{type(err).__name__}: {err}", None))
    finally:
        conn.close()


def _isolated(name: str, quick: bool) -> list[Figure]:
    """Run one benchmark in a forked child so its peak memory (RSS) is its own, not the largest so far."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_run_one, args=(name, quick, child))
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


def run_perf(only: list[str] | None, out: Path, quick: bool = False) -> list[Figure]:
    import torch

    from benchmark.registry import suggest
    from benchmark.results import write_json_atomic

    torch.set_num_threads(min(2, torch.get_num_threads()))
    names = list(dict.fromkeys(n for name in only or list(BENCHMARKS) for n in GROUPS.get(name, (name,))))
    for name in names:
        if name not in BENCHMARKS:
            raise suggest("benchmark", name, [*BENCHMARKS, *GROUPS])
    figures: list[Figure] = []
    for name in names:
        print(f"[perf] {name} ...", flush=True)
        figures.extend(_isolated(name, quick))
    print(format_table(figures))
    payload = {"machine": machine(), "quick": quick, "figures": [asdict(f) | {"ratio": f.ratio} for f in figures]}
    write_json_atomic(out, payload)
    print(f"wrote {out}")
    return figures


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(machine(), indent=2))
