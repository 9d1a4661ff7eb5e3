"""VASA-style motion generator: a transformer encoder that predicts x0 of a window of motion latents [pose, dyn].

VASA-1 section 3.2: the conditions C = [X_pre, A_pre; A, g, d, e] are "concatenated with the noise in the time
dimension" and fed to a transformer encoder (8 layers, d = 512, 8 heads in the paper; `paper` preset). Here the
token sequence is

    [t, g, d, e | X_pre (K) | A_pre (K) | A (W) | X_t (W)]

with a learned frame-position embedding shared by the tokens of one frame (X_pre_k and A_pre_k; A_i and X_t,i),
so attention can pair a frame's audio with its motion, and a learned type embedding per segment. A condition
that is dropped (classifier-free guidance) is replaced by its learned null token; audio frames past a truncated
tail use the null audio token too. The output head reads the W X_t positions.

Audio features: `AUDIO_FEATURES` maps a name to a per-frame feature function (float32 [T, dim] from 16 kHz audio).
"mel" (default, no weights needed) stacks the 4 Wav2Lip log-mel columns that fall in each 40 ms video frame.
VASA-1 used the features of a pretrained speech encoder (wav2vec2); `audio_feature_fn` also takes the frozen
pretrained front ends of models.common.audio_frontends by name (`sda` now; wav2vec2 is not importable here).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from data.audio import MELS_PER_FRAME, wav2lip_melspectrogram
from data.clip import frames_for_audio

MEL_COLUMNS_PER_FRAME = 4  # ceil(3.2): the hop-200 columns centred inside one 640-sample frame


def mel_frame_features(audio: np.ndarray) -> np.ndarray:
    """float32 [N] 16 kHz -> float32 [T, 320]: frame v's log-mel columns int(3.2 v) .. +3, scaled to [-1, 1]."""
    n_frames = frames_for_audio(len(audio))
    mel = wav2lip_melspectrogram(np.asarray(audio, np.float32))  # [80, 1 + N // 200]
    starts = (np.arange(n_frames) * MELS_PER_FRAME).astype(np.int64)
    idx = np.minimum(starts[:, None] + np.arange(MEL_COLUMNS_PER_FRAME)[None], mel.shape[1] - 1)
    return (mel[:, idx].transpose(1, 2, 0).reshape(n_frames, -1) / 4.0).astype(np.float32)


AUDIO_FEATURES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    "mel": (mel_frame_features, 80 * MEL_COLUMNS_PER_FRAME),
}


def audio_feature_fn(name: str) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """(per-frame feature function, feature width) of audio input `name`: one of AUDIO_FEATURES, or a frozen
    pretrained front end (models.common.audio_frontends; its registered weights are needed when it runs)."""
    if name in AUDIO_FEATURES:
        return AUDIO_FEATURES[name]
    from models.common.audio_frontends import AUDIO_FRONTENDS, audio_feature_extractor, audio_frontend_class

    frozen = [n for n in AUDIO_FRONTENDS if not audio_frontend_class(n).trainable]
    if name not in frozen:
        raise KeyError(f"unknown audio features {name!r}; valid: {sorted([*AUDIO_FEATURES, *frozen])}")
    dim = audio_frontend_class(name).fixed_dim
    assert dim is not None, f"frozen audio front end {name!r} has no fixed width"
    return (lambda audio: audio_feature_extractor(name)(audio)), int(dim)


CONDITIONS = ("audio", "prev", "gaze", "distance", "emotion")


@dataclass
class MotionConditions:
    """Conditions of one batch of windows; `keep[name]` is a [B] bool, False = the condition is dropped (null).

    audio [B,W,A]; audio_valid [B,W] (False past a truncated tail or the clip's end); prev_motion [B,K,M];
    prev_audio [B,K,A]; gaze [B,2] (theta, phi, radians); distance [B,1]; emotion [B,E].
    """

    audio: torch.Tensor
    audio_valid: torch.Tensor
    prev_motion: torch.Tensor
    prev_audio: torch.Tensor
    gaze: torch.Tensor
    distance: torch.Tensor
    emotion: torch.Tensor
    keep: dict[str, torch.Tensor]

    def repeat_with_dropped(self, names: list[str]) -> MotionConditions:
        """The batch, then one copy per name with that condition dropped (for batched CFG passes)."""
        copies = [self.keep] + [{**self.keep, n: torch.zeros_like(self.keep[n])} for n in names]
        n = len(copies)
        return MotionConditions(
            audio=self.audio.repeat(n, 1, 1),
            audio_valid=self.audio_valid.repeat(n, 1),
            prev_motion=self.prev_motion.repeat(n, 1, 1),
            prev_audio=self.prev_audio.repeat(n, 1, 1),
            gaze=self.gaze.repeat(n, 1),
            distance=self.distance.repeat(n, 1),
            emotion=self.emotion.repeat(n, 1),
            keep={k: torch.cat([c[k] for c in copies]) for k in CONDITIONS},
        )


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


