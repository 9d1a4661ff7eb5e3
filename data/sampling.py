"""Which training items a process reads at each step: a stream that is a function of the batch number alone.

Training windows are random draws (a clip, then a window in it) seeded by the item's number (`SeededItems` with
`keyed=True`), so the order of item numbers is all a sampler has to fix. `StepSampler` hands batch k of rank r the
item numbers (k * world + r) * B ... + B - 1, forever: ranks never share an item, the stream does not depend on the
number of DataLoader workers, and a run resumed at batch k (the data module records k in every checkpoint) reads
exactly what an uninterrupted run would have read from there on.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler


class StepSampler(Sampler[int]):
    """Endless item numbers for rank `rank` of `world`, batch after batch, starting at batch `start_batch`."""

    def __init__(self, batch_size: int, *, rank: int = 0, world: int = 1, start_batch: int = 0) -> None:
        if batch_size < 1 or not 0 <= rank < world or start_batch < 0:
            raise ValueError(f"bad sampler settings: batch_size {batch_size}, rank {rank} of {world}, {start_batch}")
        self.batch_size, self.rank, self.world, self.start_batch = int(batch_size), int(rank), int(world), start_batch

    def __iter__(self) -> Iterator[int]:
        k = self.start_batch
        while True:
            first = (k * self.world + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)
            k += 1


class RankSlice(Sampler[int]):
    """Items rank, rank + world, ... of a finite dataset (validation: each rank takes its share). Every rank gets
    the same count, wrapping around to the first items as DistributedSampler does, because per-step DDP
    reductions of logged values would hang on a rank with fewer batches."""

    def __init__(self, length: int, *, rank: int = 0, world: int = 1) -> None:
        per_rank = -(-int(length) // world)
        self.indices = [(rank + j * world) % int(length) for j in range(per_rank)] if length else []

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
