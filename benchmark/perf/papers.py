"""The benchmarks of models that time more than the generic model entry (benchmark.perf.generic): Wav2Lip at the
paper preset, the Diffused Heads samplers, VASA's motion, decoding and streaming latency. Each also runs the
generic entry where that still measures something its own does not."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from benchmark.perf.core import Figure, available_devices, synthetic_clips, timeit
from benchmark.perf.generic import bench_registered_model

if TYPE_CHECKING:
    import torch

    from data.clip import Clip


def bench_wav2lip(quick: bool) -> list[Figure]:
    """Wav2Lip tiny: training steps/s (batch of the tiny preset) and generation frames/s."""
    import torch

    from models.syncnet.module import SyncNetExpertConfig, SyncNetExpertModule
    from models.wav2lip.module import Wav2LipConfig, Wav2LipModule

    clips = synthetic_clips(3 if quick else 6)
    figures: list[Figure] = []
    for preset in ("tiny",) if quick else ("tiny", "paper"):
        torch.manual_seed(0)
        module = Wav2LipModule(
            Wav2LipConfig.preset(preset), expert=SyncNetExpertModule(SyncNetExpertConfig.preset(preset))
        )
        ds = module.train_dataset(clips, seed=0, fixed=False)
        loader = torch.utils.data.DataLoader(ds, batch_size=module.cfg.batch_size)
        batch = next(iter(loader))
        opt = module.configure_optimizers()
        opt = opt[0] if isinstance(opt, list | tuple) else opt
        module.train()

        def step(
            module: Wav2LipModule = module, batch: dict[str, torch.Tensor] = batch, opt: torch.optim.Optimizer = opt
        ) -> None:
            opt.zero_grad()
            loss = module.training_step(batch, 0)
            loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
            opt.step()

        module.log = lambda *a, **k: None  # type: ignore[method-assign]  # outside a Trainer
        step()
        steps = 3 if quick else 10

        def train_steps(step: Callable[[], None] = step, steps: int = steps) -> None:
            for _ in range(steps):
                step()

        t = timeit(train_steps, 1)
        module.eval()
        c = clips[0]

        def generate(module: Wav2LipModule = module, c: Clip = c) -> np.ndarray:
            return module.generate(c.video[None, 0], c.audio[None], pose_prior=c.video[None])

        g = timeit(generate, 2)
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

    clip = synthetic_clips(1, size=128, seconds=2.0 if quick else 4.0)[0]
    anchor = {"paper_fps_streaming": 40.0, "paper_fps_offline": 45.0, "paper_latency_ms": 170.0, "paper_res": 512}
    figures: list[Figure] = []
    for device in available_devices():
        for preset in ("tiny",) if quick and device == "cpu" else ("tiny", "paper"):
            torch.manual_seed(0)
            module = VasaModule(VasaConfig.preset(preset)).eval().to(device)
            module.stats_ready.fill_(True)  # identity normalisation: speed does not depend on it
            ident, audio = clip.video[None, 0], clip.audio[None]

            def sync(device: str = device) -> None:
                if device == "cuda":
                    torch.cuda.synchronize()

            def motion(
                module: VasaModule = module, audio: np.ndarray = audio, sync: Callable[[], None] = sync
            ) -> torch.Tensor:
                out = torch.cat(list(module.motion_iter(audio, seed=0)), dim=1)
                sync()
                return out

            moved = motion()

            def decode(
                module: VasaModule = module,
                ident: np.ndarray = ident,
                sync: Callable[[], None] = sync,
                moved: torch.Tensor = moved,
            ) -> None:
                lat = module.encode_identity(ident)
                module.decode_motion(lat, 0, moved[0], ident.shape[1:3])
                sync()

            def first_window(module: VasaModule = module, ident: np.ndarray = ident, audio: np.ndarray = audio) -> None:
                next(iter(module.stream(ident, audio, seed=0)))

            t_motion = timeit(motion, 1 if quick else 2)
            t_decode = timeit(decode, 1 if quick else 2)
            t_first = timeit(first_window, 2 if quick else 3)
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


def bench_diffused_heads(quick: bool) -> list[Figure]:
    """Diffused Heads frame sampling (frames/s): respaced-100 and DDIM-50 side by side with the 1000-step chain,
    and the preset's own sampler with clips batched (frame t of every clip in one UNet call) vs one clip at a time.

    Tiny network on the CPU (or the device there is); the paper network only when CUDA is present.
    """
    import torch

    from models.diffused_heads.module import DiffusedHeadsConfig, DiffusedHeadsModule

    n_clips = 4 if quick else 8
    clips = synthetic_clips(n_clips, size=128, seconds=1.0)
    figures: list[Figure] = []
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
        rates: dict[str, float] = {}
        for label, sampler, steps in (
            ("1000-step", "ancestral", 1000),
            ("respaced-100", "ancestral", 100),
            ("DDIM-50", "ddim", 50),
        ):
            module.cfg.sampler, module.cfg.sample_steps = sampler, steps

            def sample(
                m: DiffusedHeadsModule = module, a: np.ndarray = audio, v: np.ndarray = clip.video
            ) -> np.ndarray:
                return m.generate(v[None, 0], a, seed=0)

            rates[label] = frames / timeit(sample, 1)
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

        def together(m: DiffusedHeadsModule = module, v: np.ndarray = ident, a: np.ndarray = audios) -> np.ndarray:
            return m.generate(v, a, seed=0)

        def one_by_one(
            m: DiffusedHeadsModule = module, v: np.ndarray = ident, a: np.ndarray = audios
        ) -> list[np.ndarray]:
            return [m.generate(v[i : i + 1], a[i : i + 1], seed=i) for i in range(len(v))]

        batched = timeit(together, 1)
        per_clip = timeit(one_by_one, 1)
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
