"""Controlled perturbations of a clip, made with ffmpeg or numpy and never with a metric's own code, for the metric
stress cards (`bench stress`, docs/stress.md).

`PERTURBATIONS` maps a kind (`h264`, `audio_codec`, `shift`...) to a :class:`Perturbation`: `make(clip, settings)`
returns the perturbed clip, the AV offset in frames the perturbation injects (syncnet_python's sign: positive when
the audio leads the video; None where no offset can be read, e.g. a frozen face) and notes on what happened to this
clip (frames a decoder added or dropped, a codec delay left in the audio). configs/stress.yaml names the instances
(`h264_crf28: {kind: h264, crf: 28}`).

Every result keeps the Clip contract: uint8 video [T, H, W, 3] with the input's T, H and W, float32 audio of the
input's length, landmarks moved with the pixels. Random perturbations draw from a generator seeded by the settings'
`seed` and the clip id, so a clip is perturbed the same way whatever the order or the resume point of a pass.
"""

from __future__ import annotations

import dataclasses
import difflib
import tempfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from data.clip import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME, Clip
from data.io import read_audio, read_video, run_ffmpeg, write_wav
from data.synthetic.perturb import freeze_video, jitter, shift_audio

Settings = Mapping[str, Any]


class Perturbed(NamedTuple):
    clip: Clip
    expected_shift: float | None  # frames, syncnet_python's sign; None: no offset is defined
    notes: list[str]


@dataclass(frozen=True)
class Perturbation:
    """One kind of perturbation: how it is made, what it is, and which offset it injects (a function of the
    settings alone, so a card knows it without perturbing anything)."""

    apply: Callable[[Clip, Settings], tuple[Clip, list[str]]]
    describe: Callable[[Settings], str]
    shift: Callable[[Settings], float | None] = field(default=lambda s: 0.0)
    #: what it touches: "video" | "audio" (the other stream is passed through unchanged)
    stream: str = "video"

    def make(self, clip: Clip, settings: Settings) -> Perturbed:
        out, notes = self.apply(clip, settings)
        _check_contract(clip, out)
        return Perturbed(out, self.shift(settings), notes)


def _check_contract(before: Clip, after: Clip) -> None:
    if after.video.shape != before.video.shape or after.video.dtype != np.uint8:
        raise ValueError(f"clip {before.clip_id}: a perturbation changed the video to {after.video.shape}")
    if after.audio.shape != before.audio.shape or after.audio.dtype != np.float32:
        raise ValueError(f"clip {before.clip_id}: a perturbation changed the audio to {after.audio.shape}")


def clip_rng(clip: Clip, settings: Settings, salt: int) -> np.random.Generator:
    """A generator for one clip: the settings' seed, the clip id and the kind's salt (independent streams)."""
    return np.random.default_rng([int(settings.get("seed", 0)), zlib.crc32(clip.clip_id.encode()), salt])


# ----------------------------------------------------------------------------------------------- ffmpeg helpers


def _raw_input(video: np.ndarray) -> list[str]:
    t, h, w, _ = video.shape
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(FPS), "-i", "pipe:"]


def _fit_frames(frames: np.ndarray, t: int, what: str, notes: list[str]) -> np.ndarray:
    """`frames` cut or padded (last frame held) to `t`, with a note when the count differed."""
    if len(frames) == t:
        return frames
    notes.append(f"{what} gave {len(frames)} frames for {t}: " + ("cut" if len(frames) > t else "last frame held"))
    if len(frames) > t:
        return frames[:t]
    return np.concatenate([frames, np.repeat(frames[-1:], t - len(frames), axis=0)])


def _fit_samples(audio: np.ndarray, n: int, what: str, notes: list[str]) -> np.ndarray:
    if audio.size != n:
        notes.append(f"{what} gave {audio.size} samples for {n}: " + ("cut" if audio.size > n else "zero-padded"))
    out = np.zeros(n, np.float32)
    out[: min(n, audio.size)] = audio[:n]
    return out


