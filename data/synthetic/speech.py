"""Synthetic speech: a seeded CV-syllable vocabulary, timing plans and a small formant synthesiser.

Recipe (vowel formants, durations, pulse source, noise floor, peak level) of the design prototype, written up in
docs/synthetic_corpus.md. Timing is planned first (cheap, no audio), so a corpus spec can
hold every clip's words and phone timeline, and the audio is synthesised only when a clip is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal

from data.clip import SAMPLE_RATE, SAMPLES_PER_FRAME
from data.synthetic.speakers import Speaker

VOWELS = "aeiou"
CONSONANTS = "bdgklmnpst"
BILABIALS = frozenset("bmp")
SILENCE = "sil"
PHONES: tuple[str, ...] = (SILENCE, *VOWELS, *CONSONANTS)
PHONE_INDEX = {p: i for i, p in enumerate(PHONES)}

# Peterson-Barney-style adult male formants F1-F3 (Hz), scaled per speaker; bandwidths as in the prototype.
FORMANTS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}
BANDWIDTHS = (90.0, 110.0, 170.0)

# Consonant noise: (centre Hz, bandwidth Hz, kind, level relative to the syllable's vowel).
# "burst" = plosive (fast attack, exponential decay); "hiss" = sustained fricative; "murmur" = nasal/liquid.
CONSONANT_NOISE: dict[str, tuple[float, float, str, float]] = {
    "p": (900.0, 900.0, "burst", 0.35),
    "b": (500.0, 600.0, "burst", 0.22),
    "t": (4200.0, 2500.0, "burst", 0.35),
    "d": (3200.0, 2000.0, "burst", 0.22),
    "k": (2000.0, 1200.0, "burst", 0.33),
    "g": (1600.0, 1000.0, "burst", 0.22),
    "s": (6500.0, 2500.0, "hiss", 0.30),
    "m": (280.0, 200.0, "murmur", 0.25),
    "n": (320.0, 250.0, "murmur", 0.25),
    "l": (400.0, 350.0, "murmur", 0.22),
}

RAMP_S = 0.020  # vowel on/off ramps


@dataclass(frozen=True)
class Segment:
    """One phone: samples [start, end) of the clip's audio; `word` is the word's position (-1 = silence)."""

    phone: str
    start: int
    end: int
    amp: float = 0.0
    word: int = -1


@dataclass(frozen=True)
class UtterancePlan:
    """Timing of one clip's speech: the words in order and a gap-free phone timeline covering the audio."""

    words: tuple[str, ...]
    segments: tuple[Segment, ...]
    n_samples: int
    key: int = 0  # position of the key word in `words`

    @property
    def n_frames(self) -> int:
        return self.n_samples // SAMPLES_PER_FRAME

    def word_timings(self) -> list[tuple[str, float, float]]:
        """(word, start s, end s) for each spoken word, from its first consonant to its last vowel."""
        spans: dict[int, list[int]] = {}
        for s in self.segments:
            if s.word >= 0:
                span = spans.setdefault(s.word, [s.start, s.end])
                span[0], span[1] = min(span[0], s.start), max(span[1], s.end)
        return [(self.words[w], a / SAMPLE_RATE, b / SAMPLE_RATE) for w, (a, b) in sorted(spans.items())]

    def phone_track(self) -> np.ndarray:
        """int8 [N]: index into PHONES of the phone sounding at every sample."""
        track = np.zeros(self.n_samples, np.int8)
        for s in self.segments:
            track[s.start : s.end] = PHONE_INDEX[s.phone]
        return track


def syllables(word: str) -> list[str]:
    """'BAMIDO' -> ['ba', 'mi', 'do']."""
    w = word.lower()
    if len(w) % 2 or any(c not in CONSONANTS for c in w[::2]) or any(v not in VOWELS for v in w[1::2]):
        raise ValueError(f"{word!r} is not a word of consonant-vowel syllables from {CONSONANTS}/{VOWELS}")
    return [w[i : i + 2] for i in range(0, len(w), 2)]


