"""Audio front ends computed once per clip: Wav2Lip's log-mel and python_speech_features' MFCC.

Both are numpy re-implementations with every parameter explicit, so results do not drift with library
defaults (librosa >= 0.10 changed `pad_mode` and broke Wav2Lip's positional `filters.mel` call).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.signal

from data.clip import FPS, SAMPLE_RATE

# Wav2Lip hparams.py / audio.py
MEL_HOP = 200  # 80 mel frames per second
MEL_STEPS_PER_WINDOW = 16  # 0.2 s, 5 video frames
MELS_PER_FRAME = SAMPLE_RATE / MEL_HOP / FPS  # 3.2


@lru_cache(maxsize=4)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    import librosa

    # keyword arguments: the positional form fails on librosa >= 0.10 (Wav2Lip#465)
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)


def wav2lip_melspectrogram(audio: np.ndarray) -> np.ndarray:
    """Wav2Lip's normalised log-mel spectrogram, float32 [80, 1 + N // 200] in [-4, 4].

    Pre-emphasis 0.97; STFT n_fft 800, hop 200, Hann, centred with reflect padding (librosa 0.7 behaviour the
    official checkpoints were trained with); Slaney mel 55-7600 Hz on the magnitude; 20*log10 - 20 dB;
    symmetric normalisation to [-4, 4] (min_level_db -100).
    """
    import librosa

    wav = scipy.signal.lfilter([1.0, -0.97], [1.0], np.asarray(audio, np.float64))
    spec = np.abs(librosa.stft(y=wav, n_fft=800, hop_length=MEL_HOP, win_length=800, center=True, pad_mode="reflect"))
    mel = _mel_basis(SAMPLE_RATE, 800, 80, 55.0, 7600.0) @ spec
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - 20.0
    return np.clip(8.0 * (db + 100.0) / 100.0 - 4.0, -4.0, 4.0).astype(np.float32)


def mel_window(mel: np.ndarray, frame: int, steps: int = MEL_STEPS_PER_WINDOW) -> np.ndarray | None:
    """The `steps` mel columns starting at video frame `frame` (Wav2Lip: start = int(80 * frame / 25)).

    Returns None when the window runs past the end (the official loaders reject such windows).
    """
    start = int(80.0 * frame / FPS)
    if frame < 0 or start + steps > mel.shape[1]:
        return None
    return mel[:, start : start + steps]


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=4)
def _psf_filterbank(nfilt: int, nfft: int, sr: int) -> np.ndarray:
    # python_speech_features.get_filterbanks: triangular filters on FFT bins floor((nfft+1) * hz / sr)
    mels = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), nfilt + 2)
    bins = np.floor((nfft + 1) * _mel_to_hz(mels) / sr)
    fb = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        lo, mid, hi = int(bins[j]), int(bins[j + 1]), int(bins[j + 2])
        for i in range(lo, mid):
            fb[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(mid, hi):
            fb[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    return fb


def psf_mfcc(signal: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """`python_speech_features.mfcc(signal, sr)` with its defaults, as syncnet_python calls it: float64 [frames, 13].

    winlen 400 / step 160 samples, rectangular window, preemph 0.97, nfft 512, 26 filters 0..sr/2, DCT-II
    ortho, lifter 22, c0 replaced by log frame energy. syncnet_python feeds int16 sample values: pass
    `audio * 32768` to match it (only c0 depends on the scale).
    """
    sig = np.asarray(signal, np.float64)
    sig = np.append(sig[0], sig[1:] - 0.97 * sig[:-1]) if sig.size else sig
    frame_len, step, nfft = 400, 160, 512
    n = sig.size
    num_frames = 1 if n <= frame_len else 1 + int(np.ceil((n - frame_len) / step))
    padded = np.concatenate([sig, np.zeros(max(0, (num_frames - 1) * step + frame_len - n))])
    idx = np.arange(frame_len)[None, :] + step * np.arange(num_frames)[:, None]
    frames = padded[idx]
    pspec = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
    energy = np.sum(pspec, axis=1)
    energy = np.where(energy == 0, np.finfo(float).eps, energy)
    feat = pspec @ _psf_filterbank(26, nfft, sr).T
    feat = np.where(feat == 0, np.finfo(float).eps, feat)
    ceps = scipy.fft.dct(np.log(feat), type=2, axis=1, norm="ortho")[:, :13]
    lift = 1 + (22 / 2.0) * np.sin(np.pi * np.arange(13) / 22)
    ceps = ceps * lift
    ceps[:, 0] = np.log(energy)
    return ceps
