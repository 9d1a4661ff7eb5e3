"""Identity embeddings for CSIM: dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`).

The network (a ResNet-34-like model trained by Davis King on ~3 million faces; 99.38 % on LFW) maps a face,
aligned by dlib from its landmarks to a 150x150 chip (padding 0.25), to a 128-d descriptor. The file ships with
the `face-recognition-models` package, so CSIM runs offline. The landmarks come from the metric's landmark
backend (metrics.backbones.landmarks): the 68 points are handed to dlib as a `full_object_detection`, which is
what `get_face_chip` aligns with, so faces the HOG detector misses (the synthetic corpus) are still embedded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from metrics.backbones.landmarks import dlib_model_path, file_sha256, import_dlib

RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"


class DlibFaceEmbedder:
    """128-d identity descriptors of faces given by 68-point landmarks."""

    def __init__(self, model: str | None = None, padding: float = 0.25) -> None:
        dlib = import_dlib()
        path = Path(model) if model else dlib_model_path(RESNET_FILE)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such dlib face-recognition model file")
        self._dlib = dlib
        self.net = dlib.face_recognition_model_v1(str(path))
        self.padding = float(padding)
        self.info = {
            "arch": "dlib face_recognition_model_v1 (ResNet, 128-d)",
            "weights": path.name,
            "sha256": file_sha256(path),
            "status": "official",
        }

    def _shape(self, points: np.ndarray) -> Any:  # a dlib.full_object_detection
        dlib = self._dlib
        p = np.asarray(points, np.float64)
        x0, y0 = np.floor(p.min(0)).astype(int)
        x1, y1 = np.ceil(p.max(0)).astype(int)
        parts = dlib.points()
        for x, y in np.round(p).astype(int):
            parts.append(dlib.point(int(x), int(y)))
        return dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)), parts)

    def embed(self, frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """float64 [N, 128] descriptors of uint8 RGB frames [N, H, W, 3] with landmarks [N, 68, 2]."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
        if len(frames) == 0:
            return np.zeros((0, 128))
        chips = [
            self._dlib.get_face_chip(np.ascontiguousarray(f), self._shape(lm), size=150, padding=self.padding)
            for f, lm in zip(frames, landmarks)
        ]
        # the batch overload runs the chips through the network together
        return np.asarray(self.net.compute_face_descriptor(chips), np.float64)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of [N, D] and [N, D] (or [1, D]) arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    num = (a * b).sum(-1)
    sim: np.ndarray = num / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return sim