def make_vocabulary(n_words: int, seed: int) -> list[str]:
    """`n_words` distinct upper-case words of 2-3 CV syllables (usable as LRW word folders), sorted."""
    max_words = 50**2 + 50**3
    if not 1 <= n_words <= max_words:
        raise ValueError(f"vocab_size must be in 1..{max_words}, got {n_words}")
    rng = np.random.default_rng([seed, 0x40CAB])
    words: set[str] = set()
    while len(words) < n_words:
        n_syl = int(rng.integers(2, 4))
        words.add(
            "".join(
                CONSONANTS[rng.integers(len(CONSONANTS))] + VOWELS[rng.integers(len(VOWELS))] for _ in range(n_syl)
            ).upper()
        )
    return sorted(words)


def _word_phones(word: str, speaker: Speaker, rng: np.random.Generator) -> list[tuple[str, int, float]]:
    """(phone, length in samples, syllable amplitude) for each phone of one spoken word."""
    out = []
    for syl in syllables(word):
        amp = float(rng.uniform(0.55, 1.0))
        c_len = int(rng.uniform(0.03, 0.09) / speaker.speaking_rate * SAMPLE_RATE)
        v_len = int(rng.uniform(0.10, 0.20) / speaker.speaking_rate * SAMPLE_RATE)
        out += [(syl[0], c_len, amp), (syl[1], v_len, amp)]
    return out


