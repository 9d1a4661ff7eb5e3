"""Distributed evaluation: every test clip generated and scored exactly once, whatever the number of processes.

Clip i belongs to rank i % world (no sampler padding, so no clip is scored twice and none is dropped). Each rank
writes its clips' mp4s and per-clip score rows (and set-metric feature files) into the run folder; rank 0 then
reads every rank's rows back and aggregates them in dataset order, so the numbers equal a 1-process run's to the
last digit. Collectives are only barriers, on a gloo group, so this works on CPU and beside NCCL training alike.

Launch: `bench run ... trainer.devices=N trainer.strategy=ddp` (Lightning starts the processes for training and
they stay for evaluation), or `torchrun --nproc_per_node N -m benchmark.cli run|evaluate ...` for any command,
including evaluation-only runs; on SLURM, `srun` one torchrun per node (`--nnodes`, `--node_rank`,
`--rdzv_endpoint` from the SLURM variables) or let Lightning read SLURM's environment with `trainer.num_nodes`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.io import pid_alive

if TYPE_CHECKING:
    from collections.abc import Iterator

    from omegaconf import DictConfig


@dataclass
class EvalGroup:
    rank: int = 0
    world: int = 1
    group: Any = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mine(self, i: int) -> bool:
        """Whether clip `i` (its position in the test list) is this process's to generate and score."""
        return i % self.world == self.rank

    def barrier(self) -> None:
        if self.group is not None:
            import torch.distributed as dist

            dist.barrier(group=self.group)


def eval_group() -> EvalGroup:
    """This process's place among the evaluation processes.

    Uses the process group Lightning (or anything else) initialised; otherwise starts one from the environment
    a launcher such as torchrun sets (RANK and WORLD_SIZE); a single process gets rank 0 of 1.
    """
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        return EvalGroup()
    if not dist.is_initialized() and "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return EvalGroup()
    return EvalGroup(dist.get_rank(), dist.get_world_size(), dist.new_group(backend="gloo"))


def rank_file(path: os.PathLike[str] | str, rank: int) -> Path:
    """Where rank `rank` writes its rows of the per-clip file `path` (merged by rank 0)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def run_device(cfg: DictConfig) -> str:
    """The device this process generates and scores on (`run.device`): `auto` follows the trainer's accelerator
    (CUDA when present and not turned off with trainer.accelerator=cpu), one GPU per local rank."""
    import torch

    choice = str(cfg.run.device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if choice == "auto":
        if str(cfg.trainer.accelerator) in ("auto", "gpu", "cuda") and torch.cuda.is_available():
            return f"cuda:{local % torch.cuda.device_count()}"
        return "cpu"
    if choice == "cpu":
        return "cpu"
    if choice == "cuda" or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"run.device={choice} but CUDA is not available here (use run.device=auto or cpu)")
        return f"cuda:{local % torch.cuda.device_count()}" if choice == "cuda" else choice
    raise ValueError(f"run.device must be auto, cpu, cuda or cuda:N, got {choice!r}")


def log(msg: str) -> None:
    """Print once per job: on the process of local rank 0 of node 0."""
    if int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0:
        print(msg, flush=True)


# ----------------------------------------------------------------------------------------------- run folders


class RunInUseError(RuntimeError):
    """Another process is writing the run folder."""


_HELD: dict[Path, int] = {}


def is_main_process() -> bool:
    """Global rank 0 of whatever launched this process (torchrun's RANK, Lightning's LOCAL_RANK / NODE_RANK)."""
    env = os.environ
    return int(env.get("RANK", env.get("LOCAL_RANK", "0"))) == 0 and int(env.get("NODE_RANK", "0")) == 0


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold a run folder while this job writes it: `<run_dir>/.lock` names the holder's PID, and a second process
    gets RunInUseError naming it (two `bench evaluate --name X` at once would merge two methods into one row). A
    lock left by a process that died is taken over. Re-entrant within a process; other ranks of a job rely on
    rank 0's lock."""
    path = Path(run_dir).resolve() / ".lock"
    if not is_main_process() or _HELD.get(path):
        _HELD[path] = _HELD.get(path, 0) + 1
        try:
            yield
        finally:
            _HELD[path] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            text = path.read_text().strip() if path.exists() else ""
            pid = int(text) if text.isdigit() else -1
            if pid > 0 and pid != os.getpid() and pid_alive(pid):
                raise RunInUseError(
                    f"{path.parent} is in use by PID {pid} (another bench command writes it); wait for it to "
                    "finish or choose another run name"
                ) from None
            path.unlink(missing_ok=True)  # left by a process that died
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    else:
        raise RunInUseError(f"{path.parent}: cannot take its lock file {path}")
    _HELD[path] = 1
    try:
        yield
    finally:
        _HELD.pop(path, None)
        path.unlink(missing_ok=True)
