"""Training pairs of Wav2Lip's lip-sync expert (Wav2Lip:color_syncnet_train.py `Dataset`).

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


class SyncExpertWindows(ClipWindows):
    """Pairs for the lip-sync expert (Wav2Lip:color_syncnet_train.py `Dataset`).

    Item: {"face": float32 (15, 48, 96) = lower halves (rows 48-95) of 5 consecutive 96x96 frames, BGR [0,1],
    channel 3*t + c; "mel": float32 (1, 80, 16) starting at mel column int(80 * f0 / 25); "label": 1.0 in sync,
    0.0 not; "clip", "start" (audio window start f0), "face_start" (video window start)}.

    Positives and negatives are 50/50 (fixed mode: exactly alternating). A negative keeps the anchor's audio
    and takes another 5-frame window of the same clip. Officially any other start is allowed
    (`negative_min_shift=1`), but a window one frame away shares 4 of its 5 frames and ~80 % of its mel
    columns with the anchor, so it is a near-positive labelled 0; `negative_min_shift=2` drops those.
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        *,
        length: int | None = None,
        fixed: bool = False,
        seed: int = 0,
        negative_min_shift: int = 1,
    ) -> None:
        if negative_min_shift < 1:
            raise ValueError(f"negative_min_shift must be >= 1, got {negative_min_shift}")
        self.negative_min_shift = int(negative_min_shift)
        super().__init__(clips, length=length, fixed=fixed, seed=seed)

    def _keep(self, faces: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(faces[:, LOWER_HALF])

    def _valid_starts(self, num_frames: int, mel: np.ndarray) -> np.ndarray:
        return np.array([f for f in range(num_frames - SYNC_T + 1) if mel_window(mel, f) is not None], dtype=np.int64)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        rng = self._generator(index)
        clip, start = self._pick(rng)
        positive = (index % 2 == 0) if self.fixed else bool(rng.random() < 0.5)
        faces = self.faces[clip]
        face_start = start if positive else self._other_start(rng, len(faces), start, self.negative_min_shift)
        window = rgb_to_model(faces[face_start : face_start + SYNC_T])  # (5, 3, 48, 96)
        return {
            "face": window.reshape(SYNC_T * 3, *window.shape[2:]),
            "mel": self._mel(clip, start).unsqueeze(0),
            "label": torch.tensor(1.0 if positive else 0.0),
            "clip": clip,
            "start": start,
            "face_start": face_start,
        }
