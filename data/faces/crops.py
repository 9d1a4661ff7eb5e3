"""Crops by name: each model family's framing of the face, as per-frame affine maps from landmarks.

`CROPS` maps a name to its crop; a prepared clip holds `crop_<name>.npy` for each crop it was prepared with.
- `wav2lip` (Wav2Lip, LipGAN): the one face-box rule of data.faces.boxes, resized to 96x96;
- `syncnet` (alias `tracked`): syncnet_python's tracked 224x224 crop;
- `diffused_heads`: a 128x128 aligned head (Diffused Heads trains at 128x128);
- `vasa`: the same aligned head at 256x256 (the resolution of this suite's VASA-style face model).
Sizes and sources: docs/faces.md.
"""

from __future__ import annotations

import abc

import numpy as np

from data.faces.boxes import face_boxes, landmark_boxes


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
    """One model family's crop: per-frame affine maps (frame -> crop pixels) from landmarks.

    `version` changes when a crop's framing changes: prepared clips cut with another version get the crop
    cut again (from their cached landmarks).
    """

    name = ""
    size = 0
    version = 1

    @abc.abstractmethod
    def transforms(self, landmarks: np.ndarray, frame_size: tuple[int, int] | None = None) -> np.ndarray:
        """[T, 2, 3] affine matrices from landmarks [T, 68, 2] (gaps filled) in frames of (width, height)."""

    @abc.abstractmethod
    def apply(self, frame: np.ndarray, m: np.ndarray) -> np.ndarray:
        """The crop of one frame under its affine map."""


class BoxCrop(Crop):
    """Axis-aligned box -> square crop; the box is cut (padded where it leaves the frame) and resized with
    INTER_AREA, which averages when shrinking (a 480x360 CREMA-D frame to 96 px would alias otherwise)."""

    fill: int | None = None

    @abc.abstractmethod
    def boxes(self, landmarks: np.ndarray, frame_size: tuple[int, int] | None = None) -> np.ndarray:
        """[T, 4] (x1, y1, x2, y2) crop boxes."""

    def transforms(self, landmarks: np.ndarray, frame_size: tuple[int, int] | None = None) -> np.ndarray:
        b = np.asarray(self.boxes(landmarks, frame_size), np.float64)
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
    """Wav2Lip / LipGAN: the face box of data.faces.boxes (landmark box, `pads`, clipped to the frame, forward
    mean over 5 frames) resized to 96x96, not squared (Wav2Lip preprocess.py saves the detector's box as is and
    its loader resizes it). `bench generate` cuts the same boxes (models.facecrop)."""

    name, size = "wav2lip", 96
    version = 2  # 2: the box rule shared with `bench generate` (whole pixels, clipped to the frame)
    # preprocess.py crops training faces without padding (docs/faces.md); the landmark box reaches the chin,
    # which is what inference.py's default bottom pad of 10 px adds to S3FD boxes
    pads = (0, 0, 0, 0)

    def boxes(self, landmarks: np.ndarray, frame_size: tuple[int, int] | None = None) -> np.ndarray:
        width, height = frame_size if frame_size is not None else (2**31 - 1, 2**31 - 1)
        b = face_boxes(landmarks, width, height, self.pads)
        # a face wholly outside the frame leaves no box: fall back to the unclipped one (cut with edge pixels)
        bad = b[:, 0] < 0
        if bad.any():
            b[bad] = face_boxes(landmarks[bad], 2**31 - 1, 2**31 - 1, self.pads, smooth=False)
        return b


class SyncNetCrop(BoxCrop):
    """syncnet_python run_pipeline.py `crop_video` (crop_scale 0.4): s = max(box w, h) / 2 and the box centre,
    each median-filtered over 13 frames; rows [y - s, y + s (1 + 2 cs)], cols [x - s (1 + cs), x + s (1 + cs)];
    outside the frame filled with 110; resized to 224x224. The box is the landmark box of data.faces.boxes."""

    name, size, fill = "syncnet", 224, 110
    crop_scale = 0.4

    def boxes(self, landmarks: np.ndarray, frame_size: tuple[int, int] | None = None) -> np.ndarray:
        b = landmark_boxes(landmarks).astype(np.float64)
        s = _medfilt(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 2, 13)
        x = _medfilt((b[:, 0] + b[:, 2]) / 2, 13)
        y = _medfilt((b[:, 1] + b[:, 3]) / 2, 13)
        cs = self.crop_scale
        return np.stack([x - s * (1 + cs), y - s, x + s * (1 + cs), y + s * (1 + 2 * cs)], axis=1)


