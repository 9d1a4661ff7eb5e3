"""Landmark sources by name: where a clip's 68 face landmarks (iBUG-68, pixels of the decoded video) come from.

- `truth`: the synthetic corpus's ground truth, the sidecar `<video stem>.truth.npz` beside each video;
- `file`: precomputed landmarks, `<landmarks_dir>/<clip_id>.npy` (or `.npz` with key `landmarks`), [T, 68, 2];
- `fan`: face-alignment's 2D-FAN with its S3FD face detector, weights read from the torch hub cache (never
  downloaded here: face-alignment would fetch them, so missing files are an error naming them);
- `dlib`: dlib's HOG detector + the 68-point predictor of face-recognition-models (data.faces.dlib): installs
  from PyPI and runs with no download;
- `auto` (`resolve_source`): `truth` for a clip with a truth sidecar, else `fan` when its weights are in the
  torch hub cache, else `dlib`.

Detector sources (`needs_frames`) see the frames; file sources know the landmarks before decoding. Frames
without a face are NaN rows. docs/faces.md says which source to use when.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from data.layouts import ClipRef

TRUTH_SUFFIX = ".truth.npz"  # data.synthetic.writer TRUTH_NPZ


class LandmarkSourceError(RuntimeError):
    """A landmark source cannot run here (missing package or weights; the message says what to do)."""


class LandmarksMissing(Exception):
    """A clip has no usable landmarks in its file (preparation rejects it as `no_landmarks`)."""


def truth_sidecar(video: Path) -> Path:
    video = Path(video)
    return video.with_name(video.stem + TRUTH_SUFFIX)


def resolve_device(device: str) -> str:
    """`auto`: cuda when torch sees a GPU, else cpu; any other value is used as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class LandmarkSource:
    """Landmarks [T, 68, 2] float32 of one clip; NaN rows where no face was found."""

    name = ""
    needs_frames = False

    def __init__(self, landmarks_dir: str | None = None, device: str = "cpu", detect_batch: int = 16) -> None:
        self.landmarks_dir = landmarks_dir
        self.device = resolve_device(device)
        self.detect_batch = int(detect_batch)

    def known(self, ref: ClipRef) -> np.ndarray:
        """Landmarks known before decoding (file sources; detector sources set needs_frames and use detect)."""
        raise TypeError(f"{type(self).__name__} detects landmarks from frames (needs_frames=True)")

    def detect(self, frames: np.ndarray) -> np.ndarray:
        """Landmarks of a block of uint8 RGB frames [n, H, W, 3] (detector sources)."""
        raise TypeError(f"{type(self).__name__} reads landmarks from files (needs_frames=False)")


def load_landmark_file(path: Path) -> np.ndarray:
    """float32 [T, 68, 2] from an .npy, or an .npz with key `landmarks`; LandmarksMissing naming the file when it
    has none or cannot be read (garbage bytes, a pickled object array: never unpickled)."""
    import zipfile

    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "landmarks" not in z.files:
                    raise LandmarksMissing(f"{path}: no 'landmarks' array (has {z.files})")
                lm = z["landmarks"]
        else:
            lm = np.load(path, allow_pickle=False)
        lm = np.asarray(lm, np.float32)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise LandmarksMissing(f"{path}: cannot be read as landmarks ({err})") from None
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise LandmarksMissing(f"{path}: landmarks must be [T, 68, 2], got {lm.shape}")
    return lm


class TruthSource(LandmarkSource):
    name = "truth"

    def known(self, ref: ClipRef) -> np.ndarray:
        path = truth_sidecar(ref.video)
        if not path.exists():
            raise LandmarksMissing(f"{path} does not exist (landmarks: truth needs the sidecar)")
        return load_landmark_file(path)


class FileSource(LandmarkSource):
    name = "file"

    def __init__(self, landmarks_dir: str | None = None, device: str = "cpu", detect_batch: int = 16) -> None:
        if not landmarks_dir:
            raise LandmarkSourceError("landmarks: file needs landmarks_dir (a folder of <clip_id>.npy / .npz files)")
        super().__init__(landmarks_dir, device, detect_batch)

    def known(self, ref: ClipRef) -> np.ndarray:
        assert self.landmarks_dir is not None  # __init__ refuses a file source without one
        base = Path(self.landmarks_dir) / ref.clip_id
        for suffix in (".npy", ".npz"):
            path = base.with_name(base.name + suffix)
            if path.exists():
                return load_landmark_file(path)
        raise LandmarksMissing(f"no {base}.npy or {base}.npz in the landmarks folder")


