"""`bench perf --run <run folder>`: how fast a run's model generates, stored with the run as `<run>/speed.json`.

Measured on the run's own test clips (the first `--clips`), with the run's weights loaded as `bench run` loads
them, on one device; every figure is the median of `--repeats` timings after one untimed warm-up pass:

- model frames/s: `benchmark.generation.generate_batch` (the path `bench run` takes: clips of one length batched
  `run.generate_batch_size` at a time) on clips already in memory: the model's compute alone;
- end-to-end frames/s: each clip's face video and audio are first written to mp4 / wav, then one clip at a time
  goes through what `bench generate` does with them (`benchmark.generate`): decode, crop, generate, paste back,
  encode with the audio muxed. A model that draws whole frames from one identity image (no face-box interface,
  `redraws_faces` false) has no crop and paste: its path is decode the identity frame and the audio, generate,
  encode (E2E_PATHS says which path a model took, and the entry records it);
- first-frame latency: the compute before the first frame exists (the model's first unit of output: one frame,
  or the whole first window of a windowed model) plus the algorithmic lookahead, the audio that must have
  arrived before that frame can be computed (FIRST_FRAME: one rule per model, read from its window config);
- peak memory: CUDA `max_memory_allocated` on a GPU; on the CPU the process's peak resident set (VmHWM, reset
  through /proc/self/clear_refs before the timed passes), which includes the interpreter and the loaded weights;
- precision (`run.generate_precision`), the sampler and its steps (the config's `sampler` / `sample_steps`; None
  for one-shot models), and the device's name, which keys the entry: a measurement on another device is added
  beside the others, one on the same device replaces its older entry.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.perf.latency import FIRST_FRAME, FirstFrame, first_frame_rule
from data.clip import SAMPLES_PER_FRAME

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from data.clip import Clip
    from models.base import TalkingFaceModule

__all__ = [
    "E2E_PATHS",
    "FIRST_FRAME",
    "SPEED_FILE",
    "FirstFrame",
    "SpeedEntry",
    "SpeedSettings",
    "device_name",
    "load_run_module",
    "measure_module",
    "measure_run",
    "merge_entries",
    "read_speed",
    "write_speed",
]

SPEED_FILE = "speed.json"
SCHEMA = "talkbench.speed/1"


@dataclass
class SpeedEntry:
    """One device's measurement of one run's model (a row of the leaderboard's speed block for that device)."""

    device: str  # the device's name: the key of the entry in speed.json
    device_type: str  # cpu | cuda
    model: str
    run: str
    measured: str  # ISO 8601, UTC
    clips: int
    frames: int  # frames generated per timed pass
    repeats: int
    model_fps: float
    e2e_fps: float
    e2e_path: str  # E2E_PATHS key: what the end-to-end time includes
    first_frame_compute_s: float
    lookahead_s: float
    first_frame_latency_s: float
    lookahead_rule: str
    peak_memory_mib: float
    memory_measure: str
    precision: str
    sampler: str | None
    sampler_steps: int | None
    threads: int
    git: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def sampling(self) -> str | None:
        """ "ddim 5": the sampler and its steps, None for a one-shot model."""
        if self.sampler_steps is None:
            return None
        return f"{self.sampler} {self.sampler_steps}" if self.sampler else str(self.sampler_steps)


@dataclass(frozen=True)
class SpeedSettings:
    """What a measurement does: `clips` test clips, `repeats` timed passes (median), on `device`; `e2e` False
    skips the end-to-end path; `reports`: where a measurement that writes a report (the sampler curve) puts it."""

    clips: int = 2
    repeats: int = 3
    device: str = "cpu"
    e2e: bool = True
    reports: Path = Path("reports")
    samplers: str | None = None  # dh_samplers: "method:steps,..." instead of samplers.CurveConfig's list
    threads: int | None = None  # CPU threads torch uses (None: its default); part of the CPU's device name
    frames: int | None = None  # dh_samplers: cut each clip to its first N frames (None: whole clips)

    def __post_init__(self) -> None:
        if self.clips < 1 or self.repeats < 1:
            raise ValueError(f"--clips and --repeats must be >= 1, got {self.clips} and {self.repeats}")


# --------------------------------------------------------------------------------------------------------------
# speed.json


def read_speed(run_dir: str | os.PathLike[str]) -> list[SpeedEntry]:
    """The entries of `<run_dir>/speed.json` (none when the run was never measured)."""
    import json

    path = Path(run_dir) / SPEED_FILE
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a {SCHEMA} file")
    known = {f.name for f in dataclasses.fields(SpeedEntry)}
    # fields a later version adds are ignored rather than refused: an older reader still shows the columns it knows
    return [SpeedEntry(**{k: v for k, v in e.items() if k in known}) for e in data.get("entries", [])]


def merge_entries(old: Sequence[SpeedEntry], new: SpeedEntry) -> list[SpeedEntry]:
    """`old` with `new` in place of the entry of the same device (never another device's), sorted by device."""
    kept = [e for e in old if e.device != new.device]
    return sorted([*kept, new], key=lambda e: e.device)


def write_speed(run_dir: str | os.PathLike[str], entry: SpeedEntry) -> Path:
    """Add `entry` to `<run_dir>/speed.json` (replacing only its own device's older entry), atomically."""
    from benchmark.results import write_json_atomic

    entries = merge_entries(read_speed(run_dir), entry)
    payload = {"schema": SCHEMA, "entries": [dataclasses.asdict(e) for e in entries]}
    return write_json_atomic(Path(run_dir) / SPEED_FILE, payload)


# --------------------------------------------------------------------------------------------------------------
# the device


def device_name(device: str) -> str:
    """What a speed column is keyed by: the GPU's name, or the CPU's model name from /proc/cpuinfo with the
    number of threads torch uses (the same CPU with fewer threads is another speed)."""
    import platform

    import torch

    if device.startswith("cuda"):
        return str(torch.cuda.get_device_name(torch.device(device)))
    model = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        model = found.group(1).strip() if found else model
    except OSError:
        pass  # not Linux: platform's description stands
    return f"CPU {model} ({torch.get_num_threads()} threads)"


class PeakMemory:
    """Peak memory over a block: CUDA's allocator peak on a GPU, the process's peak RSS on the CPU."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.measure = (
            "CUDA max_memory_allocated"
            if device.startswith("cuda")
            else "process peak RSS (VmHWM, reset before timing; includes the interpreter and weights)"
        )

    def reset(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")  # "5" resets the peak RSS the kernel reports as VmHWM
        except OSError:
            pass  # without it VmHWM is the peak since the process started: still an upper bound

    def peak_mib(self) -> float:
        import torch

        if self.device.startswith("cuda"):
            return float(torch.cuda.max_memory_allocated(self.device)) / 2**20
        found = re.search(r"VmHWM:\s+(\d+)\s*kB", Path("/proc/self/status").read_text())
        if found:
            return int(found.group(1)) / 1024
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _median_time(fn: Callable[[], object], repeats: int, device: str, warm_up: bool = True) -> float:
    """Median wall time of fn() over `repeats` calls, after one untimed call (kernels, allocator, caches) unless
    the caller made it already."""
    if warm_up:
        fn()
        _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --------------------------------------------------------------------------------------------------------------
# end to end: what `bench generate` does with a face video and an audio file


@dataclass
class _ClipFiles:
    face: Path
    audio: Path
    landmarks: Path | None
    frames: int


def _write_inputs(clips: Sequence[Clip], folder: Path) -> list[_ClipFiles]:
    """Each clip's face video (mp4, as a user would hand it over) and audio (wav), plus its landmark track when
    known, which stands in for a face detector (see E2E_PATHS)."""
    from data.io import write_video, write_wav

    out = []
    for i, clip in enumerate(clips):
        face, audio = folder / f"face{i}.mp4", folder / f"audio{i}.wav"
        write_video(face, np.asarray(clip.video))
        write_wav(audio, clip.audio)
        landmarks = None
        if clip.landmarks is not None:
            landmarks = folder / f"face{i}.landmarks.npy"
            np.save(landmarks, np.asarray(clip.landmarks, np.float32))
        out.append(_ClipFiles(face, audio, landmarks, int(clip.audio.shape[0]) // SAMPLES_PER_FRAME))
    return out


def _redraw_path(module: TalkingFaceModule, cfg: DictConfig, files: _ClipFiles, out: Path) -> None:
    from benchmark.generate import generate_video

    detector, landmarks = ("landmarks", str(files.landmarks)) if files.landmarks else ("full", None)
    generate_video(module, files.face, files.audio, out, detector=detector, landmarks=landmarks, progress=False)


def _whole_frame_path(module: TalkingFaceModule, cfg: DictConfig, files: _ClipFiles, out: Path) -> None:
    from benchmark.generate import FrameReader, VideoWriter
    from benchmark.generation import precision_context
    from data.io import read_audio

    wav = read_audio(files.audio)
    reader = FrameReader(files.face)
    identity = next(reader.chunks(1))[:1]  # run.identity_frame "first"
    with precision_context(cfg, module):
        video = module.generate(identity, wav[None], seed=int(cfg.run.seed))[0]
    writer = VideoWriter(out, video.shape[2], video.shape[1], files.audio)
    writer.write(video)
    writer.close()


#: what the end-to-end time includes, by the model's interface (models/base.py `redraws_faces`)
E2E_PATHS: dict[str, tuple[str, Callable[[TalkingFaceModule, DictConfig, _ClipFiles, Path], None]]] = {
    "face_redraw": (
        "decode the face mp4 and the wav, face boxes from the clip's landmark track (no detector network), "
        "crop, generate, paste back, encode H.264 + AAC (benchmark.generate.generate_video)",
        _redraw_path,
    ),
    "whole_frame": (
        "decode the identity frame of the face mp4 and the wav, generate whole frames (no crop or paste: the "
        "model has no face-box interface), encode H.264 + AAC",
        _whole_frame_path,
    ),
}


def e2e_path_of(module: TalkingFaceModule) -> str:
    return "face_redraw" if module.redraws_faces else "whole_frame"


# --------------------------------------------------------------------------------------------------------------
# measuring


def _sampler(cfg_obj: Any) -> tuple[str | None, int | None]:
    """The config's sampler and its steps (None for a model that samples no chain)."""
    steps = getattr(cfg_obj, "sample_steps", None)
    name = getattr(cfg_obj, "sampler", None)
    if steps is None:
        return None, None
    return (str(name) if name is not None else "diffusion"), int(steps)


def measure_module(
    module: TalkingFaceModule,
    cfg: DictConfig,
    clips: Sequence[Clip],
    settings: SpeedSettings,
    *,
    run_name: str | None = None,
    e2e: bool = True,
) -> SpeedEntry:
    """Measure `module` (already loaded) on `clips` as the module docstring says; `e2e=False` skips the
    end-to-end path (its frames/s is then NaN and a note says so)."""
    import torch

    from benchmark.generation import generate_batch, generation_batches, precision_context
    from benchmark.results import git_hash, utc_now

    device = settings.device
    module = module.to(device).eval()
    name = str(cfg.model.name)
    clips = list(clips)
    batches = generation_batches(clips, int(cfg.run.generate_batch_size))
    frames = sum(int(c.audio.shape[0]) // SAMPLES_PER_FRAME for c in clips)
    notes: list[str] = []
    memory = PeakMemory(device)

    def model_pass() -> None:
        for positions in batches:
            generate_batch(module, clips, positions, cfg)

    with torch.no_grad():
        model_pass()  # warm-up outside the memory window too: lazy initialisation is not the model's peak
        _sync(device)
        memory.reset()
        model_s = _median_time(model_pass, settings.repeats, device, warm_up=False)
        peak = memory.peak_mib()

        rule = first_frame_rule(name, module)
        first = clips[0]
        n = min(rule.chunk_frames, int(first.audio.shape[0]) // SAMPLES_PER_FRAME)
        if n < rule.chunk_frames:
            notes.append(f"first clip shorter than the first unit of {rule.chunk_frames} frames: timed {n}")
        identity = np.asarray(first.video[:1])
        audio = np.asarray(first.audio[: n * SAMPLES_PER_FRAME])[None]

        def first_pass() -> None:
            with precision_context(cfg, module):
                module.generate(identity, audio, seed=int(cfg.run.seed))

        first_s = _median_time(first_pass, settings.repeats, device)

        path = e2e_path_of(module)
        e2e_fps = math.nan
        if e2e:
            run_path = E2E_PATHS[path][1]
            with tempfile.TemporaryDirectory(prefix="talkbench-speed-") as td:
                files = _write_inputs(clips, Path(td))

                def e2e_pass() -> None:
                    for i, f in enumerate(files):
                        run_path(module, cfg, f, Path(td) / f"out{i}.mp4")

                e2e_s = _median_time(e2e_pass, settings.repeats, device)
            e2e_fps = sum(f.frames for f in files) / e2e_s
        else:
            notes.append("end-to-end path not measured")

    sampler, steps = _sampler(getattr(module, "cfg", None))
    return SpeedEntry(
        device=device_name(device),
        device_type="cuda" if device.startswith("cuda") else "cpu",
        model=name,
        run=run_name or str(cfg.run.name),
        measured=utc_now(),
        clips=len(clips),
        frames=frames,
        repeats=settings.repeats,
        model_fps=frames / model_s,
        e2e_fps=e2e_fps,
        e2e_path=path,
        first_frame_compute_s=first_s,
        lookahead_s=rule.lookahead_s,
        first_frame_latency_s=first_s + rule.lookahead_s,
        lookahead_rule=rule.rule,
        peak_memory_mib=peak,
        memory_measure=memory.measure,
        precision=str(cfg.run.generate_precision),
        sampler=sampler,
        sampler_steps=steps,
        threads=int(torch.get_num_threads()),
        git=git_hash(Path(__file__).resolve().parents[2]),
        notes=notes,
    )


def load_run_config(run_dir: Path) -> DictConfig:
    from omegaconf import DictConfig, OmegaConf

    path = run_dir / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: no config.yaml (not a run folder made by `bench run`)")
    cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig)  # a run's config.yaml is a mapping
    return cfg


def load_run_module(cfg: DictConfig, run_dir: Path) -> TalkingFaceModule:
    """The run's model as `bench run` had it: from `run.checkpoint`, from its model.pt, or (a run that trained
    nothing) as initialised under the run's seed (benchmark.train.train_or_load)."""
    import torch

    from benchmark.train import build_model, build_untrained, load_checkpoint_module, needed_configs
    from metrics.safe_load import load_checkpoint_file

    if cfg.run.checkpoint:
        module, _ = load_checkpoint_module(cfg)
        return module
    needs = {arg: build_untrained(sub) for arg, sub in needed_configs(cfg).items()}
    torch.manual_seed(int(cfg.run.seed))
    module = build_model(cfg, needs)
    weights = run_dir / "model.pt"
    trained = module.trainable and bool(cfg.run.train)
    if trained:
        if not weights.exists():
            raise FileNotFoundError(f"{run_dir}: the run trained its model but {weights.name} is missing")
        blob, _ = load_checkpoint_file(weights)
        module.load_state_dict(blob["state_dict"])
    return module.eval()


def measure_run(run_dir: str | os.PathLike[str], settings: SpeedSettings, *, write: bool = True) -> SpeedEntry:
    """Measure the model of the run in `run_dir` on the first `settings.clips` test clips of its corpus and add
    the entry to its speed.json (unless `write` is False)."""

    from benchmark.runner import build_corpus
    from benchmark.scoring import test_clips

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    kind = str(cfg.model.get("kind", "model"))
    if kind == "component":
        raise ValueError(f"{run_dir}: {cfg.model.name} is a component; it generates no video to time")
    cfg.run.limit = settings.clips
    corpus = build_corpus(cfg)
    corpus.ensure()
    clips = test_clips(cfg, corpus)
    module = load_run_module(cfg, run_dir)
    entry = measure_module(module, cfg, clips, settings, run_name=str(cfg.run.name), e2e=settings.e2e)
    if write:
        write_speed(run_dir, entry)
    return entry


def model_run_dirs(runs: str | os.PathLike[str], dataset: str | None) -> list[Path]:
    """The folders of every model and baseline run under `runs` (of `dataset`), the runs a leaderboard shows."""
    from benchmark.results import find_results

    return sorted(
        {
            path.parent
            for path, res in find_results(runs)
            if res.run.kind in ("model", "baseline")
            and (dataset is None or res.run.dataset == dataset)
            and (path.parent / "config.yaml").exists()
        }
    )


def format_entry(entry: SpeedEntry) -> str:
    """One line for the terminal."""
    steps = f", {entry.sampler} {entry.sampler_steps} steps" if entry.sampler_steps else ""
    return (
        f"{entry.run} on {entry.device}: model {entry.model_fps:.2f} frames/s, end to end {entry.e2e_fps:.2f} "
        f"frames/s ({entry.e2e_path}), first frame {entry.first_frame_latency_s:.3f} s "
        f"({entry.first_frame_compute_s:.3f} s compute + {entry.lookahead_s:.3f} s lookahead), peak "
        f"{entry.peak_memory_mib:.0f} MiB, {entry.precision}{steps}"
    )


def apply_threads(settings: SpeedSettings) -> None:
    """Use `settings.threads` CPU threads (a shared machine measures more steadily with fewer)."""
    import torch

    if settings.threads is not None:
        torch.set_num_threads(max(1, int(settings.threads)))


def run_speed(run_dir: Path, settings: SpeedSettings) -> list[str]:
    """`bench perf --run DIR`: measure, store in DIR/speed.json, and say what was measured."""
    apply_threads(settings)
    entry = measure_run(run_dir, settings)
    return [format_entry(entry), *(f"  note: {n}" for n in entry.notes), f"wrote {Path(run_dir) / SPEED_FILE}"]
