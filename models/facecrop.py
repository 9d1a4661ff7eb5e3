"""Face boxes for mouth-redrawing models (Wav2Lip, LipGAN) on arbitrary videos: detect, smooth, pad, crop, paste.

Follows Wav2Lip:inference.py (reference/official_repos.md 2.3): a box per frame, expanded by pads (top, bottom,
left, right) and clipped to the frame, smoothed by a forward mean over 5 detections, cropped and resized to
96x96, and the model's output resized back (bilinear) and pasted into the full frame. Unlike the official
script, frames without a detection are not an abort (Wav2Lip#163, #229): they keep no box and pass through.

Detectors (`DETECTORS`, picked by name):
- `dlib`: dlib's HOG frontal face detector (no weights file; LipGAN's preprocessing detector), lazily imported;
- `full`: the whole frame is the face box (the synthetic corpus renders face crops, and the models trained on
  it saw whole frames);
- `fixed`: one box (x1, y1, x2, y2) for every frame (Wav2Lip's `--box`);
- `landmarks`: boxes from 68-point landmarks per frame (an .npy / .npz [T,68,2] file, or the synthetic
  corpus's truth sidecar `<video>.truth.npz`); frames with NaN landmarks have no face.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

FACE_SIZE = 96
SMOOTH_T = 5  # inference.py get_smoothened_boxes(T=5)
NO_BOX = np.full(4, -1, np.int64)


class FaceDetectionError(RuntimeError):
    """A detector cannot run (missing package, bad box or landmarks file)."""


class Detector(abc.ABC):
    """Per-frame face boxes (x1, y1, x2, y2) int64 [n,4]; a row of -1 where no face was found."""

    name = ""

    @abc.abstractmethod
    def __call__(self, frames: np.ndarray, first_index: int = 0) -> np.ndarray:
        """Boxes of `frames`, which are frames first_index, first_index + 1, ... of the video."""


class DlibDetector(Detector):
    """dlib's HOG frontal face detector on each RGB frame; the largest box (LipGAN preprocess.py)."""

    name = "dlib"

    def __init__(self, upsample: int = 1) -> None:
        try:
            import dlib
        except ImportError as err:
            raise FaceDetectionError(
                "face detector 'dlib' needs the dlib package: `pip install dlib-bin` (or choose --detector "
                "full / fixed / landmarks)"
            ) from err
        self._detect = dlib.get_frontal_face_detector()
        self.upsample = int(upsample)

    def __call__(self, frames: np.ndarray, first_index: int = 0) -> np.ndarray:
        out = np.tile(NO_BOX, (len(frames), 1))
        for i, frame in enumerate(frames):
            rects = self._detect(np.ascontiguousarray(frame), self.upsample)
            if len(rects):
                r = max(rects, key=lambda r: r.width() * r.height())
                out[i] = [r.left(), r.top(), r.right(), r.bottom()]
        return out


class FullFrameDetector(Detector):
    name = "full"

    def __call__(self, frames: np.ndarray, first_index: int = 0) -> np.ndarray:
        h, w = frames.shape[1:3]
        return np.tile(np.array([0, 0, w, h], np.int64), (len(frames), 1))


class FixedBoxDetector(Detector):
    name = "fixed"

    def __init__(self, box: Sequence[int]) -> None:
        if box is None or len(box) != 4:
            raise FaceDetectionError("detector 'fixed' needs a box: --box X1 Y1 X2 Y2 (pixels)")
        self.box = np.asarray(box, np.int64)

    def __call__(self, frames: np.ndarray, first_index: int = 0) -> np.ndarray:
        return np.tile(self.box, (len(frames), 1))


