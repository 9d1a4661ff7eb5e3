"""`bench data prepare`: a real corpus (LRW / CREMA-D / VoxCeleb2 download) -> per-clip arrays + a manifest.

Per clip (SPEC section 3): decode with ffmpeg to 25 fps / 16 kHz mono, streamed through a pipe in fixed-size
chunks of frames, so a one-hour video never has to fit in memory; face landmarks from a landmark source (2D-FAN
by default, in batches of at most `detect_batch` frames; or a landmarks file); boxes smoothed over time; one crop
per model family; audio features computed once. Outputs go to `<prepared>/clips/<clip_id>/` (written to a
temporary folder and renamed) and then a record `<prepared>/records/<clip_id>.json`: a clip is finished exactly
when its record exists, so a run killed at any point and started again redoes only unfinished clips, and the
manifest (rebuilt from the records, sorted) is the same as an uninterrupted run's.

Failures are data: a corrupt file, a missing audio stream, audio and video lengths further apart than the
tolerance, no face in too many frames, a clip that is too short, or landmarks missing from the landmarks file
each give a rejected record with its reason; the run goes on (`strict=True` raises at the end).

Array files (uint8 / float32 .npy, memory-mappable): `crop_<family>.npy` [T, S, S, 3] RGB,
`landmarks_<family>.npy` [T, 68, 2] in that crop's pixels, `landmarks.npy` [T, 68, 2] in the decoded video's
pixels (NaN where no face was found), `audio.npy` [T*640], `mel.npy` [M, 80] (Wav2Lip's mel, time first) and
`mfcc.npy` [K, 13] (python_speech_features as syncnet_python calls it).
"""

from __future__ import annotations

import abc
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from data.clip import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from data.io import MediaError, ffmpeg_exe, probe
from data.layouts import SPLITS, ClipRef, Layout, LayoutError, get_layout
from data.manifest import INFO, REJECTS, assign_shards, write_bytes_if_changed, write_manifest

PREPARE_VERSION = 1

# Reject reasons (the manifest's rejects and the summary count them by these names).
REASONS = {
    "corrupt": "the file cannot be decoded",
    "no_audio": "no audio stream",
    "av_mismatch": "audio and video lengths differ by more than the tolerance",
    "no_face": "no face in too many frames",
    "too_short": "shorter than the minimum length",
    "no_landmarks": "the landmarks file has no landmarks for this clip",
}


class PrepareError(RuntimeError):
    """Preparation cannot run (bad settings, missing weights) or, with strict=True, some clips were rejected."""


class ClipRejected(Exception):
    def __init__(self, reason: str, message: str):
        if reason not in REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


@dataclass
class PrepareConfig:
    """How a corpus is prepared. Unknown keys are errors (`from_dict`)."""

    landmarks: str = "fan"  # LANDMARK_SOURCES: fan | truth | file
    landmarks_dir: str | None = None  # for `file`: <dir>/<clip_id>.npy or .npz (key "landmarks"), [T,68,2]
    device: str = "cpu"  # for `fan`
    crops: list[str] = field(default_factory=lambda: ["wav2lip"])  # CROPS
    features: list[str] = field(default_factory=lambda: ["mel"])  # FEATURES
    chunk_frames: int = 64  # frames per read from the ffmpeg pipe: bounds the decoded video in memory
    detect_batch: int = 16  # most frames per face-detector call (the face-detector out-of-memory problem)
    audio_chunk_s: float = 60.0  # seconds of audio per feature block
    max_av_mismatch_frames: int = 2  # like data.corpus.MAX_AV_MISMATCH_FRAMES
    max_no_face: float = 0.2  # most frames (fraction) allowed without a face; gaps are interpolated
    min_frames: int = 10  # shorter clips are rejected (a Wav2Lip window needs 5 frames + context)
    shard_clips: int = 64  # clips per shard of the manifest (the unit a DDP rank streams)
    workers: int = 2

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PrepareConfig:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PrepareError(f"unknown prepare settings {unknown}; valid: {sorted(known)}")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.landmarks not in LANDMARK_SOURCES:
            raise PrepareError(f"unknown landmark source {self.landmarks!r}; valid: {sorted(LANDMARK_SOURCES)}")
        for c in self.crops:
            if c not in CROPS:
                raise PrepareError(f"unknown crop {c!r}; valid: {sorted(CROPS)}")
        for f in self.features:
            if f not in FEATURES:
                raise PrepareError(f"unknown audio feature {f!r}; valid: {sorted(FEATURES)}")
        if self.landmarks == "file" and not self.landmarks_dir:
            raise PrepareError("landmarks: file needs landmarks_dir (a folder of <clip_id>.npy / .npz files)")
        if self.chunk_frames < 1 or self.detect_batch < 1:
            raise PrepareError("chunk_frames and detect_batch must be >= 1")

    def settings_hash(self) -> str:
        """What decides a clip's outputs; a record made under other settings is redone."""
        keep = {k: v for k, v in asdict(self).items() if k not in ("workers", "shard_clips", "device")}
        keep["version"] = PREPARE_VERSION
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------- streamed I/O


