"""Audio features of a prepared clip, computed in blocks from its audio.npy (exactly equal to the whole-clip
features), so that adding a feature to a prepared corpus only reads the cached audio."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.clip import SAMPLE_RATE
from data.prepare.stream import NpyWriter, read_rows


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
        mel = wav2lip_melspectrogram(read_rows(audio_path, a0, a1))
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
        ceps = psf_mfcc(read_rows(audio_path, a0, a1) * 32768.0)
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


def write_features(d: Path, names: list[str], n_samples: int, audio_chunk_s: float) -> dict[str, list[int]]:
    """Write each feature of `names` from d/audio.npy (first n_samples); returns {name: [rows, width]}."""
    out = {}
    for name in names:
        feat = FEATURES[name]
        tmp = d / f".{feat.file}.tmp"
        fw = NpyWriter(tmp, "<f4", (feat.width,))
        for block in feat.blocks(d / "audio.npy", n_samples, int(audio_chunk_s * SAMPLE_RATE)):
            fw.append(block)
        out[name] = [fw.close(), feat.width]
        tmp.replace(d / feat.file)
    return out