def landmark_boxes(landmarks: np.ndarray) -> np.ndarray:
    """Face boxes from iBUG-68 landmarks [T,68,2]: jaw width, brows to chin, extended up by 20 % of that
    height for the forehead (S3FD boxes include it); -1 rows where landmarks are NaN."""
    lm = np.asarray(landmarks, np.float64)
    out = np.tile(NO_BOX, (len(lm), 1))
    ok = np.isfinite(lm).all(axis=(1, 2))
    if ok.any():
        x1, y1 = lm[ok, :, 0].min(1), lm[ok, :, 1].min(1)
        x2, y2 = lm[ok, :, 0].max(1), lm[ok, :, 1].max(1)
        y1 = y1 - 0.2 * (y2 - y1)
        out[ok] = np.stack([np.floor(x1), np.floor(y1), np.ceil(x2), np.ceil(y2)], 1).astype(np.int64)
    return out


class LandmarksDetector(Detector):
    name = "landmarks"

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        try:
            if path.name.endswith(".truth.npz") or path.suffix == ".npz":
                with np.load(path) as z:
                    key = "landmarks" if "landmarks" in z.files else z.files[0]
                    lm = z[key]
            else:
                lm = np.load(path)
        except (OSError, ValueError, IndexError) as err:
            raise FaceDetectionError(f"{path}: cannot read landmarks ({err})") from err
        if lm.ndim != 3 or lm.shape[1:] != (68, 2):
            raise FaceDetectionError(f"{path}: landmarks must be [T,68,2], got {lm.shape}")
        self.boxes = landmark_boxes(lm)
        self.path = path

    def __call__(self, frames: np.ndarray, first_index: int = 0) -> np.ndarray:
        idx = np.arange(first_index, first_index + len(frames))
        if len(idx) and idx[-1] >= len(self.boxes):
            raise FaceDetectionError(f"{self.path}: landmarks for {len(self.boxes)} frames, video has more")
        return self.boxes[idx]


DETECTORS: dict[str, Callable[..., Detector]] = {
    "dlib": DlibDetector,
    "full": FullFrameDetector,
    "fixed": FixedBoxDetector,
    "landmarks": LandmarksDetector,
}


def pad_boxes(boxes: np.ndarray, pads: Sequence[int], width: int, height: int) -> np.ndarray:
    """inference.py: y1 -= top, y2 += bottom, x1 -= left, x2 += right, clipped to the frame; -1 rows kept."""
    top, bottom, left, right = (int(p) for p in pads)
    out = np.asarray(boxes, np.int64).copy()
    ok = out[:, 0] >= 0
    out[ok] += np.array([-left, -top, right, bottom])
    out[ok] = np.clip(out[ok], 0, [width, height, width, height])
    bad = ok & ((out[:, 2] <= out[:, 0]) | (out[:, 3] <= out[:, 1]))
    out[bad] = NO_BOX
    return out


def smooth_boxes(boxes: np.ndarray, t: int = SMOOTH_T) -> np.ndarray:
    """inference.py get_smoothened_boxes: each box = mean of itself and the next t-1 (fewer at the end).

    Only runs of consecutive detected frames are averaged together, so a face-less frame never pulls a box.
    """
    boxes = np.asarray(boxes, np.int64)
    out = boxes.copy()
    ok = boxes[:, 0] >= 0
    for i in np.flatnonzero(ok):
        j = i + 1
        while j < min(i + t, len(boxes)) and ok[j]:
            j += 1
        out[i] = np.round(boxes[i:j].mean(axis=0)).astype(np.int64)
    return out


def crop_faces(frames: np.ndarray, boxes: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """uint8 [n,size,size,3]: each frame's box resized (INTER_AREA, as the training windows) to size x size."""
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for i, (frame, (x1, y1, x2, y2)) in enumerate(zip(frames, boxes)):
        out[i] = cv2.resize(np.ascontiguousarray(frame[y1:y2, x1:x2]), (size, size), interpolation=cv2.INTER_AREA)
    return out


def paste_faces(frames: np.ndarray, boxes: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Copies of `frames` with each face resized back to its box (cv2 bilinear, inference.py) and pasted."""
    out = np.array(frames, copy=True)
    for i, ((x1, y1, x2, y2), face) in enumerate(zip(boxes, faces)):
        if (x2 - x1, y2 - y1) != face.shape[1::-1]:
            face = cv2.resize(face, (int(x2 - x1), int(y2 - y1)))
        out[i, y1:y2, x1:x2] = face
    return out
