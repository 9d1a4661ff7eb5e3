"""Face boxes for mouth-redrawing models (Wav2Lip, LipGAN) on arbitrary videos: detect, smooth, pad, crop, paste.

Follows Wav2Lip:inference.py (`face_detect`, `datagen` and the paste loop of `main`; docs/faces.md): a box per
frame, expanded by pads (top, bottom, left, right) and clipped to the frame, smoothed by a forward mean over 5
detections, cropped and resized to 96x96, and the model's output resized back (bilinear) and pasted into the full
frame. Unlike the official script, frames without a detection are not an abort (Wav2Lip#163, #229): they keep no
box and pass through.

The box rule, padding and smoothing are data.faces.boxes, the functions preparation's `wav2lip` crop uses: a
landmark-based detector here gives, for the same frames, the boxes a prepared corpus was cut with
(docs/faces.md).

Detectors (`DETECTORS`, picked by name):
- `dlib`: dlib's HOG detector + 68-point predictor (data.faces.dlib: no download), boxes from the landmarks;
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

from data.faces import NO_BOX, SMOOTH_T, Wav2LipCrop, landmark_boxes, pad_boxes, smooth_boxes

__all__ = [
    "DETECTORS",
    "FACE_SIZE",
    "NO_BOX",
    "SMOOTH_T",
    "crop_faces",
    "landmark_boxes",
    "pad_boxes",
    "paste_faces",
    "smooth_boxes",
]

FACE_SIZE = 96


class FaceDetectionError(RuntimeError):
    """A detector cannot run (missing package, bad box or landmarks file)."""


class Detector(abc.ABC):
    """Per-frame face boxes (x1, y1, x2, y2) int64 [n,4]; a row of -1 where no face was found.

    `pads` is the padding a detector's boxes want when the user gives none: None for the model's own
    (`default_pads`); landmark boxes take the `wav2lip` crop's, so they frame faces as preparation does.
    """

    name = ""
    pads: tuple[int, int, int, int] | None = None

    @abc.abstractmethod
    def __call__(self, frames: np.ndarray, first_index: int = 0) -> np.ndarray:
        """Boxes of `frames`, which are frames first_index, first_index + 1, ... of the video."""


class DlibDetector(Detector):
    """dlib's HOG detector + 68-point predictor on each RGB frame (the largest face), boxed by the landmark rule:
    the landmarks preparation's `dlib` source finds, so the boxes are those of a corpus prepared with it."""

    name = "dlib"
    pads = Wav2LipCrop.pads

    def __init__(self) -> None:
        from data.faces.dlib import DlibFaceLandmarker, FaceModelError

        try:
            self._landmarker = DlibFaceLandmarker()
        except FaceModelError as err:
            msg = f"face detector 'dlib': {err} (or choose --detector full / fixed / landmarks)"
            raise FaceDetectionError(msg) from err

    def __call__(self, frames: np.ndarray, first_index: int = 0) -> np.ndarray:
        return landmark_boxes(self._landmarker.landmarks(frames))


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


class LandmarksDetector(Detector):
    name = "landmarks"
    pads = Wav2LipCrop.pads

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
