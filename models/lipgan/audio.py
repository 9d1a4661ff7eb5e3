"""LipGAN's audio front ends: the MATLAB MFCC of the `master` branch and the mel of `fully_pythonic`.

MFCC (LipGAN:matlab/create_mat.m -> Kamil Wojcicki's mfcc.m; docs/lipgan.md), in numpy:
16 kHz samples scaled by 2^15 (MATLAB `audioread` gives floats; create_mat.m rescales when max |x| <= 1),
pre-emphasis 0.97 (`filter([1 -0.97], 1, x)`), 25 ms Hamming frames every 10 ms without end padding,
|FFT| with nfft 512, 40 triangular filters evenly spaced on the HTK mel scale between 300 and 3700 Hz,
natural log, DCT-II matrix sqrt(2/M) cos(pi n (m - 0.5) / M), 13 cepstra, sine lifter 22, then c0 dropped:
12 coefficients at 100 frames/s.

Chunks: one 350 ms window (35 MFCC columns) per video frame. Official preprocessing pairs MFCC chunk k
(columns 4k .. 4k+34) with video frame k+4, i.e. the window is centred on its frame (LipGAN:preprocess.py;
docs/lipgan.md); so output frame i takes columns 4(i - 4) + `frame_offset`*4 .. +34. Columns before the start or
past the end repeat the first / last column (MATLAB gives no padding; LipGAN inference needs a window for every
frame).

Mel: Wav2Lip's normalised log-mel (identical constants, LipGAN:audio_hparams.py), 27 columns (~337 ms) per
frame. fully_pythonic's training slice and inference slice disagree by several frames (docs/lipgan.md);
here the window is centred on its frame like the MFCC chunks: start int(3.2 * (i - 4)).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from data.audio import wav2lip_melspectrogram
from data.clip import SAMPLE_RATE

MFCC_COEFFS = 12  # 13 cepstra, c0 dropped (MFCCs(2:end, :))
MFCC_STEPS = 35  # 350 ms window
MFCC_PER_FRAME = 4  # 100 MFCC frames/s at 25 fps
MEL_BINS = 80
MEL_STEPS = 27  # fully_pythonic mel_step_size
MELS_PER_FRAME = 3.2
CENTRE_FRAMES = 4  # chunk k goes with video frame k + 4 (window midpoint, official preprocess.py)

# create_mat.m / mfcc.m settings
_TW_MS, _TS_MS, _ALPHA, _M, _C, _L, _R = 25, 10, 0.97, 40, 13, 22, (300.0, 3700.0)


def _hz2mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hz, np.float64) / 700.0)


def _mel2hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * np.exp(np.asarray(mel, np.float64) / 1127.0) - 700.0


@lru_cache(maxsize=2)
def _trifbank(m: int, k: int, lo: float, hi: float, fs: int) -> np.ndarray:
    # trifbank.m: K bins linspace(0, fs/2), M+2 cut-offs evenly spaced in mel, Eq. 6.141 slopes (peak 1)
    f = np.linspace(0.0, 0.5 * fs, k)
    c = _mel2hz(_hz2mel(lo) + np.arange(m + 2) * ((_hz2mel(hi) - _hz2mel(lo)) / (m + 1)))
    h = np.zeros((m, k))
    for j in range(m):
        up = (f >= c[j]) & (f <= c[j + 1])
        h[j, up] = (f[up] - c[j]) / (c[j + 1] - c[j])
        down = (f >= c[j + 1]) & (f <= c[j + 2])
        h[j, down] = (c[j + 2] - f[down]) / (c[j + 2] - c[j + 1])
    return h


def matlab_mfcc(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """LipGAN's MATLAB MFCC: float64 [12, T] with T = 1 + (N - 400) // 160 (no end padding; 0 if N < 400).

    `audio` is float in [-1, 1] (scaled by 2^15 like create_mat.m) or already int16-range values. Exact zeros
    in a filterbank energy (digital silence) are floored at float eps before the log, where MATLAB would
    return -Inf.
    """
    x = np.asarray(audio, np.float64).reshape(-1)
    if x.size and np.max(np.abs(x)) <= 1.0:
        x = x * 2.0**15
    nw = round(1e-3 * _TW_MS * sr)
    ns = round(1e-3 * _TS_MS * sr)
    nfft = 2 ** int(np.ceil(np.log2(nw)))
    k = nfft // 2 + 1
    x = np.concatenate([x[:1], x[1:] - _ALPHA * x[:-1]])
    n_frames = 0 if x.size < nw else 1 + (x.size - nw) // ns
    if n_frames == 0:
        return np.zeros((MFCC_COEFFS, 0))
    idx = np.arange(nw)[None, :] + ns * np.arange(n_frames)[:, None]
    window = 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(nw) / (nw - 1))  # symmetric Hamming (mfcc.m)
    mag = np.abs(np.fft.fft(x[idx] * window, nfft, axis=1))[:, :k]  # (T, K)
    fbe = _trifbank(_M, k, _R[0], _R[1], sr) @ mag.T  # (M, T)
    n = np.arange(_C)[:, None]
    dct = np.sqrt(2.0 / _M) * np.cos(n * (np.pi * (np.arange(1, _M + 1) - 0.5) / _M)[None, :])
    cc = dct @ np.log(np.maximum(fbe, np.finfo(np.float64).eps))
    lifter = 1.0 + 0.5 * _L * np.sin(np.pi * np.arange(_C) / _L)
    return (lifter[:, None] * cc)[1:]


def feature_matrix(kind: str, audio: np.ndarray) -> np.ndarray:
    """The whole clip's features: MFCC float64 [12, T] (100/s) or mel float32 [80, T] (80/s)."""
    if kind not in FEATURE_SHAPES:
        raise KeyError(f"unknown LipGAN audio features {kind!r}; known: {', '.join(FEATURE_SHAPES)}")
    feat = matlab_mfcc(audio) if kind == "mfcc" else wav2lip_melspectrogram(audio)
    if feat.shape[1] == 0:  # shorter than one analysis window: one silent-looking column
        feat = np.zeros((feat.shape[0], 1))
    return feat


def chunk_starts(kind: str, frames: np.ndarray, frame_offset: int = 0) -> np.ndarray:
    """First feature column of the window centred on each video frame (+ frame_offset frames)."""
    per_frame = MFCC_PER_FRAME if kind == "mfcc" else MELS_PER_FRAME
    return np.floor(per_frame * (np.asarray(frames) - CENTRE_FRAMES + frame_offset)).astype(np.int64)


def chunks(kind: str, feat: np.ndarray, frames: np.ndarray, frame_offset: int = 0) -> np.ndarray:
    """float32 (n, 1, bins, steps) windows of `feat` for video frames `frames`.

    Columns before the start or past the end repeat the first / last column (see the module docstring).
    """
    steps = FEATURE_SHAPES[kind][1]
    starts = chunk_starts(kind, frames, frame_offset)
    cols = np.clip(starts[:, None] + np.arange(steps)[None, :], 0, feat.shape[1] - 1)
    return np.moveaxis(feat[:, cols], 1, 0)[:, None].astype(np.float32)


def audio_chunks(kind: str, audio: np.ndarray, num_frames: int, frame_offset: int = 0) -> np.ndarray:
    """float32 (num_frames, 1, bins, steps): the window of `kind` features centred on every output frame."""
    return chunks(kind, feature_matrix(kind, audio), np.arange(num_frames), frame_offset)


FEATURE_SHAPES = {"mfcc": (MFCC_COEFFS, MFCC_STEPS), "mel": (MEL_BINS, MEL_STEPS)}
