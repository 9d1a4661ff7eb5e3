"""The procedural talking-face corpus (docs/synthetic_corpus.md): config, cheap corpus spec, and clip rendering.

Every random choice comes from a stream keyed by (seed, purpose, index), so a clip depends only on the seed,
the config fields that shape it and its own index: clip 5 is the same whether 10 or 240 clips are made, in
one process or many.

Sync convention: with mouth lead 0, the mouth of video frame v is computed from exactly the audio samples
[640 v, 640 v + 640). A mouth lead of L ms means frame v shows what is heard L ms later (real mouths move
before the sound); it is recorded per clip in `truth["mouth_lead_ms"]`. `truth["av_offset_frames"]` is 0 for a
rendered clip; `perturb.shift_audio(clip, k)` sets it to k (k > 0: audio leads the video, syncnet_python
reports +k).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from data.clip import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME, Clip
from data.synthetic.face import NOISE_PAD, NOISE_TILES, render_video
from data.synthetic.speakers import Speaker, make_speakers
from data.synthetic.speech import (
    BILABIALS,
    CONSONANTS,
    SILENCE,
    UtterancePlan,
    make_vocabulary,
    plan_utterance,
    synthesize,
)

GENERATOR_VERSION = "1.0.0"
DIFFICULTIES = ("easy", "medium", "hard")
SPLITS = ("train", "val", "test")

BLINK_CONVENTION = (
    "blinks: frame intervals [start, end) (end exclusive) in which the eyelid is not fully open (closure > 0); "
    "blinks_closed: the sub-intervals [start, end) in which it is fully closed (closure = 1)"
)
OFFSET_CONVENTION = (
    "av_offset_frames = k > 0: the audio leads the video by k frames (sound of frame v plays at frame v - k); "
    "syncnet_python reports +k. k < 0: audio delayed."
)


@dataclass(frozen=True)
class DifficultyParams:
    """The knobs a difficulty level turns (docs/synthetic_corpus.md "Difficulty")."""

    mouth_lead_ms: tuple[float, float]  # per-clip lead of the mouth over the sound, drawn uniformly
    coarticulation: float  # 0..1: weight of the next frame's shape (anticipation), applied recursively
    loudness_tie: float  # 1 = opening scales with loudness; 0 = with a per-syllable effort unrelated to it
    audio_noise: float  # std of the Gaussian noise floor (voice peak is 0.3-0.9)
    light_gain: float  # amplitude of the global brightness drift (0.1 = +-10 %)
    light_side: float  # amplitude of a drifting left-right lighting gradient
    motion: float  # head-drift multiplier (1 = +-2.5/2 px, +-3 deg, +-3 % at 128 px)
    occlusion_prob: float  # probability that a clip has an object passing in front of the lower face


DIFFICULTY: dict[str, DifficultyParams] = {
    # the design prototype: mouth = viseme x loudness, in sync, clean; lip-sync is trivially learnable
    "easy": DifficultyParams((0.0, 0.0), 0.0, 1.0, 0.003, 0.0, 0.0, 1.0, 0.0),
    # default: still learnable by a small SyncNet in minutes (leads <= 1 frame, mild anticipation)
    "medium": DifficultyParams((0.0, 40.0), 0.25, 0.7, 0.006, 0.06, 0.0, 1.5, 0.0),
    "hard": DifficultyParams((0.0, 80.0), 0.5, 0.35, 0.03, 0.15, 0.25, 3.0, 0.6),
}

# (opening, width factor) per phone; vowel values from the design prototype (docs/synthetic_corpus.md),
# consonants nearly closed
VISEMES: dict[str, tuple[float, float]] = {
    SILENCE: (0.0, 1.0),
    "a": (1.0, 0.9),
    "e": (0.6, 1.05),
    "i": (0.28, 1.15),
    "o": (0.75, 0.6),
    "u": (0.4, 0.45),
    **{c: (0.0, 0.9) for c in BILABIALS},
    **{c: (0.2, 0.95) for c in "dtnl"},
    **{c: (0.25, 0.9) for c in "kg"},
    "s": (0.12, 1.1),
}
assert set(CONSONANTS) <= set(VISEMES)


@dataclass
class SyntheticConfig:
    """What corpus to make. Speakers are split in index order: train first, then val, then test."""

    n_speakers: int = 8
    n_clips: int = 240
    min_seconds: float = 1.0
    max_seconds: float = 3.0
    size: int = 128
    vocab_size: int = 20
    difficulty: str = "medium"
    val_speakers: int = 1
    test_speakers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.difficulty not in DIFFICULTY:
            raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {self.difficulty!r}")
        if (
            self.n_speakers - self.val_speakers - self.test_speakers < 1
            or min(self.val_speakers, self.test_speakers) < 0
        ):
            raise ValueError(
                f"need at least one training speaker: n_speakers={self.n_speakers}, "
                f"val_speakers={self.val_speakers}, test_speakers={self.test_speakers}"
            )
        if self.n_clips < 1:
            raise ValueError(f"n_clips must be >= 1, got {self.n_clips}")
        if not 0.4 <= self.min_seconds <= self.max_seconds:
            raise ValueError(f"need 0.4 <= min_seconds <= max_seconds, got {self.min_seconds}, {self.max_seconds}")
        if not 64 <= self.size <= 512:
            raise ValueError(f"size must be in 64..512 (96 and 128 are the supported presets), got {self.size}")

    @property
    def train_speakers(self) -> int:
        return self.n_speakers - self.val_speakers - self.test_speakers

    def speaker_split(self, speaker: int) -> str:
        if speaker < self.train_speakers:
            return "train"
        return "val" if speaker < self.train_speakers + self.val_speakers else "test"

    @classmethod
    def from_overrides(cls, **overrides: Any) -> SyntheticConfig:
        """Build from keyword overrides, naming the closest field on a typo (CLI-friendly aliases accepted)."""
        aliases = {"clips": "n_clips", "speakers": "n_speakers", "vocab": "vocab_size"}
        names = [f.name for f in dataclasses.fields(cls)]
        kw = {}
        for key, value in overrides.items():
            key = aliases.get(key, key)
            if key not in names:
                hint = difflib.get_close_matches(key, names + list(aliases), n=1)
                raise ValueError(
                    f"unknown synthetic-corpus option {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                )
            kw[key] = value
        return cls(**kw)


@dataclass(frozen=True)
class ClipSpec:
    index: int
    clip_id: str
    speaker: int  # index into CorpusSpec.speakers
    speaker_clip: int  # 0-based position among this speaker's clips
    split: str
    word: str  # the clip's key word (LRW-style label; always spoken in full)
    plan: UtterancePlan

    @property
    def transcript(self) -> str:
        return " ".join(self.plan.words)


@dataclass(frozen=True)
class CorpusSpec:
    config: SyntheticConfig
    speakers: list[Speaker]
    vocabulary: list[str]
    clips: list[ClipSpec]

    @property
    def difficulty(self) -> DifficultyParams:
        return DIFFICULTY[self.config.difficulty]


def make_corpus_spec(cfg: SyntheticConfig) -> CorpusSpec:
    """Speakers, vocabulary and every clip's words and phone timing; no audio or pixels (milliseconds).

    Clip i belongs to speaker i mod n_speakers; each speaker cycles through the whole vocabulary as key words
    (offset per speaker), so every split sees every word once a speaker has >= vocab_size clips.
    """
    speakers = make_speakers(cfg.n_speakers, cfg.seed)
    vocab = make_vocabulary(cfg.vocab_size, cfg.seed)
    clips = []
    for i in range(cfg.n_clips):
        spk = i % cfg.n_speakers
        k = i // cfg.n_speakers
        rng = np.random.default_rng([cfg.seed, 2, i])
        n_frames = int(round(rng.uniform(cfg.min_seconds, cfg.max_seconds) * FPS))
        word = vocab[(k + 7 * spk) % len(vocab)]
        plan = plan_utterance(word, vocab, speakers[spk], n_frames, rng)
        clip_id = f"{speakers[spk].speaker_id}_{k:04d}"
        clips.append(ClipSpec(i, clip_id, spk, k, cfg.speaker_split(spk), word, plan))
    return CorpusSpec(cfg, speakers, vocab, clips)


# ------------------------------------------------------------------------------------------ tracks


def _drift(t: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth motion in [-amplitude, amplitude]: a sum of three 0.1-0.6 Hz sinusoids."""
    f = rng.uniform(0.1, 0.6, 3)
    ph = rng.uniform(0.0, 2 * np.pi, 3)
    w = rng.uniform(0.5, 1.0, 3)
    s = (w[:, None] * np.sin(2 * np.pi * f[:, None] * t[None, :] + ph[:, None])).sum(0) / w.sum()
    return amplitude * s


