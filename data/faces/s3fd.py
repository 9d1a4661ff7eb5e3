"""S3FD, the face detector of syncnet_python's run_pipeline.py (detectors/s3fd, weights `sfd_face.pth`).

The network's module names and indices follow the official state dict (`vgg.<i>`, `L2Norm3_3`, `extras.<i>`,
`loc.<i>`, `conf.<i>`), so the file loads strictly; the weights come from the suite's weights store (tensors only,
never downloaded). `S3FDDetector` is run_pipeline.py's call: the RGB frame resized by `facedet_scale` 0.25
(INTER_LINEAR), the mean (123, 117, 104) subtracted per RGB channel (the official code swaps to BGR, subtracts its
BGR mean and swaps back), softmax scores, boxes decoded from the priors (variances 0.1, 0.2), candidates above 0.05
reduced by NMS 0.3 (at most 5000 in, 750 out), those above `conf_th` 0.9 kept and reduced again by NMS 0.1.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# (in, out) of the VGG16 convolutions; "M" a 2x2 max pool ("C": with ceil_mode, after conv3_3)
_VGG = [(3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), (256, 256), "C"]
_VGG += [(256, 512), (512, 512), (512, 512), "M", (512, 512), (512, 512), (512, 512), "M"]
SOURCE_CHANNELS = (256, 512, 512, 1024, 512, 256)
STEPS = (4, 8, 16, 32, 64, 128)
MIN_SIZES = (16, 32, 64, 128, 256, 512)
VARIANCES = (0.1, 0.2)
RGB_MEAN = (123.0, 117.0, 104.0)
FACEDET_SCALE = 0.25  # run_pipeline.py --facedet_scale
CONF_TH = 0.9  # run_pipeline.py detect_faces(conf_th=0.9)
MIN_INPUT = 32  # px: the smallest input side the network's poolings accept


class _L2Norm(nn.Module):
    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight[None, :, None, None] * x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)


class S3FDNet(nn.Module):
    """S3FD: VGG16 + fc6/fc7 as convolutions + two extra stages, six detection sources; forward returns
    (loc [B, P, 4], face probability [B, P]) over the P priors of `priors`."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for item in _VGG:
            if isinstance(item, tuple):
                layers += [nn.Conv2d(item[0], item[1], 3, 1, padding=1), nn.ReLU(inplace=True)]
            else:
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=item == "C"))
        layers += [nn.Conv2d(512, 1024, 3, 1, padding=6, dilation=6), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(1024, 1024, 1, 1), nn.ReLU(inplace=True)]
        self.vgg = nn.ModuleList(layers)
        self.L2Norm3_3 = _L2Norm(256, 10)
        self.L2Norm4_3 = _L2Norm(512, 8)
        self.L2Norm5_3 = _L2Norm(512, 5)
        self.extras = nn.ModuleList(
            [
                nn.Conv2d(1024, 256, 1),
                nn.Conv2d(256, 512, 3, 2, 1),
                nn.Conv2d(512, 128, 1),
                nn.Conv2d(128, 256, 3, 2, 1),
            ]
        )
        self.loc = nn.ModuleList([nn.Conv2d(c, 4, 3, 1, 1) for c in SOURCE_CHANNELS])
        # the first source predicts 3 background scores and keeps their maximum ("max-out" background label)
        self.conf = nn.ModuleList([nn.Conv2d(c, 4 if i == 0 else 2, 3, 1, 1) for i, c in enumerate(SOURCE_CHANNELS)])

    def sources(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        start = 0
        # conv3_3, conv4_3, conv5_3 end after vgg[15], vgg[22], vgg[29] (their ReLUs), each L2-normalised
        for stop, norm in ((16, self.L2Norm3_3), (23, self.L2Norm4_3), (30, self.L2Norm5_3)):
            for k in range(start, stop):
                x = self.vgg[k](x)
            out.append(norm(x))
            start = stop
        for k in range(30, len(self.vgg)):
            x = self.vgg[k](x)
        out.append(x)
        for k, layer in enumerate(self.extras):
            x = F.relu(layer(x))
            if k % 2 == 1:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        locs, confs, shapes = [], [], []
        for i, src in enumerate(self.sources(x)):
            conf = self.conf[i](src)
            if i == 0:
                conf = torch.cat([conf[:, :3].max(1, keepdim=True).values, conf[:, 3:]], 1)
            locs.append(self.loc[i](src).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4))
            confs.append(conf.permute(0, 2, 3, 1).reshape(x.shape[0], -1, 2))
            shapes.append((int(src.shape[2]), int(src.shape[3])))
        prob = torch.cat(confs, 1).softmax(-1)[..., 1]
        return torch.cat(locs, 1), prob, shapes


