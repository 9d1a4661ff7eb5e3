"""Training samples for Diffused Heads (official datasets/datasets.py; docs/diffused_heads.md).

Item: a ground-truth frame and an identity frame (with `identity_frame: random`, two different random frames of
the clip, as the official `np.random.choice(n, 2, replace=False)`; with `first`, frame 0 and a later one), the
`n_motion_frames` frames right before the ground truth (the identity frame pads before the clip start), the audio
front end's per-frame features of frames gt-m .. gt+m (edge-clamped), and the mouth landmarks (48-67) of the target
frame and of the identity frame (the official loader reads the identity frame's; `lip_landmarks` picks which the
loss uses). Audio features are computed once per clip (models/common/audio_frontends.py: log-mel windows for
`mel`, the frozen SDA embeddings, cached per clip, for `sda`); a clip is cut to the shorter of its video and its
per-frame audio, as the official loader's `min(len(audio_emb), len(video))`. Frames are resized once per clip to
the model's internal size and kept as uint8; colour conversion to [-1, 1] happens here, at the model boundary
(docs/clip_contract.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from data.clip import Clip
from data.windows import SeededItems
from models.common.audio_frontends import audio_feature_extractor

MOUTH = slice(48, 68)  # iBUG-68 mouth points


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 [T, size, size, 3] with INTER_AREA (averages when shrinking, no aliasing)."""
    if frames.shape[1:3] == (size, size):
        return frames
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def to_model(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB [..., H, W, 3] -> float32 [..., 3, H, W] in [-1, 1] (official `x / 255 * 2 - 1`)."""
    return torch.as_tensor(np.asarray(frames)).movedim(-1, -3).float().div(127.5).sub(1.0)


def from_model(x: torch.Tensor) -> np.ndarray:
    """float [..., 3, H, W] in [-1, 1] -> uint8 RGB [..., H, W, 3] (rounded, not the official 127 x + 127)."""
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


class DiffusedHeadsWindows(SeededItems, Dataset):
    """Diffused Heads training items over clips; `fixed=True` makes item i a function of (seed, i) alone."""

    def __init__(
        self,
        clips: Sequence[Clip],
        *,
        image_size: int = 128,
        n_motion_frames: int = 2,
        n_audio_motion_embs: int = 2,
        identity_frame: str = "random",
        audio_frontend: str = "mel",
        audio_frontend_weights: str | None = None,
        length: int | None = None,
        fixed: bool = False,
        seed: int = 0,
    ) -> None:
        if identity_frame not in ("random", "first"):
            raise ValueError(f"identity_frame must be 'random' or 'first', got {identity_frame!r}")
        self.size = int(image_size)
        self.n_motion = int(n_motion_frames)
        self.m = int(n_audio_motion_embs)
        self.identity_frame = identity_frame
        self.fixed = bool(fixed)
        self.seed = int(seed)
        audio_features = audio_feature_extractor(audio_frontend, audio_frontend_weights)
        self.frames: list[np.ndarray] = []
        self.audio: list[np.ndarray] = []
        self.mouths: list[np.ndarray] = []
        self.clip_ids: list[str] = []
        for clip in clips:
            if clip.landmarks is None:
                raise ValueError(f"clip {clip.clip_id}: Diffused Heads' lip loss needs landmarks; this clip has none")
            if clip.num_frames < 2:
                continue
            feats = audio_features(clip.audio)
            n = min(clip.num_frames, len(feats))
            if n < 2:
                continue
            scale = np.array([self.size / clip.video.shape[2], self.size / clip.video.shape[1]], np.float32)
            self.frames.append(resize_frames(clip.video[:n], self.size))
            self.audio.append(np.ascontiguousarray(feats[:n]))
            self.mouths.append((clip.landmarks[:n, MOUTH] * scale).astype(np.float32))
            self.clip_ids.append(clip.clip_id)
        if not self.frames:
            raise ValueError("DiffusedHeadsWindows: no clip with at least 2 frames")
        # every (clip, target frame) pair once: what one pass over the data means (data.datamodule streams this many)
        self.num_windows = int(sum(len(f) for f in self.frames))
        self.length = int(length) if length is not None else self.num_windows

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._generator(index)
        c = int(rng.integers(len(self.frames)))
        frames, audio, mouths = self.frames[c], self.audio[c], self.mouths[c]
        n = len(frames)
        if self.identity_frame == "first":
            ident, gt = 0, int(rng.integers(1, n))  # the target is >= 1, as officially
        else:  # two different frames
            ident = int(rng.integers(n))
            gt = int(rng.integers(n - 1))
            gt += gt >= ident
        motion_ids = [gt - k for k in range(self.n_motion, 0, -1)]
        motion = np.stack([frames[i] if i >= 0 else frames[ident] for i in motion_ids])
        audio_ids = [min(max(gt + d, 0), n - 1) for d in range(-self.m, self.m + 1)]
        return {
            "x0": to_model(frames[gt]),
            "identity": to_model(frames[ident]),
            "motion": to_model(motion),  # (n_motion, 3, S, S); grayscale is taken in the module
            # (2m+1, *features): (2m+1, 80, 16) log-mel windows (mel) or (2m+1, 256) embeddings (sda)
            "audio_features": torch.from_numpy(np.ascontiguousarray(audio[audio_ids])),
            "mouth": torch.from_numpy(mouths[gt]),
            "mouth_identity": torch.from_numpy(mouths[ident]),
        }
