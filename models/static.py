"""The "identity frame repeated" baseline: a video that never moves (the official Wav2Lip `--static` input)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from data.clip import frames_for_audio
from models.base import TalkingFaceModule
from models.common.config import to_config


@dataclass
class StaticFrameConfig:
    """No hyperparameters: the dataclass exists so every model is built the same way."""


class StaticFrameModel(TalkingFaceModule):
    """Repeats the identity frame T = N // 640 times. Nothing to train (`trainable = False`).

    It is the floor for lip-sync metrics (a frozen mouth) and the ceiling for identity/FID-style metrics on
    the first frame.
    """

    kind = "baseline"
    trainable = False
    config_class = StaticFrameConfig

    def __init__(self, cfg: StaticFrameConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = to_config(StaticFrameConfig, cfg)

    def _generate(
        self,
        identity: np.ndarray,
        audio: np.ndarray,
        *,
        pose_prior: np.ndarray | Sequence[np.ndarray] | None = None,
        seed: Sequence[int] = (),
    ) -> np.ndarray:
        """uint8 [B,H,W,3] identity, float32 [B,N] audio -> uint8 [B,T,H,W,3]; pose_prior and seed are unused."""
        num_frames = frames_for_audio(audio.shape[-1])
        return np.repeat(identity[:, None], num_frames, axis=1)