class NpyWriter:
    """Append rows to a .npy file on disk; the header (fixed 128 bytes) is written with the final shape."""

    HEADER = 128

    def __init__(self, path: Path, dtype: str, row_shape: tuple[int, ...]):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.rows = 0
        self._f = open(self.path, "wb")
        self._f.write(b"\0" * self.HEADER)

    def append(self, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if arr.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows of shape {self.row_shape} expected, got {arr.shape[1:]}")
        self._f.write(arr.tobytes())
        self.rows += arr.shape[0]

    def close(self, rows: int | None = None) -> int:
        """Finish the file, keeping only the first `rows` rows when given. Returns the row count."""
        if rows is not None and rows < self.rows:
            self.rows = rows
            self._f.truncate(self.HEADER + rows * int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize)
        text = repr({"descr": self.dtype.str, "fortran_order": False, "shape": (self.rows, *self.row_shape)})
        pad = self.HEADER - 10 - len(text) - 1
        header = b"\x93NUMPY\x01\x00" + np.uint16(self.HEADER - 10).tobytes() + text.encode() + b" " * pad + b"\n"
        self._f.seek(0)
        self._f.write(header)
        self._f.close()
        return self.rows


def _stream(args: list[str], path: Path, nbytes: int) -> Iterator[bytes]:
    """Run ffmpeg and yield its stdout in blocks of `nbytes` (the last may be shorter); MediaError on failure.

    stderr goes to a temporary file, not a pipe: a damaged file can make ffmpeg report thousands of errors,
    which would fill a pipe nobody reads and stall the decoder.
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *args],
            stdout=subprocess.PIPE,
            stderr=err,
        )
        try:
            while True:
                block = proc.stdout.read(nbytes)
                if not block:
                    break
                yield block
        finally:
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            raise MediaError(path, "ffmpeg failed: " + (lines[-1] if lines else f"exit code {code}"))


def stream_frames(path: str | os.PathLike, width: int, height: int, chunk_frames: int) -> Iterator[np.ndarray]:
    """uint8 [<=chunk_frames, H, W, 3] RGB blocks of the video resampled to 25 fps, in order."""
    path = Path(path)
    frame_bytes = width * height * 3
    args = ["-i", str(path), "-map", "0:v:0", "-vf", f"fps={FPS}", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    for block in _stream(args, path, frame_bytes * chunk_frames):
        n = len(block) // frame_bytes
        if n:
            yield np.frombuffer(block[: n * frame_bytes], np.uint8).reshape(n, height, width, 3)


def stream_audio(path: str | os.PathLike, chunk_samples: int) -> Iterator[np.ndarray]:
    """float32 mono 16 kHz blocks in [-1, 1] of the first audio stream."""
    path = Path(path)
    args = ["-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "pipe:"]
    for block in _stream(args, path, 2 * chunk_samples):
        n = len(block) // 2
        yield np.frombuffer(block[: 2 * n], "<i2").astype(np.float32) / 32768.0


def _read_rows(path: Path, start: int, stop: int, dtype=np.float32) -> np.ndarray:
    """Rows [start, stop) of a 1-D .npy written by NpyWriter, read without mapping the file."""
    with open(path, "rb") as f:
        f.seek(NpyWriter.HEADER + start * np.dtype(dtype).itemsize)
        return np.fromfile(f, dtype=dtype, count=max(0, stop - start))


# ----------------------------------------------------------------------------------------- audio features


def _mel_blocks(audio_path: Path, n: int, block: int) -> Iterator[np.ndarray]:
    """Wav2Lip's mel of audio[:n] as [M, 80] blocks, equal to data.audio.wav2lip_melspectrogram(audio).T.

    The STFT is centred (frame j covers samples 200 j - 400 .. 200 j + 400) and pre-emphasis looks one sample
    back, so a block of frames computed from its samples plus 1,000 samples of context on each side is exact;
    the reflect padding of the centred STFT then only touches context frames, which are dropped.
    """
    from data.audio import MEL_HOP, wav2lip_melspectrogram

    total = 1 + n // MEL_HOP
    per = max(1, block // MEL_HOP)
    ctx = 5  # frames of context each side: 5 * 200 = 1,000 samples > 400 + 1
    for j0 in range(0, total, per):
        j1 = min(total, j0 + per)
        a0 = max(0, (j0 - ctx) * MEL_HOP)
        a1 = min(n, (j1 + ctx) * MEL_HOP)
        mel = wav2lip_melspectrogram(_read_rows(audio_path, a0, a1))
        first = j0 - a0 // MEL_HOP
        yield mel[:, first : first + (j1 - j0)].T


def _mfcc_blocks(audio_path: Path, n: int, block: int) -> Iterator[np.ndarray]:
    """python_speech_features' MFCC of audio[:n] * 32768 as [K, 13] blocks, equal to data.audio.psf_mfcc.

    Frame k covers samples 160 k .. 160 k + 400 (no centring); a block starts one frame step early so that
    pre-emphasis sees the sample before its first frame, and that extra frame is dropped.
    """
    from data.audio import psf_mfcc

    step, win = 160, 400
    total = 1 if n <= win else 1 + int(np.ceil((n - win) / step))
    per = max(1, block // step)
    for k0 in range(0, total, per):
        k1 = min(total, k0 + per)
        lead = 1 if k0 > 0 else 0
        a0 = (k0 - lead) * step
        a1 = min(n, (k1 - 1) * step + win)
        ceps = psf_mfcc(_read_rows(audio_path, a0, a1) * 32768.0)
        yield ceps[lead : lead + (k1 - k0)].astype(np.float32)


@dataclass(frozen=True)
class Feature:
    file: str
    width: int
    blocks: Callable[[Path, int, int], Iterator[np.ndarray]]


FEATURES: dict[str, Feature] = {
    "mel": Feature("mel.npy", 80, _mel_blocks),  # Wav2Lip / LipGAN-mel
    "mfcc": Feature("mfcc.npy", 13, _mfcc_blocks),  # SyncNet evaluation (syncnet_python)
}


# ----------------------------------------------------------------------------------------- landmarks


class LandmarkSource:
    """Landmarks [T, 68, 2] (iBUG-68, pixels of the decoded video; NaN rows where no face was found)."""

    needs_frames = False

    def __init__(self, cfg: PrepareConfig):
        self.cfg = cfg

    def known(self, ref: ClipRef) -> np.ndarray:
        """Landmarks known before decoding (file sources; detector sources set needs_frames and use detect)."""
        raise TypeError(f"{type(self).__name__} detects landmarks from frames (needs_frames=True)")

    def detect(self, frames: np.ndarray) -> np.ndarray:
        """Landmarks of a block of frames (detector sources)."""
        raise TypeError(f"{type(self).__name__} reads landmarks from files (needs_frames=False)")


def _load_landmark_file(path: Path) -> np.ndarray:
    if path.suffix == ".npz":
        with np.load(path) as z:
            if "landmarks" not in z.files:
                raise ClipRejected("no_landmarks", f"{path}: no 'landmarks' array (has {z.files})")
            lm = z["landmarks"]
    else:
        lm = np.load(path)
    lm = np.asarray(lm, np.float32)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ClipRejected("no_landmarks", f"{path}: landmarks must be [T, 68, 2], got {lm.shape}")
    return lm


class TruthLandmarks(LandmarkSource):
    """The synthetic corpus's ground truth: `<video stem>.truth.npz` beside each video."""

    def known(self, ref: ClipRef) -> np.ndarray:
        path = ref.video.with_name(ref.video.stem + ".truth.npz")
        if not path.exists():
            raise ClipRejected("no_landmarks", f"{path} does not exist (landmarks: truth needs the sidecar)")
        return _load_landmark_file(path)


class FileLandmarks(LandmarkSource):
    """Precomputed landmarks: `<landmarks_dir>/<clip_id>.npy` (or .npz with key `landmarks`), [T, 68, 2]."""

    def known(self, ref: ClipRef) -> np.ndarray:
        base = Path(self.cfg.landmarks_dir) / ref.clip_id
        for suffix in (".npy", ".npz"):
            path = base.with_name(base.name + suffix)
            if path.exists():
                return _load_landmark_file(path)
        raise ClipRejected("no_landmarks", f"no {base}.npy or {base}.npz in the landmarks folder")


class FanLandmarks(LandmarkSource):
    """face-alignment's 2D-FAN with its S3FD detector (the largest face per frame), weights from the torch hub
    cache; face-alignment would download them, which the suite never does, so missing files are an error."""

    needs_frames = True
    _model = None

    def __init__(self, cfg: PrepareConfig):
        super().__init__(cfg)
        self._check_weights()

    @staticmethod
    def weight_files() -> list[Path]:
        import torch
        from face_alignment.api import models_urls
        from face_alignment.detection.sfd.sfd_detector import models_urls as sfd_urls

        folder = Path(torch.hub.get_dir()) / "checkpoints"
        return [folder / os.path.basename(u) for u in (models_urls["2DFAN-4"], sfd_urls["s3fd"])]

    def _check_weights(self) -> None:
        try:
            files = self.weight_files()
        except ImportError as err:
            raise PrepareError(f"landmarks: fan needs the face-alignment package ({err})") from None
        missing = [f for f in files if not f.exists()]
        if missing:
            raise PrepareError(
                "landmarks: fan needs face-alignment's weights in the torch hub cache, missing: "
                + ", ".join(str(m) for m in missing)
                + ". Copy 2DFAN4 and s3fd there (face-alignment's download URLs name them), or prepare with "
                "landmarks=file (precomputed, prepare.landmarks_dir=...) or landmarks=truth (synthetic corpora)."
            )

    def _fa(self):
        if FanLandmarks._model is None:
            import face_alignment

            FanLandmarks._model = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D, device=self.cfg.device, flip_input=False, compile=False
            )
        return FanLandmarks._model

    def detect(self, frames: np.ndarray) -> np.ndarray:
        import torch

        fa = self._fa()
        out = np.full((len(frames), 68, 2), np.nan, np.float32)
        for b0 in range(0, len(frames), self.cfg.detect_batch):
            batch = torch.from_numpy(np.ascontiguousarray(frames[b0 : b0 + self.cfg.detect_batch]))
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


