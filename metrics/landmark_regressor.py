"""A small 68-point landmark regressor, calibrated on a corpus whose clips carry truth landmarks.

Why: dlib and FAN were trained on photographs and do not find the synthetic corpus's cartoon faces, yet the
landmark metrics (blinks, LMD, head pose) must be provable on that corpus against its truth sidecars. `bench
calibrate --what landmarks` trains this regressor on the train split (truth landmarks) and reports its error on
the val split (held-out speakers); the weights are registered as `landmark_regressor-<corpus>-<sha8>`.

Two stages, because blink detection needs the eyelid gap to a fraction of a pixel (an EAR drop of 0.072 is
~1 px on a 14 px wide eye) while a global regressor is good to about a pixel:
1. a global CNN on the frame downsampled to 64x64 predicts all 68 points;
2. patch CNNs refine the eyes (one network for both: the left eye is mirrored into a right eye) and the mouth
   (points 48-67) on full-resolution crops centred on the stage-1 estimate. They are trained on crops whose
   centre is jittered by up to `jitter` pixels, so they tolerate the first stage's error.
Frames are resized to the training size (`size`) first and the points scaled back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EYE_PATCH = (20, 32)  # (h, w) at the calibration size
MOUTH_PATCH = (40, 56)
RIGHT_EYE = list(range(36, 42))
LEFT_EYE = list(range(42, 48))
MOUTH = list(range(48, 68))
# a mirrored left eye read as a right eye: p0<->p3, p1<->p2, p4<->p5 (both eyes run left to right on screen)
MIRROR_EYE = [3, 2, 1, 0, 5, 4]


@dataclass(frozen=True)
class RegressorConfig:
    size: int = 128  # frames are resized to size x size before stage 1 (the corpus's frame size)
    width: int = 32  # channels of the first conv layer
    jitter: float = 4.0  # max crop-centre error (pixels at `size`) the patch networks are trained for


def _trunk(width: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    c_in = 3
    for i in range(layers):
        c_out = width * min(2**i, 4)
        mods += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        mods += [nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        c_in = c_out
    return nn.Sequential(*mods)


class _Head(nn.Module):
    def __init__(self, width: int, layers: int, hw: tuple[int, int], n_points: int) -> None:
        super().__init__()
        self.trunk = _trunk(width, layers)
        h, w = hw
        for _ in range(layers):
            h, w = (h + 1) // 2, (w + 1) // 2
        c = width * min(2 ** (layers - 1), 4)
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(c * h * w, 256), nn.ReLU(inplace=True), nn.Linear(256, 2 * n_points)
        )
        self.n_points = n_points

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.trunk(x)).view(-1, self.n_points, 2)


def _to_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] centred on 0."""
    return frames.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _crops(frames: np.ndarray, centres: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Integer crops [N, h, w, 3] around centres [N, 2] (edge-padded) and their top-left origins [N, 2]."""
    h, w = hw
    pad = max(h, w)
    padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    origin = np.round(centres - np.array([w / 2.0, h / 2.0])).astype(np.int64)
    out = np.empty((len(frames), h, w, 3), np.uint8)
    for i, (x0, y0) in enumerate(origin):
        out[i] = padded[i, y0 + pad : y0 + pad + h, x0 + pad : x0 + pad + w]
    return out, origin.astype(np.float64)


class LandmarkRegressor(nn.Module):
    """Stage-1 global network + eye and mouth refinement networks (see the module docstring)."""

    def __init__(self, config: RegressorConfig | None = None) -> None:
        super().__init__()
        self.config = config or RegressorConfig()
        w = self.config.width
        self.globalnet = _Head(w // 2, 4, (64, 64), 68)
        self.eyenet = _Head(w // 2, 3, EYE_PATCH, 6)
        self.mouthnet = _Head(w // 2, 3, MOUTH_PATCH, 20)

    # -- pieces shared by training and inference (all in pixels at config.size)
    def global_points(self, frames: np.ndarray) -> torch.Tensor:
        small = np.stack([_resize(f, 64) for f in frames])
        x = _to_input(torch.from_numpy(small).to(self._device))
        return (self.globalnet(x) + 0.5) * self.config.size  # outputs are centred on the frame

    def eye_points(self, frames: np.ndarray, centres: np.ndarray, left: bool) -> tuple[torch.Tensor, np.ndarray]:
        """Eye points [N, 6, 2] in frame pixels, from crops around centres; left eyes are mirrored in and out."""
        crops, origin = _crops(frames, centres, EYE_PATCH)
        if left:
            crops = crops[:, :, ::-1].copy()
        rel = self.eyenet(_to_input(torch.from_numpy(crops).to(self._device)))
        rel = (rel + 0.5) * torch.tensor([EYE_PATCH[1], EYE_PATCH[0]], device=self._device)
        if left:
            rel = rel[:, MIRROR_EYE]
            rel = torch.stack([EYE_PATCH[1] - 1 - rel[..., 0], rel[..., 1]], -1)
        return rel, origin

    def mouth_points(self, frames: np.ndarray, centres: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        crops, origin = _crops(frames, centres, MOUTH_PATCH)
        rel = self.mouthnet(_to_input(torch.from_numpy(crops).to(self._device)))
        return (rel + 0.5) * torch.tensor([MOUTH_PATCH[1], MOUTH_PATCH[0]], device=self._device), origin

    @property
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def predict(self, video: np.ndarray, device: str | None = None, batch: int = 64) -> np.ndarray:
        """Landmarks float32 [T, 68, 2] in the pixels of `video` (uint8 [T, H, W, 3])."""
        self.eval()
        t, h, w = video.shape[:3]
        size = self.config.size
        out = np.zeros((t, 68, 2), np.float32)
        for s in range(0, t, batch):
            frames = video[s : s + batch]
            if (h, w) != (size, size):
                frames = np.stack([_resize(f, size) for f in frames])
            pts = self.global_points(frames).cpu().numpy().astype(np.float64)
            for idx, left in ((RIGHT_EYE, False), (LEFT_EYE, True)):
                rel, origin = self.eye_points(frames, pts[:, idx].mean(1), left)
                pts[:, idx] = rel.cpu().numpy() + origin[:, None]
            rel, origin = self.mouth_points(frames, pts[:, MOUTH].mean(1))
            pts[:, MOUTH] = rel.cpu().numpy() + origin[:, None]
            out[s : s + batch] = pts * np.array([w / size, h / size])
        return out


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def regressor_from_blob(blob: dict) -> LandmarkRegressor:
    """Rebuild a regressor saved as {"config": {...}, "state_dict": {...}} (strict load)."""
    net = LandmarkRegressor(RegressorConfig(**blob["config"]))
    net.load_state_dict(blob["state_dict"], strict=True)
    return net.eval()


def regressor_blob(net: LandmarkRegressor) -> dict:
    return {"config": asdict(net.config), "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}


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

    def to_dict(self) -> dict:
        return asdict(self)


def _frames_with_truth(clips: Sequence, stride: int, size: int, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    frames, points = [], []
    for clip in clips:
        if clip.landmarks is None:
            continue
        v, lm = clip.video[::stride], clip.landmarks[::stride].astype(np.float64)
        h, w = v.shape[1:3]
        if (h, w) != (size, size):
            v = np.stack([_resize(f, size) for f in v])
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
    train_clips: Sequence,
    val_clips: Sequence,
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
    small_frames = np.stack([_resize(x, 64) for x in frames])
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
        loss = F.smooth_l1_loss(net.globalnet(_to_input(torch.from_numpy(small))), target, beta=0.01)
        for ids, left in ((RIGHT_EYE, False), (LEFT_EYE, True)):
            centre = p[:, ids].mean(1) + rng.uniform(-jitter, jitter, (batch_size, 2))
            crops, origin = _crops(f, centre, EYE_PATCH)
            rel = p[:, ids] - origin[:, None]
            if left:
                crops = crops[:, :, ::-1].copy()
                rel = np.stack([EYE_PATCH[1] - 1 - rel[..., 0], rel[..., 1]], -1)[:, MIRROR_EYE]
            pred = net.eyenet(_to_input(torch.from_numpy(crops)))
            loss = loss + F.smooth_l1_loss(pred, torch.from_numpy(rel).float() / eye_scale - 0.5, beta=0.01)
        centre = p[:, MOUTH].mean(1) + rng.uniform(-jitter, jitter, (batch_size, 2))
        crops, origin = _crops(f, centre, MOUTH_PATCH)
        rel = torch.from_numpy(p[:, MOUTH] - origin[:, None]).float()
        loss = loss + F.smooth_l1_loss(
            net.mouthnet(_to_input(torch.from_numpy(crops))), rel / mouth_scale - 0.5, beta=0.01
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
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
        n_val_frames=report["n_frames"],
        val_mean_px=report["mean_px"],
        val_eye_px=report["eye_px"],
        val_mouth_px=report["mouth_px"],
        val_ear_mae=report["ear_mae"],
    )


def evaluate_regressor(net: LandmarkRegressor, clips: Sequence, max_frames: int = 2000) -> dict[str, float]:
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
