"""The random stream of training-window datasets, whatever the model: which windows an item is cut from.

A model's training dataset (its `train_dataset`, models/base.py) picks windows of clips at random; this is where
that randomness comes from, so every model's windows repeat the same way:
- `fixed=True` (the deterministic variant, used by the tests and perf) makes item i a function of (seed, i) alone,
  whatever the worker layout;
- `keyed=True` does too, without the other effects `fixed` has on some datasets' items (the training data module
  sets it and numbers items by batch, `data.sampling.StepSampler`, so a resumed run reads what an uninterrupted
  one would);
- otherwise each process draws from one generator, seeded from `seed` in the main process and from the
  DataLoader's per-worker seed in workers (which Lightning's `seed_everything(workers=True)` makes reproducible),
  so windows differ between epochs and workers but runs repeat.
"""

from __future__ import annotations

import os

import numpy as np
from torch.utils.data import get_worker_info


class SeededItems:
    """The random stream of a training dataset (module docstring). Subclasses set `fixed` and `seed`."""

    fixed: bool
    seed: int
    keyed: bool = False
    _rng: np.random.Generator | None = None
    _rng_owner: tuple[int, int] | None = None

    def _generator(self, index: int) -> np.random.Generator:
        if self.fixed or self.keyed:
            return np.random.default_rng((self.seed, index))
        info = get_worker_info()
        owner = (os.getpid(), info.id if info is not None else -1)
        if self._rng is None or self._rng_owner != owner:
            worker_seed = info.seed % 2**63 if info is not None else 0
            self._rng = np.random.default_rng((self.seed, worker_seed))
            self._rng_owner = owner
        return self._rng
