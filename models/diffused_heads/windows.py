"""Training samples for Diffused Heads (official datasets/datasets.py, reference/official_repos.md section 4.4).

Item: a ground-truth frame, an identity frame (random frame of the same clip in training, as `identity_frame:
random`), the `n_motion_frames` frames right before the ground truth (the identity frame pads before the clip
start), log-mel windows of frames gt-m .. gt+m (edge-clamped), and the mouth landmarks (48-67) of the target frame
and of the identity frame (the official loader reads the identity frame's; `lip_landmarks` picks which the loss
uses). Frames are resized once per clip to the model's internal size and kept as uint8; colour conversion to
[-1, 1] happens here, at the model boundary (SPEC section 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from data.audio import MELS_PER_FRAME, wav2lip_melspectrogram
from data.clip import Clip
from data.windows import WINDOWS, SeededItems
from models.diffused_heads.nets import MEL_COLUMNS

MOUTH = slice(48, 68)  # iBUG-68 mouth points


def frame_mel_windows(audio: np.ndarray, n_frames: int, columns: int = MEL_COLUMNS) -> np.ndarray:
    """float32 [n_frames, 80, columns]: the log-mel columns centred on each video frame (edge-padded)."""
    mel = wav2lip_melspectrogram(audio)
    half = columns // 2
    padded = np.pad(mel, ((0, 0), (half, half + columns)), mode="edge")
    out = np.empty((n_frames, mel.shape[0], columns), np.float32)
    for f in range(n_frames):
        centre = int(round((f + 0.5) * MELS_PER_FRAME))  # the middle of frame f's 40 ms
        out[f] = padded[:, centre : centre + columns]
    return out


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 [T, size, size, 3] with INTER_AREA (averages when shrinking, no aliasing).

    Not `data.windows.resize_faces`: `data.windows` registers this module's dataset, so importing it here would
    be circular.
    """
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
        self.frames: list[np.ndarray] = []
        self.mels: list[np.ndarray] = []
        self.mouths: list[np.ndarray] = []
        self.clip_ids: list[str] = []
        for clip in clips:
            if clip.landmarks is None:
                raise ValueError(f"clip {clip.clip_id}: Diffused Heads' lip loss needs landmarks; this clip has none")
            if clip.num_frames < 2:
                continue
            scale = np.array([self.size / clip.video.shape[2], self.size / clip.video.shape[1]], np.float32)
            self.frames.append(resize_frames(clip.video, self.size))
            self.mels.append(frame_mel_windows(clip.audio, clip.num_frames))
            self.mouths.append((clip.landmarks[:, MOUTH] * scale).astype(np.float32))
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
        frames, mels, mouths = self.frames[c], self.mels[c], self.mouths[c]
        n = len(frames)
        ident = 0 if self.identity_frame == "first" else int(rng.integers(n))
        # with the first frame as identity the target is >= 1, as officially
        gt = int(rng.integers(1 if self.identity_frame == "first" else 0, n))
        motion_ids = [gt - k for k in range(self.n_motion, 0, -1)]
        motion = np.stack([frames[i] if i >= 0 else frames[ident] for i in motion_ids])
        audio_ids = [min(max(gt + d, 0), n - 1) for d in range(-self.m, self.m + 1)]
        return {
            "x0": to_model(frames[gt]),
            "identity": to_model(frames[ident]),
            "motion": to_model(motion),  # (n_motion, 3, S, S); grayscale is taken in the module
            "mels": torch.from_numpy(np.ascontiguousarray(mels[audio_ids])),  # (2m+1, 80, 16)
            "mouth": torch.from_numpy(mouths[gt]),
            "mouth_identity": torch.from_numpy(mouths[ident]),
        }


# the model declares its training items: `data` never imports `models` (DESIGN.md), so the entry is added here,
# when the LightningModule (which imports this module) is loaded
WINDOWS.setdefault("diffused_heads", DiffusedHeadsWindows)
