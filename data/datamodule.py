"""The shared LightningDataModule: a corpus's train/val clips, decoded once, cut into a model's windows."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from data.corpus import LayoutCorpus


class TalkingFaceDataModule(L.LightningDataModule):
    """Training windows of kind `window_kind` (a `data.windows.WINDOWS` entry) over a corpus's splits.

    Clips come through the corpus's decode-once cache; the window dataset cuts them into what the model trains
    on (SyncNet expert pairs, Wav2Lip windows...). Under DDP, Lightning's distributed sampler gives each rank a
    disjoint share of the window indices.
    """

    def __init__(
        self,
        corpus: LayoutCorpus,
        window_kind: str,
        window_kwargs: dict | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        train_split: str = "train",
        val_split: str = "val",
    ):
        super().__init__()
        self.corpus = corpus
        self.window_kind = window_kind
        self.window_kwargs = dict(window_kwargs or {})
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.train_split = train_split
        self.val_split = val_split
        self.train_set = None
        self.val_set = None

    def _windows(self, split: str, seed: int):
        from data.windows import WINDOWS

        if self.window_kind not in WINDOWS:
            raise KeyError(f"unknown window kind {self.window_kind!r}; valid: {sorted(WINDOWS)}")
        return WINDOWS[self.window_kind](self.corpus.clips(split), seed=seed, **self.window_kwargs)

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (int(trainer.global_rank), int(trainer.world_size)) if trainer is not None else (0, 1)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            if getattr(self.corpus, "streaming", False):
                rank, world = self._rank()
                self.train_set = StreamingWindows(
                    self.corpus, self.train_split, self.window_kind, self.window_kwargs, self.seed, rank, world
                )
            else:
                self.train_set = self._windows(self.train_split, self.seed)
            self.val_set = self._windows(self.val_split, self.seed + 1)

    def _loader(self, ds, shuffle: bool) -> DataLoader:
        streamed = isinstance(ds, IterableDataset)
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle and not streamed,  # a stream shuffles itself
            num_workers=self.num_workers,
            drop_last=shuffle,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)


class StreamingWindows(IterableDataset):
    """Training windows streamed shard by shard from a prepared corpus's manifest (data.corpus.PreparedCorpus).

    Process `rank` of `world_size` reads only its own shards (`ManifestIndex.rank_indices`: disjoint across
    ranks), split again between DataLoader workers; so every rank sees different clips and none holds the
    corpus in memory, only one shard's clips at a time. Shards come in a seeded random order, each cut into
    windows by the `window_kind` dataset (random windows, as the map-style path). The stream never ends:
    training stops at trainer.max_steps / max_time, and no rank runs out of batches before another (which
    would hang DDP).
    """

    def __init__(self, corpus, split: str, window_kind: str, window_kwargs: dict, seed: int, rank: int, world: int):
        from data.windows import WINDOWS

        if window_kind not in WINDOWS:
            raise KeyError(f"unknown window kind {window_kind!r}; valid: {sorted(WINDOWS)}")
        self.corpus = corpus
        self.split = split
        self.window_cls = WINDOWS[window_kind]
        self.window_kwargs = dict(window_kwargs)
        self.seed, self.rank, self.world = int(seed), int(rank), int(world)
        self.indices = corpus.index.rank_indices(split, self.rank, self.world)
        if len(self.indices) == 0:
            raise ValueError(
                f"dataset {corpus.name!r}: split {split!r} has no clips for rank {rank} of {world} "
                f"({len(corpus.index.select(split))} clips in all)"
            )

    def worker_shards(self, worker: int, num_workers: int) -> list[np.ndarray]:
        """This worker's manifest indices, grouped by shard (disjoint between workers of one rank)."""
        shard = self.corpus.index.shard[self.indices]
        ids = np.unique(shard)
        if len(ids) >= num_workers:
            return [self.indices[shard == s] for s in ids[worker::num_workers]]
        mine = self.indices[worker::num_workers]
        return [mine] if len(mine) else []

    def __iter__(self):
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        groups = self.worker_shards(worker, num_workers)
        rng = np.random.default_rng((self.seed, self.rank, worker))
        while groups:
            yielded = 0
            for g in rng.permutation(len(groups)):
                clips = [self.corpus.load(e) for e in self.corpus.index.entries(groups[g])]
                try:
                    ds = self.window_cls(clips, seed=int(rng.integers(2**31)), **self.window_kwargs)
                except ValueError:
                    continue  # no clip of this shard is long enough for a window
                for i in range(ds.num_windows):
                    yield ds[i]
                yielded += ds.num_windows
            if not yielded:
                raise ValueError(f"dataset {self.corpus.name!r}: no clip of split {self.split!r} yields a window")