class AlignedHeadCrop(Crop):
    """Diffused Heads: a 128x128 head aligned by a similarity transform (eye line level, eye midpoint at
    (0.5, 0.406) of the side, inter-ocular distance 0.266 of the side: (64, 52) and 34 px at 128), its
    parameters averaged over 5 frames. The official clips were aligned with DinoMan/face-processor, whose
    template is not documented; this framing keeps the whole head and some background, as in the released
    CREMA samples."""

    name, size = "diffused_heads", 128
    eye_mid, eye_dist = (64.0, 52.0), 34.0  # at size 128; other sizes scale them

    def transforms(self, landmarks: np.ndarray, frame_size: tuple[int, int] | None = None) -> np.ndarray:
        left, right = landmarks[:, 36:42].mean(1), landmarks[:, 42:48].mean(1)
        mid = (left + right) / 2
        d = right - left
        params = np.stack([mid[:, 0], mid[:, 1], np.hypot(d[:, 0], d[:, 1]), np.arctan2(d[:, 1], d[:, 0])], 1)
        k = min(5, len(params))
        pad = np.concatenate([np.repeat(params[:1], k // 2, 0), params, np.repeat(params[-1:], k - 1 - k // 2, 0)])
        params = np.stack([pad[i : i + len(params)] for i in range(k)]).mean(0)
        unit = self.size / 128.0
        scale = self.eye_dist * unit / np.maximum(params[:, 2], 1e-3)
        cos, sin = np.cos(-params[:, 3]) * scale, np.sin(-params[:, 3]) * scale
        m = np.zeros((len(params), 2, 3), np.float64)
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
        m[:, 0, 2] = self.eye_mid[0] * unit - (cos * params[:, 0] - sin * params[:, 1])
        m[:, 1, 2] = self.eye_mid[1] * unit - (sin * params[:, 0] + cos * params[:, 1])
        return m

    def apply(self, frame: np.ndarray, m: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.warpAffine(frame, m, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class VasaCrop(AlignedHeadCrop):
    """The VASA-style face model's input: the aligned head of `diffused_heads`, at 256x256. VASA-1 reports
    512x512; this suite's face model (models/vasa/module.py) trains at 256x256, so the crop is cut at the size
    it reads rather than resized on every load (docs/faces.md)."""

    name, size = "vasa", 256


CROPS: dict[str, Crop] = {c.name: c for c in (Wav2LipCrop(), SyncNetCrop(), AlignedHeadCrop(), VasaCrop())}
CROPS["tracked"] = CROPS["syncnet"]  # syncnet_python's name for its face-track crops; one crop, files crop_syncnet


def crop_name(name: str) -> str:
    """The canonical name of a crop (`tracked` -> `syncnet`); ValueError naming the valid ones otherwise."""
    if name not in CROPS:
        import difflib

        hint = difflib.get_close_matches(str(name), list(CROPS), n=1)
        raise ValueError(
            f"unknown crop {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (valid: {sorted(CROPS)})"
        )
    return CROPS[name].name


def transform_points(landmarks: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Landmarks [T, 68, 2] through per-frame affine maps [T, 2, 3]."""
    return (np.einsum("tij,tkj->tki", m[:, :, :2], landmarks) + m[:, None, :, 2]).astype(np.float32)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """The crop -> frame map [2, 3] of a frame -> crop affine map [2, 3] (cv2.invertAffineTransform), the map that
    puts a generated crop back where its face was in the frame."""
    import cv2

    m = np.asarray(m, np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"an affine map is [2, 3], got {m.shape}")
    return np.asarray(cv2.invertAffineTransform(m), np.float64)


def box_transform(box: np.ndarray, size: int) -> np.ndarray:
    """The [2, 3] map that resizes box (x1, y1, x2, y2) to a size x size crop (a head crop from a face box)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    sx, sy = size / max(x2 - x1, 1.0), size / max(y2 - y1, 1.0)
    return np.array([[sx, 0.0, -sx * x1], [0.0, sy, -sy * y1]], np.float64)
