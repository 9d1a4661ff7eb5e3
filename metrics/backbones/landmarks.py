"""68-point facial landmarks for metrics (blinks, LMD, head pose, CSIM face alignment): a backend registry.

Backends (LANDMARK_BACKENDS), all returning float32 [T, 68, 2] iBUG-68 pixel coordinates of the given frames:

- ``dlib``: dlib's HOG frontal face detector + the 68-point shape predictor
  (``shape_predictor_68_face_landmarks.dat`` shipped by the ``face-recognition-models`` package), exactly as
  DinoMan/blink-detector runs them: grey frame by skimage ``img_as_ubyte(rgb2gray(frame))``, upsample 0, the
  first detection; a frame without a detection reuses the previous frame's box. Frames before the first
  detection use the first box (the reference appends EAR = 0 there instead; a landmark track has no such
  value). The default real-face backend: it installs and runs offline.
- ``fan``: face-alignment's 2D FAN-4 (``2DFAN4-11f355bf06.pth.tar`` in the torch hub cache,
  ``$TORCH_HOME/hub/checkpoints``); face boxes from dlib's HOG detector (offline) or S3FD
  (``s3fd-619a316812.pth``, same cache). A missing file is an error naming the file, the folder and the URL.
- ``file``: landmarks that come with the sample (``EvalSample.fake_landmarks`` / ``real_landmarks``: the synthetic
  corpus's truth, or landmarks prepared with a corpus).
- ``learned``: the small regressor of ``metrics.backbones.landmark_regressor`` calibrated on the corpus being
  scored (``metrics.calibration.landmarks``, ``bench calibrate --what landmarks``); the synthetic corpus's choice
  (configs/datasets/synthetic.yaml ``metrics:``), since dlib and FAN were never trained on its drawn faces.
- ``auto``: ``dlib``, the real-face default, on any corpus; a corpus that needs another backend says so in its
  dataset config.

``sample_landmarks(sample, backend, which)`` memoises each clip's estimate in ``EvalSample.extra`` so that the
metrics of one scoring pass (blinks, LMD, head pose, CSIM) run the estimator once per clip.
"""

from __future__ import annotations

import abc
import importlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from data.faces import dlib as face_dlib
from data.faces.dlib import reference_grey
from metrics.base import ClipScoreError, EvalSample

if TYPE_CHECKING:
    from data.corpus import LayoutCorpus
    from metrics.weights import WeightsEntry

LANDMARK_BACKENDS: dict[str, str] = {
    "dlib": "metrics.backbones.landmarks:DlibLandmarks",
    "fan": "metrics.backbones.landmarks:FanLandmarks",
    "file": "metrics.backbones.landmarks:FileLandmarks",
    "learned": "metrics.backbones.landmarks:LearnedLandmarks",
}
CHOICES = (*LANDMARK_BACKENDS, "auto")
#: network name prefix of calibrated regressors in the weights store
REGRESSOR_NETWORK = "landmark_regressor"
FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
S3FD_FILE = "s3fd-619a316812.pth"
FAN_URL = "https://www.adrianbulat.com/downloads/python-fan/"


class LandmarkError(RuntimeError):
    """A landmark backend cannot be built (missing package, weights file or calibration)."""


def _sha256(path: Path) -> str:
    from metrics.weights import sha256_file

    return sha256_file(path)


@lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime: float) -> str:
    return _sha256(Path(path))


def file_sha256(path: Path) -> str:
    """sha256 of a model file, cached by (path, size, mtime): the dlib files are 100 MB."""
    st = path.stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime)


# The dlib code lives in the data layer (data.faces.dlib), which preparation and `bench generate` share; these
# wrappers give the metrics their own error type.


def face_models_dir() -> Path:
    """The folder of dlib model files installed by `face-recognition-models` (data.faces.dlib)."""
    try:
        return face_dlib.face_models_dir()
    except face_dlib.FaceModelError as err:
        raise LandmarkError(str(err)) from None


def dlib_model_path(file: str) -> Path:
    try:
        return face_dlib.dlib_model_path(file)
    except face_dlib.FaceModelError as err:
        raise LandmarkError(str(err)) from None


def import_dlib() -> Any:
    try:
        return face_dlib.import_dlib()
    except face_dlib.FaceModelError as err:
        raise LandmarkError(str(err)) from None


def check_video(video: np.ndarray) -> np.ndarray:
    video = np.asarray(video)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be uint8 [T, H, W, 3] RGB, got {video.dtype} {video.shape}")
    return video


class LandmarkBackend(abc.ABC):
    """Estimates landmarks [T, 68, 2] float32 of a clip's frames; `info` describes it for results."""

    name: str = ""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {"backend": self.name}

    @property
    def key(self) -> str:
        """Identifies this estimator (and its weights) in the per-sample memo."""
        return f"{self.name}:{self.info.get('sha256') or ''}"

    @abc.abstractmethod
    def estimate(self, video: np.ndarray) -> np.ndarray:
        """Landmarks of every frame; raise ClipScoreError when no face can be found."""

    def for_sample(self, sample: EvalSample, which: str) -> np.ndarray:
        video = sample.fake if which == "fake" else sample.real
        if video is None:
            raise ClipScoreError(f"no {which} video in the sample to estimate landmarks on")
        return self.estimate(check_video(video))