def plan_utterance(
    key_word: str,
    vocabulary: list[str],
    speaker: Speaker,
    n_frames: int,
    rng: np.random.Generator,
) -> UtterancePlan:
    """Words around `key_word` filling about `n_frames` frames: silence, [filler], KEY, fillers..., silence.

    The key word is always spoken in full: if it does not fit in `n_frames`, the leading filler is dropped, then
    the leading silence shortened, then the clip lengthened. Fillers are added only while they end at least
    0.1 s before the clip does. Leading silence 50-350 ms, pauses 80-350 ms (docs/synthetic_corpus.md).
    """
    sr = SAMPLE_RATE
    n_samples = n_frames * SAMPLES_PER_FRAME
    lead = int(rng.uniform(0.05, 0.35) * sr)
    tail_min = int(0.1 * sr)
    order = [str(vocabulary[rng.integers(len(vocabulary))])] if rng.uniform() < 0.5 else []
    key_pos = len(order)
    order.append(key_word)
    order += [str(vocabulary[rng.integers(len(vocabulary))]) for _ in range(12)]
    phones = [_word_phones(w, speaker, rng) for w in order]
    pauses = [int(rng.uniform(0.08, 0.35) * sr) for _ in order]
    lengths = [sum(p[1] for p in ph) for ph in phones]

    if key_pos == 1 and lead + lengths[0] + pauses[0] + lengths[1] + tail_min > n_samples:
        order, phones, pauses, lengths, key_pos = order[1:], phones[1:], pauses[1:], lengths[1:], 0
    if lead + lengths[0] + tail_min > n_samples:
        lead = int(0.05 * sr)
    needed = lead + lengths[0] + tail_min
    if needed > n_samples:
        n_samples = -(-needed // SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME

    segments: list[Segment] = []
    t = lead
    segments.append(Segment(SILENCE, 0, lead))
    words: list[str] = []
    for i, (word, ph) in enumerate(zip(order, phones)):
        if i > key_pos and t + pauses[i - 1] + lengths[i] + tail_min > n_samples:
            break
        if i > 0:
            segments.append(Segment(SILENCE, t, t + pauses[i - 1]))
            t += pauses[i - 1]
        for phone, length, amp in ph:
            segments.append(Segment(phone, t, t + length, amp, len(words)))
            t += length
        words.append(word)
    segments.append(Segment(SILENCE, t, n_samples))
    return UtterancePlan(tuple(words), tuple(segments), n_samples, key_pos)


def _resonator_denominator(freq: float, bandwidth: float) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    return np.array([1.0, -2.0 * r * np.cos(2.0 * np.pi * freq / SAMPLE_RATE), r * r])


def _ramp(n: int, ramp: int) -> np.ndarray:
    env = np.ones(n)
    k = min(ramp, n // 2)
    if k > 0:
        r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
        env[:k] = r
        env[n - k :] = r[::-1]
    return env


def _vowel(vowel: str, n: int, f0: np.ndarray, speaker: Speaker, phase0: float) -> tuple[np.ndarray, float]:
    # Glottal source: pulse train at the f0 contour, two one-pole low-passes, then a differentiator (a crude
    # glottal-flow derivative) -- enough to give formants a harmonic-rich excitation.
    phase = phase0 + np.cumsum(f0 / SAMPLE_RATE)
    pulses = np.diff(np.floor(phase), prepend=np.floor(phase0))
    src = scipy.signal.lfilter([1.0], [1.0, -0.9], pulses)
    src = scipy.signal.lfilter([1.0], [1.0, -0.9], src)
    src = np.diff(src, prepend=0.0)
    den = np.array([1.0])
    for f, bw in zip(FORMANTS[vowel], BANDWIDTHS):
        den = np.convolve(den, _resonator_denominator(f * speaker.formant_scale, bw))
    out = scipy.signal.lfilter([1.0], den, src)
    return out, float(phase[-1] % 1.0)


def _consonant(c: str, n: int, rng: np.random.Generator) -> np.ndarray:
    fc, bw, kind, _ = CONSONANT_NOISE[c]
    noise = scipy.signal.lfilter([1.0], _resonator_denominator(fc, bw), rng.standard_normal(n))
    t = np.arange(n) / SAMPLE_RATE
    if kind == "burst":
        env = np.minimum(t / 0.003, 1.0) * np.exp(-t / (0.25 * n / SAMPLE_RATE))
    else:
        env = _ramp(n, int(0.3 * n))
    return noise * env


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    return x / rms if rms > 0 else x


@dataclass
class Speech:
    """Synthesised audio for one plan: `audio` (with noise floor) and `voice` (the clean scaled signal)."""

    audio: np.ndarray  # float32 [N] in [-1, 1]
    voice: np.ndarray  # float32 [N], no noise: what the mouth is driven by
    peak: float  # peak level the voice was normalised to


def synthesize(plan: UtterancePlan, speaker: Speaker, rng: np.random.Generator, noise_sigma: float) -> Speech:
    """Formant-synthesised speech for `plan`: vowels through F1-F3, consonants as noise, then peak
    normalisation of the voice to 0.3-0.9 and a Gaussian noise floor of std `noise_sigma` everywhere."""
    n = plan.n_samples
    voice = np.zeros(n)
    ramp = int(RAMP_S * SAMPLE_RATE)
    vibrato_phase = rng.uniform(0, 2 * np.pi)
    phase = 0.0
    for seg in plan.segments:
        length = seg.end - seg.start
        if seg.phone == SILENCE or length <= 0:
            continue
        if seg.phone in FORMANTS:
            t = (seg.start + np.arange(length)) / SAMPLE_RATE
            # +-4 % vibrato, 8 % declination over the clip, +-5 % per-syllable jitter (docs/synthetic_corpus.md)
            f0 = (
                speaker.f0
                * float(rng.uniform(0.95, 1.05))
                * (1.0 + 0.04 * np.sin(2 * np.pi * 5.5 * t + vibrato_phase))
                * (1.0 - 0.08 * seg.start / n)
            )
            x, phase = _vowel(seg.phone, length, f0, speaker, phase)
            voice[seg.start : seg.end] += _unit_rms(x) * _ramp(length, ramp) * seg.amp
        else:
            level = CONSONANT_NOISE[seg.phone][3]
            voice[seg.start : seg.end] += _unit_rms(_consonant(seg.phone, length, rng)) * level * seg.amp
    peak_target = float(rng.uniform(0.3, 0.9))
    peak = float(np.max(np.abs(voice))) if n else 0.0
    if peak > 0:
        voice *= peak_target / peak
    audio = np.clip(voice + rng.normal(0.0, noise_sigma, n), -1.0, 1.0)
    return Speech(audio.astype(np.float32), voice.astype(np.float32), peak_target)
