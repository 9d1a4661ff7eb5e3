"""Calibrate the CAPP-style audio/head-pose network (`metrics.backbones.capp`) on a corpus with landmarks.

`train_capp` trains it CLIP-style on (head angles, audio) windows; `calibrate_capp` does so on a corpus's train split
(head angles from the clips' own landmarks, the synthetic corpus's truth or any landmark source) and registers it
as `capp-<corpus>-<sha8>`, calibrated on that corpus, where `metrics.pose.AudioPoseAlignment` finds it.
`bench calibrate --what capp` (benchmark.calibrate) runs it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from data.clip import Clip
from metrics.backbones.capp import CAPP_NETWORK, CappConfig, CappNet, capp_blob
from metrics.functional.headpose import head_angles
from metrics.functional.pose import audio_frame_features, contrastive_loss, pose_features, window_starts

if TYPE_CHECKING:
    from data.corpus import LayoutCorpus
    from metrics.weights import WeightsEntry


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
        loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
        opt.step()
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            break
    return net.eval()


def truth_angles(clip: Clip) -> np.ndarray:
    """Head angles [T, 3] of a clip from its own landmarks (the synthetic corpus's truth)."""
    if clip.landmarks is None:
        raise ValueError(f"clip {clip.clip_id} has no landmarks: CAPP calibration needs a landmark source")
    return head_angles(clip.landmarks, clip.video.shape[1:3])


def calibrate_capp(
    corpus: LayoutCorpus, cfg: CappConfig | None = None, seconds: float = 1800.0, seed: int = 0, max_steps: int = 1200
) -> WeightsEntry:
    """Train CAPP for `max_steps` steps on the corpus's train split (clip landmarks) and register it, calibrated on
    that corpus; `seconds` is only a safety net (the weights, and their name, are then the same on any machine)."""
    from metrics import weights as store

    cfg = cfg or CappConfig()
    items = [(truth_angles(c), c.audio) for c in corpus.clips("train") if c.num_frames >= cfg.window]
    net = train_capp(items, cfg, max_steps=int(max_steps), max_seconds=seconds, seed=seed)
    blob = capp_blob(net)
    key = {"corpus": corpus.fingerprint(), "config": blob["config"], "seed": seed, "max_steps": int(max_steps)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return store.register_object(
        blob,
        f"{CAPP_NETWORK}-{corpus.name}-{digest}",
        CAPP_NETWORK,
        source="calibrated",
        calibrated=True,
        meta={"corpus": corpus.fingerprint(), "config": blob["config"]},
    )