def _frames(x: np.ndarray, n_frames: int) -> np.ndarray:
    return x[: n_frames * SAMPLES_PER_FRAME].reshape(n_frames, SAMPLES_PER_FRAME)


def _advance(x: np.ndarray, n: int, fill: float) -> np.ndarray:
    return np.concatenate([x[n:], np.full(n, fill, x.dtype)]) if n > 0 else x


def mouth_track(
    plan: UtterancePlan, voice: np.ndarray, lead_ms: float, diff: DifficultyParams, rng: np.random.Generator
) -> np.ndarray:
    """Mouth [T, 2] (opening 0..1, width factor) driven by the phones and the loudness of the clean voice.

    Frame v averages the viseme targets over samples [640v + L, 640v + 640 + L) with L = the lead in samples;
    opening = viseme opening x (tie * envelope + (1 - tie) * syllable effort), envelope =
    clip(frameRMS / p95, 0, 1)^0.6 (0 below 1 % of the maximum); then anticipatory coarticulation (a backward
    one-pole filter: the mouth starts moving before the sound) and a symmetric [0.2, 0.6, 0.2] smoothing
    that adds no delay.
    """
    n_frames = plan.n_frames
    n = plan.n_samples
    height = np.zeros(n, np.float32)
    width = np.ones(n, np.float32)
    effort = np.zeros(n, np.float32)
    efforts = rng.uniform(0.55, 1.0, len(plan.segments))
    for seg, e in zip(plan.segments, efforts):
        h, w = VISEMES[seg.phone]
        height[seg.start : seg.end] = h
        width[seg.start : seg.end] = w
        if seg.phone != SILENCE:
            effort[seg.start : seg.end] = e
    lead = int(round(lead_ms * SAMPLE_RATE / 1000.0))
    height, width = _advance(height, lead, 0.0), _advance(width, lead, 1.0)
    effort, v = _advance(effort, lead, 0.0), _advance(voice.astype(np.float32), lead, 0.0)

    rms = np.sqrt(np.mean(_frames(v, n_frames) ** 2, axis=1))
    peak = float(rms.max()) if rms.size else 0.0
    env = np.zeros(n_frames)
    voiced = rms > 0.01 * peak
    if peak > 0 and voiced.any():
        env = np.clip(rms / np.percentile(rms[voiced], 95), 0.0, 1.0) ** 0.6
        env[~voiced] = 0.0
    drive = diff.loudness_tie * env + (1.0 - diff.loudness_tie) * _frames(effort, n_frames).mean(1)
    opening = _frames(height, n_frames).mean(1) * drive
    spread = (_frames(width, n_frames).mean(1) - 1.0) * np.clip(drive, 0.0, 1.0)

    a = diff.coarticulation
    if a > 0:
        for track in (opening, spread):
            for i in range(n_frames - 2, -1, -1):
                track[i] = (1.0 - a) * track[i] + a * track[i + 1]
    kernel = np.array([0.2, 0.6, 0.2])
    opening = np.convolve(np.pad(opening, 1, mode="edge"), kernel, mode="valid")
    spread = np.convolve(np.pad(spread, 1, mode="edge"), kernel, mode="valid")
    return np.stack([np.clip(opening, 0.0, 1.0), 1.0 + spread], axis=1).astype(np.float32)


