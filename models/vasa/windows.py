"""Training items of the two VASA-style stages (VasaFaceModule and VasaModule `train_dataset`).

- `FacePairWindows` (stage 1): two frames of one clip (source i, driver j) and a frame of another speaker, at the
  face model's resolution, RGB float [-1, 1], with landmarks in normalised coordinates where the corpus has them.
- `MotionWindows` (stage 2): windows of W motion latents [pose, dyn] extracted by the frozen stage-1 encoders, the
  per-frame audio features, the previous K frames of both, and the window's gaze and head-distance labels.

Gaze and distance labels (VASA-1 took them from L2CS-Net and a 3D face reconstruction; neither exists here) come
from the 68 landmarks (the corpus's, or the face model's landmark head where a corpus has none):
- gaze (theta, phi), radians: direction of the eye centre (mean of landmarks 36-47) seen from a pinhole camera
  on the frame centre with a focal length of one frame width; theta > 0 = towards +x (right in the image),
  phi > 0 = towards +y (down). The drawn synthetic eyes look straight out of the head, so this is where the
  face looks; on real video it is a head-direction proxy, not eye gaze.
- distance: 1 / inter-ocular distance (outer eye corners 36 and 45, in frame widths): proportional to the
  head-to-camera distance for a fixed face size.
Both are averaged over the window ("main" gaze direction, as the paper's per-clip value).
The synthetic corpus has no emotion labels: emotion is always the null condition there.

Randomness follows data.windows: `fixed=True` makes item i a function of (seed, i) alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from data.clip import Clip
from data.windows import SeededItems

EYES = slice(36, 48)


def to_model_image(frames: np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 RGB [..., H, W, 3] -> float32 RGB [..., 3, R, R] in [-1, 1] (the face model's boundary)."""
    frames = np.asarray(frames)
    flat = frames.reshape(-1, *frames.shape[-3:])
    if flat.shape[1:3] != (resolution, resolution):
        flat = np.stack([cv2.resize(f, (resolution, resolution), interpolation=cv2.INTER_AREA) for f in flat])
    t = torch.from_numpy(np.ascontiguousarray(flat)).movedim(-1, -3).float().div_(127.5).sub_(1.0)
    return t.reshape(*frames.shape[:-3], 3, resolution, resolution)


def from_model_image(x: torch.Tensor) -> np.ndarray:
    """float RGB [..., 3, R, R] in [-1, 1] -> uint8 RGB [..., R, R, 3]."""
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round_().to(torch.uint8).movedim(-3, -1).cpu().numpy()