LANDMARK_SOURCES: dict[str, type[LandmarkSource]] = {
    "fan": FanLandmarks,
    "truth": TruthLandmarks,
    "file": FileLandmarks,
}


def fill_gaps(landmarks: np.ndarray) -> np.ndarray:
    """Linear interpolation over frames without a face (edge frames take the nearest face)."""
    ok = np.isfinite(landmarks).all(axis=(1, 2))
    if ok.all():
        return landmarks
    t = np.arange(len(landmarks))
    flat = landmarks.reshape(len(landmarks), -1).copy()
    for k in range(flat.shape[1]):
        flat[~ok, k] = np.interp(t[~ok], t[ok], flat[ok, k])
    return flat.reshape(landmarks.shape)


# ----------------------------------------------------------------------------------------- crops


def face_boxes(landmarks: np.ndarray) -> np.ndarray:
    """[T, 4] (x1, y1, x2, y2) face boxes like a face detector's from iBUG-68 landmarks.

    The 68 points reach from the brows to the chin; S3FD's boxes (what Wav2Lip crops and syncnet_python tracks)
    also take in part of the forehead, so the top edge is raised by a quarter of the brow-to-chin height.
    """
    x1, x2 = landmarks[:, :, 0].min(1), landmarks[:, :, 0].max(1)
    top, bottom = landmarks[:, 17:27, 1].min(1), landmarks[:, :, 1].max(1)
    return np.stack([x1, top - 0.25 * (bottom - top), x2, bottom], axis=1)