def blink_track(n_frames: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure [T]: Poisson blink onsets at `rate`/s, durations 0.1-0.4 s (at least 3 frames).

    Each blink closes smoothly over ~30 % of its frames, stays shut, and reopens symmetrically. Blinks that
    would overlap the previous one (or come within 2 frames of it) or run past the clip end are skipped, so
    the realised rate is a little below `rate` in short clips.
    """
    eyelid = np.zeros(n_frames, np.float32)
    t = 0.0
    free_from = 0
    while True:
        t += rng.exponential(1.0 / rate)
        dur = rng.uniform(0.1, 0.4)
        start = int(round(t * FPS))
        length = max(3, int(round(dur * FPS)))
        if start + length > n_frames:
            break
        if start < free_from:
            continue
        ramp_len = max(1, int(round(0.3 * length)))
        x = (np.arange(ramp_len) + 1.0) / (ramp_len + 1.0)
        ramp = x * x * (3.0 - 2.0 * x)  # smoothstep
        profile = np.concatenate([ramp, np.ones(length - 2 * ramp_len), ramp[::-1]])
        eyelid[start : start + length] = profile
        free_from = start + length + 2
    return eyelid


def blinks_from_eyelid(eyelid: np.ndarray) -> tuple[list[list[int]], list[list[int]]]:
    """(blinks, blinks_closed) as [start, end) frame intervals: runs with closure > 0 and with closure = 1."""

    def runs(mask: np.ndarray) -> list[list[int]]:
        d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
        return [[int(a), int(b)] for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]

    e = np.asarray(eyelid)
    return runs(e > 0.0), runs(e >= 1.0 - 1e-6)


def _occluder_track(n_frames: int, size: int, diff: DifficultyParams, rng: np.random.Generator) -> np.ndarray:
    occ = np.zeros((n_frames, 8), np.float32)
    if rng.uniform() >= diff.occlusion_prob:
        return occ
    t = np.arange(n_frames) / FPS
    side = 1.0 if rng.uniform() < 0.5 else -1.0
    reach = np.clip(0.55 + _drift(t, 1.0, rng), 0.0, 1.0)  # 0 = outside the frame, 1 = over half the mouth
    rx, ry = rng.uniform(0.18, 0.28) * size, rng.uniform(0.10, 0.18) * size
    inner_edge = (0.5 - 0.45 * reach) * size  # distance of the object's inner edge from the frame centre
    occ[:, 0] = size / 2 + side * (inner_edge + rx)
    occ[:, 1] = rng.uniform(0.62, 0.9) * size + _drift(t, 0.03 * size, rng)
    occ[:, 2], occ[:, 3] = rx, ry
    occ[:, 4] = rng.uniform(-30.0, 30.0)
    occ[:, 5:8] = rng.integers(30, 226, 3)
    return occ


def render_params(
    plan: UtterancePlan,
    voice: np.ndarray,
    speaker: Speaker,
    size: int,
    diff: DifficultyParams,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], float]:
    """Per-frame render parameters (see data.synthetic.face) and the clip's mouth lead in ms."""
    n_frames = plan.n_frames
    lo, hi = diff.mouth_lead_ms
    lead_ms = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
    mouth = mouth_track(plan, voice, lead_ms, diff, rng)
    eyelid = blink_track(n_frames, speaker.blink_rate, rng)
    t = np.arange(n_frames) / FPS
    m = diff.motion
    pose = np.stack(
        [_drift(t, 2.5 * m, rng), _drift(t, 2.0 * m, rng), _drift(t, 3.0 * m, rng), 1.0 + _drift(t, 0.03 * m, rng)],
        axis=1,
    )
    light = np.ones((n_frames, 2))
    light[:, 0] = 1.0 + _drift(t, diff.light_gain, rng) if diff.light_gain > 0 else 1.0
    light[:, 1] = _drift(t, diff.light_side, rng) if diff.light_side > 0 else 0.0
    occluder = _occluder_track(n_frames, size, diff, rng)
    noise = np.stack(
        [
            rng.integers(0, NOISE_TILES, n_frames),
            rng.integers(0, NOISE_PAD, n_frames),
            rng.integers(0, NOISE_PAD, n_frames),
        ],
        axis=1,
    )
    params = {
        "pose": pose.astype(np.float32),
        "mouth": mouth,
        "eyelid": eyelid,
        "light": light.astype(np.float32),
        "occluder": occluder,
        "noise": noise.astype(np.int16),
        "jitter": np.zeros((n_frames, 2), np.int16),
        "source_frame": np.arange(n_frames, dtype=np.int32),
    }
    return params, lead_ms


def render_clip(spec: CorpusSpec, i: int) -> Clip:
    """Render clip `i` of the corpus: audio, video, landmarks and the full truth (see module docstring)."""
    cs = spec.clips[i]
    cfg = spec.config
    sp = spec.speakers[cs.speaker]
    diff = spec.difficulty
    rng = np.random.default_rng([cfg.seed, 3, i])
    speech = synthesize(cs.plan, sp, rng, diff.audio_noise)
    params, lead_ms = render_params(cs.plan, speech.voice, sp, cfg.size, diff, rng)
    video, landmarks = render_video(sp, params, cfg.size)
    blinks, closed = blinks_from_eyelid(params["eyelid"])
    sr = float(SAMPLE_RATE)
    timings = cs.plan.word_timings()
    truth: dict[str, Any] = {
        "generator": "talkbench.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": cfg.seed,
        "clip_index": i,
        "clip_id": cs.clip_id,
        "speaker_id": sp.speaker_id,
        "speaker_index": cs.speaker,
        "split": cs.split,
        "difficulty": cfg.difficulty,
        "size": cfg.size,
        "fps": FPS,
        "sample_rate": SAMPLE_RATE,
        "n_frames": cs.plan.n_frames,
        "n_samples": cs.plan.n_samples,
        "transcript": cs.transcript,
        "word": cs.word,
        "word_span": [timings[cs.plan.key][1], timings[cs.plan.key][2]],
        "word_duration": timings[cs.plan.key][2] - timings[cs.plan.key][1],
        "words": [{"word": w, "start": a, "end": b} for w, a, b in timings],
        "phones": [[s.phone, s.start / sr, s.end / sr] for s in cs.plan.segments],
        "av_offset_frames": 0,
        "av_offset_convention": OFFSET_CONVENTION,
        "mouth_lead_ms": lead_ms,
        "blinks": blinks,
        "blinks_closed": closed,
        "blink_convention": BLINK_CONVENTION,
        "perturbations": [],
        "speaker": sp.to_dict(),
        "render": params,
    }
    return Clip(
        clip_id=cs.clip_id,
        video=video,
        audio=speech.audio,
        speaker_id=sp.speaker_id,
        split=cs.split,
        landmarks=landmarks,
        transcript=cs.transcript,
        word=cs.word,
        truth=truth,
    )


def iter_clips(cfg: SyntheticConfig, indices: list[int] | range | None = None) -> Iterator[Clip]:
    """Render the corpus's clips in order (or only `indices`)."""
    spec = make_corpus_spec(cfg)
    for i in range(cfg.n_clips) if indices is None else indices:
        yield render_clip(spec, i)
