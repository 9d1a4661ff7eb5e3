"""Run a metric under torch.distributed (gloo, CPU) to check that its states reduce to the 1-process value.

Every metric in this package must give the same value whether its clips are scored by one process or spread over
several (sum/cat states only: docs/adding.md, "A metric"). `compute_distributed` is how the tests (and anyone adding
a metric) check that: each rank updates with its own shard of the samples, torchmetrics gathers the states in
`compute()`, and rank 0's values come back to the caller.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy().tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _worker(rank: int, world: int, port: int, factory, samples, shard, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        mine = [samples[i] for i in shard(len(samples), rank, world)]
        value = _run(factory, mine)
        if rank == 0:
            torch.save(value, out)  # plain numbers and dicts: read back by the one checkpoint reader
    finally:
        dist.destroy_process_group()


def _run(factory: Callable[[], Any], samples: Sequence[Any]) -> Any:
    built = factory()
    metrics = built if isinstance(built, Mapping) else {None: built}
    values = {}
    for key, metric in metrics.items():
        metric.update(list(samples))
        values[key] = _plain(metric.compute())
    return values if isinstance(built, Mapping) else values[None]


def strided_shard(n: int, rank: int, world: int) -> list[int]:
    """DistributedSampler's order without padding: rank r takes samples r, r + world, ..."""
    return list(range(rank, n, world))


def compute_distributed(
    factory: Callable[[], Any],
    samples: Sequence[Any],
    world_size: int = 2,
    shard: Callable[[int, int, int], list[int]] = strided_shard,
) -> Any:
    """`factory()` builds the metric (or a dict of metrics) in each of `world_size` processes; each updates with its
    shard of `samples` (passed to `update` as one list); the value of `compute()` on rank 0 is returned as plain
    Python numbers (a dict of them for a dict of metrics: one spawn checks several metrics).

    `factory` must be picklable (a module-level function or a functools.partial of one).
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "rank0.pt")
        torch.multiprocessing.spawn(
            _worker, args=(world_size, _free_port(), factory, list(samples), shard, out), nprocs=world_size
        )
        from metrics.safe_load import load_checkpoint_file

        return load_checkpoint_file(out)[0]


def compute_single(factory: Callable[[], Any], samples: Sequence[Any]) -> Any:
    """The same metric in this process, all samples at once: the value `compute_distributed` must equal."""
    return _run(factory, samples)
