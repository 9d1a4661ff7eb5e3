"""The CAPP-style audio/head-pose network (VASA-1 section 4.2) scored by `metrics.pose`, and its saved form.

VASA-1 trains a 6-layer transformer pose-sequence encoder and a wav2vec2-initialised audio encoder CLIP-style on
2k hours of talking video (3 s windows). No CAPP weights were released; `metrics.calibration.capp` trains this
network on a corpus and registers it as `capp-<corpus>-<sha8>`. The audio encoder here starts from scratch on
log-mel frames (no wav2vec2 weights in this project). Features: `metrics.functional.pose`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from metrics.base import ClipScoreError
from metrics.functional.pose import (
    AUDIO_DIM,
    POSE_DIM,
    audio_frame_features,
    capp_similarity,
    pose_features,
    window_starts,
)

#: network name of CAPP weights in the store (calibrated ones are registered as `capp-<corpus>-<sha8>`)
CAPP_NETWORK = "capp"


@dataclass
class CappConfig:
    """CAPP model and training settings; defaults follow VASA-1 (3 s windows, 6-layer pose transformer)."""

    window: int = 75  # frames (3 s at 25 fps)
    hop: int = 25
    d_model: int = 128
    pose_layers: int = 6
    audio_layers: int = 2
    heads: int = 4
    embed_dim: int = 64
    temperature: float = 0.1
    lr: float = 1e-3
    batch_size: int = 32


class _SequenceEncoder(nn.Module):
    def __init__(self, in_dim: int, window: int, d: int, layers: int, heads: int, out: int, conv: bool) -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, d)
        self.conv = nn.Conv1d(d, d, 5, padding=2) if conv else None
        self.pos = nn.Parameter(torch.randn(window, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(d, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        if self.conv is not None:
            h = h + torch.nn.functional.silu(self.conv(h.transpose(1, 2)).transpose(1, 2))
        out: torch.Tensor = self.out(self.encoder(h + self.pos[: h.shape[1]]).mean(1))
        return out


class CappNet(nn.Module):
    """(pose features [B,W,6], audio features [B,W,320]) -> (pose embedding, audio embedding), [B, embed_dim] each."""

    def __init__(self, cfg: CappConfig | None = None) -> None:
        super().__init__()
        c = self.cfg = cfg or CappConfig()
        self.pose = _SequenceEncoder(POSE_DIM, c.window, c.d_model, c.pose_layers, c.heads, c.embed_dim, False)
        self.audio = _SequenceEncoder(AUDIO_DIM, c.window, c.d_model, c.audio_layers, c.heads, c.embed_dim, True)

    def forward(self, pose: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pose(pose), self.audio(audio)

    @torch.no_grad()
    def score(self, angles: np.ndarray, audio: np.ndarray) -> float:
        """Mean window similarity of head angles [T, 3] (degrees) with audio float32 [N] 16 kHz."""
        c = self.cfg
        feats = audio_frame_features(audio)
        t = min(len(angles), len(feats))
        starts = window_starts(t, c.window, c.hop)
        if not starts:
            raise ClipScoreError(f"CAPP needs at least {c.window} frames, clip has {t}")
        pose = torch.from_numpy(np.stack([pose_features(angles[s : s + c.window]) for s in starts]))
        aud = torch.from_numpy(np.stack([feats[s : s + c.window] for s in starts]))
        dev = next(self.parameters()).device
        was = self.training
        self.eval()
        try:
            pe, ae = self(pose.to(dev), aud.to(dev))
        finally:
            self.train(was)
        return float(capp_similarity(pe, ae).mean())


def capp_blob(net: CappNet) -> dict[str, Any]:
    return {"config": dataclasses.asdict(net.cfg), "state_dict": net.state_dict()}


def capp_from_blob(blob: dict[str, Any]) -> CappNet:
    net = CappNet(CappConfig(**blob["config"]))
    net.load_state_dict(blob["state_dict"])
    return net.eval()
