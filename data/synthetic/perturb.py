"""Clip perturbations with known effect, for proving metrics right (docs/synthetic_corpus.md "Perturbations").

Each function is pure (`Clip -> Clip`, the input is not modified), keeps the Clip contract (uint8 video
[T,H,W,3], float32 audio [N], landmarks [T,68,2] or None) and records itself in `truth["perturbations"]`.
They work on any clip; on a synthetic clip they also keep the truth exact: landmarks, blink intervals, word
timings, `av_offset_frames`, and the per-frame render parameters (so `remove_blinks` can re-render a clip
that was already frozen, cut or jittered).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np

from data.clip import FPS, SAMPLES_PER_FRAME, Clip
from data.synthetic.face import render_video, shift_image
from data.synthetic.generator import blinks_from_eyelid
from data.synthetic.speakers import Speaker


def _truth(clip: Clip, name: str, **info: Any) -> dict[str, Any]:
    truth = copy.deepcopy(clip.truth)
    truth["perturbations"] = [*truth.get("perturbations", []), {"name": name, **info}]
    return truth


def _set_blinks(truth: dict[str, Any]) -> None:
    render = truth.get("render")
    if render is not None and "eyelid" in render:
        truth["blinks"], truth["blinks_closed"] = blinks_from_eyelid(render["eyelid"])


def _rerender(clip: Clip, truth: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    if "render" not in truth or "speaker" not in truth:
        raise ValueError(
            f"clip {clip.clip_id}: no render parameters in its truth; only synthetic clips made by "
            "data.synthetic.render_clip (or read back with their .truth.npz sidecar) can be re-rendered"
        )
    size = int(truth["size"]) if "size" in truth else int(clip.video.shape[1])
    return render_video(Speaker.from_dict(truth["speaker"]), truth["render"], size)


def shift_audio(clip: Clip, k: int) -> Clip:
    """Move the audio by `k` frames (640 k samples) against the video; length unchanged.

    k > 0 advances the audio (it leads the video): the first 640 k samples are dropped and 640 k zeros are
    appended, so the sound of frame v plays at frame v - k; syncnet_python then reports offset +k.
    k < 0 delays it: 640 |k| zeros in front, the tail dropped. `truth["av_offset_frames"]` grows by k and
    word/phone timings move with the audio (clipped to the clip, words shifted out entirely are removed).
    """
    k = int(k)
    n = abs(k) * SAMPLES_PER_FRAME
    a = clip.audio
    if n >= a.size:
        audio = np.zeros_like(a)
    elif k > 0:
        audio = np.concatenate([a[n:], np.zeros(n, a.dtype)])
    elif k < 0:
        audio = np.concatenate([np.zeros(n, a.dtype), a[:-n]])
    else:
        audio = a.copy()
    truth = _truth(clip, "shift_audio", k=k)
    truth["av_offset_frames"] = int(truth.get("av_offset_frames", 0)) + k
    duration = a.size / (FPS * SAMPLES_PER_FRAME)
    dt = -k / FPS

    def moved(start: float, end: float) -> tuple[float, float] | None:
        s, e = min(max(start + dt, 0.0), duration), min(max(end + dt, 0.0), duration)
        return (s, e) if e > s else None

    if "words" in truth:
        words = []
        for w in truth["words"]:
            span = moved(w["start"], w["end"])
            if span:
                words.append({**w, "start": span[0], "end": span[1]})
        truth["words"] = words
    if truth.get("word_span"):
        span = moved(*truth["word_span"])
        truth["word_span"] = list(span) if span else None
    if "phones" in truth:
        truth["phones"] = [[p, *span] for p, s, e in truth["phones"] if (span := moved(s, e))]
    return dataclasses.replace(clip, audio=audio, truth=truth)


def _remap_frames(clip: Clip, index: np.ndarray, name: str, **info: Any) -> Clip:
    """Show frame index[t] at position t (video, landmarks and every per-frame render parameter)."""
    truth = _truth(clip, name, **info)
    if "render" in truth:
        truth["render"] = {key: value[index] for key, value in truth["render"].items()}
        _set_blinks(truth)
    landmarks = None if clip.landmarks is None else clip.landmarks[index]
    return dataclasses.replace(clip, video=clip.video[index], landmarks=landmarks, truth=truth)


def freeze_video(clip: Clip) -> Clip:
    """Every frame replaced by the first one; audio untouched (a talking head that does not move)."""
    return _remap_frames(clip, np.zeros(clip.num_frames, np.int64), "freeze_video")


def _frame_set(clip: Clip, frames: Iterable[int]) -> set[int]:
    out = {int(f) for f in frames}
    bad = sorted(f for f in out if not 0 <= f < clip.num_frames)
    if bad:
        raise ValueError(f"clip {clip.clip_id}: frames {bad} out of range 0..{clip.num_frames - 1}")
    return out


def drop_frames(clip: Clip, frames: Iterable[int]) -> Clip:
    """Remove the listed frames; later frames move earlier, and the last remaining frame is held at the end.

    T and the audio stay as they were (so paired metrics still line up): after each dropped frame the video
    runs one more frame ahead of the audio. `truth["render"]["source_frame"]` says which original frame each
    output frame shows.
    """
    drop = _frame_set(clip, frames)
    keep = [f for f in range(clip.num_frames) if f not in drop]
    if not keep:
        raise ValueError(f"clip {clip.clip_id}: cannot drop all {clip.num_frames} frames")
    index = np.array(keep + [keep[-1]] * (clip.num_frames - len(keep)), np.int64)
    return _remap_frames(clip, index, "drop_frames", frames=sorted(drop))


def duplicate_frames(clip: Clip, frames: Iterable[int]) -> Clip:
    """Show each listed frame twice (a stutter); the video is then cut back to its original T frames.

    T and the audio stay as they were: after each duplicated frame the video lags the audio by one more frame,
    and as many frames as were duplicated fall off the end.
    """
    dup = _frame_set(clip, frames)
    index = [f for f in range(clip.num_frames) for _ in range(2 if f in dup else 1)]
    return _remap_frames(clip, np.array(index[: clip.num_frames], np.int64), "duplicate_frames", frames=sorted(dup))


def remove_blinks(clip: Clip) -> Clip:
    """Re-render a synthetic clip with the eyes always open: no blink intervals, nothing else changed."""
    truth = _truth(clip, "remove_blinks")
    truth["render"] = dict(truth["render"]) if "render" in truth else {}
    if "eyelid" in truth["render"]:
        truth["render"]["eyelid"] = np.zeros_like(truth["render"]["eyelid"])
    video, landmarks = _rerender(clip, truth)
    _set_blinks(truth)
    return dataclasses.replace(clip, video=video, landmarks=landmarks, truth=truth)


def jitter(clip: Clip, pixels: int, seed: int = 0) -> Clip:
    """Translate every frame by its own random whole-pixel offset in [-pixels, pixels] (x and y independently).

    Landmarks move with the pixels. A synthetic clip is re-rendered with the offsets added to its `jitter`
    render parameter (edges replicated), so jitter applied twice equals one render with the summed offsets;
    other clips are shifted directly.
    """
    pixels = int(pixels)
    if pixels < 0:
        raise ValueError(f"pixels must be >= 0, got {pixels}")
    rng = np.random.default_rng([int(seed), 0x717])
    offsets = rng.integers(-pixels, pixels + 1, (clip.num_frames, 2)).astype(np.int16)
    truth = _truth(clip, "jitter", pixels=pixels, seed=int(seed))
    if "render" in truth and "speaker" in truth:
        truth["render"] = {**truth["render"], "jitter": truth["render"]["jitter"] + offsets}
        video, rendered = _rerender(clip, truth)
        landmarks: np.ndarray | None = rendered
    else:
        video = np.stack([shift_image(f, int(dx), int(dy)) for f, (dx, dy) in zip(clip.video, offsets)])
        landmarks = None if clip.landmarks is None else clip.landmarks + offsets[:, None, :].astype(np.float32)
    return dataclasses.replace(clip, video=video, landmarks=landmarks, truth=truth)
