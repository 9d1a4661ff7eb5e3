"""A run's model: built, then trained (resumably), loaded from its cached weights, or loaded from a checkpoint.

Training writes `<run>/checkpoints/last.ckpt` every `run.checkpoint_every_n_steps` optimiser steps (default:
every validation), atomically, so a run killed at any point (kill -9, preemption, a SLURM requeue) resumes from its
last checkpoint when the same command runs again: the data stream is a function of (seed, batch number) and the
random state is saved with the checkpoint, so on a CPU a resumed run ends with the weights of an uninterrupted one.
Finished weights go to `<run>/model.pt` with the hash of everything they depend on (`training_hash`) and are reused
by later runs of the same config and corpus.

A model's `needs` (the SyncNet expert of Wav2Lip, the face model of the VASA-style model) are trained or loaded
first only when this model trains; a run that loads weights (`run.checkpoint`, cached `model.pt`, or
`run.train=false`) builds them untrained with the right shapes and trains nothing the generation does not need.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from benchmark import registry
from benchmark.config import compose, config_hash, save_config, section_dict
from benchmark.distributed import log, run_lock
from data.corpus import LayoutCorpus
from metrics.safe_load import CheckpointReadError, load_checkpoint_file
from metrics.weights import sha256_file
from models.common.config import Presets, to_config

if TYPE_CHECKING:
    import torch
    from lightning import LightningModule, Trainer
    from lightning.pytorch.utilities.types import STEP_OUTPUT
    from rich.progress import Progress, TaskID

    from data.datamodule import TalkingFaceDataModule
    from models.base import TalkingFaceModule

RESUME_MARKER = "training_hash"


def model_class(name: str) -> type[TalkingFaceModule]:
    cls: type[TalkingFaceModule] = registry.models().get(name)
    return cls


def model_params(cfg: DictConfig, cls: type[TalkingFaceModule], overrides: dict[str, Any] | None = None) -> Any:
    """The model's hyperparameters: `cfg.model.params` (the config dataclass at the run's preset, with overrides)
    as that dataclass, with `overrides` on top (what a checkpoint file implies, e.g. Diffused Heads' motion
    channels)."""
    raw = cfg.model.get("params")
    params = section_dict(raw) if isinstance(raw, DictConfig) else dict(raw or {})
    return to_config(cls.config_class, {**params, **(overrides or {})})


def build_model(
    cfg: DictConfig, needs: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> TalkingFaceModule:
    cls = model_class(cfg.model.name)
    return cls(model_params(cfg, cls, overrides), **(needs or {}))


def needed_configs(cfg: DictConfig) -> dict[str, DictConfig]:
    """The composed config of every model `cfg`'s model needs, by the constructor argument it is passed as."""
    out: dict[str, DictConfig] = {}
    for arg, needed in (cfg.model.get("needs") or {}).items():
        extra = list((cfg.run.get("dep_overrides") or {}).get(needed, []))
        out[arg] = compose(needed, cfg.dataset.name, cfg.run.preset, carry_overrides(cfg) + extra)
    return out


def build_untrained(cfg: DictConfig) -> TalkingFaceModule:
    """The model of `cfg` and every model it needs, built but neither trained nor loaded (`bench validate`)."""
    return build_model(cfg, {arg: build_untrained(sub) for arg, sub in needed_configs(cfg).items()})


def carry_overrides(cfg: DictConfig) -> list[str]:
    """Settings a needed model inherits from the run that needs it (where to store, devices, seed)."""
    keep = {
        "run.out_dir": cfg.run.out_dir,
        "run.seed": cfg.run.seed,
        "run.device": cfg.run.device,
        "trainer.accelerator": cfg.trainer.accelerator,
        "trainer.devices": cfg.trainer.devices,
        "trainer.strategy": cfg.trainer.strategy,
        "trainer.num_nodes": cfg.trainer.num_nodes,
        "run.progress": cfg.run.progress,
    }
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in keep.items()] + [
        f"dataset={json.dumps(ds)}"
    ]


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.run.out_dir, cfg.dataset.name, cfg.run.name)


