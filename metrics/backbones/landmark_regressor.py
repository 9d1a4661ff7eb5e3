"""A small 68-point landmark regressor, the network of the `learned` landmark backend, and its saved form.

Why: dlib and FAN were trained on photographs and do not find the synthetic corpus's cartoon faces, yet the
landmark metrics (blinks, LMD, head pose) must be provable on that corpus against its truth sidecars. `bench
calibrate --what landmarks` trains this regressor on the train split (truth landmarks; the training is
`metrics.calibration.landmarks`) and reports its error on the val split (held-out speakers); the weights are
registered as `landmark_regressor-<corpus>-<sha8>` and loaded by `metrics.backbones.landmarks.LearnedLandmarks`.

Two stages, because blink detection needs the eyelid gap to a fraction of a pixel (an EAR drop of 0.072 is
~1 px on a 14 px wide eye) while a global regressor is good to about a pixel:
1. a global CNN on the frame downsampled to 64x64 predicts all 68 points;
2. patch CNNs refine the eyes (one network for both: the left eye is mirrored into a right eye) and the mouth
   (points 48-67) on full-resolution crops centred on the stage-1 estimate. They are trained on crops whose
   centre is jittered by up to `jitter` pixels, so they tolerate the first stage's error.
Frames are resized to the training size (`size`) first and the points scaled back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
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
        out: torch.Tensor = self.fc(self.trunk(x))
        return out.view(-1, self.n_points, 2)


def to_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] centred on 0."""
    return frames.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def patch_crops(frames: np.ndarray, centres: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
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
        small = np.stack([resize_frame(f, 64) for f in frames])
        x = to_input(torch.from_numpy(small).to(self._device))
        out: torch.Tensor = self.globalnet(x)
        return (out + 0.5) * self.config.size  # outputs are centred on the frame

    def eye_points(self, frames: np.ndarray, centres: np.ndarray, left: bool) -> tuple[torch.Tensor, np.ndarray]:
        """Eye points [N, 6, 2] in frame pixels, from crops around centres; left eyes are mirrored in and out."""
        crops, origin = patch_crops(frames, centres, EYE_PATCH)
        if left:
            crops = crops[:, :, ::-1].copy()
        rel = self.eyenet(to_input(torch.from_numpy(crops).to(self._device)))
        rel = (rel + 0.5) * torch.tensor([EYE_PATCH[1], EYE_PATCH[0]], device=self._device)
        if left:
            rel = rel[:, MIRROR_EYE]
            rel = torch.stack([EYE_PATCH[1] - 1 - rel[..., 0], rel[..., 1]], -1)
        return rel, origin

    def mouth_points(self, frames: np.ndarray, centres: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        crops, origin = patch_crops(frames, centres, MOUTH_PATCH)
        rel = self.mouthnet(to_input(torch.from_numpy(crops).to(self._device)))
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
                frames = np.stack([resize_frame(f, size) for f in frames])
            pts = self.global_points(frames).cpu().numpy().astype(np.float64)
            for idx, left in ((RIGHT_EYE, False), (LEFT_EYE, True)):
                rel, origin = self.eye_points(frames, pts[:, idx].mean(1), left)
                pts[:, idx] = rel.cpu().numpy() + origin[:, None]
            rel, origin = self.mouth_points(frames, pts[:, MOUTH].mean(1))
            pts[:, MOUTH] = rel.cpu().numpy() + origin[:, None]
            out[s : s + batch] = pts * np.array([w / size, h / size])
        return out


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def regressor_from_blob(blob: dict[str, Any]) -> LandmarkRegressor:
    """Rebuild a regressor saved as {"config": {...}, "state_dict": {...}} (strict load)."""
    net = LandmarkRegressor(RegressorConfig(**blob["config"]))
    net.load_state_dict(blob["state_dict"], strict=True)
    return net.eval()


def regressor_blob(net: LandmarkRegressor) -> dict[str, Any]:
    """The saved form `regressor_from_blob` reads: its config and a CPU copy of its state dict."""
    return {"config": asdict(net.config), "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
