"""syncnet_python's face-track pipeline (run_pipeline.py) on decoded frames: scene cuts, per-frame face
detection, IoU tracking, gap interpolation, box smoothing and the 224 px crop.

- `scene_cuts`: PySceneDetect's ContentDetector (threshold 30 on the mean HSV difference of consecutive frames,
  minimum scene length 15 frames), written here on numpy / cv2 (scenedetect is not a dependency);
- a detector is any callable frames [T, H, W, 3] uint8 RGB -> per frame a float [k, 4] array of (x1, y1, x2, y2)
  boxes in the detector's order; `dlib_detector` (HOG, offline) and `landmark_detector` (boxes from a landmark
  estimator, for faces no detector was trained on) are provided;
- `track_shot`: run_pipeline.py's greedy tracker (IoU > 0.5 with the track's last detection, up to
  `num_failed_det` frames apart), boxes linearly interpolated over missed frames; `min_track` (the official
  100 detections) and `min_face_size` (mean box size) drop tracks, and every drop is reported;
- `crop_track`: crop_video's geometry, which data.faces.crops.SyncNetCrop implements (median filter over 13
  frames, crop_scale 0.4, pad value 110, 224 px): boxes are handed to it through `box_landmarks`.

Settings and choices: docs/faces.md ("Face tracks").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from data.faces.boxes import landmark_boxes
from data.faces.crops import SyncNetCrop

#: frames [T, H, W, 3] uint8 RGB -> one float [k, 4] (x1, y1, x2, y2) array per frame, best face first
Detector = Callable[[np.ndarray], list[np.ndarray]]

# PySceneDetect's auto downscale: frames are shrunk by an integer factor to about this width before the
# HSV difference is taken (scenedetect.video_stream.compute_downscale_factor)
SCENE_EFFECTIVE_WIDTH = 256


@dataclass(frozen=True)
class TrackSettings:
    """run_pipeline.py's options (its defaults unless stated; docs/faces.md says why each differs).

    min_track: drop tracks with at most this many detections, and scenes shorter than it (official 100;
    None keeps every track, the default: short clips are scored, not silently emptied).
    min_face_size: the mean box size (max of mean width, mean height) must exceed this, in pixels of the
    decoded frame (official 100 px; 40 here, since the synthetic corpus's frames are 128 px).
    """

    min_track: int | None = None
    num_failed_det: int = 25
    min_face_size: float = 40.0
    crop_scale: float = 0.4
    iou_threshold: float = 0.5
    scene_threshold: float = 30.0
    min_scene_len: int = 15

    def __post_init__(self) -> None:
        if self.min_track is not None and self.min_track < 0:
            raise ValueError(f"min_track must be >= 0 or None, got {self.min_track}")
        if self.num_failed_det < 1 or self.min_scene_len < 1:
            raise ValueError("num_failed_det and min_scene_len must be >= 1")
        if not 0.0 <= self.iou_threshold < 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1), got {self.iou_threshold}")
        if self.crop_scale < 0 or self.min_face_size < 0:
            raise ValueError("crop_scale and min_face_size must be >= 0")


@dataclass
class FaceTrack:
    """One face track: frames first..last (inclusive) of the clip, its boxes (interpolated over missed
    frames), the crops [n, 224, 224, 3] uint8 RGB, and how many of its frames had a detection."""

    first: int
    last: int
    boxes: np.ndarray
    crops: np.ndarray
    detections: int

    @property
    def num_frames(self) -> int:
        return self.last - self.first + 1


@dataclass
class TrackReport:
    """What the pipeline found in one clip; `dropped` holds one dict (first, last, detections, reason) per
    track that was not kept, so a clip that ends with no track says why."""

    detector: str
    frames: int
    frames_with_face: int
    scenes: list[tuple[int, int]]
    tracks: list[tuple[int, int]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- scene cuts ------------------------------------------------------------------------------------------------


def scene_scores(video: np.ndarray) -> np.ndarray:
    """ContentDetector's per-frame value: the mean over H, S and V of the mean absolute difference from the
    previous frame (cv2 HSV, H in 0..179); 0 for the first frame."""
    import cv2

    video = np.asarray(video)
    factor = max(1, video.shape[2] // SCENE_EFFECTIVE_WIDTH) if video.ndim == 4 else 1
    out = np.zeros(len(video), np.float64)
    prev = None
    for t, frame in enumerate(video):
        # frames are RGB: RGB2HSV of RGB equals the reference's BGR2HSV of the same picture read by OpenCV
        hsv = cv2.cvtColor(np.ascontiguousarray(frame[::factor, ::factor]), cv2.COLOR_RGB2HSV).astype(np.int32)
        if prev is not None:
            out[t] = float(np.abs(hsv - prev).reshape(-1, 3).mean(0).mean())
        prev = hsv
    return out


def scene_cuts(video: np.ndarray, threshold: float = 30.0, min_scene_len: int = 15) -> list[tuple[int, int]]:
    """Scenes as [start, stop) frame ranges: a cut before frame t where its content value reaches `threshold`
    and at least `min_scene_len` frames have passed since the previous cut (or the clip's start)."""
    n = len(video)
    if n == 0:
        return []
    scores = scene_scores(video)
    starts, last = [0], 0
    for t in range(1, n):
        if scores[t] >= threshold and t - last >= min_scene_len:
            starts.append(t)
            last = t
    return list(zip(starts, [*starts[1:], n]))


# -- detectors --------------------------------------------------------------------------------------------------


#: frames whose shorter side is below this get a second, upsampled HOG pass where the first finds nothing
#: (`dlib_detector(None)`): HOG finds faces from about 80 px, and a face in a frame this small is rarely larger.
#: Measured on the synthetic corpus: 96 px frames (60-70 px faces) are found in 0-100 % of a clip's frames at
#: upsampling 0 and in all at 1, while one 128 px speaker is found more often at 0 than at 1, hence the retry
#: rather than upsampling every frame.
SMALL_FRAME = 256


def dlib_detector(upsample: int | None = None) -> Detector:
    """dlib's HOG frontal-face detector (data.faces.dlib, blink-detector's grey frame): every face of every
    frame, as S3FD's detections are all kept by run_pipeline.py. upsample None: 0, then 1 on frames smaller
    than SMALL_FRAME where 0 found nothing. Raises FaceModelError without dlib."""
    from data.faces.dlib import import_dlib, reference_grey

    # the HOG detector only: the 68-point predictor (a 100 MB file) is not needed for boxes
    hog = import_dlib().get_frontal_face_detector()

    def detect(frames: np.ndarray) -> list[np.ndarray]:
        out = []
        retry = upsample is None and min(np.asarray(frames).shape[1:3]) < SMALL_FRAME
        for frame in frames:
            grey = reference_grey(np.ascontiguousarray(frame))
            rects = hog(grey, int(upsample or 0))
            if retry and not len(rects):
                rects = hog(grey, 1)
            boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
            out.append(np.asarray(boxes, np.float64).reshape(-1, 4))
        return out

    return detect


def landmark_detector(estimate: Callable[[np.ndarray], np.ndarray]) -> Detector:
    """A detector from a landmark estimator (frames -> [T, 68, 2], NaN rows where it finds no face): one box
    per frame, the landmark box of data.faces.boxes (brows raised by a quarter of the face height)."""

    def detect(frames: np.ndarray) -> list[np.ndarray]:
        boxes = landmark_boxes(np.asarray(estimate(frames), np.float64)).astype(np.float64)
        return [b[None] if b[0] >= 0 else np.zeros((0, 4)) for b in boxes]

    return detect


# -- tracking ---------------------------------------------------------------------------------------------------


def iou(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """run_pipeline.py bb_intersection_over_union (continuous coordinates, no +1)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def interpolate_boxes(frames: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every frame from the first to the last detection, each box coordinate linearly interpolated (scipy
    interp1d's linear rule, as run_pipeline.py)."""
    frames = np.asarray(frames, np.int64)
    full = np.arange(frames[0], frames[-1] + 1)
    out = np.stack([np.interp(full, frames, np.asarray(boxes, np.float64)[:, k]) for k in range(4)], 1)
    return full, out


def track_shot(
    detections: Sequence[np.ndarray], settings: TrackSettings, offset: int = 0
) -> tuple[list[tuple[np.ndarray, np.ndarray, int]], list[dict[str, Any]]]:
    """run_pipeline.py track_shot on one scene's detections (frame `offset` onwards).

    Tracks are grown one at a time: a track starts at the first remaining detection and takes, frame by
    frame, the first remaining detection whose IoU with its last box exceeds the threshold, while fewer than
    `num_failed_det` + 1 frames separate them; taken detections are removed and the next track starts. The
    official loop also removes from the list it iterates, which skips the face after a taken one; at most
    one face per frame joins a track here, which is what that loop intends.
    Returns (kept tracks as (frames, interpolated boxes, detections), dropped tracks with their reason).
    """
    remaining = [list(np.asarray(d, np.float64).reshape(-1, 4)) for d in detections]
    kept: list[tuple[np.ndarray, np.ndarray, int]] = []
    dropped: list[dict[str, Any]] = []
    while True:
        frames: list[int] = []
        boxes: list[np.ndarray] = []
        for t, faces in enumerate(remaining):
            if frames and t - frames[-1] > settings.num_failed_det:
                break
            for i, box in enumerate(faces):
                if not frames or iou(box, boxes[-1]) > settings.iou_threshold:
                    frames.append(t)
                    boxes.append(box)
                    del faces[i]
                    break
        if not frames:
            break
        f, b = interpolate_boxes(np.asarray(frames), np.stack(boxes))
        span = {"first": int(f[0]) + offset, "last": int(f[-1]) + offset, "detections": len(frames)}
        if settings.min_track is not None and len(frames) <= settings.min_track:
            dropped.append({**span, "reason": f"{len(frames)} detections <= min_track {settings.min_track}"})
            continue
        size = max(float(np.mean(b[:, 2] - b[:, 0])), float(np.mean(b[:, 3] - b[:, 1])))
        if size <= settings.min_face_size:
            why = f"mean face size {size:.1f} px <= min_face_size {settings.min_face_size}"
            dropped.append({**span, "reason": why})
            continue
        kept.append((f + offset, b, len(frames)))
    return kept, dropped


# -- crops ------------------------------------------------------------------------------------------------------


def box_landmarks(boxes: np.ndarray) -> np.ndarray:
    """A 68-point skeleton per box whose landmark box (data.faces.boxes.landmark_boxes) is the box rounded
    outwards to whole pixels, so SyncNetCrop's crop_video geometry runs on detector boxes unchanged.

    landmark_boxes raises the brows by FOREHEAD of the brow-to-chin height; the brow row is placed so that the
    raised top lands half a pixel below the box's top, which its floor then returns exactly."""
    from data.faces.boxes import FOREHEAD

    b = np.asarray(boxes, np.float64)
    x1, y1 = np.floor(b[:, 0]), np.floor(b[:, 1])
    x2, y2 = np.ceil(b[:, 2]), np.ceil(b[:, 3])
    brow = (y1 + 0.5 + FOREHEAD * y2) / (1.0 + FOREHEAD)
    lm = np.empty((len(b), 68, 2), np.float64)
    lm[:, :, 0], lm[:, :, 1] = x1[:, None], brow[:, None]
    lm[:, 16, 0] = x2  # the jaw's right end: the box's right edge
    lm[:, 8, 1] = y2  # the chin tip: the box's bottom
    return lm


def crop_track(video: np.ndarray, first: int, boxes: np.ndarray, crop_scale: float = 0.4) -> np.ndarray:
    """crop_video: uint8 [n, 224, 224, 3] crops of frames first .. first + n - 1 (same colour order as `video`)
    by SyncNetCrop's geometry (s, x, y median-filtered over 13 frames, crop_scale, pad value 110)."""
    crop = SyncNetCrop()
    crop.crop_scale = float(crop_scale)
    h, w = video.shape[1:3]
    mats = crop.transforms(box_landmarks(boxes), (w, h))
    out = np.empty((len(boxes), crop.size, crop.size, 3), np.uint8)
    for i, m in enumerate(mats):
        out[i] = crop.apply(video[first + i], m)
    return out


def face_tracks(
    video: np.ndarray,
    detector: Detector,
    settings: TrackSettings | None = None,
    detector_name: str = "custom",
    detections: Sequence[np.ndarray] | None = None,
) -> tuple[list[FaceTrack], TrackReport]:
    """The whole pipeline on one clip (uint8 RGB [T, H, W, 3] at 25 fps): tracks in scene order, each with
    its crops, and the report. `detections` (one [k, 4] array per frame) skips running the detector."""
    settings = settings or TrackSettings()
    video = np.asarray(video)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be uint8 [T, H, W, 3] RGB, got {video.dtype} {video.shape}")
    dets = list(detections) if detections is not None else detector(video)
    if len(dets) != len(video):
        raise ValueError(f"the detector returned {len(dets)} frames of boxes for {len(video)} frames")
    scenes = scene_cuts(video, settings.scene_threshold, settings.min_scene_len)
    report = TrackReport(
        detector=detector_name,
        frames=len(video),
        frames_with_face=sum(len(np.asarray(d).reshape(-1, 4)) > 0 for d in dets),
        scenes=scenes,
    )
    tracks: list[FaceTrack] = []
    for start, stop in scenes:
        if settings.min_track is not None and stop - start < settings.min_track:
            # run_pipeline.py does not track a scene shorter than min_track at all
            report.dropped.append(
                {"first": start, "last": stop - 1, "detections": 0, "reason": "scene shorter than min_track"}
            )
            continue
        kept, dropped = track_shot(dets[start:stop], settings, offset=start)
        report.dropped.extend(dropped)
        for frames, boxes, n_det in kept:
            first, last = int(frames[0]), int(frames[-1])
            crops = crop_track(video, first, boxes, settings.crop_scale)
            tracks.append(FaceTrack(first, last, boxes, crops, n_det))
            report.tracks.append((first, last))
    return tracks, report