def _encode_video(clip: Clip, codec_args: list[str], suffix: str, what: str) -> tuple[Clip, list[str]]:
    """Raw RGB frames (nothing lost on the way in) -> `codec_args` -> a file -> decoded back at 25 fps RGB.
    Odd sizes are padded by one edge pixel for 4:2:0 chroma and cut back after decoding."""
    video = np.ascontiguousarray(clip.video)
    t, h, w, _ = video.shape
    notes: list[str] = []
    pad = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"] if h % 2 or w % 2 else []
    with tempfile.TemporaryDirectory(prefix="perturb") as td:
        path = Path(td) / f"v{suffix}"
        run_ffmpeg(
            ["-y", *_raw_input(video), *pad, *codec_args, str(path)], f"{clip.clip_id} ({what})", video.tobytes()
        )
        frames = read_video(path)[:, :h, :w]
    frames = _fit_frames(frames, t, what, notes)
    return dataclasses.replace(clip, video=frames), notes


def _filter_frames(video: np.ndarray, vf: str, where: str) -> np.ndarray:
    """Raw frames through an ffmpeg filter chain and back, nothing encoded."""
    t, h, w, _ = video.shape
    raw = run_ffmpeg(
        [*_raw_input(video), "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"], where, video.tobytes()
    )
    n = len(raw) // (h * w * 3)
    return np.frombuffer(raw[: n * h * w * 3], np.uint8).reshape(n, h, w, 3).copy()


# ----------------------------------------------------------------------------------------------- video


def _h264(clip: Clip, s: Settings) -> tuple[Clip, list[str]]:
    args = ["-c:v", "libx264", "-preset", str(s.get("preset", "medium")), "-crf", str(s["crf"]), "-pix_fmt", "yuv420p"]
    return _encode_video(clip, args, ".mp4", f"H.264 CRF {s['crf']}")


def _h265(clip: Clip, s: Settings) -> tuple[Clip, list[str]]:
    args = ["-c:v", "libx265", "-preset", str(s.get("preset", "medium")), "-crf", str(s["crf"])]
    args += ["-pix_fmt", "yuv420p", "-x265-params", "log-level=error"]
    return _encode_video(clip, args, ".mp4", f"H.265 CRF {s['crf']}")


def _mpeg4(clip: Clip, s: Settings) -> tuple[Clip, list[str]]:
    args = ["-c:v", "mpeg4", "-q:v", str(s["qscale"]), "-pix_fmt", "yuv420p"]
    return _encode_video(clip, args, ".mp4", f"MPEG-4 part 2 q {s['qscale']}")


#: how a frame-rate conversion makes the frames between two: `select` repeats and drops whole frames (ffmpeg's
#: fps filter, what a player or a plain `-r` does), `blend` mixes the two neighbours by their distance in time
#: (ffmpeg's framerate filter, what a broadcast converter does)
FPS_FILTERS = {"select": "fps", "blend": "framerate"}


