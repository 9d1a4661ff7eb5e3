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

Paste-back (`paste_faces`, `paste_aligned`): the official script pastes the whole resized box (`hard`), whose
edges show as a rectangle wherever the model's colours drift from the frame's. `bench generate` blends by
default through `feather_mask`: a mask that ramps from the region's edge inwards, over the lower face for box
models (the half Wav2Lip / LipGAN redraw: their input hides rows 48-95 of the 96 px crop), over the whole crop
for the head models, whose crop goes back into the photo through the inverse of its alignment.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from data.faces import NO_BOX, SMOOTH_T, Wav2LipCrop, landmark_boxes, pad_boxes, smooth_boxes

__all__ = [
    "DETECTORS",
    "FACE_SIZE",
    "NO_BOX",
    "SMOOTH_T",
    "PASTE_MODES",
    "crop_faces",
    "feather_mask",
    "landmark_boxes",
    "pad_boxes",
    "paste_aligned",
    "paste_faces",
    "smooth_boxes",
]

FACE_SIZE = 96
PASTE_MODES = ("feather", "hard")
# the face box rows the box models redraw start at half the box (their input hides crop rows 48-95 of 96); the
# mask's top edge sits a little above so its ramp ends inside the redrawn half, not on the seam
LOWER_FACE_TOP = 0.4
FEATHER = 0.12  # ramp width, a fraction of the region's smaller side: wide enough to hide a colour step


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
    """dlib's HOG detector + 68-point predictor on each RGB frame, boxed by the landmark rule: the landmarks
    preparation's `dlib` source finds, so the boxes are those of a corpus prepared with it.

    `face_index` K picks the K-th face of a frame in order of detector box area, largest first (0, the default,
    is the largest face, as preparation takes it); a frame with K faces or fewer has no face. Detections scoring
    under `MIN_SCORE` do not count while a frame has a stronger one: HOG at dlib's threshold 0 also fires on
    round textures (scikit-image's astronaut: the face scores 1.56, the larger mission patch 0.04), which the
    largest-face rule would pick. `faces_seen` is the most faces any frame had (for the error when K is out of
    range)."""

    name = "dlib"
    pads = Wav2LipCrop.pads
    MIN_SCORE = 0.3

    def __init__(self, face_index: int = 0) -> None:
        from data.faces.dlib import DlibFaceLandmarker, FaceModelError

        if face_index < 0:
            raise FaceDetectionError(f"face index must be 0 or more (0 = the largest face), got {face_index}")
        try:
            self._landmarker = DlibFaceLandmarker()
        except FaceModelError as err:
            msg = f"face detector 'dlib': {err} (or choose --detector full / fixed / landmarks)"
            raise FaceDetectionError(msg) from err
        self.face_index = int(face_index)
        self.faces_seen = 0

    def landmarks(self, frames: np.ndarray) -> np.ndarray:
        """float32 [T, 68, 2] of the `face_index`-th largest face per frame, NaN rows where there is none."""
        from data.faces.dlib import reference_grey

        out = np.full((len(frames), 68, 2), np.nan, np.float32)
        for i, frame in enumerate(frames):
            grey = reference_grey(np.ascontiguousarray(frame))
            rects, scores, _ = self._landmarker.detector.run(grey, self._landmarker.upsample, 0.0)
            strong = [r for r, sc in zip(rects, scores) if sc >= self.MIN_SCORE] or list(rects)
            rects = sorted(strong, key=lambda r: -r.width() * r.height())
            self.faces_seen = max(self.faces_seen, len(rects))
            if len(rects) > self.face_index:
                out[i] = self._landmarker.shape(grey, rects[self.face_index])
        return out

    def __call__(self, frames: np.ndarray, first_index: int = 0) -> np.ndarray:
        return landmark_boxes(self.landmarks(frames))


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
        self.points = lm
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


def _ramp(n: int, lo: float, hi: float, width: float) -> np.ndarray:
    """float32 [n]: 0 outside [lo, hi), rising linearly over `width` pixels inside each edge (pixel centres), so
    the first and last pixels inside hold values strictly between 0 and 1."""
    x = np.arange(n, dtype=np.float64) + 0.5
    w = max(float(width), 1e-6)
    return np.clip(np.minimum(x - lo, hi - x) / w, 0.0, 1.0).astype(np.float32)


def feather_mask(height: int, width: int, top: float = 0.0, feather: float = FEATHER) -> np.ndarray:
    """float32 [height, width] blend weights: 1 inside the region from row `top` x height down, ramping to 0 over
    `feather` x min(height, width) pixels at every edge of that region (0 above it)."""
    ramp_w = feather * min(height, width)
    return _ramp(height, top * height, height, ramp_w)[:, None] * _ramp(width, 0.0, width, ramp_w)[None, :]


def _blend(dst: np.ndarray, src: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 dst * (1 - mask) + src * mask, rounded."""
    m = mask[..., None]
    return np.round(dst.astype(np.float32) * (1.0 - m) + src.astype(np.float32) * m).astype(np.uint8)


def paste_faces(frames: np.ndarray, boxes: np.ndarray, faces: np.ndarray, mode: str = "feather") -> np.ndarray:
    """Copies of `frames` with each face resized back to its box (cv2 bilinear, inference.py) and pasted: `hard`
    replaces the whole box (the official paste); `feather` blends it in through `feather_mask` over the lower
    face, so no box edge shows."""
    if mode not in PASTE_MODES:
        raise ValueError(f"paste mode must be one of {PASTE_MODES}, got {mode!r}")
    out = np.array(frames, copy=True)
    for i, ((x1, y1, x2, y2), face) in enumerate(zip(boxes, faces)):
        if (x2 - x1, y2 - y1) != face.shape[1::-1]:
            face = cv2.resize(face, (int(x2 - x1), int(y2 - y1)))
        if mode == "hard":
            out[i, y1:y2, x1:x2] = face
        else:
            mask = feather_mask(int(y2 - y1), int(x2 - x1), top=LOWER_FACE_TOP)
            out[i, y1:y2, x1:x2] = _blend(out[i, y1:y2, x1:x2], face, mask)
    return out


def paste_aligned(
    frame: np.ndarray, crops: np.ndarray, m: np.ndarray, feather: float = FEATHER
) -> Iterator[np.ndarray]:
    """uint8 frames [H, W, 3]: each head crop [S, S, 3] put back into `frame` through the inverse of the
    alignment `m` (frame -> crop, [2, 3]), blended by a `feather_mask` over the crop warped the same way.

    The inverse map and the mask are computed once: every crop of a clip was cut from the same identity frame.
    """
    from data.faces.crops import invert_affine

    h, w = frame.shape[:2]
    inv = invert_affine(m)
    if len(crops) == 0:
        return
    s = crops.shape[1]
    mask = cv2.warpAffine(feather_mask(s, s, feather=feather), inv, (w, h), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(mask > 0)
    if len(ys) == 0:  # the head lies wholly outside the frame: nothing of it can show
        for _ in crops:
            yield frame.copy()
        return
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    # shift the inverse map so that only the rows and columns the head covers are warped and blended
    inv_roi = inv.copy()
    inv_roi[:, 2] -= (x0, y0)
    mask_roi = mask[y0:y1, x0:x1]
    for crop in crops:
        out = frame.copy()
        head = cv2.warpAffine(crop, inv_roi, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR)
        out[y0:y1, x0:x1] = _blend(frame[y0:y1, x0:x1], head, mask_roi)
        yield out
