"""The clip contract shared by every package (docs/clip_contract.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FPS = 25
SAMPLE_RATE = 16_000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640: one video frame of audio


@dataclass
class Clip:
    """One talking-face clip.

    video: uint8 [T, H, W, 3] RGB at 25 fps. audio: float32 [N] mono 16 kHz in [-1, 1].
    landmarks: float32 [T, 68, 2] iBUG-68 pixel coordinates of this video, when known.
    truth: generator ground truth (synthetic corpus) or other per-clip facts.
    """

    clip_id: str
    video: np.ndarray
    audio: np.ndarray
    speaker_id: str = ""
    split: str = ""
    landmarks: np.ndarray | None = None
    transcript: str | None = None
    word: str | None = None
    truth: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.video.dtype != np.uint8 or self.video.ndim != 4 or self.video.shape[-1] != 3:
            raise ValueError(
                f"clip {self.clip_id}: video must be uint8 [T,H,W,3], got {self.video.dtype} {self.video.shape}"
            )
        if self.audio.ndim != 1:
            raise ValueError(f"clip {self.clip_id}: audio must be mono [N], got shape {self.audio.shape}")
        self.audio = self.audio.astype(np.float32, copy=False)
        if self.landmarks is not None and self.landmarks.shape != (self.video.shape[0], 68, 2):
            raise ValueError(
                f"clip {self.clip_id}: landmarks must be [T,68,2] with T={self.video.shape[0]}, "
                f"got {self.landmarks.shape}"
            )

    @property
    def num_frames(self) -> int:
        return int(self.video.shape[0])

    @property
    def duration(self) -> float:
        return self.num_frames / FPS


def frames_for_audio(num_samples: int) -> int:
    """Number of video frames a generator produces for `num_samples` of audio (T = floor(N / 640))."""
    return int(num_samples) // SAMPLES_PER_FRAME
