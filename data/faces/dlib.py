"""dlib's HOG face detector + 68-point shape predictor, with the model files of `face-recognition-models`.

Both install from PyPI (dlib-bin, face-recognition-models) and need no download at run time, so this is the
landmark source that works on a fresh machine. The metrics' `dlib` backend (metrics.backbones.landmarks) and
preparation's `dlib` source (data.faces.sources) both run this code; they differ only in what they do with a
frame without a detection (docs/faces.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
# dlib's upsampling of the frame before HOG detection. 0 as DinoMan/blink-detector runs it (the metrics'
# reference); HOG then finds faces from about 80 px wide, which every corpus here has (docs/faces.md).
UPSAMPLE = 0


class FaceModelError(RuntimeError):
    """dlib or its model files are missing (the message says what to install)."""


def face_models_dir() -> Path:
    """The folder of dlib model files installed by `face-recognition-models` (located without importing the
    package, whose __init__ needs pkg_resources, which setuptools >= 82 no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FaceModelError(
            "the dlib model files come from the face-recognition-models package: "
            "pip install face-recognition-models dlib-bin"
        )
    return Path(spec.origin).parent / "models"


def dlib_model_path(file: str) -> Path:
    path = face_models_dir() / file
    if not path.is_file():
        raise FaceModelError(f"{path}: dlib model file missing; reinstall face-recognition-models")
    return path


def import_dlib() -> Any:
    try:
        import dlib
    except ImportError as err:
        raise FaceModelError(f"the dlib landmarks need dlib: pip install dlib-bin ({err})") from err
    return dlib


def reference_grey(frame: np.ndarray) -> np.ndarray:
    """uint8 grey frame as blink-detector makes it: skimage `img_as_ubyte(rgb2gray(frame))` (ITU-R 709 weights;
    cv2's 601 weights move dlib's points enough to change which EAR drops pass the threshold)."""
    from skimage.color import rgb2gray
    from skimage.util import img_as_ubyte

    return img_as_ubyte(rgb2gray(frame))


class DlibFaceLandmarker:
    """HOG detector + 68-point predictor. `detect` and `shape` are the two dlib calls; `landmarks` is the
    per-frame policy of preparation and `bench generate`: the largest face, NaN where none is found."""

    def __init__(self, upsample: int = UPSAMPLE, predictor: str | Path | None = None) -> None:
        dlib = import_dlib()
        path = Path(predictor) if predictor else dlib_model_path(PREDICTOR_FILE)
        if not path.is_file():
            raise FaceModelError(f"{path}: no such dlib shape predictor file")
        self.path = path
        self.version = dlib.__version__
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(path))
        self.upsample = int(upsample)

    def detect(self, grey: np.ndarray) -> list:
        """dlib rectangles of the faces in a uint8 grey frame, in the detector's order."""
        return list(self.detector(grey, self.upsample))

    def shape(self, grey: np.ndarray, rect) -> np.ndarray:
        """float32 [68, 2] landmarks inside one rectangle."""
        parts = self.predictor(grey, rect).parts()
        return np.array([(p.x, p.y) for p in parts], np.float32)

    def landmarks(self, frames: np.ndarray) -> np.ndarray:
        """float32 [T, 68, 2] for uint8 RGB frames [T, H, W, 3]: the largest face of each frame; NaN rows where
        the detector finds none (no carrying over: preparation interpolates short gaps, generate skips them)."""
        out = np.full((len(frames), 68, 2), np.nan, np.float32)
        for i, frame in enumerate(frames):
            grey = reference_grey(np.ascontiguousarray(frame))
            rects = self.detect(grey)
            if rects:
                out[i] = self.shape(grey, max(rects, key=lambda r: r.width() * r.height()))
        return out