def training_hash(cfg: DictConfig, corpus: LayoutCorpus) -> str:
    """What cached weights depend on: the model config and its resolved hyperparameters (a changed preset must
    not reuse old weights), trainer settings, window workers, corpus and seed. How often checkpoints are written
    and progress bars change nothing trained, so they are left out; so are the settings only generation reads
    (`Presets.generation_fields`: a sampler, its steps), counted at their schema defaults so that a run trained
    for days is reused when only they change, and a run that keeps the defaults keeps the hash it had."""
    params = model_params(cfg, model_class(cfg.model.name))
    model = OmegaConf.to_container(cfg.model, resolve=True)
    assert isinstance(model, dict)
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        fixed = params.generation_defaults() if isinstance(params, Presets) else {}
        params = {**dataclasses.asdict(params), **fixed}
        if isinstance(model.get("params"), dict):
            model["params"] = {**model["params"], **fixed}
    return config_hash(
        {
            "model": model,
            "params": params,
            "trainer": OmegaConf.to_container(cfg.trainer, resolve=True),
            "num_workers": int(cfg.run.num_workers),
            "corpus": corpus.fingerprint(),
            "seed": cfg.run.seed,
        }
    )


# ----------------------------------------------------------------------------------------------- train or load


def train_or_load(
    cfg: DictConfig, corpus: LayoutCorpus, trail: tuple[str, ...] = ()
) -> tuple[TalkingFaceModule, dict[str, Any]]:
    """The model of `cfg`, ready to generate: loaded from `run.checkpoint`, from cached weights, trained (its
    needs first), or as initialised (`run.train=false`). Returns (module in eval mode, weights info)."""
    import torch

    name = cfg.model.name
    if name in trail:
        raise ValueError(f"model dependency cycle: {' -> '.join((*trail, name))}")
    cls = model_class(name)
    if cfg.run.checkpoint:
        return load_checkpoint_module(cfg)
    run_dir = run_dir_of(cfg)
    weights_path = run_dir / "model.pt"
    trains = cls.trainable and cfg.run.train
    needs: dict[str, TalkingFaceModule] = {}
    needs_info: dict[str, dict[str, Any]] = {}
    for arg, sub in needed_configs(cfg).items():
        if trains:
            needs[arg], needs_info[arg] = train_or_load(sub, corpus, (*trail, name))
        else:
            needs[arg] = build_untrained(sub)
    torch.manual_seed(int(cfg.run.seed))  # the initial weights (and so an untrained row) repeat
    module = build_model(cfg, needs)
    info: dict[str, Any] = {"source": "initialised", "status": "untrained"}
    if trains:
        thash = training_hash(cfg, corpus)
        cached = load_cached(module, weights_path, thash)
        if cached is None:
            log(f"[train] {name}: training on {corpus.name} (preset {cfg.run.preset}) -> {run_dir}")
            run_dir.mkdir(parents=True, exist_ok=True)
            with run_lock(run_dir):  # two runs needing the same expert must not train it into one folder at once
                budget = fit(cfg, corpus, module, run_dir, thash)
                if int(os.environ.get("LOCAL_RANK", "0")) == 0:
                    blob = {"state_dict": module.state_dict(), "training_hash": thash, "budget": budget}
                    torch.save(blob, weights_path)
            info = {"source": "trained", "path": str(weights_path), "training_hash": thash, "budget": budget}
        else:
            log(f"[train] {name}: reusing {weights_path} (same config and corpus)")
            info = cached
        info["status"] = "trained"
        if weights_path.exists():
            info["sha256"] = sha256_file(weights_path)
        if needs_info:
            # what the models it was trained with went through (a time-capped expert is marked too)
            info["needs"] = {
                arg: {k: v for k, v in n.items() if k in ("source", "sha256", "budget")}
                for arg, n in needs_info.items()
            }
    return module.eval(), {**info, **weights_details(module)}


