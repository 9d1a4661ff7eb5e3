"""Audio-pose alignment, CAPP-style (VASA-1 section 4.2): pure functions shared by the model and the metric.

VASA-1's "Contrastive Audio and Pose Pretraining" (CAPP) score: a pose-sequence encoder and an audio encoder are
trained jointly, CLIP-style, to tell whether a pose sequence and an audio window belong together (3 s windows in
the paper); the score of a generated clip is how well its poses match its audio. Here the score of a window is the
cosine similarity of its two L2-normalised embeddings, and a clip's value is the mean over its windows.

Pose input per frame (`pose_features`): the head angles (pitch, yaw, roll; degrees) minus the window's mean, and
their first differences, so the encoders see movement rather than where a speaker happens to hold the head.
Audio input per frame (`audio_frame_features`): the 4 Wav2Lip log-mel columns inside each 40 ms video frame.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from data.audio import MELS_PER_FRAME, wav2lip_melspectrogram
from data.clip import frames_for_audio

AUDIO_COLUMNS = 4
AUDIO_DIM = 80 * AUDIO_COLUMNS
POSE_DIM = 6


def audio_frame_features(audio: np.ndarray) -> np.ndarray:
    """float32 [N] 16 kHz -> float32 [T, 320]: frame v's log-mel columns int(3.2 v) .. +3, scaled to [-1, 1]."""
    n_frames = frames_for_audio(len(audio))
    mel = wav2lip_melspectrogram(np.asarray(audio, np.float32))
    starts = (np.arange(n_frames) * MELS_PER_FRAME).astype(np.int64)
    idx = np.minimum(starts[:, None] + np.arange(AUDIO_COLUMNS)[None], mel.shape[1] - 1)
    return (mel[:, idx].transpose(1, 2, 0).reshape(n_frames, -1) / 4.0).astype(np.float32)


def pose_features(angles: np.ndarray, scale_deg: float = 5.0) -> np.ndarray:
    """Head angles [T, 3] (degrees) -> float32 [T, 6]: centred angles and first differences (0 for frame 0),
    divided by `scale_deg` so typical values are O(1)."""
    a = np.asarray(angles, np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"angles must be [T, 3], got {a.shape}")
    centred = a - a.mean(axis=0, keepdims=True)
    vel = np.concatenate([np.zeros((1, 3)), np.diff(a, axis=0)], axis=0)
    return (np.concatenate([centred, vel], axis=1) / scale_deg).astype(np.float32)


def window_starts(n_frames: int, window: int, hop: int) -> list[int]:
    """Starts of the `window`-frame windows every `hop` frames that fit in `n_frames` (empty when none fits)."""
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1, got {window}, {hop}")
    return list(range(0, n_frames - window + 1, hop))


def capp_similarity(pose_emb: torch.Tensor, audio_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of matched rows [B, d] x [B, d] -> [B]."""
    return (F.normalize(pose_emb, dim=-1) * F.normalize(audio_emb, dim=-1)).sum(-1)


def contrastive_loss(pose_emb: torch.Tensor, audio_emb: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """CLIP's symmetric cross-entropy: row i of each side is the other's positive, the rest of the batch negatives."""
    logits = F.normalize(pose_emb, dim=-1) @ F.normalize(audio_emb, dim=-1).T / temperature
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
