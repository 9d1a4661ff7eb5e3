"""Window machinery shared by the Wav2Lip family's training datasets (Wav2Lip, its lip-sync expert, LipGAN).

The official loaders (Wav2Lip:color_syncnet_train.py and wav2lip_train.py `Dataset`, LipGAN:train.py `datagen`)
pick a clip uniformly, then a random window in it. Work that does not depend on the window is done once in
`__init__`: each clip's frames are resized to the 96x96 face crop (models.common.frames) and its Wav2Lip mel
spectrogram is computed, so an item costs a few slices.

Faces: the synthetic corpus renders face crops (the whole frame is the face box), so the face crop is the whole
frame resized to 96x96. Randomness is `data.windows.SeededItems`: `fixed=True` makes item i a function of
(seed, i) alone.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from data.audio import mel_window, wav2lip_melspectrogram
from data.clip import Clip
from data.windows import SeededItems
from models.common.frames import resize_faces

SYNC_T = 5  # Wav2Lip hparams.syncnet_T: frames per window


class ClipWindows(SeededItems, Dataset, abc.ABC):
    """Per-clip 96x96 frames and mel spectrogram, precomputed; subclasses define valid starts and items."""

    def __init__(self, clips: Sequence[Clip], *, length: int | None = None, fixed: bool = False, seed: int = 0) -> None:
        self.seed = int(seed)
        self.fixed = bool(fixed)
        self.faces: list[np.ndarray] = []
        self.mels: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []
        self.clip_ids: list[str] = []
        self.skipped: list[str] = []
        for clip in clips:
            mel = wav2lip_melspectrogram(clip.audio)
            starts = self._valid_starts(clip.num_frames, mel)
            # a second window start is needed for the negative / reference window
            if len(starts) == 0 or clip.num_frames < SYNC_T + 1:
                self.skipped.append(clip.clip_id)
                continue
            self.faces.append(self._keep(resize_faces(clip.video)))
            self.mels.append(mel)
            self.starts.append(starts)
            self.clip_ids.append(clip.clip_id)
        if not self.faces:
            raise ValueError(
                f"{type(self).__name__}: none of the {len(self.skipped)} clips is long enough for a "
                f"{SYNC_T}-frame window with its audio"
            )
        self.num_windows = int(sum(len(s) for s in self.starts))
        self.length = int(length) if length is not None else self.num_windows

    def _keep(self, faces: np.ndarray) -> np.ndarray:
        return faces

    @abc.abstractmethod
    def _valid_starts(self, num_frames: int, mel: np.ndarray) -> np.ndarray:
        """Window start frames whose frames and audio windows all exist."""

    def __len__(self) -> int:
        return self.length

    def _pick(self, rng: np.random.Generator) -> tuple[int, int]:
        clip = int(rng.integers(len(self.faces)))
        start = int(rng.choice(self.starts[clip]))
        return clip, start

    @staticmethod
    def _other_start(rng: np.random.Generator, num_frames: int, start: int, min_shift: int) -> int:
        # any window start whose 5 frames exist and that lies at least `min_shift` frames from `start`
        candidates = np.arange(num_frames - SYNC_T + 1)
        candidates = candidates[np.abs(candidates - start) >= min_shift]
        if len(candidates) == 0:  # clip too short for the requested shift: take the farthest window
            return 0 if start > (num_frames - SYNC_T) / 2 else num_frames - SYNC_T
        return int(rng.choice(candidates))

    def _mel(self, clip: int, frame: int) -> torch.Tensor:
        m = mel_window(self.mels[clip], frame)
        assert m is not None, "window start was validated in __init__"
        return torch.from_numpy(np.ascontiguousarray(m))