def weights_details(module: TalkingFaceModule) -> dict[str, Any]:
    """What else produced the generated videos besides the module's own weights (a pretrained audio front end)."""
    frontend: Any = getattr(module, "audio_frontend", None)
    return {"audio_frontend": frontend.info()} if callable(getattr(frontend, "info", None)) else {}


def load_cached(module: TalkingFaceModule, path: Path, thash: str) -> dict[str, Any] | None:

    if not path.exists():
        return None
    blob, _ = load_checkpoint_file(path)
    if not isinstance(blob, dict) or blob.get("training_hash") != thash:
        return None
    module.load_state_dict(blob["state_dict"])
    info = {"source": "cached", "path": str(path), "training_hash": thash}
    return {**info, "budget": blob["budget"]} if isinstance(blob.get("budget"), dict) else info


def checkpoint_file(ref: str) -> tuple[Path, dict[str, Any]]:
    """A checkpoint file and what the weights store knows of it: a path, or a registered weights name."""
    from metrics import weights as store

    path = Path(ref).expanduser()
    if path.exists():
        return path, {}
    path, entry = store.resolve(ref)
    official = entry.meta.get("sha256_official")
    status = "official" if official else "unofficial" if official is False else "unverified"
    return path, {"name": entry.name, "status": "calibrated" if entry.calibrated else status}


def load_checkpoint_module(cfg: DictConfig) -> tuple[TalkingFaceModule, dict[str, Any]]:
    """The model of `cfg` with `run.checkpoint` loaded, its needs built untrained (nothing is trained).

    The file is checked against the architecture before anything else runs; when it fits another preset, the
    error says which. A whole-module file (a run's model.pt, our Lightning checkpoints) restores every part of the
    module; any other (the official network files) goes through the model's checkpoint reader, which also says
    what the file implies for the architecture (e.g. Diffused Heads' motion channels).
    """
    from models.checkpoints import checkpoint_params

    cls = model_class(cfg.model.name)
    path, known = checkpoint_file(str(cfg.run.checkpoint))
    overrides = checkpoint_params(cls, path, dataclasses.asdict(model_params(cfg, cls)))
    needs = {arg: build_untrained(sub) for arg, sub in needed_configs(cfg).items()}
    module = build_model(cfg, needs, overrides)
    fmt = _load_weights(module, path, lambda: _other_preset_hint(cfg, path, overrides))
    log(f"[load] {cfg.model.name}: weights from {path} ({fmt}); nothing to train")
    info = {"source": "checkpoint", "path": str(path), "sha256": sha256_file(path), "format": fmt, **known}
    info.setdefault("status", "trained" if fmt == "module" else "unverified")
    return module.eval(), {**info, **weights_details(module)}


def _load_weights(module: TalkingFaceModule, path: Path, hint: Callable[[], str] = lambda: "") -> str:
    """Load `path` into `module`; returns the format found ("module" for a whole-module state dict)."""
    from models.checkpoints import CheckpointError, check_state_dict, load_module_checkpoint

    whole = _module_state_dict(path)
    if whole is None or set(whole) != set(module.state_dict()):
        return str(load_module_checkpoint(module, path).get("format", "network"))
    try:
        check_state_dict(module, whole, source=str(path))
    except CheckpointError as err:
        raise CheckpointError(f"{err}{hint()}") from None
    module.load_state_dict(whole, strict=True)
    return "module"


def _module_state_dict(path: Path) -> dict[str, torch.Tensor] | None:
    """The `state_dict` of a whole-module file (a run's model.pt, a Lightning checkpoint), else None."""
    import torch

    try:
        blob, _ = load_checkpoint_file(path)
    except CheckpointReadError:  # a TorchScript archive: not a whole-module file, read by the model's reader
        return None
    sd = blob.get("state_dict") if isinstance(blob, dict) else None
    if isinstance(sd, dict) and sd and all(isinstance(v, torch.Tensor) for v in sd.values()):
        return sd
    return None