def _fps_round_trip(clip: Clip, s: Settings) -> tuple[Clip, list[str]]:
    """25 fps -> `via` fps -> 25 fps, so the frame count and the timeline stay those of the clip.

    With `select`, each output frame is one input frame at most one frame away from its time; the landmarks follow
    the same selection: an index clip (frame number written into its pixels) goes through the same filter chain,
    which tells where every output frame came from. With `blend` an output frame mixes the frames around its own
    time, so the landmarks stay where they were."""
    via, method = int(s["via"]), str(s.get("method", "select"))
    if method not in FPS_FILTERS:
        raise ValueError(f"fps perturbation: method {method!r} is not one of {', '.join(FPS_FILTERS)}")
    name = FPS_FILTERS[method]
    chain = f"{name}=fps={via},{name}=fps={FPS}"
    notes: list[str] = []
    t = clip.num_frames
    frames = _filter_frames(np.ascontiguousarray(clip.video), chain, clip.clip_id)
    frames = _fit_frames(frames, t, chain, notes)
    landmarks = clip.landmarks
    if method == "select":
        index = np.arange(t, dtype=np.int64)
        tags = np.zeros((t, 2, 2, 3), np.uint8)
        tags[..., 0], tags[..., 1] = (index // 256)[:, None, None], (index % 256)[:, None, None]
        back = _filter_frames(tags, chain, clip.clip_id)
        source = back[:, 0, 0, 0].astype(np.int64) * 256 + back[:, 0, 0, 1]
        source = np.concatenate([source, np.full(max(0, t - len(source)), source[-1] if len(source) else 0)])[:t]
        notes.append(f"{chain}: {int(np.count_nonzero(source != index))} of {t} frames show a neighbouring frame")
        if clip.landmarks is not None:
            landmarks = clip.landmarks[np.clip(source, 0, t - 1)]
    return dataclasses.replace(clip, video=frames, landmarks=landmarks), notes


def _freeze(clip: Clip, s: Settings) -> tuple[Clip, list[str]]:
    return freeze_video(clip), []


def _jitter(clip: Clip, s: Settings) -> tuple[Clip, list[str]]:
    # without its truth a synthetic clip is shifted as decoded (data.synthetic.perturb.jitter re-renders one with
    # truth, which would also remove the corpus's own H.264 artefacts: two changes where we want one)
    seed = int(clip_rng(clip, s, 0x11).integers(2**31))
    out = jitter(dataclasses.replace(clip, truth={}), int(s["pixels"]), seed=seed)
    return dataclasses.replace(out, truth=clip.truth), []


def _zoom(clip: Clip, s: Settings) -> tuple[Clip, list[str]]:
    """The centre (1 - fraction) of every frame, resized back to the frame size (bilinear)."""
    import cv2

    t, h, w, _ = clip.video.shape
    keep = 1.0 - float(s["fraction"])
    ch, cw = max(1, round(h * keep)), max(1, round(w * keep))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    frames = np.stack(
        [cv2.resize(f[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR) for f in clip.video]
    )
    landmarks = None
    if clip.landmarks is not None:
        scale = np.array([w / cw, h / ch], np.float32)
        landmarks = (clip.landmarks - np.array([x0, y0], np.float32)) * scale
    return dataclasses.replace(clip, video=frames, landmarks=landmarks), []


def _noise(clip: Clip, s: Settings) -> tuple[Clip, list[str]]:
    """Additive Gaussian noise of standard deviation `sigma` grey levels on every pixel and channel, clipped."""
    rng = clip_rng(clip, s, 0x22)
    noisy = clip.video.astype(np.float32) + rng.normal(0.0, float(s["sigma"]), clip.video.shape).astype(np.float32)
    return dataclasses.replace(clip, video=np.clip(np.rint(noisy), 0, 255).astype(np.uint8)), []


# ----------------------------------------------------------------------------------------------- audio

#: ffmpeg encoder and container of each audio codec name (containers whose decoders remove the encoder delay)
AUDIO_CODECS = {"aac": ("aac", ".m4a"), "mp3": ("libmp3lame", ".mp3"), "opus": ("libopus", ".ogg")}


def _residual_lag(clean: np.ndarray, decoded: np.ndarray, max_lag: int) -> int:
    """The lag (samples, positive: decoded later) that best aligns the decoded audio with the clean one."""
    n = min(clean.size, decoded.size)
    if n <= 2 * max_lag or not np.any(clean[:n]):
        return 0
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xc = np.fft.irfft(np.fft.rfft(decoded[:n], size) * np.conj(np.fft.rfft(clean[:n], size)), size)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    return int(lags[np.argmax(xc[lags])])


def _audio_codec(clip: Clip, s: Settings) -> tuple[Clip, list[str]]:
    """16-bit PCM wav -> the codec at `bitrate` -> decoded back to 16 kHz mono; the decoded length is fitted to the
    clip's. Any encoder delay the container does not cancel stays in (it is part of what a codec does to a file)
    and its size, found by cross-correlation, goes to the notes."""
    encoder, suffix = AUDIO_CODECS[str(s["codec"])]
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="perturb") as td:
        wav, coded = Path(td) / "a.wav", Path(td) / f"a{suffix}"
        write_wav(wav, clip.audio)
        args = ["-y", "-i", str(wav), "-c:a", encoder, "-b:a", str(s["bitrate"]), "-ac", "1"]
        run_ffmpeg([*args, "-ar", str(SAMPLE_RATE), str(coded)], f"{clip.clip_id} ({s['codec']})")
        decoded = read_audio(coded)
    lag = _residual_lag(clip.audio, decoded, SAMPLES_PER_FRAME)
    if lag:
        notes.append(f"{s['codec']}: decoded audio {lag:+d} samples ({lag / SAMPLES_PER_FRAME:+.2f} frames) late")
    audio = _fit_samples(decoded, clip.audio.size, f"{s['codec']} {s['bitrate']}", notes)
    return dataclasses.replace(clip, audio=audio), notes


def _shift(clip: Clip, s: Settings) -> tuple[Clip, list[str]]:
    return shift_audio(clip, int(s["frames"])), []


def _lead_silence(clip: Clip, s: Settings) -> tuple[Clip, list[str]]:
    """`seconds` of zeros in front of the audio, its tail cut to keep the length: the audio lags the video."""
    n = min(int(round(float(s["seconds"]) * SAMPLE_RATE)), clip.audio.size)
    audio = np.concatenate([np.zeros(n, np.float32), clip.audio[: clip.audio.size - n]])
    return dataclasses.replace(clip, audio=audio), []


def _silence_shift(s: Settings) -> float:
    # syncnet_python's sign: audio that lags reads negative; 0.5 s is 12.5 frames, kept fractional (docs/stress.md)
    return -float(s["seconds"]) * FPS


PERTURBATIONS: dict[str, Perturbation] = {
    "h264": Perturbation(_h264, lambda s: f"H.264 (libx264) re-encode, CRF {s['crf']}, yuv420p"),
    "h265": Perturbation(_h265, lambda s: f"H.265 (libx265) re-encode, CRF {s['crf']}, yuv420p"),
    "mpeg4": Perturbation(_mpeg4, lambda s: f"MPEG-4 part 2 (mpeg4) re-encode, qscale {s['qscale']}, yuv420p"),
    "fps": Perturbation(
        _fps_round_trip,
        lambda s: (
            f"frame rate 25 -> {s['via']} -> 25 fps, frames {s.get('method', 'select')}ed "
            f"(ffmpeg {FPS_FILTERS.get(str(s.get('method', 'select')), '?')} filter)"
        ),
    ),
    "freeze": Perturbation(_freeze, lambda s: "video frozen on its first frame", shift=lambda s: None),
    "jitter": Perturbation(_jitter, lambda s: f"per-frame translation of +-{s['pixels']} px (edges replicated)"),
    "zoom": Perturbation(_zoom, lambda s: f"{float(s['fraction']):.0%} zoom: centre crop resized back (bilinear)"),
    "noise": Perturbation(_noise, lambda s: f"additive Gaussian pixel noise, sigma {s['sigma']} grey levels"),
    "audio_codec": Perturbation(
        _audio_codec, lambda s: f"audio re-encoded: {s['codec']} {s['bitrate']}bit/s", stream="audio"
    ),
    "shift": Perturbation(
        _shift,
        lambda s: f"audio shifted {int(s['frames']):+d} frames ({'leads' if int(s['frames']) > 0 else 'lags'})",
        shift=lambda s: float(int(s["frames"])),
        stream="audio",
    ),
    "lead_silence": Perturbation(
        _lead_silence,
        lambda s: f"{s['seconds']} s of silence in front of the audio (tail cut)",
        shift=_silence_shift,
        stream="audio",
    ),
}


def perturbation(settings: Settings) -> Perturbation:
    """The registered kind of a configured perturbation (`{kind: h264, crf: 28}`)."""
    kind = str(settings.get("kind"))
    if kind not in PERTURBATIONS:
        close = difflib.get_close_matches(kind, list(PERTURBATIONS), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown perturbation kind {kind!r} (valid: {', '.join(sorted(PERTURBATIONS))}).{hint}")
    return PERTURBATIONS[kind]


def perturb(clip: Clip, settings: Settings) -> Perturbed:
    """`clip` perturbed as `settings` says (a configs/stress.yaml entry)."""
    return perturbation(settings).make(clip, settings)