class DlibLandmarks(LandmarkBackend):
    """dlib HOG detector + 68-point shape predictor (blink-detector's procedure; see the module docstring).

    The detector and predictor are data.faces.dlib's; what is the metrics' own is the policy for frames
    without a detection (the previous frame's box) and the first detection taken in a frame."""

    name = "dlib"

    def __init__(self, upsample: int = 0, predictor: str | None = None) -> None:
        super().__init__()
        try:
            self.core = face_dlib.DlibFaceLandmarker(upsample=upsample, predictor=predictor)
        except face_dlib.FaceModelError as err:
            raise LandmarkError(str(err)) from None
        self.detector = self.core.detector
        self.predictor = self.core.predictor
        self.upsample = self.core.upsample
        self.info.update(
            arch="dlib HOG frontal_face_detector + shape_predictor 68",
            weights=self.core.path.name,
            sha256=file_sha256(self.core.path),
            status="official",
            upsample=self.upsample,
            dlib=self.core.version,
        )

    def boxes(self, greys: list[np.ndarray]) -> list[Any]:
        """One dlib rectangle per frame (previous box where none is found; first box before the first)."""
        found = [self.core.detect(g) for g in greys]
        first = next((r[0] for r in found if len(r)), None)
        if first is None:
            raise ClipScoreError(f"dlib's HOG detector found no face in any of the {len(greys)} frames")
        out, prev = [], first
        for rects in found:
            prev = rects[0] if len(rects) else prev
            out.append(prev)
        return out

    def estimate(self, video: np.ndarray) -> np.ndarray:
        greys = [reference_grey(f) for f in check_video(video)]
        out = np.zeros((len(greys), 68, 2), np.float32)
        for t, (g, box) in enumerate(zip(greys, self.boxes(greys))):
            out[t] = self.core.shape(g, box)
        return out


def torch_hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


class FanLandmarks(LandmarkBackend):
    """face-alignment 2D FAN-4 with weights from the torch hub cache (never downloaded here)."""

    name = "fan"

    def __init__(self, detector: str = "dlib", device: str = "cpu", upsample: int = 0) -> None:
        super().__init__()
        if detector not in ("dlib", "sfd"):
            raise ValueError(f"FAN face detector must be 'dlib' or 'sfd', got {detector!r}")
        cache = torch_hub_checkpoints()
        fan = cache / FAN_FILE
        need = [fan] + ([cache / S3FD_FILE] if detector == "sfd" else [])
        missing = [p for p in need if not p.is_file()]
        if missing:
            raise LandmarkError(
                "the fan landmark backend needs "
                + ", ".join(f"{p.name} (from {FAN_URL}{p.name})" for p in missing)
                + f" in the torch hub cache {cache} (set TORCH_HOME to move it); face-alignment would download "
                "them, which this suite never does. Or use landmarks: dlib."
            )
        import face_alignment

        kwargs: dict[str, Any] = {"device": device, "flip_input": False}
        if detector == "sfd":
            kwargs.update(face_detector="sfd", face_detector_kwargs={"path_to_detector": str(cache / S3FD_FILE)})
        else:
            # boxes come from dlib; the "folder" detector builds without downloading anything
            kwargs.update(face_detector="folder")
        try:
            self.fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, compile=False, **kwargs)
        except TypeError:  # face-alignment < 1.5 has no compile argument
            self.fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, **kwargs)
        self.detector = detector
        self.dlib = DlibLandmarks(upsample=upsample) if detector == "dlib" else None
        self.info.update(
            arch=f"face-alignment 2DFAN-4 ({face_alignment.__version__}), boxes: {detector}",
            weights=FAN_FILE,
            sha256=file_sha256(fan),
            status="official",
        )

    def estimate(self, video: np.ndarray) -> np.ndarray:
        video = check_video(video)
        out = np.zeros((len(video), 68, 2), np.float32)
        if self.dlib is not None:
            rects = self.dlib.boxes([reference_grey(f) for f in video])
            for t, (frame, r) in enumerate(zip(video, rects)):
                box = np.array([[r.left(), r.top(), r.right(), r.bottom(), 1.0]], np.float32)
                out[t] = self.fa.get_landmarks_from_image(frame, detected_faces=box)[0][:, :2]
            return out
        prev = None
        for t, frame in enumerate(video):
            found = self.fa.get_landmarks_from_image(frame)
            prev = found[0][:, :2] if found else prev
            if prev is None:
                raise ClipScoreError(f"S3FD found no face in frame {t} (nor before it)")
            out[t] = prev
        return out


