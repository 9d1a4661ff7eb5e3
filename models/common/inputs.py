"""The checks every model's `generate(identity, audio, pose_prior=...)` makes on its inputs (the runner's contract)."""

from __future__ import annotations

import numpy as np


def generation_inputs(identity, audio, pose_prior=None) -> tuple[np.ndarray, np.ndarray]:
    """identity as uint8 [B,H,W,3] and audio as float32 [B,N] arrays, or a ValueError saying which is wrong;
    `pose_prior`, when given, must hold one video per identity frame."""
    identity = np.asarray(identity)
    audio = np.asarray(audio, dtype=np.float32)
    if identity.dtype != np.uint8 or identity.ndim != 4 or identity.shape[-1] != 3:
        raise ValueError(f"identity must be uint8 [B,H,W,3], got {identity.dtype} {identity.shape}")
    if audio.ndim != 2 or audio.shape[0] != identity.shape[0]:
        raise ValueError(f"audio must be float32 [B,N] with B={identity.shape[0]}, got {audio.shape}")
    if pose_prior is not None and len(pose_prior) != identity.shape[0]:
        raise ValueError(f"pose_prior has {len(pose_prior)} videos for a batch of {identity.shape[0]}")
    return identity, audio


def clip_seeds(seed, batch: int) -> list[int]:
    """One seed per clip of a batch: `seed + b` for an int (so clips generated together draw what each would
    alone with its own seed), or the given sequence, one seed per clip (the runner passes run.seed + i)."""
    if isinstance(seed, int | np.integer):
        return [int(seed) + b for b in range(batch)]
    seeds = [int(s) for s in seed]
    if len(seeds) != batch:
        raise ValueError(f"seed has {len(seeds)} values for a batch of {batch}")
    return seeds