def priors(height: int, width: int, shapes: list[tuple[int, int]]) -> torch.Tensor:
    """[P, 4] prior boxes (cx, cy, w, h) relative to the input, row-major per source, as PriorBox makes them."""
    out = []
    for (fh, fw), step, size in zip(shapes, STEPS, MIN_SIZES):
        i, j = torch.meshgrid(
            torch.arange(fh, dtype=torch.float64), torch.arange(fw, dtype=torch.float64), indexing="ij"
        )
        cx = (j.reshape(-1) + 0.5) / (width / step)
        cy = (i.reshape(-1) + 0.5) / (height / step)
        wh = torch.tensor([size / width, size / height], dtype=torch.float64).expand(len(cx), 2)
        out.append(torch.cat([cx[:, None], cy[:, None], wh], 1))
    return torch.cat(out).float()


def decode(loc: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """(x1, y1, x2, y2) relative boxes from loc offsets and priors (SSD encoding, variances 0.1 and 0.2)."""
    centre = prior[:, :2] + loc[:, :2] * VARIANCES[0] * prior[:, 2:]
    size = prior[:, 2:] * torch.exp(loc[:, 2:] * VARIANCES[1])
    return torch.cat([centre - size / 2, centre + size / 2], 1)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, limit: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression: indices by descending score, dropping boxes whose IoU with a kept one
    exceeds `threshold` (areas without +1, as both official NMS functions)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size and (limit is None or len(keep) < limit):
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= threshold]
    return np.asarray(keep, np.intp)


class S3FDDetector:
    """A data.faces.track detector: S3FD boxes (x1, y1, x2, y2) in frame pixels, best first, per RGB frame."""

    def __init__(
        self,
        state_dict: Mapping[str, torch.Tensor],
        device: str = "cpu",
        scale: float = FACEDET_SCALE,
        conf_th: float = CONF_TH,
    ) -> None:
        self.net = S3FDNet()
        self.net.load_state_dict(dict(state_dict), strict=True)
        self.net.to(device).eval()
        self.device, self.scale, self.conf_th = device, float(scale), float(conf_th)

    @torch.inference_mode()
    def detect_frame(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        h, w = frame.shape[:2]
        # VGG's five poolings need >= 32 px: a frame under 128 px is detected at the smallest scale that fits
        # (the official code fails on it)
        scale = max(self.scale, MIN_INPUT / min(h, w))
        img = cv2.resize(frame, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(img.astype(np.float32) - np.asarray(RGB_MEAN, np.float32)).permute(2, 0, 1)[None]
        loc, prob, shapes = self.net(x.to(self.device))
        boxes = decode(loc[0].cpu(), priors(img.shape[0], img.shape[1], shapes)).numpy().astype(np.float64)
        scores = prob[0].cpu().numpy().astype(np.float64)
        cand = np.flatnonzero(scores > 0.05)
        cand = cand[np.argsort(-scores[cand], kind="stable")][:5000]
        cand = cand[nms(boxes[cand], scores[cand], 0.3, limit=750)]
        cand = cand[scores[cand] > self.conf_th]
        cand = cand[nms(boxes[cand], scores[cand], 0.1)]
        return boxes[cand] * np.array([w, h, w, h], np.float64)

    def __call__(self, frames: np.ndarray) -> list[np.ndarray]:
        return [self.detect_frame(np.ascontiguousarray(f)) for f in frames]
