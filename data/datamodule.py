"""The shared LightningDataModule: a corpus's train/val clips, decoded once, cut into a model's windows."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

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

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = self._windows(self.train_split, self.seed)
            self.val_set = self._windows(self.val_split, self.seed + 1)

    def _loader(self, ds, shuffle: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            drop_last=shuffle,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
