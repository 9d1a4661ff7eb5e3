"""The first frame's lookahead per model: the audio that must have arrived before a model can compute its first
output frame, read from its window config (benchmark/perf/speed.py adds the compute; docs/speed.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from data.clip import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

__all__ = ["FIRST_FRAME", "FirstFrame", "first_frame_rule"]


@dataclass(frozen=True)
class FirstFrame:
    """What the first output frame waits for: `lookahead_s` of audio (from the start of the stream, the first
    frame's own 40 ms included) and the compute of `chunk_frames` output frames made together with it."""

    lookahead_s: float
    chunk_frames: int
    rule: str


#: Wav2Lip's log-mel (data.audio): centred STFT, 800-sample window, 200-sample hop; column c ends at c*hop + 400
_MEL_HOP_S, _MEL_HALF_WINDOW_S = 200 / SAMPLE_RATE, 400 / SAMPLE_RATE
#: LipGAN's MATLAB MFCCs (models/lipgan/audio.py): 25 ms windows every 10 ms, not centred
_MFCC_HOP_S, _MFCC_WINDOW_S = 0.010, 0.025


def _frame_floor(seconds: float) -> float:
    """No frame can be shown before its own 40 ms of audio has arrived."""
    return max(seconds, 1.0 / FPS)


def _wav2lip_first(module: Any) -> FirstFrame:
    from data.audio import MEL_STEPS_PER_WINDOW

    end = (MEL_STEPS_PER_WINDOW - 1) * _MEL_HOP_S + _MEL_HALF_WINDOW_S
    return FirstFrame(_frame_floor(end), 1, f"frame 0's mel window: columns 0-{MEL_STEPS_PER_WINDOW - 1}")


def _lipgan_first(module: Any) -> FirstFrame:
    from models.lipgan.audio import FEATURE_SHAPES, chunk_starts

    kind = str(module.cfg.audio_features)
    # the window is centred on frame 0, so it starts before the audio does (those columns repeat column 0)
    start = int(chunk_starts(kind, np.array([0]), int(module.cfg.frame_offset))[0])
    last = max(0, start + FEATURE_SHAPES[kind][1] - 1)
    hop, tail = (_MFCC_HOP_S, _MFCC_WINDOW_S) if kind == "mfcc" else (_MEL_HOP_S, _MEL_HALF_WINDOW_S)
    return FirstFrame(_frame_floor(last * hop + tail), 1, f"frame 0's centred {kind} window ends at column {last}")


def _mel_frame_end(frame: int) -> float:
    """End of the audio under the `mel` front end's window of `frame` (frame_mel_windows: 16 columns around the
    frame's middle)."""
    from data.audio import MELS_PER_FRAME
    from models.common.audio_frontends import MEL_COLUMNS

    last = int(round((frame + 0.5) * MELS_PER_FRAME)) + MEL_COLUMNS // 2 - 1
    return last * _MEL_HOP_S + _MEL_HALF_WINDOW_S


def _sda_frame_end(frame: int) -> float:
    """End of the audio under the SDA encoder's window of `frame` (sda_windows: 3,200 samples, 1,280 padded)."""
    from models.common.audio_frontends import SDA_PAD, SDA_WINDOW

    return (frame * SAMPLES_PER_FRAME - SDA_PAD + SDA_WINDOW) / SAMPLE_RATE


#: Diffused Heads' audio front ends (models/common/audio_frontends.py): frame -> where its window's audio ends
_FRAME_AUDIO_END: dict[str, Callable[[int], float]] = {"mel": _mel_frame_end, "sda": _sda_frame_end}


def _diffused_heads_first(module: Any) -> FirstFrame:
    m = int(module.cfg.n_audio_motion_embs)
    frontend = str(module.cfg.audio_frontend)
    if frontend not in _FRAME_AUDIO_END:
        raise KeyError(f"no audio-window rule for Diffused Heads' front end {frontend!r} (latency._FRAME_AUDIO_END)")
    # frame 0 is conditioned on the audio embeddings of frames -m..m (clamped at 0): frame m's window ends last
    end = _FRAME_AUDIO_END[frontend](m)
    return FirstFrame(_frame_floor(end), 1, f"{frontend} embeddings of frames 0..{m} (frame 0 sees +-{m} frames)")


def _vasa_first(module: Any) -> FirstFrame:
    w = int(module.cfg.window)
    # the motion of a window is sampled at once from its W frames of audio: nothing shows before all of it
    return FirstFrame(_frame_floor(w / FPS), w, f"a window of {w} frames is sampled from all its audio")


def _static_first(module: Any) -> FirstFrame:
    return FirstFrame(_frame_floor(0.0), 1, "no audio conditioning: the frame's own 40 ms")


#: registry name -> the first-frame rule of its model (what its window config makes it wait for)
FIRST_FRAME: dict[str, Callable[[Any], FirstFrame]] = {
    "wav2lip": _wav2lip_first,
    "wav2lip_gan": _wav2lip_first,
    "lipgan": _lipgan_first,
    "diffused_heads": _diffused_heads_first,
    "vasa": _vasa_first,
    "static": _static_first,
}


def first_frame_rule(name: str, module: Any) -> FirstFrame:
    if name not in FIRST_FRAME:
        raise KeyError(
            f"no first-frame rule for model {name!r}: add its lookahead to benchmark.perf.latency.FIRST_FRAME "
            "(the audio its first frame needs, from its window config)"
        )
    return FIRST_FRAME[name](module)