def fan_weight_files() -> list[Path]:
    """The 2D-FAN and S3FD files face-alignment loads from the torch hub cache (names from its own URLs)."""
    try:
        import torch
        from face_alignment.api import models_urls
        from face_alignment.detection.sfd.sfd_detector import models_urls as sfd_urls
    except ImportError as err:
        raise LandmarkSourceError(f"landmarks: fan needs the face-alignment package ({err})") from None
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return [folder / os.path.basename(u) for u in (models_urls["2DFAN-4"], sfd_urls["s3fd"])]


def fan_available() -> bool:
    """True when face-alignment is installed and both weight files are in the torch hub cache."""
    try:
        return all(f.exists() for f in fan_weight_files())
    except LandmarkSourceError:
        return False


class FanSource(LandmarkSource):
    """face-alignment's 2D-FAN with its S3FD detector, the largest face per frame, in batches of detect_batch."""

    name = "fan"
    needs_frames = True

    def __init__(self, landmarks_dir: str | None = None, device: str = "cpu", detect_batch: int = 16) -> None:
        super().__init__(landmarks_dir, device, detect_batch)
        missing = [f for f in fan_weight_files() if not f.exists()]
        if missing:
            raise LandmarkSourceError(
                "landmarks: fan needs face-alignment's weights in the torch hub cache, missing: "
                + ", ".join(str(m) for m in missing)
                + ". Copy 2DFAN4 and s3fd there (face-alignment's download URLs name them), or prepare with "
                "landmarks=dlib (no download), landmarks=file (precomputed, prepare.landmarks_dir=...) or "
                "landmarks=truth (synthetic corpora)."
            )
        self._model = None

    def _fa(self):
        if self._model is None:
            import face_alignment

            self._model = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D, device=self.device, flip_input=False, compile=False
            )
        return self._model

    def detect(self, frames: np.ndarray) -> np.ndarray:
        import torch

        fa = self._fa()
        out = np.full((len(frames), 68, 2), np.nan, np.float32)
        for b0 in range(0, len(frames), self.detect_batch):
            batch = torch.from_numpy(np.ascontiguousarray(frames[b0 : b0 + self.detect_batch]))
            batch = batch.permute(0, 3, 1, 2).float()
            with torch.no_grad():
                lms, _, boxes = fa.get_landmarks_from_batch(batch, return_bboxes=True)
            for i, (lm, bx) in enumerate(zip(lms or [], boxes or [])):
                if len(lm) < 68 or bx is None or len(bx) == 0:
                    continue
                bx = np.asarray(bx)
                j = int(np.argmax((bx[:, 2] - bx[:, 0]) * (bx[:, 3] - bx[:, 1])))
                out[b0 + i] = np.asarray(lm, np.float32).reshape(-1, 68, 2)[min(j, len(lm) // 68 - 1)]
        return out


class DlibSource(LandmarkSource):
    """dlib HOG + 68-point predictor (data.faces.dlib): the largest face per frame, NaN where none is found."""

    name = "dlib"
    needs_frames = True

    def __init__(self, landmarks_dir: str | None = None, device: str = "cpu", detect_batch: int = 16) -> None:
        super().__init__(landmarks_dir, device, detect_batch)
        from data.faces.dlib import DlibFaceLandmarker, FaceModelError

        try:
            self.landmarker = DlibFaceLandmarker()
        except FaceModelError as err:
            raise LandmarkSourceError(f"landmarks: dlib: {err}") from None

    def detect(self, frames: np.ndarray) -> np.ndarray:
        return self.landmarker.landmarks(frames)


LANDMARK_SOURCES: dict[str, type[LandmarkSource]] = {
    "truth": TruthSource,
    "file": FileSource,
    "fan": FanSource,
    "dlib": DlibSource,
}
SOURCE_CHOICES = (*LANDMARK_SOURCES, "auto")


def resolve_source(name: str, video: Path, fan_ok: bool | None = None) -> str:
    """The source a clip's landmarks come from: `name`, or for `auto` truth (sidecar present), fan (weights
    present; `fan_ok` when the caller checked once already), else dlib."""
    if name not in SOURCE_CHOICES:
        raise LandmarkSourceError(f"unknown landmark source {name!r}; valid: {', '.join(SOURCE_CHOICES)}")
    if name != "auto":
        return name
    if truth_sidecar(video).exists():
        return "truth"
    if fan_ok if fan_ok is not None else fan_available():
        return "fan"
    return "dlib"


@lru_cache(maxsize=8)
def build_source(name: str, landmarks_dir: str | None = None, device: str = "cpu", detect_batch: int = 16):
    """A landmark source, built once per process (a detector loads its weights once, not once per clip)."""
    if name not in LANDMARK_SOURCES:
        raise LandmarkSourceError(f"unknown landmark source {name!r}; valid: {', '.join(LANDMARK_SOURCES)}")
    return LANDMARK_SOURCES[name](landmarks_dir=landmarks_dir, device=device, detect_batch=detect_batch)
