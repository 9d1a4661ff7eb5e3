"""LipGAN's training items (LipGAN:train.py `datagen`).

A training item is one frame: the target frame (lower half zeroed for the generator input, full as the L1
target), a reference frame of the same clip at least `min_ref_distance` = 6 frames away (`choose_ip_frame`),
and the audio window centred on the target frame. Clips with fewer than 12 frames are skipped (official). Clip
and frame sampling, and what `fixed` means, are models.common.windows.ClipWindows'.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from data.clip import Clip
from models.common.frames import rgb_to_model
from models.common.windows import ClipWindows
from models.lipgan.audio import chunks, feature_matrix
from models.lipgan.process import lipgan_input

MIN_REF_DISTANCE = 6  # choose_ip_frame: the reference frame is at least 6 frames from the target


class LipGANWindows(ClipWindows):
    """Per-frame LipGAN items: {"face": (6,96,96) [reference, masked target], "target": (3,96,96), "audio":
    (1,12,35) MFCC or (1,80,27) mel, "clip", "frame", "ref"}; BGR [0, 1] like the official crops."""

    def __init__(
        self,
        clips: Sequence[Clip],
        *,
        length: int | None = None,
        fixed: bool = False,
        seed: int = 0,
        audio_features: str = "mfcc",
        frame_offset: int = 0,
        min_ref_distance: int = MIN_REF_DISTANCE,
    ) -> None:
        self.audio_features = audio_features
        self.frame_offset = int(frame_offset)
        self.min_ref_distance = int(min_ref_distance)
        super().__init__(clips, length=length, fixed=fixed, seed=seed)
        if audio_features == "mel":
            self.feats = self.mels  # the Wav2Lip-normalised mel the base class computed
        else:
            by_id = {c.clip_id: c for c in clips}
            self.feats = [feature_matrix(audio_features, by_id[cid].audio) for cid in self.clip_ids]

    def _valid_starts(self, num_frames: int, mel: np.ndarray) -> np.ndarray:
        if num_frames < 2 * self.min_ref_distance:
            return np.zeros(0, np.int64)
        return np.arange(num_frames, dtype=np.int64)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        rng = self._generator(index)
        clip, frame = self._pick(rng)
        faces = self.faces[clip]
        far = np.flatnonzero(np.abs(np.arange(len(faces)) - frame) >= self.min_ref_distance)
        ref = int(rng.choice(far))
        target = rgb_to_model(faces[frame])
        audio = chunks(self.audio_features, self.feats[clip], np.array([frame]), self.frame_offset)[0]
        return {
            "face": lipgan_input(target[None], rgb_to_model(faces[ref])[None])[0],
            "target": target,
            "audio": torch.from_numpy(audio),
            "clip": clip,
            "frame": frame,
            "ref": ref,
        }