def forward_mean(values: np.ndarray, t: int) -> np.ndarray:
    """Wav2Lip inference.py `get_smoothened_boxes`: each row is the mean of itself and the next t-1 rows (the
    last t rows share the final window). Unlike the official loop it averages the unsmoothed rows throughout."""
    n = len(values)
    if n <= t:
        return np.repeat(values.mean(0, keepdims=True), n, axis=0)
    c = np.cumsum(np.concatenate([np.zeros_like(values[:1]), values]), axis=0)
    starts = np.minimum(np.arange(n), n - t)
    return (c[starts + t] - c[starts]) / t


def _medfilt(x: np.ndarray, k: int) -> np.ndarray:
    """Running median over k frames, edges repeated. syncnet_python's scipy.signal.medfilt pads with zeros,
    which drags the first and last k // 2 values towards 0 (and all of them in a clip shorter than k)."""
    import scipy.ndimage

    return scipy.ndimage.median_filter(np.asarray(x, np.float64), size=k, mode="nearest")


def _slice_padded(frame: np.ndarray, y0: int, y1: int, x0: int, x1: int, fill: int | None) -> np.ndarray:
    """frame[y0:y1, x0:x1] with rows/cols outside the frame filled with `fill` (None: edge pixels)."""
    h, w = frame.shape[:2]
    ys, xs = np.arange(y0, y1), np.arange(x0, x1)
    if fill is None:
        return frame[np.clip(ys, 0, h - 1)][:, np.clip(xs, 0, w - 1)]
    out = np.full((len(ys), len(xs), 3), fill, np.uint8)
    yi, xi = (ys >= 0) & (ys < h), (xs >= 0) & (xs < w)
    if yi.any() and xi.any():
        out[np.ix_(yi, xi)] = frame[ys[yi]][:, xs[xi]]
    return out


class Crop(abc.ABC):
    """One model family's crop: per-frame affine maps (frame -> crop pixels) from smoothed landmarks."""

    name = ""
    size = 0

    @abc.abstractmethod
    def transforms(self, landmarks: np.ndarray) -> np.ndarray:
        """[T, 2, 3] affine matrices from landmarks [T, 68, 2] (gaps already filled)."""

    @abc.abstractmethod
    def apply(self, frame: np.ndarray, m: np.ndarray) -> np.ndarray:
        """The crop of one frame under its affine map."""


class BoxCrop(Crop):
    """Axis-aligned box -> square crop; the box is cut (padded where it leaves the frame) and resized with
    INTER_AREA, which averages when shrinking (a 480x360 CREMA-D frame to 96 px would alias otherwise)."""

    fill: int | None = None

    @abc.abstractmethod
    def boxes(self, landmarks: np.ndarray) -> np.ndarray:
        """[T, 4] smoothed (x1, y1, x2, y2) crop boxes."""

    def transforms(self, landmarks: np.ndarray) -> np.ndarray:
        b = self.boxes(landmarks)
        sx = self.size / np.maximum(b[:, 2] - b[:, 0], 1.0)
        sy = self.size / np.maximum(b[:, 3] - b[:, 1], 1.0)
        m = np.zeros((len(b), 2, 3), np.float64)
        m[:, 0, 0], m[:, 0, 2] = sx, -sx * b[:, 0]
        m[:, 1, 1], m[:, 1, 2] = sy, -sy * b[:, 1]
        return m

    def apply(self, frame: np.ndarray, m: np.ndarray) -> np.ndarray:
        import cv2

        x0, y0 = -m[0, 2] / m[0, 0], -m[1, 2] / m[1, 1]
        x1, y1 = x0 + self.size / m[0, 0], y0 + self.size / m[1, 1]
        patch = _slice_padded(frame, int(round(y0)), int(round(y1)), int(round(x0)), int(round(x1)), self.fill)
        if patch.shape[0] < 1 or patch.shape[1] < 1:
            patch = np.zeros((1, 1, 3), np.uint8)
        return cv2.resize(patch, (self.size, self.size), interpolation=cv2.INTER_AREA)


class Wav2LipCrop(BoxCrop):
    """Wav2Lip / LipGAN: the face box resized to 96x96 (not squared: Wav2Lip:preprocess.py saves the S3FD box
    as is and the loader resizes it), smoothed with inference.py's forward mean over 5 detections."""

    name, size = "wav2lip", 96

    def boxes(self, landmarks: np.ndarray) -> np.ndarray:
        return forward_mean(face_boxes(landmarks), 5)


class SyncNetCrop(BoxCrop):
    """syncnet_python run_pipeline.py `crop_video` (crop_scale 0.4): s = max(box w, h) / 2 and the box centre,
    each median-filtered over 13 frames; rows [y - s, y + s (1 + 2 cs)], cols [x - s (1 + cs), x + s (1 + cs)];
    outside the frame filled with 110; resized to 224x224."""

    name, size, fill = "syncnet", 224, 110
    crop_scale = 0.4

    def boxes(self, landmarks: np.ndarray) -> np.ndarray:
        b = face_boxes(landmarks)
        s = _medfilt(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 2, 13)
        x = _medfilt((b[:, 0] + b[:, 2]) / 2, 13)
        y = _medfilt((b[:, 1] + b[:, 3]) / 2, 13)
        cs = self.crop_scale
        return np.stack([x - s * (1 + cs), y - s, x + s * (1 + cs), y + s * (1 + 2 * cs)], axis=1)


