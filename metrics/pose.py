"""CAPP-style audio-pose alignment score (VASA-1 section 4.2), trainable on any corpus with landmarks.

VASA-1 trains a 6-layer transformer pose-sequence encoder and a wav2vec2-initialised audio encoder CLIP-style on
2k hours of talking video (3 s windows) and scores a generated clip by how well its head poses match its audio.
No CAPP weights were released; `train_capp` trains the same kind of model on a corpus (the synthetic corpus's truth
landmarks, or any landmark source) and `calibrate_capp` registers it in the weights store as
`capp-<corpus>-<sha8>`, calibrated on that corpus. The audio encoder here starts from scratch on log-mel frames
(no wav2vec2 weights in this project). Functional core: `metrics.functional.pose`; head angles from landmarks:
`metrics.functional.headpose.head_angles`.

Value of a clip: the mean over its windows (window frames, every hop frames) of the cosine between the pose and
audio embeddings; higher = poses more like the ones that go with this audio. A clip shorter than one window cannot
be scored (counted in n_failed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from metrics.backbones.landmarks import LandmarkClipMetric
from metrics.base import ClipScoreError, EvalSample
from metrics.functional.headpose import head_angles
from metrics.functional.pose import (
    AUDIO_DIM,
    POSE_DIM,
    audio_frame_features,
    capp_similarity,
    contrastive_loss,
    pose_features,
    window_starts,
)
from metrics.safe_load import load_checkpoint_file

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
        return self.out(self.encoder(h + self.pos[: h.shape[1]]).mean(1))


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


def train_capp(
    items: Sequence[tuple[np.ndarray, np.ndarray]],
    cfg: CappConfig | None = None,
    *,
    max_steps: int = 2000,
    max_seconds: float | None = None,
    seed: int = 0,
) -> CappNet:
    """Train CAPP on (head angles [T, 3] degrees, audio float32 [N]) pairs: every window of every clip, CLIP loss
    with the other windows of the batch as negatives (batches draw windows of different clips where possible)."""
    cfg = cfg or CappConfig()
    poses, audios = [], []
    for angles, audio in items:
        feats = audio_frame_features(audio)
        t = min(len(angles), len(feats))
        for s in window_starts(t, cfg.window, max(1, cfg.hop // 5)):
            poses.append(pose_features(angles[s : s + cfg.window]))
            audios.append(feats[s : s + cfg.window])
    if len(poses) < 2:
        raise ValueError(f"CAPP training needs at least 2 windows of {cfg.window} frames, got {len(poses)}")
    pose_t, audio_t = torch.from_numpy(np.stack(poses)), torch.from_numpy(np.stack(audios))
    torch.manual_seed(seed)
    net = CappNet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(max_steps):
        idx = torch.randperm(len(pose_t), generator=gen)[: cfg.batch_size]
        pe, ae = net(pose_t[idx], audio_t[idx])
        loss = contrastive_loss(pe, ae, cfg.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            break
    return net.eval()


def truth_angles(clip) -> np.ndarray:
    """Head angles [T, 3] of a clip from its own landmarks (the synthetic corpus's truth)."""
    if clip.landmarks is None:
        raise ValueError(f"clip {clip.clip_id} has no landmarks: CAPP calibration needs a landmark source")
    return head_angles(clip.landmarks, clip.video.shape[1:3])


def calibrate_capp(
    corpus, cfg: CappConfig | None = None, seconds: float = 1800.0, seed: int = 0, max_steps: int = 1200
):
    """Train CAPP for `max_steps` steps on the corpus's train split (clip landmarks) and register it, calibrated on
    that corpus; `seconds` is only a safety net (the weights, and their name, are then the same on any machine)."""
    from metrics import weights as store

    cfg = cfg or CappConfig()
    items = [(truth_angles(c), c.audio) for c in corpus.clips("train") if c.num_frames >= cfg.window]
    net = train_capp(items, cfg, max_steps=int(max_steps), max_seconds=seconds, seed=seed)
    blob = capp_blob(net)
    key = {"corpus": corpus.fingerprint(), "config": blob["config"], "seed": seed, "max_steps": int(max_steps)}
    key = json.dumps(key, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return store.register_object(
        blob,
        f"{CAPP_NETWORK}-{corpus.name}-{digest}",
        CAPP_NETWORK,
        source="calibrated",
        calibrated=True,
        meta={"corpus": corpus.fingerprint(), "config": blob["config"]},
    )


def store_find_capp(corpus, calibrate: dict | None = None):
    """The newest CAPP calibrated on `corpus` whose model settings match `calibrate` (a CappConfig subset), if any."""
    from metrics import weights as store

    if corpus is None:
        return None
    want = {k: v for k, v in (calibrate or {}).items() if k not in ("seconds", "max_steps")}
    matches = [
        e
        for e in store.list_weights().values()
        if e.calibrated
        and e.meta.get("corpus") == corpus.fingerprint()
        and e.network.startswith(CAPP_NETWORK)
        and all((e.meta.get("config") or {}).get(k) == v for k, v in want.items())
    ]
    return max(matches, key=lambda e: e.registered) if matches else None


class AudioPoseAlignment(LandmarkClipMetric):
    """CAPP-style audio-pose alignment of `EvalSample.fake` with `EvalSample.audio` (higher is better).

    weights: a registered CAPP weights name or file (`capp_blob` layout); None = the CAPP calibrated on `corpus`
    (`calibrate_capp`). Head angles: landmarks of the clip (see LandmarkClipMetric) through solvePnP.
    """

    outputs = ("capp",)
    higher_is_better = True
    config_section = "capp"  # weights, landmarks, calibrate (the calibrator's budget); the runner passes the corpus

    def __init__(
        self, weights: str | None = None, net: CappNet | None = None, calibrate: dict | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.net, info = net, {"network": CAPP_NETWORK, "weights": "given"}
        if self.net is None:
            self.net, info = self._load(weights, kwargs.get("corpus"), calibrate)
        self.evaluator_info = {**(self.evaluator_info or {}), "capp": info}

    @classmethod
    def calibration_needed(cls, settings: dict, corpus) -> list[str]:
        needed = super().calibration_needed(settings, corpus)
        names = [needed] if isinstance(needed, str) else list(needed or [])
        if settings.get("weights") is None and store_find_capp(corpus, settings.get("calibrate")) is None:
            names.append("capp")
        return names

    @staticmethod
    def _load(weights: str | None, corpus, calibrate: dict | None = None) -> tuple[CappNet, dict]:
        from pathlib import Path

        from metrics import weights as store

        if weights is None:
            entry = store_find_capp(corpus, calibrate)
            if entry is None:
                raise store.WeightsError(
                    "no CAPP model for this corpus: run `bench calibrate --what capp` or set "
                    "`metrics.capp.weights` (a registered name or a file)"
                )
            weights = entry.name
        path = Path(weights) if Path(weights).is_file() else store.resolve(weights)[0]
        blob, _ = load_checkpoint_file(path)
        info = {"network": CAPP_NETWORK, "weights": str(weights), "sha256": store.sha256_file(path)}
        info["content_sha256"] = store.content_digest(blob)
        return capp_from_blob(blob), info

    def score_clip(self, sample: EvalSample) -> tuple[float]:
        if sample.audio is None:
            raise ClipScoreError("CAPP needs the clip's audio")
        lm = self.landmarks_of(sample, "fake")
        try:
            angles = sample.extra.get("head_angles")
            if angles is None or len(angles) != len(lm):
                angles = head_angles(lm, sample.fake.shape[1:3])
        except ValueError as err:
            raise ClipScoreError(str(err)) from err
        return (self.net.score(angles, sample.audio),)
