"""Wav2Lip generator training windows (Wav2Lip:wav2lip_train.py `Dataset`).

Items are model-ready tensors in Wav2Lip's convention (BGR in [0, 1], models.common.frames); clip and window
sampling, and what `fixed` means, are models.common.windows.ClipWindows'.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from data.audio import mel_window
from data.clip import Clip
from models.common.frames import LOWER_HALF, rgb_to_model
from models.common.windows import SYNC_T, ClipWindows


class Wav2LipWindows(ClipWindows):
    """Generator training windows (Wav2Lip:wav2lip_train.py `Dataset`).

    Item: {"face": float32 (6, 5, 96, 96) = [target window with rows 48-95 zeroed, reference window from a
    random other start of the same clip], BGR [0,1]; "target": (3, 5, 96, 96); "mel": (1, 80, 16) the
    window's expert mel (column int(80 * f0 / 25)); "mels": (5, 1, 80, 16) per-frame mels, frame f's starting
    at int(80 * (f + mel_frame_offset) / 25); "clip", "start", "ref_start"}.

    `mel_frame_offset=-1` is the official training alignment (`get_segmented_mels` converts the start to
    1-indexing and subtracts 2), one frame (40 ms) earlier than inference.py, which conditions output frame i
    on the chunk starting at int(80 * i / 25), i.e. offset 0. Windows whose per-frame mels would start before
    the audio (f0 = 0 for offset -1) or run past its end are rejected, as officially.
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        *,
        length: int | None = None,
        fixed: bool = False,
        seed: int = 0,
        mel_frame_offset: int = -1,
    ) -> None:
        self.mel_frame_offset = int(mel_frame_offset)
        super().__init__(clips, length=length, fixed=fixed, seed=seed)

    def _valid_starts(self, num_frames: int, mel: np.ndarray) -> np.ndarray:
        def ok(f0: int) -> bool:
            if mel_window(mel, f0) is None:
                return False
            return all(mel_window(mel, f + self.mel_frame_offset) is not None for f in range(f0, f0 + SYNC_T))

        return np.array([f for f in range(num_frames - SYNC_T + 1) if ok(f)], dtype=np.int64)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        rng = self._generator(index)
        clip, start = self._pick(rng)
        faces = self.faces[clip]
        ref_start = self._other_start(rng, len(faces), start, 1)
        target = rgb_to_model(faces[start : start + SYNC_T]).transpose(0, 1)  # (3, 5, 96, 96)
        reference = rgb_to_model(faces[ref_start : ref_start + SYNC_T]).transpose(0, 1)
        masked = target.clone()
        masked[:, :, LOWER_HALF] = 0.0
        mels = torch.stack(
            [self._mel(clip, f + self.mel_frame_offset) for f in range(start, start + SYNC_T)]
        ).unsqueeze(1)
        return {
            "face": torch.cat([masked, reference], dim=0),
            "target": target,
            "mel": self._mel(clip, start).unsqueeze(0),
            "mels": mels,
            "clip": clip,
            "start": start,
            "ref_start": ref_start,
        }
