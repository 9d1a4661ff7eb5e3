"""Landmark lip-sync: how well the mouth opening follows the loudness of the speech, with no SyncNet.

There is no reference implementation: this is talkbench's own lip-sync judge, and it shares nothing with
SyncNet (no network, no MFCC, no learned embedding), so it checks the AV offset / confidence columns from the
outside (docs/metrics_reference.md, "Landmark lip-sync"). For one clip (video at `fps`, mono audio at
`sample_rate`):

- mouth opening per frame (`mouth_opening`): the mean gap between the inner lips, points 61-67, 62-66 and
  63-65 (0-based iBUG-68), divided by the inter-ocular distance (outer eye corners 36-45). Dividing by the eyes,
  not by the mouth's width, keeps the signal scale-free (head size, zoom, frame size) without coupling it to
  speech: the mouth widens and narrows as it talks (spread vowels, rounded ones), the eyes do not;
- loudness per frame (`loudness_db`): the RMS of the frame's audio window (sample_rate / fps samples) in dB
  below the clip's loud speech, clamped 40 dB down (`LOUDNESS_RANGE_DB`), so the audio's gain changes nothing;
- voiced frames (`voiced_frames`): a frame is speech when its RMS is at least `energy_ratio` of the clip's
  loud speech (95th percentile of the frame RMS) and above an absolute floor, and its zero-crossing rate is
  below `max_zcr` (voicing is carried by f0 and the first formant, below ~1 kHz; hiss and noise cross zero
  far more often); the mask is then widened by `hangover` frames on both sides, so the onsets and ends of
  speech, where the mouth opens and closes, are kept. No network;
- the normalised cross-correlation (Pearson) of opening and loudness over the voiced frames, at every lag
  within +-`max_lag` frames where at least `min_pairs` voiced frames overlap (`lag_correlations`).

The result holds the best lag (the highest correlation; ties go to the smallest |lag|), the correlation there
(`peak`) and the correlation at lag 0 (`corr`, the clip as it is shown). A mouth that does not move has no
correlation with anything: 0 at every lag, lag 0.

Lag sign: the same as syncnet_python's AV offset (metrics.functional.sync). Lag L pairs video frame t with audio
frame t - L, so audio advanced by k frames (`data.synthetic.perturb.shift_audio(clip, k)`, the sound of frame v
heard at frame v - k; `metrics.calibration.sync.shift_audio_frames`), which syncnet_python reports as offset
+k, reads lag +k here too.

Mouth lead: a mouth opens a little before its sound is heard (on the synthetic corpus by design: a per-clip
lead of 0-40 ms at the default level plus anticipatory coarticulation, docs/synthetic_corpus.md). Frame v's
loudness is therefore taken from the window `mouth_lead_ms` later (samples [640 v + d, 640 v + 640 + d) at
25 fps / 16 kHz, d = the lead in samples); with the default 20 ms the synthetic corpus's ground truth reads
lag 0 (without it, lag -1 on two clips in three). Any lead left over on a real corpus is a constant that the GT
row shows as well: the offset is judged against the GT row (direction match_gt).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.clip import FPS, SAMPLE_RATE

#: inner-lip point pairs (upper, lower) whose distances average into the opening: 61-67, 62-66, 63-65
UPPER_LIP = (61, 62, 63)
LOWER_LIP = (67, 66, 65)
#: outer eye corners: the inter-ocular distance that makes the opening scale-free
EYE_CORNERS = (36, 45)

#: lags searched, frames each way: +-320 ms at 25 fps, beyond the +-3 frames the synthetic checks inject and
#: short of syncnet_python's 15, which would leave a 1-second clip almost no overlap at its extreme lags
MAX_LAG = 8
#: a lag counts only where this many voiced frames (0.4 s at 25 fps) overlap the video: fewer make a Pearson
#: correlation mostly noise. Lag 0 has the most, so a clip with fewer voiced frames cannot be scored
MIN_PAIRS = 10
#: default lead of the mouth over its sound (see the module doc): centres the synthetic corpus's GT on lag 0
MOUTH_LEAD_MS = 20.0

#: VAD energy: a frame is loud enough at >= 10 % (-20 dB) of the clip's loud speech. The 95th percentile of the
#: frame RMS, not the maximum, so that one click does not set it; the synthetic corpus's noise floor sits at
#: 2-4 % of it and its vowels at 25-110 %
VAD_ENERGY_RATIO = 0.1
#: percentile of the frame RMS that stands for the clip's loud speech
VAD_REFERENCE_PERCENTILE = 95.0
#: VAD absolute floor, RMS of audio in [-1, 1]: -80 dBFS, about 3 steps of 16-bit audio; digital silence and
#: near-silent clips are never speech, however their percentile falls
VAD_MIN_RMS = 1e-4
#: VAD zero-crossing rate, crossings per sample: voiced frames stay below (their energy is f0 and F1, below
#: ~1 kHz; the synthetic vowels' 95th percentile is 0.18 at 16 kHz), white noise crosses at ~0.5 and
#: fricative hiss at 0.3-0.6
VAD_MAX_ZCR = 0.25
#: frames added to each side of every voiced run: the mouth opens before voicing starts and closes after it
#: ends, and those frames carry most of the evidence about timing (80 ms at 25 fps)
VAD_HANGOVER = 2
#: loudness is in dB below the clip's loud speech (the VAD's reference RMS) and clamped this far down: everything
#: quieter is equally silent. Without the clamp, digital silence (the zeros a shifted or padded track starts or
#: ends with) would sit at minus infinity, or wherever an arbitrary floor put it, and one such frame inside the
#: hangover would decide the correlation; the synthetic corpus's noise floor is at -28 to -34 dB
LOUDNESS_RANGE_DB = 40.0
#: the opening's standard deviation over the scored frames (in inter-ocular distances) below which the mouth
#: counts as still: correlation 0 rather than the sign of rounding noise
STILL_MOUTH = 1e-6


@dataclass(frozen=True)
class LipSyncResult:
    """One clip's landmark lip-sync.

    lag: best lag in frames (syncnet_python's AV-offset sign); corr: correlation at lag 0; peak: correlation at
    `lag`; curve: float [2 max_lag + 1] correlation per lag -max_lag .. max_lag (NaN where fewer than
    `min_pairs` voiced frames overlap); n_voiced: voiced frames (after the hangover) the video overlaps at lag 0.
    """

    lag: int
    corr: float
    peak: float
    curve: np.ndarray
    n_voiced: int


def _landmarks(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be [T, 68, 2], got {lm.shape}")
    return lm


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap per frame in inter-ocular distances: float64 [T] from landmarks [T, 68, 2].

    Raises ValueError when a frame's outer eye corners coincide (no scale to divide by) or a point is not finite.
    """
    lm = _landmarks(landmarks)
    if not np.all(np.isfinite(lm)):
        raise ValueError("landmarks hold non-finite points")
    gap = np.linalg.norm(lm[:, list(UPPER_LIP)] - lm[:, list(LOWER_LIP)], axis=-1).mean(axis=1)
    iod = np.linalg.norm(lm[:, EYE_CORNERS[0]] - lm[:, EYE_CORNERS[1]], axis=-1)
    if np.any(iod <= 1e-9):
        raise ValueError(f"outer eye corners coincide in {int(np.sum(iod <= 1e-9))} frames: no inter-ocular scale")
    return np.asarray(gap / iod, np.float64)


def audio_frames(
    audio: np.ndarray, fps: float = FPS, sample_rate: int = SAMPLE_RATE, lead_ms: float = 0.0
) -> np.ndarray:
    """float64 [T_a, W]: the audio window of each video frame, W = round(sample_rate / fps) samples.

    Frame v's window starts `lead_ms` after the frame (sample v W + d, d = the lead in samples); T_a counts the
    frames whose whole window the audio holds ((len(audio) - d) // W; with no lead, as syncnet_python counts
    them). A window past the end of the audio is unknown, not silent: it is left out rather than padded.
    """
    a = np.asarray(audio, np.float64)
    if a.ndim != 1:
        raise ValueError(f"audio must be mono [N], got {a.shape}")
    if fps <= 0 or sample_rate <= 0:
        raise ValueError(f"need fps > 0 and sample_rate > 0, got {fps} and {sample_rate}")
    width = int(round(sample_rate / fps))
    d = int(round(lead_ms * sample_rate / 1000.0))
    if d < 0:
        raise ValueError(f"the mouth lead must be >= 0 ms, got {lead_ms}")
    n = max(a.shape[0] - d, 0) // width
    return a[d : d + n * width].reshape(n, width)


def frame_rms(frames: np.ndarray) -> np.ndarray:
    """Root mean square of each window of `audio_frames`: float64 [T_a]."""
    return np.asarray(np.sqrt(np.mean(np.square(frames), axis=1)), np.float64)


def zero_crossing_rate(frames: np.ndarray) -> np.ndarray:
    """Sign changes per sample pair in each window of `audio_frames`: float64 [T_a] in [0, 1]."""
    if frames.shape[1] < 2:
        return np.zeros(frames.shape[0])
    negative = np.signbit(frames)
    return np.asarray(np.mean(negative[:, 1:] != negative[:, :-1], axis=1), np.float64)


def reference_rms(rms: np.ndarray) -> float:
    """The clip's loud speech: the 95th percentile of its frame RMS (0 for no frames)."""
    return float(np.percentile(rms, VAD_REFERENCE_PERCENTILE)) if rms.size else 0.0


def loudness_db(frames: np.ndarray) -> np.ndarray:
    """Loudness of each window of `audio_frames`: 20 log10 of its RMS relative to the clip's loud speech
    (`reference_rms`), clamped at -LOUDNESS_RANGE_DB; float64 [T_a]. The audio's gain does not change it."""
    rms = frame_rms(frames)
    ref = max(reference_rms(rms), VAD_MIN_RMS)
    floor = ref * 10.0 ** (-LOUDNESS_RANGE_DB / 20.0)
    return np.asarray(20.0 * np.log10(np.maximum(rms, floor) / ref), np.float64)


def voiced_frames(
    frames: np.ndarray,
    energy_ratio: float = VAD_ENERGY_RATIO,
    max_zcr: float = VAD_MAX_ZCR,
    hangover: int = VAD_HANGOVER,
    min_rms: float = VAD_MIN_RMS,
) -> np.ndarray:
    """The energy + zero-crossing VAD of the windows of `audio_frames`: bool [T_a] (see the module doc)."""
    if energy_ratio < 0 or max_zcr <= 0 or hangover < 0 or min_rms < 0:
        raise ValueError(
            f"need energy_ratio >= 0, max_zcr > 0, hangover >= 0, min_rms >= 0; got {energy_ratio}, {max_zcr}, "
            f"{hangover}, {min_rms}"
        )
    rms = frame_rms(frames)
    if rms.size == 0:
        return np.zeros(0, bool)
    voiced = (rms >= energy_ratio * reference_rms(rms)) & (rms > min_rms) & (zero_crossing_rate(frames) < max_zcr)
    out = voiced.copy()
    for s in range(1, int(hangover) + 1):
        out[s:] |= voiced[:-s]
        out[:-s] |= voiced[s:]
    return out


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if float(np.std(x)) < STILL_MOUTH:
        return 0.0  # a still mouth follows nothing
    x, y = x - x.mean(), y - y.mean()
    denom = float(np.sqrt(np.dot(x, x) * np.dot(y, y)))
    return float(np.dot(x, y) / denom) if denom > 0 else 0.0


def lag_correlations(
    opening: np.ndarray, loudness: np.ndarray, voiced: np.ndarray, max_lag: int = MAX_LAG, min_pairs: int = MIN_PAIRS
) -> np.ndarray:
    """Pearson correlation of opening[t] with loudness[t - L] over the t whose audio frame t - L is voiced, for
    L = -max_lag .. max_lag: float64 [2 max_lag + 1], NaN where fewer than `min_pairs` such frames exist.

    The signals are compared over their common length; loudness and voiced are per audio frame (same length).
    """
    if max_lag < 0 or min_pairs < 3:
        raise ValueError(f"need max_lag >= 0 and min_pairs >= 3, got {max_lag} and {min_pairs}")
    if len(loudness) != len(voiced):
        raise ValueError(f"loudness and voiced differ in length: {len(loudness)} and {len(voiced)}")
    t_len = min(len(opening), len(loudness))
    m = np.asarray(opening, np.float64)[:t_len]
    e = np.asarray(loudness, np.float64)[:t_len]
    v = np.asarray(voiced, bool)[:t_len]
    out = np.full(2 * max_lag + 1, np.nan)
    t = np.arange(t_len)
    for j, lag in enumerate(range(-max_lag, max_lag + 1)):
        audio_t = t - lag
        ok = (audio_t >= 0) & (audio_t < t_len)
        video_t, audio_t = t[ok], audio_t[ok]
        keep = v[audio_t]
        if int(keep.sum()) >= min_pairs:
            out[j] = _pearson(m[video_t[keep]], e[audio_t[keep]])
    return out


def best_lag(curve: np.ndarray) -> int:
    """The lag of the highest correlation in a `lag_correlations` curve (ties: the smallest |lag|, then the
    negative one); ValueError when no lag has enough voiced frames."""
    max_lag = (len(curve) - 1) // 2
    order = sorted(range(-max_lag, max_lag + 1), key=lambda lag: (abs(lag), lag))
    scored = [lag for lag in order if np.isfinite(curve[lag + max_lag])]
    if not scored:
        raise ValueError("no lag has enough voiced frames")
    return max(scored, key=lambda lag: float(curve[lag + max_lag]))  # max keeps the first of equal values


def lipsync_lm(
    landmarks: np.ndarray,
    audio: np.ndarray,
    *,
    fps: float = FPS,
    sample_rate: int = SAMPLE_RATE,
    max_lag: int = MAX_LAG,
    min_pairs: int = MIN_PAIRS,
    mouth_lead_ms: float = MOUTH_LEAD_MS,
    energy_ratio: float = VAD_ENERGY_RATIO,
    max_zcr: float = VAD_MAX_ZCR,
    hangover: int = VAD_HANGOVER,
) -> LipSyncResult:
    """Best lag and correlations of one clip: landmarks [T, 68, 2] of its frames, audio float [N] in [-1, 1].

    Raises ValueError when the landmarks give no opening (see `mouth_opening`) or the audio has fewer than
    `min_pairs` voiced frames under the video (no lag can be scored).
    """
    opening = mouth_opening(landmarks)
    frames = audio_frames(audio, fps, sample_rate, mouth_lead_ms)
    voiced = voiced_frames(frames, energy_ratio, max_zcr, hangover)
    n_voiced = int(voiced[: len(opening)].sum())
    if n_voiced < min_pairs:
        raise ValueError(
            f"{n_voiced} voiced frames under the video (energy/zero-crossing VAD), at least {min_pairs} are needed"
        )
    curve = lag_correlations(opening, loudness_db(frames), voiced, max_lag, min_pairs)
    lag = best_lag(curve)
    return LipSyncResult(lag, float(curve[max_lag]), float(curve[lag + max_lag]), curve, n_voiced)
