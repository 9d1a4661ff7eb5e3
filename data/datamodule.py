"""The shared LightningDataModule: a corpus's train/val clips, decoded once, cut into a model's windows."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, cast

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from data.clip import Clip
from data.corpus import LayoutCorpus, PreparedCorpus
from data.sampling import RankSlice, StepSampler

# A model's training windows over clips, called `windows(clips, seed=..., fixed=...)`: a model's `train_dataset`
# (models/base.py), passed in, because `data` never imports `models`.
WindowsFactory = Callable[..., Dataset]


class _WindowSet(Protocol):
    """What this module uses of a window dataset besides torch's Dataset: `keyed` (data.windows.SeededItems, the
    base of every model's window dataset), its length and `num_windows` (what a stream draws in proportion to)."""

    keyed: bool
    num_windows: int

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


class TalkingFaceDataModule(L.LightningDataModule):
    """A model's training windows (`windows`, its `train_dataset`) over a corpus's splits.

    Clips come through the corpus's decode-once cache; the window dataset cuts them into what the model trains
    on (SyncNet expert pairs, Wav2Lip windows...). Training items are numbered by batch (`data.sampling.StepSampler`:
    rank r of N reads its own item numbers, endlessly, training stops at trainer.max_steps) and each item is a
    function of (seed, its number); the number of batches trained is saved in every checkpoint, so a resumed run
    continues the same stream. Validation items come from their own seed (seed + 1), keyed the same way: every
    validation scores the same windows, each rank its share.
    """

    def __init__(
        self,
        corpus: LayoutCorpus,
        windows: WindowsFactory,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        train_split: str = "train",
        val_split: str = "val",
    ):
        super().__init__()
        self.corpus = corpus
        self.windows = windows
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.train_split = train_split
        self.val_split = val_split
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.start_batch = 0  # batches already trained (restored from a checkpoint)

    def _windows(self, clips: Sequence[Clip], seed: int) -> Dataset:
        # `fixed=False` for both sets; both are keyed (setup): item i is a function of (seed, i), so the training set,
        # numbered by batch, resumes where it stopped, and every validation scores the same windows: evals compare
        # across steps, and a resumed run's validations (and what they switch, e.g. Wav2Lip's sync loss) match an
        # uninterrupted run's. The official loaders draw new random eval windows each time (docs/official_recipes.md).
        return self.windows(clips, seed=seed, fixed=False)

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (int(trainer.global_rank), int(trainer.world_size)) if trainer is not None else (0, 1)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            if getattr(self.corpus, "streaming", False):
                rank, world = self._rank()
                self.train_set = StreamingWindows(
                    self.corpus, self.train_split, self.windows, self.seed, rank, world
                )  # shuffle_buffer: the corpus's (dataset config key)
            else:
                self.train_set = self._windows(self.corpus.clips(self.train_split), self.seed)
                cast(_WindowSet, self.train_set).keyed = True
            self.val_set = self._windows(self.corpus.clips(self.val_split), self.seed + 1)
            cast(_WindowSet, self.val_set).keyed = True

    def _loader(self, ds, sampler) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # its own generator: making an iterator (again, on resume) must not draw on the global random state
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank()
        if isinstance(self.train_set, IterableDataset):
            # a stream shuffles itself; a resumed run starts a new pass instead of replaying the first batches
            cast(StreamingWindows, self.train_set).resume_at(self.start_batch)  # the stream setup() made
            return self._loader(self.train_set, None)
        sampler = StepSampler(self.batch_size, rank=rank, world=world, start_batch=self.start_batch)
        return self._loader(self.train_set, sampler)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank()
        return self._loader(self.val_set, RankSlice(len(cast(_WindowSet, self.val_set)), rank=rank, world=world))

    def statistics_set(self, max_clips: int = 256) -> Dataset | None:
        """The training windows of at most `max_clips` train clips spread evenly over the split, as a map-style
        dataset: what models that normalise their targets with training-set statistics (the VASA-style motion
        model) measure when training streams from shards. Without streaming, the training set itself."""
        if not isinstance(self.train_set, IterableDataset):
            return self.train_set
        corpus = cast(PreparedCorpus, self.corpus)  # a stream reads a prepared corpus's manifest shards
        idx = corpus.index.select(self.train_split)
        pick = np.unique(np.linspace(0, len(idx) - 1, min(max_clips, len(idx))).round().astype(int))
        clips = [corpus.load(e) for e in corpus.index.entries(idx[pick])]
        return self._windows(clips, self.seed)

    def state_dict(self) -> dict[str, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {}
        # saved from on_train_batch_end of the batch that triggers the checkpoint: `processed` counts it
        return {"train_batches": int(trainer.fit_loop.epoch_loop.batch_progress.total.processed)}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.start_batch = int(state_dict.get("train_batches", 0))


class StreamingWindows(IterableDataset):
    """Training windows streamed from a prepared corpus's manifest shards (data.corpus.PreparedCorpus).

    Process `rank` of `world_size` reads only its own shards (`ManifestIndex.rank_indices`: disjoint across
    ranks), split again between DataLoader workers; so every rank sees different clips and none holds the
    corpus in memory. Each worker goes through its shards in a new seeded random order every pass and keeps
    whole shards open until they hold `shuffle_buffer` clips (at least one shard, at most all of its own);
    each item comes from an open shard drawn at random in proportion to the windows it has left, and a shard
    whose windows are spent is replaced by the next one. With shards of many speakers each
    (data.manifest.assign_shards), a batch then mixes speakers about as draws at random from the whole split
    would (docs/streaming.md). Memory: the open shards' clips, about `shuffle_buffer` clips plus one shard.

    The stream never ends: training stops at trainer.max_steps / max_time, and no rank runs out of batches
    before another (which would hang DDP).
    """

    def __init__(
        self,
        corpus,
        split: str,
        windows: WindowsFactory,
        seed: int,
        rank: int,
        world: int,
        shuffle_buffer: int | None = None,
    ):
        self.corpus = corpus
        self.split = split
        self.windows = windows
        self.seed, self.rank, self.world = int(seed), int(rank), int(world)
        if shuffle_buffer is None:
            from data.corpus import DEFAULT_SHUFFLE_BUFFER

            shuffle_buffer = getattr(corpus, "shuffle_buffer", DEFAULT_SHUFFLE_BUFFER)
        self.shuffle_buffer = int(shuffle_buffer)
        self.start_batch = 0  # resume_at
        self.indices = corpus.index.rank_indices(split, self.rank, self.world)
        if len(self.indices) == 0:
            raise ValueError(
                f"dataset {corpus.name!r}: split {split!r} has no clips for rank {rank} of {world} "
                f"({len(corpus.index.select(split))} clips in all)"
            )

    def resume_at(self, batch: int) -> None:
        """Continue a run that trained `batch` batches: the stream is seeded with it, so a resumed run draws a
        new shard order and new windows instead of replaying the first batches of the interrupted one."""
        self.start_batch = int(batch)

    def worker_shards(self, worker: int, num_workers: int) -> list[np.ndarray]:
        """This worker's manifest indices, grouped by shard (disjoint between workers of one rank)."""
        shard = self.corpus.index.shard[self.indices]
        ids = np.unique(shard)
        if len(ids) >= num_workers:
            return [self.indices[shard == s] for s in ids[worker::num_workers]]
        mine = self.indices[worker::num_workers]
        return [mine] if len(mine) else []

    def _shards(self, groups: list[np.ndarray], rng: np.random.Generator) -> Iterator[tuple[int, _WindowSet]]:
        """(clip count, window dataset) of the worker's shards, pass after pass, each pass in a new order."""
        while True:
            opened = 0
            for g in rng.permutation(len(groups)):
                clips = [self.corpus.load(e) for e in self.corpus.index.entries(groups[g])]
                try:
                    ds = cast(_WindowSet, self.windows(clips, seed=int(rng.integers(2**31)), fixed=False))
                except ValueError:
                    continue  # no clip of this shard is long enough for a window
                if ds.num_windows:
                    opened += 1
                    yield len(groups[g]), ds
            if not opened:
                raise ValueError(f"dataset {self.corpus.name!r}: no clip of split {self.split!r} yields a window")

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        groups = self.worker_shards(worker, num_workers)
        if not groups:
            return
        rng = np.random.default_rng((self.seed, self.rank, worker, self.start_batch))
        shards = self._shards(groups, rng)
        open_: list[list] = []  # [clips, dataset, windows left, windows given]
        while True:
            while not open_ or (sum(o[0] for o in open_) < self.shuffle_buffer and len(open_) < len(groups)):
                n_clips, ds = next(shards)
                open_.append([n_clips, ds, ds.num_windows, 0])
            left = np.array([o[2] for o in open_], np.float64)
            k = int(rng.choice(len(open_), p=left / left.sum()))
            item = open_[k]
            yield item[1][item[3]]
            item[2] -= 1
            item[3] += 1
            if item[2] == 0:
                open_.pop(k)