def _other_preset_hint(cfg: DictConfig, path: Path, overrides: dict[str, Any]) -> str:
    """' It fits preset X: rerun with --preset X.' when a whole-module file fits another preset of the model
    (checked on the meta device: no memory is spent on paper-size networks)."""
    import torch

    from models.checkpoints import CheckpointError, check_state_dict

    whole = _module_state_dict(path)
    for preset in ("paper", "tiny"):
        if preset == cfg.run.preset or whole is None:
            continue
        try:
            with torch.device("meta"):
                module = build_untrained_with(compose(cfg.model.name, cfg.dataset.name, preset), overrides)
            check_state_dict(module, whole, source=str(path))
        except (CheckpointError, KeyError, ValueError, RuntimeError):
            continue
        return f" It fits preset {preset!r}: rerun with --preset {preset}."
    return ""


def build_untrained_with(cfg: DictConfig, overrides: dict[str, Any]) -> TalkingFaceModule:
    return build_model(cfg, {arg: build_untrained(sub) for arg, sub in needed_configs(cfg).items()}, overrides)


class RandomState(Callback):
    """Saves the random state (torch, CUDA, numpy, Python) in each checkpoint and restores it on resume, and keeps
    validation from drawing on it: a run resumed at step N then draws the same noise, timesteps and dropout masks
    as an uninterrupted one, whether or not a validation ran at step N (Lightning skips it on resume). Under DDP
    the checkpoint holds rank 0's state."""

    held: dict[str, Any] | None = None

    @staticmethod
    def snapshot() -> dict[str, Any]:
        import random

        import numpy as np
        import torch

        legacy = np.random.get_state(legacy=True)
        assert isinstance(legacy, tuple)  # the global generator is an MT19937: its legacy state is a tuple
        kind, keys, pos, has_gauss, gauss = legacy
        # plain values and tensors only: checkpoints are read back with weights_only=True
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "python": random.getstate(),
        }
        # (torch.cuda.is_initialized is unannotated)
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    @staticmethod
    def restore(state: dict[str, Any]) -> None:
        import random

        import numpy as np
        import torch

        torch.set_rng_state(state["torch"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def state_dict(self) -> dict[str, Any]:
        # a checkpoint taken at the end of a validation holds the state training continues with
        return self.held if self.held is not None else self.snapshot()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.restore(state_dict)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.held = self.snapshot()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.held is not None:
            self.restore(self.held)
            self.held = None


class ResumableCheckpoint(Callback):
    """`last.ckpt` every `every` optimiser steps, written atomically (Lightning saves through a temporary file),
    and when training ends. When a validation follows the step, the checkpoint is taken after it: Lightning does
    not run that validation again on resume, so what it changes (Wav2Lip's sync-loss switch) must be in the file."""

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every, self.saved_step = Path(path), max(1, int(every)), -1

    def _save(self, trainer: Trainer) -> None:
        if trainer.global_step != self.saved_step and not trainer.sanity_checking:
            trainer.save_checkpoint(self.path)
            self.saved_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        batches = trainer.fit_loop.epoch_loop.batch_progress.total.ready
        validates = isinstance(trainer.val_check_batch, int) and batches % trainer.val_check_batch == 0
        if trainer.global_step % self.every == 0 and not (validates and trainer.enable_validation):
            self._save(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == "fit" and trainer.global_step % self.every == 0:
            self._save(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer)


class StepProgress(Callback):
    """A progress bar over what bounds a training run: optimiser steps of `trainer.max_steps`, with the time left
    (Lightning's own counts batches of an epoch that, with endless training streams, never ends)."""

    def __init__(self, name: str, max_steps: int) -> None:
        self.name, self.max_steps = name, max_steps
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[train] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeRemainingColumn(),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(self.name, total=self.max_steps, completed=trainer.global_step)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=trainer.global_step)

    def _stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stop()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._stop()


# ----------------------------------------------------------------------------------------------- Lightning


def checkpoint_every(cfg: DictConfig) -> int:
    every = cfg.run.get("checkpoint_every_n_steps")
    return int(every if every else cfg.trainer.val_check_interval)


def make_trainer(cfg: DictConfig, run_dir: Path) -> Trainer:
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    if os.environ.get("TALKBENCH_DEBUG") != "1":
        # banners and advice ("GPU available", tips) out of the users' output; set after import, which resets them
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    args = section_dict(cfg.trainer)
    return L.Trainer(
        **args,
        check_val_every_n_epoch=None,  # val_check_interval counts batches across the endless epoch
        logger=CSVLogger(run_dir, name="logs", version=""),
        # the data module shards batches between ranks itself (data.datamodule.StepSampler), resumably
        use_distributed_sampler=False,
        default_root_dir=run_dir,  # where Lightning's SLURM requeue writes its hpc_ckpt_*.ckpt
        callbacks=[
            ResumableCheckpoint(run_dir / "checkpoints" / "last.ckpt", checkpoint_every(cfg)),
            RandomState(),
            *([StepProgress(str(cfg.model.name), int(args["max_steps"]))] if cfg.run.progress else []),
        ],
        enable_progress_bar=False,  # Lightning's counts batches of an endless epoch; StepProgress counts the budget
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def make_datamodule(cfg: DictConfig, corpus: LayoutCorpus, module: TalkingFaceModule) -> TalkingFaceDataModule:
    from data.datamodule import TalkingFaceDataModule

    return TalkingFaceDataModule(
        corpus,
        module.train_dataset,
        batch_size=module.cfg.batch_size,
        num_workers=int(cfg.run.num_workers),
        seed=int(cfg.run.seed),
    )


def resume_checkpoint(run_dir: Path, thash: str) -> Path | None:
    """The checkpoint an interrupted training of the same config resumes from: the newer of `last.ckpt` and a
    SLURM requeue's `hpc_ckpt_*.ckpt`, when the run directory was trained with the same `training_hash`."""
    marker = run_dir / "checkpoints" / RESUME_MARKER
    if not marker.exists() or marker.read_text() != thash:
        return None
    found = [run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")]
    found = [p for p in found if p.exists()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def checkpoint_step(path: Path) -> int:

    blob, _ = load_checkpoint_file(path, mmap=True)  # mapped: the optimiser state is not read
    return int(blob.get("global_step", 0))


def fit(cfg: DictConfig, corpus: LayoutCorpus, module: TalkingFaceModule, run_dir: Path, thash: str) -> dict[str, Any]:
    """Train `module` (resuming an interrupted training of the same config); returns the budget it ran under:
    steps done, `max_steps`, and what stopped it (`steps`, or `time` when the wall-clock safety net
    `trainer.max_time` bound first: the weights then depend on the machine's load)."""
    import lightning as L

    L.seed_everything(int(cfg.run.seed), workers=True, verbose=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    trainer = make_trainer(cfg, run_dir)
    dm = make_datamodule(cfg, corpus, module)
    resume = resume_checkpoint(run_dir, thash)
    if resume is not None:
        log(f"[train] {cfg.model.name}: resuming from step {checkpoint_step(resume)} ({resume})")
    if trainer.global_rank == 0:
        marker = run_dir / "checkpoints" / RESUME_MARKER
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(thash)
    # weights_only: a checkpoint in a run folder is data too, never code to run
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None, weights_only=True)
    budget: dict[str, Any] = {"steps": int(trainer.global_step), "max_steps": int(cfg.trainer.max_steps)}
    budget["stopped_by"] = "steps" if budget["steps"] >= budget["max_steps"] else "time"
    line = f"[train] {cfg.model.name}: {budget['steps']} steps in {trainer.world_size} process(es)"
    if budget["stopped_by"] == "time":
        line += (
            f", stopped by the wall-clock safety net (trainer.max_time={cfg.trainer.max_time}) before its "
            f"{budget['max_steps']}-step budget: the weights depend on this machine's load"
        )
    log(line + ("" if budget["stopped_by"] == "time" else f" (its {budget['max_steps']}-step budget)"))
    return budget