class FileLandmarks(LandmarkBackend):
    """Landmarks that come with the sample: synthetic truth or landmarks prepared with the corpus."""

    name = "file"

    def __init__(self) -> None:
        super().__init__()
        self.info.update(arch="precomputed landmarks (EvalSample.*_landmarks)", status="official")

    def estimate(self, video: np.ndarray) -> np.ndarray:
        raise ClipScoreError("the file landmark backend reads landmarks from the sample; it cannot estimate them")

    def for_sample(self, sample: EvalSample, which: str) -> np.ndarray:
        lm = sample.fake_landmarks if which == "fake" else sample.real_landmarks
        if lm is None:
            raise ClipScoreError(
                f"no precomputed landmarks for the {which} clip (landmarks: file); use learned, dlib or fan"
            )
        lm = np.asarray(lm, np.float32)
        if lm.ndim != 3 or lm.shape[1:] != (68, 2):
            raise ClipScoreError(f"precomputed {which} landmarks must be [T, 68, 2], got {lm.shape}")
        return lm


class LearnedLandmarks(LandmarkBackend):
    """The landmark regressor calibrated on a corpus (metrics.backbones.landmark_regressor), from the weights store."""

    name = "learned"

    def __init__(self, weights: str, device: str = "cpu") -> None:
        super().__init__()
        from metrics import weights as store
        from metrics.backbones.landmark_regressor import regressor_from_blob

        blob, entry = store.load(weights)
        self.net = regressor_from_blob(blob).to(device).eval()
        self.device = device
        self.info.update(
            arch=f"landmark regressor {blob['config']}",
            weights=entry.name,
            sha256=entry.sha256,
            content_sha256=entry.identity,
            status=entry.status,
            report=entry.meta.get("report", {}),
        )

    def estimate(self, video: np.ndarray) -> np.ndarray:
        return np.asarray(self.net.predict(check_video(video), device=self.device))


def resolve_backend_name(name: str) -> str:
    """The backend `name` stands for: `auto` is dlib (the real-face default; a corpus's dataset config chooses
    another backend where its faces need one, e.g. `learned` on the synthetic corpus)."""
    if name not in CHOICES:
        import difflib

        hint = difflib.get_close_matches(name, CHOICES, n=1)
        raise ValueError(
            f"unknown landmark backend {name!r}"
            + (f"; did you mean {hint[0]!r}?" if hint else "")
            + f" (choices: {', '.join(CHOICES)})"
        )
    return "dlib" if name == "auto" else name


def find_regressor(corpus: LayoutCorpus | None) -> WeightsEntry | None:
    """The newest landmark regressor calibrated on exactly this corpus, or None."""
    if corpus is None:
        return None
    from metrics.weights import find_calibrated

    return find_calibrated(corpus.fingerprint(), REGRESSOR_NETWORK)


def landmark_calibration_needed(name: str, corpus: LayoutCorpus | None) -> str | None:
    """ "landmarks" (the benchmark.calibrate.CALIBRATORS entry) when `name` needs a regressor `corpus` lacks."""
    if resolve_backend_name(name) == "learned" and corpus is not None and find_regressor(corpus) is None:
        return "landmarks"
    return None


def takes_device(name: str) -> bool:
    import inspect

    module, cls = LANDMARK_BACKENDS[name].split(":")
    return "device" in inspect.signature(getattr(importlib.import_module(module), cls).__init__).parameters


@lru_cache(maxsize=8)
def _cached_backend(name: str, kwargs: tuple[tuple[str, Any], ...]) -> LandmarkBackend:
    module, cls = LANDMARK_BACKENDS[name].split(":")
    return cast(LandmarkBackend, getattr(importlib.import_module(module), cls)(**dict(kwargs)))


def build_backend(name: str = "auto", corpus: LayoutCorpus | None = None, **kwargs: Any) -> LandmarkBackend:
    """The landmark backend `name` (see CHOICES) for `corpus`, shared by every metric in this process.

    learned: the regressor registered under `weights=` or the newest one calibrated on `corpus`; a clear error
    when there is none (run `bench calibrate --what landmarks`).
    """
    resolved = resolve_backend_name(name)
    if resolved == "learned" and "weights" not in kwargs:
        entry = find_regressor(corpus)
        if entry is None:
            where = f"corpus {corpus.name!r}" if corpus is not None else "this corpus (none was given)"
            raise LandmarkError(
                f"no landmark regressor calibrated on {where}: run `bench calibrate --what landmarks`, "
                "or choose landmarks: dlib / fan / file"
            )
        kwargs["weights"] = entry.name
    return _cached_backend(resolved, tuple(sorted(kwargs.items())))


def sample_landmarks(sample: EvalSample, backend: LandmarkBackend, which: str = "fake") -> np.ndarray:
    """Landmarks [T, 68, 2] of the sample's fake or real clip, estimated once per (sample, backend, which)."""
    if which not in ("fake", "real"):
        raise ValueError(f"which must be 'fake' or 'real', got {which!r}")
    memo = sample.extra.setdefault("landmarks", {})
    key = (backend.key, which)
    if key not in memo:
        try:
            memo[key] = backend.for_sample(sample, which)
        except ClipScoreError as err:
            memo[key] = err
    value = memo[key]
    if isinstance(value, ClipScoreError):
        raise ClipScoreError(str(value))
    return cast(np.ndarray, value)


def clear_cache() -> None:
    """Forget the backends built in this process (tests; a new calibration)."""
    _cached_backend.cache_clear()