class AlignedHeadCrop(Crop):
    """Diffused Heads: a 128x128 head aligned by a similarity transform (eye line level, eye midpoint at
    (64, 52), inter-ocular distance 34 px), its parameters averaged over 5 frames. The official clips were
    aligned with DinoMan/face-processor, whose template is not documented; this framing keeps the whole head
    and some background, as in the released CREMA samples."""

    name, size = "diffused_heads", 128
    eye_mid, eye_dist = (64.0, 52.0), 34.0

    def transforms(self, landmarks: np.ndarray) -> np.ndarray:
        left, right = landmarks[:, 36:42].mean(1), landmarks[:, 42:48].mean(1)
        mid = (left + right) / 2
        d = right - left
        params = np.stack([mid[:, 0], mid[:, 1], np.hypot(d[:, 0], d[:, 1]), np.arctan2(d[:, 1], d[:, 0])], 1)
        k = min(5, len(params))
        pad = np.concatenate([np.repeat(params[:1], k // 2, 0), params, np.repeat(params[-1:], k - 1 - k // 2, 0)])
        params = np.stack([pad[i : i + len(params)] for i in range(k)]).mean(0)
        scale = self.eye_dist / np.maximum(params[:, 2], 1e-3)
        cos, sin = np.cos(-params[:, 3]) * scale, np.sin(-params[:, 3]) * scale
        m = np.zeros((len(params), 2, 3), np.float64)
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
        m[:, 0, 2] = self.eye_mid[0] - (cos * params[:, 0] - sin * params[:, 1])
        m[:, 1, 2] = self.eye_mid[1] - (sin * params[:, 0] + cos * params[:, 1])
        return m

    def apply(self, frame: np.ndarray, m: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.warpAffine(frame, m, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


CROPS: dict[str, Crop] = {c.name: c for c in (Wav2LipCrop(), SyncNetCrop(), AlignedHeadCrop())}


def transform_points(landmarks: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Landmarks [T, 68, 2] through per-frame affine maps [T, 2, 3]."""
    return (np.einsum("tij,tkj->tki", m[:, :, :2], landmarks) + m[:, None, :, 2]).astype(np.float32)


# ----------------------------------------------------------------------------------------- one clip


def source_stamp(ref: ClipRef) -> dict[str, list[int]]:
    """Size and mtime of a clip's raw files: a changed file makes its record stale."""
    out = {}
    for f in [ref.video] + ([ref.audio] if ref.audio else []):
        st = f.stat()
        out[f.name] = [int(st.st_size), int(st.st_mtime)]
    return out


def _speaker_and_word(ref: ClipRef) -> tuple[str, str | None, str | None]:
    """Speaker, word and transcript: from the layout, else from a synthetic truth sidecar (LRW has none)."""
    speaker, word, transcript = ref.speaker_id, ref.word, None
    side = ref.video.with_name(ref.video.stem + ".truth.json")
    if side.exists():
        truth = json.loads(side.read_text())
        speaker = speaker or str(truth.get("speaker_id") or "")
        word = word or truth.get("word")
        transcript = truth.get("transcript")
    return speaker, word, transcript


def prepare_clip(ref: ClipRef, root: Path, out: Path, cfg: PrepareConfig) -> dict[str, Any]:
    """Prepare one clip into out/clips/<clip_id>/ and return its record (status ok, or rejected + reason)."""
    speaker, word, transcript = _speaker_and_word(ref)
    record: dict[str, Any] = {
        "clip_id": ref.clip_id,
        "video": ref.video.relative_to(root).as_posix(),
        "audio": ref.audio.relative_to(root).as_posix() if ref.audio else None,
        "speaker_id": speaker,
        "word": word,
        "transcript": transcript,
        "stamp": source_stamp(ref),
        "settings": cfg.settings_hash(),
    }
    final = out / "clips" / ref.clip_id
    tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        record.update(_prepare_into(ref, tmp, cfg))
        record["status"] = "ok"
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        record["dir"] = final.relative_to(out).as_posix()
    except ClipRejected as rej:
        record.update(status="rejected", reason=rej.reason, message=rej.message)
        shutil.rmtree(final, ignore_errors=True)
    except MediaError as err:
        record.update(status="rejected", reason="corrupt", message=str(err))
        shutil.rmtree(final, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def _prepare_into(ref: ClipRef, d: Path, cfg: PrepareConfig) -> dict[str, Any]:
    try:
        vinfo = probe(ref.video)
    except MediaError as err:
        raise ClipRejected("corrupt", str(err)) from None
    if not vinfo.has_video or vinfo.width <= 0:
        raise ClipRejected("corrupt", f"{ref.video}: no video stream")
    audio_file = ref.audio if ref.audio is not None else ref.video
    ainfo = vinfo if ref.audio is None else _probe_or_reject(ref.audio)
    if not ainfo.has_audio:
        raise ClipRejected("no_audio", f"{audio_file}: has no audio stream")

    # audio first (small: 64 kB per second), streamed to disk
    writer = NpyWriter(d / "audio.npy", "<f4", ())
    try:
        for block in stream_audio(audio_file, int(cfg.audio_chunk_s * SAMPLE_RATE)):
            writer.append(block)
    except MediaError:
        writer.close()
        raise
    n_audio = writer.rows
    writer.close()
    if n_audio == 0:
        raise ClipRejected("no_audio", f"{audio_file}: the audio stream decodes to no samples")

    source = LANDMARK_SOURCES[cfg.landmarks](cfg)
    crops = [CROPS[c] for c in cfg.crops]
    w, h = vinfo.width, vinfo.height
    if source.needs_frames:
        # pass 1: count frames and detect faces chunk by chunk; pass 2 below crops with the smoothed boxes
        parts = [source.detect(block) for block in stream_frames(ref.video, w, h, cfg.chunk_frames)]
        raw = np.concatenate(parts) if parts else np.zeros((0, 68, 2), np.float32)
        n_video = len(raw)
    else:
        raw = source.known(ref)
        n_video = None  # counted while cropping (one decode)

    def check_lengths(t_video: int) -> int:
        t_audio = n_audio // SAMPLES_PER_FRAME
        if t_video == 0:
            raise ClipRejected("corrupt", f"{ref.video}: decodes to no video frames (truncated or empty)")
        if abs(t_video - t_audio) > cfg.max_av_mismatch_frames:
            raise ClipRejected(
                "av_mismatch",
                f"{ref.video}: video has {t_video} frames but the audio lasts {t_audio} frames "
                f"(tolerance {cfg.max_av_mismatch_frames})",
            )
        t = min(t_video, t_audio)
        if t < cfg.min_frames:
            raise ClipRejected("too_short", f"{ref.video}: {t} frames ({t / FPS:.2f} s) < min_frames {cfg.min_frames}")
        return t

    def checked_landmarks(t: int) -> tuple[np.ndarray, float]:
        lm = np.full((t, 68, 2), np.nan, np.float32)
        lm[: min(t, len(raw))] = raw[:t]
        ok = np.isfinite(lm).all(axis=(1, 2))
        missing = 1.0 - ok.mean()
        if missing > cfg.max_no_face or not ok.any():
            raise ClipRejected(
                "no_face", f"{ref.video}: no face in {missing:.0%} of {t} frames (max_no_face {cfg.max_no_face:.0%})"
            )
        return lm, float(missing)

    if n_video is not None:
        t = check_lengths(n_video)
        lm, missing = checked_landmarks(t)
    else:
        # file landmarks: the frame count is known only after decoding, so crop with landmarks padded to the
        # longest plausible length and check afterwards
        t_guess = max(len(raw), n_audio // SAMPLES_PER_FRAME + cfg.max_av_mismatch_frames)
        lm_all = np.full((t_guess, 68, 2), np.nan, np.float32)
        lm_all[: len(raw)] = raw
        if not np.isfinite(lm_all).all(axis=(1, 2)).any():
            raise ClipRejected("no_face", f"{ref.video}: the landmarks file marks no frame with a face")
        lm, missing = lm_all, 0.0
    filled = fill_gaps(lm)
    mats = {c.name: c.transforms(filled) for c in crops}
    writers = {c.name: NpyWriter(d / f"crop_{c.name}.npy", "|u1", (c.size, c.size, 3)) for c in crops}
    count = 0
    limit = len(filled)
    for block in stream_frames(ref.video, w, h, cfg.chunk_frames):
        for c in crops:
            m = mats[c.name]
            keep = block[: max(0, limit - count)]
            if len(keep):
                writers[c.name].append(np.stack([c.apply(f, m[count + i]) for i, f in enumerate(keep)]))
        count += len(block)
    if n_video is None:
        t = check_lengths(count)
        lm, missing = checked_landmarks(t)  # `filled` and `mats` stay those the crops were made with
    elif count < t:
        raise ClipRejected("corrupt", f"{ref.video}: decoded {count} frames on the second pass, {t} on the first")
    for c in crops:
        writers[c.name].close(rows=t)
        np.save(d / f"landmarks_{c.name}.npy", transform_points(filled[:t], mats[c.name][:t]))
    np.save(d / "landmarks.npy", lm[:t])
    _truncate_npy(d / "audio.npy", t * SAMPLES_PER_FRAME)
    feats = {}
    for name in cfg.features:
        feat = FEATURES[name]
        fw = NpyWriter(d / feat.file, "<f4", (feat.width,))
        for block in feat.blocks(d / "audio.npy", t * SAMPLES_PER_FRAME, int(cfg.audio_chunk_s * SAMPLE_RATE)):
            fw.append(block)
        feats[name] = [fw.close(), feat.width]
    return {
        "n_frames": int(t),
        "seconds": round(t / FPS, 3),
        "source": {"width": w, "height": h, "fps": vinfo.fps, "video_frames": int(count), "audio_samples": n_audio},
        "no_face_fraction": round(missing, 4),
        "crops": {c.name: c.size for c in crops},
        "features": feats,
    }


def _probe_or_reject(path: Path):
    try:
        return probe(path)
    except MediaError as err:
        raise ClipRejected("corrupt", str(err)) from None


def _truncate_npy(path: Path, rows: int) -> None:
    """Shorten a 1-D float32 NpyWriter file to `rows` rows (the audio, cut to whole video frames)."""
    w = NpyWriter.__new__(NpyWriter)
    w.path, w.dtype, w.row_shape = path, np.dtype("<f4"), ()
    w.rows = (path.stat().st_size - NpyWriter.HEADER) // 4
    w._f = open(path, "r+b")
    w.close(rows=min(rows, w.rows))


# ----------------------------------------------------------------------------------------- the corpus


def record_path(out: Path, clip_id: str) -> Path:
    return out / "records" / f"{clip_id}.json"


def _write_record(out: Path, record: dict[str, Any]) -> None:
    path = record_path(out, record["clip_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, sort_keys=True))
    os.replace(tmp, path)


def _finished(out: Path, ref: ClipRef, settings: str) -> dict[str, Any] | None:
    path = record_path(out, ref.clip_id)
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if rec.get("settings") != settings or rec.get("stamp") != source_stamp(ref):
        return None
    if rec.get("status") == "ok" and not (out / rec.get("dir", "\0")).is_dir():
        return None
    return rec


def _work(args: tuple) -> dict[str, Any]:
    ref, root, out, cfg = args
    rec = prepare_clip(ref, root, out, cfg)
    _write_record(out, rec)
    return rec


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split_file_hashes(root: Path, split_dir: Path | None) -> dict[str, str]:
    folder = Path(split_dir) if split_dir else Path(root) / "splits"
    return {p.name: _sha256(p) for p in sorted(folder.glob("*.txt"))} if folder.is_dir() else {}


def derive_val(refs: list[ClipRef], speakers_of: dict[str, str], val_speakers: int) -> dict[str, str]:
    """clip_id -> "val" for every clip of `val_speakers` train speakers, chosen by a hash of the speaker id
    (stable, independent of the order of files), when the corpus has no val split of its own."""
    if val_speakers <= 0 or any(r.split == "val" for r in refs):
        return {}
    train = sorted({speakers_of[r.clip_id] for r in refs if r.split == "train" and speakers_of.get(r.clip_id)})
    if len(train) < 2:
        return {}
    train.sort(key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    chosen = set(train[: min(val_speakers, len(train) - 1)])
    return {r.clip_id: "val" for r in refs if r.split == "train" and speakers_of.get(r.clip_id) in chosen}


@dataclass
class PrepareSummary:
    dataset: str
    out: str
    total: int
    prepared: int
    skipped: int
    accepted: int
    rejected: dict[str, int]
    splits: dict[str, int]
    elapsed_s: float
    clips_per_s: float

    def format(self) -> str:
        lines = [
            f"{self.dataset}: {self.total} clips, {self.prepared} prepared now, {self.skipped} already done",
            f"  accepted {self.accepted} ({', '.join(f'{k} {v}' for k, v in self.splits.items())})",
        ]
        if self.rejected:
            lines.append("  rejected " + ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())))
        else:
            lines.append("  rejected 0")
        lines.append(f"  {self.elapsed_s:.1f} s, {self.clips_per_s:.2f} clips/s -> {self.out}")
        return "\n".join(lines)


def prepare_corpus(
    name: str,
    root: str | os.PathLike,
    layout: str | Layout,
    out: str | os.PathLike,
    cfg: PrepareConfig | None = None,
    *,
    split_dir: str | os.PathLike | None = None,
    val_speakers: int = 0,
    strict: bool = False,
    progress: bool = True,
    limit: int | None = None,
) -> PrepareSummary:
    """Prepare every clip of a corpus (skipping finished ones) and rebuild the manifest. See the module doc."""
    cfg = cfg or PrepareConfig()
    cfg.validate()
    if LANDMARK_SOURCES[cfg.landmarks].needs_frames:
        LANDMARK_SOURCES[cfg.landmarks](cfg)  # a detector without its weights fails now, not once per clip
    root, out = Path(root).expanduser(), Path(out).expanduser()
    lay = get_layout(layout) if isinstance(layout, str) else layout
    refs = lay.scan(root, split_dir)
    if limit:
        refs = refs[:limit]
    out.mkdir(parents=True, exist_ok=True)
    for leftover in (out / "clips").glob("**/*.tmp*"):  # a killed run's half-written clip folders
        shutil.rmtree(leftover, ignore_errors=True)
    settings = cfg.settings_hash()
    t0 = time.perf_counter()
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for ref in refs:
        rec = _finished(out, ref, settings)
        if rec is None:
            todo.append(ref)
        else:
            records[ref.clip_id] = rec
    bar = _Bar(progress, len(refs), f"prepare {name}")
    bar.update(len(records), sum(r["status"] != "ok" for r in records.values()))
    jobs = [(ref, root, out, cfg) for ref in todo]
    try:
        if cfg.workers <= 1 or len(jobs) <= 1:
            _init_worker()
            for job in jobs:
                rec = _work(job)
                records[rec["clip_id"]] = rec
                bar.update(1, rec["status"] != "ok")
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx, initializer=_init_worker) as pool:
                for fut in as_completed([pool.submit(_work, job) for job in jobs]):
                    rec = fut.result()
                    records[rec["clip_id"]] = rec
                    bar.update(1, rec["status"] != "ok")
    finally:
        bar.stop()
    elapsed = time.perf_counter() - t0
    counts = build_manifest(name, root, lay, out, refs, records, cfg, split_dir=split_dir, val_speakers=val_speakers)
    summary = PrepareSummary(
        dataset=name,
        out=str(out),
        total=len(refs),
        prepared=len(todo),
        skipped=len(refs) - len(todo),
        accepted=counts["accepted"],
        rejected=counts["rejected"],
        splits=counts["splits"],
        elapsed_s=round(elapsed, 2),
        clips_per_s=round(len(todo) / elapsed, 3) if todo and elapsed > 0 else 0.0,
    )
    if strict and summary.rejected:
        raise PrepareError(
            f"{sum(summary.rejected.values())} clips rejected ({summary.rejected}); see {out / REJECTS} (strict mode)"
        )
    return summary


def build_manifest(
    name: str,
    root: Path,
    lay: Layout,
    out: Path,
    refs: list[ClipRef],
    records: dict[str, dict[str, Any]],
    cfg: PrepareConfig,
    *,
    split_dir=None,
    val_speakers: int = 0,
) -> dict[str, Any]:
    """manifest.jsonl, rejects.jsonl and prepared.json from the finished records (deterministic: sorted, no
    times), so an interrupted and resumed run writes the same files as an uninterrupted one."""
    speakers = {cid: rec.get("speaker_id") or "" for cid, rec in records.items()}
    to_val = derive_val(refs, speakers, val_speakers)
    entries, rejects = [], []
    for ref in refs:
        rec = records.get(ref.clip_id)
        if rec is None:
            continue
        split = to_val.get(ref.clip_id, ref.split)
        if rec["status"] != "ok":
            rejects.append({"clip_id": ref.clip_id, "split": split, "reason": rec["reason"], "message": rec["message"]})
            continue
        if split not in SPLITS:
            continue  # a split file that does not list this clip leaves it out
        entries.append(
            {
                "clip_id": ref.clip_id,
                "split": split,
                "shard": 0,
                "n_frames": rec["n_frames"],
                "speaker_id": rec["speaker_id"],
                "seconds": rec["seconds"],
                "word": rec.get("word"),
                "transcript": rec.get("transcript"),
                "dir": rec["dir"],
                "video": rec["video"],
                "audio": rec["audio"],
                "crops": rec["crops"],
                "features": rec["features"],
                "no_face_fraction": rec["no_face_fraction"],
            }
        )
    assign_shards(entries, cfg.shard_clips)
    write_manifest(out, entries)
    write_bytes_if_changed(out / REJECTS, "".join(json.dumps(r) + "\n" for r in rejects).encode())
    splits = Counter(e["split"] for e in entries)
    reasons = Counter(r["reason"] for r in rejects)
    info = {
        "dataset": name,
        "layout": lay.name,
        "root": str(root),
        "version": PREPARE_VERSION,
        "settings": {k: v for k, v in asdict(cfg).items() if k != "workers"},
        "settings_hash": cfg.settings_hash(),
        "counts": {
            "clips": len(refs),
            "accepted": len(entries),
            "rejected": len(rejects),
            "splits": {s: splits.get(s, 0) for s in SPLITS},
            "frames": int(sum(e["n_frames"] for e in entries)),
            "seconds": round(sum(e["n_frames"] for e in entries) / FPS, 2),
            "reasons": dict(sorted(reasons.items())),
            "speakers": {s: len({e["speaker_id"] for e in entries if e["split"] == s} - {""}) for s in SPLITS},
        },
        "split_files": split_file_hashes(root, split_dir),
        "val_from_train_speakers": val_speakers if to_val else 0,
    }
    write_bytes_if_changed(out / INFO, (json.dumps(info, indent=1, sort_keys=True) + "\n").encode())
    return {"accepted": len(entries), "rejected": dict(reasons), "splits": {s: splits.get(s, 0) for s in SPLITS}}


class _Bar:
    """rich progress with counts of done / rejected; silent when disabled."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.label, self.done, self.failed = label, 0, 0
        self._p = None
        if enabled:
            from rich.progress import Progress

            self._p = Progress(transient=False)
            self._p.start()
            self._task = self._p.add_task(label, total=total)

    def update(self, n: int, failed: int | bool) -> None:
        self.done += n
        self.failed += int(failed)
        if self._p is not None:
            self._p.update(
                self._task, completed=self.done, description=f"{self.label}: {self.done} done, {self.failed} rejected"
            )

    def stop(self) -> None:
        if self._p is not None:
            self._p.stop()


def check_prepared(out: str | os.PathLike, root: str | os.PathLike | None = None, split_dir=None) -> list[str]:
    """Problems found when a prepared corpus is checked against its manifest (empty list: all good).

    Checks counts in prepared.json against the manifest, every accepted clip's folder and array shapes
    (read from the .npy headers, not the data), durations against the frame counts, and the sha256 of the
    split files against those recorded at preparation.
    """
    from data.manifest import ManifestIndex

    out = Path(out)
    problems: list[str] = []
    if not (out / INFO).exists():
        return [f"{out / INFO}: missing; run `bench data prepare` first"]
    info = json.loads((out / INFO).read_text())
    index = ManifestIndex.open(out)
    counts = index.counts()
    if sum(counts.values()) != info["counts"]["accepted"]:
        problems.append(f"manifest has {sum(counts.values())} clips, prepared.json says {info['counts']['accepted']}")
    for s in SPLITS:
        if counts[s] != info["counts"]["splits"].get(s, 0):
            problems.append(f"split {s}: manifest {counts[s]} clips, prepared.json {info['counts']['splits'].get(s)}")
    for i in range(len(index)):
        e = index.entry(i)
        d = out / e["dir"]
        if abs(e["seconds"] - e["n_frames"] / FPS) > 1e-3:
            problems.append(f"{e['clip_id']}: {e['seconds']} s but {e['n_frames']} frames")
        for crop, size in e["crops"].items():
            shape = _npy_shape(d / f"crop_{crop}.npy")
            if shape != (e["n_frames"], size, size, 3):
                problems.append(f"{e['clip_id']}: crop_{crop}.npy has shape {shape}, expected {e['n_frames']} frames")
        if _npy_shape(d / "audio.npy") != (e["n_frames"] * SAMPLES_PER_FRAME,):
            problems.append(f"{e['clip_id']}: audio.npy does not hold {e['n_frames']} frames of audio")
    root = Path(root) if root else Path(info["root"])
    if root.is_dir():
        now = split_file_hashes(root, split_dir)
        if now != info.get("split_files", {}):
            problems.append(f"split files changed since preparation: recorded {info.get('split_files')}, now {now}")
    return problems


def _npy_shape(path: Path) -> tuple[int, ...] | None:
    if not path.exists():
        return None
    try:
        return tuple(np.load(path, mmap_mode="r").shape)
    except (ValueError, OSError):
        return None


def layout_error_hint(err: LayoutError) -> str:
    return f"{err} (is dataset.root the folder that holds the corpus?)"