def normalise_landmarks(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixel landmarks (pixel centres on integers) -> [-1, 1] over the frame (align_corners convention)."""
    scale = np.array([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], np.float32)
    return (np.asarray(landmarks, np.float32) * scale - 1.0).astype(np.float32)


def gaze_distance_from_landmarks(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised landmarks [..., 68, 2] -> gaze (theta, phi) [..., 2] radians and distance [...] (module doc)."""
    eye = lm[..., EYES, :].mean(axis=-2)
    # normalised units are half frame widths; the focal length is one frame width
    gaze = np.arctan(eye / 2.0)
    interocular = np.linalg.norm(lm[..., 45, :] - lm[..., 36, :], axis=-1) / 2.0
    return gaze.astype(np.float32), (1.0 / np.maximum(interocular, 1e-3)).astype(np.float32)


class _RandomItems(SeededItems, Dataset):
    def __init__(self, length: int, fixed: bool, seed: int) -> None:
        self.length, self.fixed, self.seed = int(length), bool(fixed), int(seed)
        self.num_windows = self.length  # what a stream draws in proportion to (data.datamodule.StreamingWindows)

    def __len__(self) -> int:
        return self.length


class FacePairWindows(_RandomItems):
    """Stage-1 items: {"src", "drv", "other": float32 [3,R,R]; "src_lm", "drv_lm": [68,2] (zeros if unknown);
    "has_lm": bool; "speaker", "other_speaker": int}. "other" is from another speaker when the split has one."""

    def __init__(
        self,
        clips: Sequence[Clip],
        *,
        resolution: int = 64,
        length: int | None = None,
        fixed: bool = False,
        seed: int = 0,
    ) -> None:
        usable = [c for c in clips if c.num_frames >= 2]
        if not usable:
            raise ValueError(f"FacePairWindows: none of the {len(clips)} clips has 2 frames")
        self.resolution = int(resolution)
        speakers = sorted({c.speaker_id for c in usable})
        self.faces: list[np.ndarray] = []
        self.landmarks: list[np.ndarray | None] = []
        self.speaker: list[int] = []
        for c in usable:
            frames = np.asarray(c.video)
            if frames.shape[1:3] != (resolution, resolution):
                size = (resolution, resolution)
                frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
            self.faces.append(np.ascontiguousarray(frames))
            lm = None if c.landmarks is None else normalise_landmarks(c.landmarks, *c.video.shape[1:3])
            self.landmarks.append(lm)
            self.speaker.append(speakers.index(c.speaker_id))
        self.by_other: list[np.ndarray] = []
        spk = np.array(self.speaker)
        for s in spk:
            others = np.flatnonzero(spk != s)
            self.by_other.append(others if len(others) else np.arange(len(spk)))
        super().__init__(length if length is not None else sum(len(f) for f in self.faces), fixed, seed)

    def _frame(self, clip: int, frame: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        img = to_model_image(self.faces[clip][frame], self.resolution)
        lm = self.landmarks[clip]
        if lm is None:
            return img, torch.zeros(68, 2), False
        return img, torch.from_numpy(lm[frame]), True

    def __getitem__(self, index: int) -> dict:
        rng = self._generator(index)
        clip = int(rng.integers(len(self.faces)))
        i, j = (int(v) for v in rng.choice(len(self.faces[clip]), 2, replace=False))
        other = int(rng.choice(self.by_other[clip]))
        src, src_lm, has_lm = self._frame(clip, i)
        drv, drv_lm, _ = self._frame(clip, j)
        oth, _, _ = self._frame(other, int(rng.integers(len(self.faces[other]))))
        return {
            "src": src,
            "drv": drv,
            "other": oth,
            "src_lm": src_lm,
            "drv_lm": drv_lm,
            "has_lm": has_lm,
            "speaker": self.speaker[clip],
            "other_speaker": self.speaker[other],
        }


class MotionWindows(_RandomItems):
    """Stage-2 items: {"motion" [W,M], "audio" [W,A], "prev_motion" [K,M], "prev_audio" [K,A], "has_prev",
    "gaze" [2], "distance" [1], "emotion" [E], "has_emotion"}; motion is raw (the module normalises it).

    Every clip is encoded once here by the frozen stage-1 encoders (`face_net`, a FaceLatentNet).
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        *,
        face_net: torch.nn.Module,
        window: int,
        context: int,
        audio_features: str = "mel",
        emotion_dim: int = 8,
        length: int | None = None,
        fixed: bool = False,
        seed: int = 0,
        encode_batch: int = 64,
    ) -> None:
        from models.vasa.motion_dit import audio_feature_fn

        feature_fn, _ = audio_feature_fn(audio_features)
        self.window, self.context, self.emotion_dim = int(window), int(context), int(emotion_dim)
        self.motion: list[np.ndarray] = []
        self.audio: list[np.ndarray] = []
        self.gaze: list[np.ndarray] = []
        self.distance: list[np.ndarray] = []
        self.skipped: list[str] = []
        was_training = face_net.training
        face_net.eval()
        try:
            for c in clips:
                if c.num_frames < self.window:
                    self.skipped.append(c.clip_id)
                    continue
                motion, lm = encode_clip(face_net, c.video, encode_batch)
                if c.landmarks is not None:
                    lm = normalise_landmarks(c.landmarks, *c.video.shape[1:3])
                gaze, dist = gaze_distance_from_landmarks(lm)
                feats = feature_fn(c.audio)
                t = min(len(motion), len(feats))
                self.motion.append(motion[:t])
                self.audio.append(feats[:t])
                self.gaze.append(gaze[:t])
                self.distance.append(dist[:t])
        finally:
            face_net.train(was_training)
        if not self.motion:
            raise ValueError(
                f"MotionWindows: none of the {len(self.skipped)} clips has the {self.window} frames of one window"
            )
        super().__init__(length if length is not None else sum(len(m) for m in self.motion), fixed, seed)

    def stats(self) -> dict[str, np.ndarray]:
        """Per-dimension mean and std of motion, gaze and distance over every frame (the normalisation)."""
        out = {}
        for name, arrs in (("motion", self.motion), ("gaze", self.gaze), ("distance", self.distance)):
            x = np.concatenate(arrs).reshape(sum(len(a) for a in arrs), -1).astype(np.float64)
            out[f"{name}_mean"] = x.mean(0).astype(np.float32)
            out[f"{name}_std"] = np.maximum(x.std(0), 1e-4).astype(np.float32)
        return out

    def __getitem__(self, index: int) -> dict:
        rng = self._generator(index)
        clip = int(rng.integers(len(self.motion)))
        n = len(self.motion[clip])
        start = int(rng.integers(n - self.window + 1))
        end = start + self.window
        k = self.context
        has_prev = start >= k
        sl = slice(start - k, start) if has_prev else slice(0, k)
        m_dim, a_dim = self.motion[clip].shape[1], self.audio[clip].shape[1]
        prev_m = self.motion[clip][sl] if has_prev else np.zeros((k, m_dim), np.float32)
        prev_a = self.audio[clip][sl] if has_prev else np.zeros((k, a_dim), np.float32)
        return {
            "motion": torch.from_numpy(self.motion[clip][start:end]),
            "audio": torch.from_numpy(self.audio[clip][start:end]),
            "prev_motion": torch.from_numpy(np.ascontiguousarray(prev_m)),
            "prev_audio": torch.from_numpy(np.ascontiguousarray(prev_a)),
            "has_prev": has_prev,
            "gaze": torch.from_numpy(self.gaze[clip][start:end].mean(0)),
            "distance": torch.tensor([self.distance[clip][start:end].mean()]),
            "emotion": torch.zeros(self.emotion_dim),
            "has_emotion": False,
        }


@torch.no_grad()
def encode_clip(face_net, video: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(motion [T, 6+Z], landmark-head landmarks [T, 68, 2] normalised) of a uint8 video, frames in batches."""
    dev = next(face_net.parameters()).device
    motions, lms = [], []
    for s in range(0, len(video), batch):
        img = to_model_image(video[s : s + batch], face_net.resolution).to(dev)
        z_id, (pose, dyn) = face_net.identity(img), face_net.motion_of(img)
        motions.append(torch.cat([pose, dyn], 1).cpu())
        lms.append(face_net.landmarks(z_id, pose, dyn).cpu())
    return torch.cat(motions).numpy(), torch.cat(lms).numpy()
