"""Eye aspect ratio and blink events from 68-point landmarks (the DinoMan/blink-detector rule).

Reference: DinoMan/blink-detector `blink/detector.py` (`process_video`, `_get_blink_start_end_`), used by
Diffused Heads for blinks/s and blink duration (docs/metrics_reference.md):

- EAR per eye = (|p1 - p5| + |p2 - p4|) / (2 |p0 - p3|) (Soukupova & Cech 2016) on the right eye (36-41) and
  the left eye (42-47); the frame's EAR is the mean of both.
- onsets: peaks of -diff(EAR) with height >= threshold (0.072 at the reference HEAD; 0.0425 before its commit
  fea69b6, 2018-11-06) at least `distance` = 4 frames apart (`scipy.signal.find_peaks`).
- start: the onset frame when EAR is not falling into it, else the last EAR peak (height >= (min + max) / 2 of
  the clip's EAR, distance 1) at or before it, 0 when there is none.
- end: the first such EAR peak between the onset and the next onset; a blink without one is dropped, except
  the last, which ends at the last frame.

`mode="paper"` is that rule verbatim, quirks included: `EAR[onset - 1]` wraps to the last frame for an onset at
frame 0, and start/end are the nearest local EAR maxima, which on a flat open-eye stretch are wherever noise
puts them (exactly flat stretches: scipy's plateau middle, or no peak where the stretch touches a segment
border). `mode="standard"` uses the onsets alike but finds the eye's movement itself: start = walking left from
the onset while EAR rises by more than `tol` (0.01, the reference's EAR_TOL), end = walking right from the
lowest EAR before the next onset to the first frame back above the (min + max) / 2 level that no longer rises
by more than `tol`; a blink without one is dropped (the last one ends at the last frame).
Durations: paper = end - start in frames (the reference CSV); standard = the frames strictly between the two
open-eye frames, (end - start - 1) / fps, in seconds (on the synthetic corpus: the truth interval's length).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import find_peaks

MODES = ("paper", "standard")
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
#: reference detector's EYE_THRESH since commit fea69b6 (2018-11-06); 0.0425 before
PAPER_THRESHOLD = 0.072
#: reference detector's EYE_PEAK_CONST, frames
PEAK_DISTANCE = 4
#: reference detector's EAR_TOL (its online mode): EAR changes below this are flat (standard mode)
EAR_TOL = 0.01


@dataclass(frozen=True)
class BlinkEvent:
    """One blink: `onset` is the frame before the steepest EAR drop; start/end the open-eye frames around it."""

    onset: int
    start: int
    end: int

    def frames(self, mode: str) -> int:
        """Duration in frames: end - start (paper, the reference CSV) or the frames strictly between."""
        return self.end - self.start if mode == "paper" else max(self.end - self.start - 1, 0)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown blink mode {mode!r}; valid modes: {', '.join(MODES)}")
    return mode


def eye_aspect_ratio(landmarks: np.ndarray) -> np.ndarray:
    """EAR [T] (mean of both eyes) of landmarks [T, 68, 2] (iBUG-68 order)."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be [T, 68, 2], got {lm.shape}")
    ears = []
    for eye in (RIGHT_EYE, LEFT_EYE):
        p = lm[:, eye]
        vertical = np.linalg.norm(p[:, 1] - p[:, 5], axis=-1) + np.linalg.norm(p[:, 2] - p[:, 4], axis=-1)
        horizontal = 2.0 * np.linalg.norm(p[:, 0] - p[:, 3], axis=-1)
        ears.append(vertical / np.maximum(horizontal, 1e-9))
    ear: np.ndarray = (ears[0] + ears[1]) / 2.0
    return ear


def blink_onsets(ear: np.ndarray, threshold: float = PAPER_THRESHOLD, distance: int = PEAK_DISTANCE) -> np.ndarray:
    """Frames i where EAR[i] - EAR[i + 1] is a peak >= threshold, at least `distance` frames apart."""
    ear = np.asarray(ear, np.float64)
    if ear.shape[0] < 2:
        return np.zeros(0, np.int64)
    points: np.ndarray
    points, _ = find_peaks(-np.diff(ear), height=threshold, distance=distance)
    return points.astype(np.int64)


def _paper_events(points: np.ndarray, ear: np.ndarray) -> list[BlinkEvent]:
    mid = (ear.min() + ear.max()) / 2.0
    events = []
    for k, p in enumerate(points):
        if ear[p - 1] <= ear[p]:  # p - 1 = -1 wraps to the last frame, as in the reference's list indexing
            start = int(p)
        else:
            left, _ = find_peaks(ear[: p + 1], mid, None, 1)
            start = int(left[-1]) if len(left) else 0
        last = k == len(points) - 1
        right, _ = find_peaks(ear[p:] if last else ear[p : points[k + 1]], mid, None, 1)
        if len(right) == 0:
            if not last:
                continue
            end = len(ear) - 1
        else:
            end = int(p + right[0])
        events.append(BlinkEvent(int(p), start, end))
    return events


def _standard_events(points: np.ndarray, ear: np.ndarray, tol: float) -> list[BlinkEvent]:
    mid = (ear.min() + ear.max()) / 2.0
    n = len(ear)
    events = []
    for k, p in enumerate(points):
        # start: walk left from the onset while EAR keeps rising by more than tol (the last open-eye frame)
        start = int(p)
        while start > 0 and ear[start - 1] > ear[start] + tol:
            start -= 1
        # end: after the lowest EAR before the next onset, the first frame that is open again (>= the
        # (min + max) / 2 level) and no longer rising by more than tol
        stop = int(points[k + 1]) if k + 1 < len(points) else n - 1
        end = None
        if stop > p:
            j = int(p + 1 + np.argmin(ear[p + 1 : stop + 1]))
            while j <= stop:
                if ear[j] >= mid and (j + 1 >= n or ear[j + 1] <= ear[j] + tol):
                    end = j
                    break
                j += 1
        if end is None:  # the eye has not reopened before the next onset (or the clip's end)
            if k + 1 < len(points):
                continue
            end = n - 1
        events.append(BlinkEvent(int(p), start, end))
    return events


def detect_blinks(
    ear: np.ndarray,
    threshold: float = PAPER_THRESHOLD,
    distance: int = PEAK_DISTANCE,
    mode: str = "paper",
    tol: float = EAR_TOL,
) -> list[BlinkEvent]:
    """Blink events of an EAR signal [T] by the reference rule (see the module docstring for the two modes)."""
    check_mode(mode)
    ear = np.asarray(ear, np.float64)
    if ear.ndim != 1:
        raise ValueError(f"EAR must be a 1-d signal [T], got shape {ear.shape}")
    if not np.all(np.isfinite(ear)):
        raise ValueError("EAR signal has non-finite values")
    points = blink_onsets(ear, threshold, distance)
    if len(points) == 0:
        return []
    return _paper_events(points, ear) if mode == "paper" else _standard_events(points, ear, tol)


def blink_durations(events: list[BlinkEvent], mode: str, fps: float) -> np.ndarray:
    """Durations of `events`: frames (paper) or seconds (standard)."""
    check_mode(mode)
    frames = np.array([e.frames(mode) for e in events], np.float64)
    return frames if mode == "paper" else frames / float(fps)
