"""Training windows for the Wav2Lip family: lip-sync expert pairs and generator windows.

Both datasets follow the official loaders (Wav2Lip:color_syncnet_train.py and wav2lip_train.py `Dataset`):
pick a clip uniformly, then a random 5-frame window in it. Work that does not depend on the window is done
once in `__init__`: each clip's frames are resized to 96x96 and its mel spectrogram is computed, so an item
costs a few slices.

Faces: the synthetic corpus renders face crops (the whole frame is the face box), so the face crop is the
whole frame resized to 96x96. Items are model-ready tensors in Wav2Lip's convention (BGR in [0, 1], as the
official code reads frames with cv2 and divides by 255); `rgb_to_model` / `model_to_rgb` are the only places
where that conversion happens (SPEC section 1: colour conversions at the model boundary only).

Randomness: `fixed=True` (validation) makes item i a function of (seed, i) alone, whatever the worker
layout; `fixed=False` (training) draws from one generator per process, seeded from `seed` in the main
process and from the DataLoader's per-worker seed in workers (which Lightning's `seed_everything(workers=True)`
makes reproducible), so windows differ between epochs and workers but runs repeat.
"""

from __future__ import annotations

import abc
import os
import warnings
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from data.audio import mel_window, wav2lip_melspectrogram
from data.clip import Clip

FACE_SIZE = 96  # Wav2Lip hparams.img_size
SYNC_T = 5  # Wav2Lip hparams.syncnet_T: frames per window
LOWER_HALF = slice(FACE_SIZE // 2, FACE_SIZE)  # rows 48-95: the mouth region the expert sees / the generator redraws


def resize_faces(frames: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 [T, size, size, 3]; INTER_AREA, which averages when shrinking."""
    if frames.shape[1:3] == (size, size):
        return frames
    out = np.empty((frames.shape[0], size, size, 3), np.uint8)
    for i, frame in enumerate(frames):
        out[i] = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    return out


def rgb_to_model(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB [..., H, W, 3] -> float32 BGR [..., 3, H, W] in [0, 1], Wav2Lip's input convention."""
    with warnings.catch_warnings():
        # read-only memory-mapped clips are fine here: flip() copies before anything could write
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        t = torch.as_tensor(frames)
    return t.flip(-1).movedim(-1, -3).float().div_(255.0)


def model_to_rgb(x: torch.Tensor) -> np.ndarray:
    """float BGR [..., 3, H, W] in [0, 1] -> uint8 RGB [..., H, W, 3].

    Rounds, where the official inference.py truncates (`(pred * 255).astype(np.uint8)`): truncation maps
    v / 255 * 255 = v - 1e-5 to v - 1, darkening every pixel by half a level on average.
    """
    t = (x.detach().float().clamp(0.0, 1.0) * 255.0).round_().to(torch.uint8)
    return t.movedim(-3, -1).flip(-1).cpu().numpy()


class SeededItems:
    """The random stream of a training dataset: `fixed` items are seeded by (seed, index), so validation batches
    repeat; `keyed` items too, without the other effects `fixed` has on validation items (the training data module
    sets it and numbers items by batch, `data.sampling.StepSampler`, so a resumed run reads what an uninterrupted
    one would); otherwise each DataLoader worker process draws from its own stream, seeded from its worker seed.
    Subclasses set `fixed` and `seed`."""

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


class _ClipWindows(SeededItems, Dataset, abc.ABC):
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


class SyncExpertWindows(_ClipWindows):
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


class Wav2LipWindows(_ClipWindows):
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


WINDOWS: dict[str, type[_ClipWindows]] = {"sync_expert": SyncExpertWindows, "wav2lip": Wav2LipWindows}
