"""Calibrate the landmark regressor (`metrics.backbones.landmark_regressor`) on a corpus's truth landmarks.

`bench calibrate --what landmarks` (benchmark.calibrate) trains it on the train split with `train_regressor` and
reports its error on the val split (held-out speakers) with `evaluate_regressor`; the network, its two stages and
why they exist are described in `metrics.backbones.landmark_regressor`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from data.clip import Clip
from metrics.backbones.landmark_regressor import (
    EYE_PATCH,
    LEFT_EYE,
    MIRROR_EYE,
    MOUTH,
    MOUTH_PATCH,
    RIGHT_EYE,
    LandmarkRegressor,
    RegressorConfig,
    patch_crops,
    resize_frame,
    to_input,
)


@dataclass
class RegressorReport:
    steps: int
    seconds: float
    n_train_frames: int
    n_val_frames: int
    val_mean_px: float  # mean point error over all 68 points, pixels at the corpus size
    val_eye_px: float
    val_mouth_px: float
    val_ear_mae: float  # mean absolute error of the eye aspect ratio (mean of both eyes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _frames_with_truth(clips: Sequence[Clip], stride: int, size: int, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    frames, points = [], []
    for clip in clips:
        if clip.landmarks is None:
            continue
        v, lm = clip.video[::stride], clip.landmarks[::stride].astype(np.float64)
        h, w = v.shape[1:3]
        if (h, w) != (size, size):
            v = np.stack([resize_frame(f, size) for f in v])
            lm = lm * np.array([size / w, size / h])
        frames.append(v)
        points.append(lm)
    if not frames:
        raise ValueError("no clip of the split has truth landmarks to calibrate the landmark regressor on")
    f, p = np.concatenate(frames), np.concatenate(points)
    if len(f) > max_frames:
        keep = np.linspace(0, len(f) - 1, max_frames).round().astype(np.int64)
        f, p = f[keep], p[keep]
    return f, p


def _ear(points: np.ndarray) -> np.ndarray:
    from metrics.functional.blinks import eye_aspect_ratio

    return eye_aspect_ratio(points)


def train_regressor(
    train_clips: Sequence[Clip],
    val_clips: Sequence[Clip],
    seconds: float = 120.0,
    seed: int = 0,
    batch_size: int = 32,
    lr: float = 2e-3,
    max_frames: int = 6000,
    max_steps: int | None = None,
    progress: bool = False,
) -> tuple[LandmarkRegressor, RegressorReport]:
    """Train on the truth landmarks of `train_clips` for `seconds` of wall clock (or `max_steps`); report on val.

    Each step trains all three networks: the global one on the downsampled frames, the eye and mouth networks
    on crops around the truth centres moved by a uniform error of up to `config.jitter` pixels.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    size = int(train_clips[0].video.shape[1])
    net = LandmarkRegressor(RegressorConfig(size=size))
    frames, points = _frames_with_truth(train_clips, 1, size, max_frames)
    small_frames = np.stack([resize_frame(x, 64) for x in frames])
    # blinks are a few percent of the frames but are what the eye network must get right: half of every batch
    # comes from frames whose eyes are partly closed (truth EAR below 85 % of the open-eye level)
    ear = _ear(points)
    closing = np.flatnonzero(ear < 0.85 * np.percentile(ear, 90))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    jitter = net.config.jitter
    eye_scale = torch.tensor([EYE_PATCH[1], EYE_PATCH[0]], dtype=torch.float32)
    mouth_scale = torch.tensor([MOUTH_PATCH[1], MOUTH_PATCH[0]], dtype=torch.float32)
    start, step = time.monotonic(), 0
    net.train()
    while True:
        elapsed = time.monotonic() - start
        if (max_steps is not None and step >= max_steps) or (max_steps is None and elapsed >= seconds):
            break
        # cosine decay over the budget, so the last steps settle
        frac = step / max_steps if max_steps else elapsed / max(seconds, 1e-9)
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1.0 + np.cos(np.pi * min(frac, 1.0)))
        idx = rng.integers(0, len(frames), batch_size)
        if len(closing):
            idx[: batch_size // 2] = rng.choice(closing, batch_size // 2)
        f, p = frames[idx], points[idx]
        target = torch.from_numpy(p / size - 0.5).float()
        small = small_frames[idx]
        loss = F.smooth_l1_loss(net.globalnet(to_input(torch.from_numpy(small))), target, beta=0.01)
        for ids, left in ((RIGHT_EYE, False), (LEFT_EYE, True)):
            centre = p[:, ids].mean(1) + rng.uniform(-jitter, jitter, (batch_size, 2))
            crops, origin = patch_crops(f, centre, EYE_PATCH)
            rel = p[:, ids] - origin[:, None]
            if left:
                crops = crops[:, :, ::-1].copy()
                rel = np.stack([EYE_PATCH[1] - 1 - rel[..., 0], rel[..., 1]], -1)[:, MIRROR_EYE]
            pred = net.eyenet(to_input(torch.from_numpy(crops)))
            loss = loss + F.smooth_l1_loss(pred, torch.from_numpy(rel).float() / eye_scale - 0.5, beta=0.01)
        centre = p[:, MOUTH].mean(1) + rng.uniform(-jitter, jitter, (batch_size, 2))
        crops, origin = patch_crops(f, centre, MOUTH_PATCH)
        rel = torch.from_numpy(p[:, MOUTH] - origin[:, None]).float()
        loss = loss + F.smooth_l1_loss(
            net.mouthnet(to_input(torch.from_numpy(crops))), rel / mouth_scale - 0.5, beta=0.01
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
        opt.step()
        step += 1
        if progress and step % 200 == 0:
            print(f"[landmarks] step {step} loss {loss.item():.4f} ({time.monotonic() - start:.0f}s)", flush=True)
    seconds_used = time.monotonic() - start
    net.eval()
    report = evaluate_regressor(net, val_clips)
    return net, RegressorReport(
        steps=step,
        seconds=seconds_used,
        n_train_frames=len(frames),
        n_val_frames=int(report["n_frames"]),
        val_mean_px=report["mean_px"],
        val_eye_px=report["eye_px"],
        val_mouth_px=report["mouth_px"],
        val_ear_mae=report["ear_mae"],
    )


def evaluate_regressor(net: LandmarkRegressor, clips: Sequence[Clip], max_frames: int = 2000) -> dict[str, float]:
    """Point errors (pixels of the clips' frames) and EAR error of `net` on clips with truth landmarks."""
    preds, truths = [], []
    n = 0
    for clip in clips:
        if clip.landmarks is None or n >= max_frames:
            continue
        preds.append(net.predict(clip.video).astype(np.float64))
        truths.append(clip.landmarks.astype(np.float64))
        n += clip.num_frames
    if not preds:
        return {
            "n_frames": 0,
            "mean_px": float("nan"),
            "eye_px": float("nan"),
            "mouth_px": float("nan"),
            "ear_mae": float("nan"),
        }
    p, t = np.concatenate(preds), np.concatenate(truths)
    err = np.linalg.norm(p - t, axis=-1)
    return {
        "n_frames": int(len(p)),
        "mean_px": float(err.mean()),
        "eye_px": float(err[:, 36:48].mean()),
        "mouth_px": float(err[:, 48:68].mean()),
        "ear_mae": float(np.abs(_ear(p) - _ear(t)).mean()),
    }