class AudioEncoder(nn.Module):
    """Per-frame features [B,T,A] -> tokens [B,T,d]: a frame MLP and a 5-frame temporal convolution (+-80 ms)."""

    def __init__(self, audio_dim: int, d_model: int) -> None:
        super().__init__()
        self.frame = nn.Sequential(nn.Linear(audio_dim, d_model), nn.SiLU())
        self.temporal = nn.Conv1d(d_model, d_model, 5, padding=2)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = self.frame(feats)
        h = h + torch.nn.functional.silu(self.temporal(h.transpose(1, 2)).transpose(1, 2))
        return self.out(h)


class MotionDiT(nn.Module):
    """H(X_t, t, C) -> X_0 for windows of W motion latents of size `motion_dim` (see the module docstring)."""

    def __init__(
        self,
        motion_dim: int,
        audio_dim: int,
        window: int = 50,
        context: int = 10,
        d_model: int = 512,
        layers: int = 8,
        heads: int = 8,
        emotion_dim: int = 8,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.motion_dim, self.audio_dim, self.window, self.context = motion_dim, audio_dim, window, context
        self.emotion_dim = emotion_dim
        d = d_model
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.gaze_in = nn.Linear(2, d)
        self.distance_in = nn.Linear(1, d)
        self.emotion_in = nn.Linear(emotion_dim, d)
        self.motion_in = nn.Linear(motion_dim, d)
        self.prev_motion_in = nn.Linear(motion_dim, d)
        self.audio_enc = AudioEncoder(audio_dim, d)
        nulls = ("audio", "prev_motion", "prev_audio", "gaze", "distance", "emotion")
        self.null = nn.ParameterDict({k: nn.Parameter(torch.randn(d) * 0.02) for k in nulls})
        self.frame_pos = nn.Parameter(torch.randn(context + window, d) * 0.02)
        self.type_emb = nn.Parameter(torch.randn(8, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, heads, dim_feedforward=4 * d, dropout=dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, motion_dim)

    @staticmethod
    def _choose(keep: torch.Tensor, tokens: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
        k = keep.view(-1, *([1] * (tokens.dim() - 1))).to(tokens.dtype)
        return k * tokens + (1.0 - k) * null

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: MotionConditions) -> torch.Tensor:
        b, w, _ = x_t.shape
        if w != self.window or cond.prev_motion.shape[1] != self.context:
            raise ValueError(
                f"MotionDiT: expected windows of {self.window} frames with {self.context} context frames, "
                f"got {w} and {cond.prev_motion.shape[1]}"
            )
        keep = cond.keep
        temb = self.time_mlp(timestep_embedding(t, self.type_emb.shape[1]))
        g = self._choose(keep["gaze"], self.gaze_in(cond.gaze), self.null["gaze"])
        dist = self._choose(keep["distance"], self.distance_in(cond.distance), self.null["distance"])
        emo = self._choose(keep["emotion"], self.emotion_in(cond.emotion), self.null["emotion"])
        globals_ = torch.stack([temb, g, dist, emo], dim=1) + self.type_emb[:4]
        pos_prev, pos_cur = self.frame_pos[: self.context], self.frame_pos[self.context :]
        xp = self._choose(keep["prev"], self.prev_motion_in(cond.prev_motion), self.null["prev_motion"])
        ap = self._choose(keep["prev"], self.audio_enc(cond.prev_audio), self.null["prev_audio"])
        audio_ok = (keep["audio"][:, None] & cond.audio_valid).to(x_t.dtype).unsqueeze(-1)
        # frames past a truncated tail are silenced before the encoder's temporal convolution sees them
        audio = cond.audio * cond.audio_valid.unsqueeze(-1).to(cond.audio.dtype)
        a = audio_ok * self.audio_enc(audio) + (1.0 - audio_ok) * self.null["audio"]
        x = self.motion_in(x_t) + temb[:, None]
        seq = torch.cat(
            [
                globals_,
                xp + pos_prev + self.type_emb[4],
                ap + pos_prev + self.type_emb[5],
                a + pos_cur + self.type_emb[6],
                x + pos_cur + self.type_emb[7],
            ],
            dim=1,
        )
        h = self.encoder(seq)[:, -w:]
        return self.out(self.norm(h))
