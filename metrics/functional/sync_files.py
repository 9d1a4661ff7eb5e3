"""What the official SyncNet scripts do to a video FILE before any network runs (SyncNet "paper" mode).

syncnet_python ``SyncNetInstance.evaluate`` (commit 6efbb1c) and Wav2Lip's
``evaluation/scores_LSE/SyncNetInstance_calc_scores.py`` never decode a video themselves. In a temporary folder
they run

- ``ffmpeg -y -i <videofile> -threads 1 -f image2 <tmp>/%06d.jpg``: every frame through ffmpeg's default
  mjpeg encoder (no ``-qscale``; yuvj420p, so chroma is halved and the frames are lossy), then
  ``glob('*.jpg')``, sorted, each read with ``cv2.imread`` (BGR uint8);
- ``ffmpeg -y -i <videofile> -async 1 -ac 1 -vn -acodec pcm_s16le -ar 16000 <tmp>/audio.wav``: the file's own
  first audio track, mono 16 kHz 16-bit, read with ``scipy.io.wavfile.read`` (int16 values, not rescaled).

`extract_official` runs exactly those two commands and reads the results the same way. The frames and samples
it returns are what the scripts feed to the rest of the algorithm; ``metrics.functional.sync.sync_scores`` on
``frames_rgb()`` and ``audio_float()`` reproduces the scripts' numbers (its RGB->BGR swap undoes ours, and
``int16 / 32768`` is exact in float32, scaled back by 32768 before the MFCC).

The ffmpeg build matters (its mjpeg encoder and resampler decide the bytes), so `ffmpeg_build` is recorded with
paper-mode results. Failures are `ClipScoreError`s naming the file: a clip that cannot be scored is counted.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from scipy.io import wavfile

from data.clip import SAMPLE_RATE
from data.io import MediaError, ffmpeg_exe, probe, read_audio, run_ffmpeg, write_video
from metrics.base import ClipScoreError

#: the scripts' arguments after ``-y -i <videofile>``, output path last
JPEG_ARGS = ("-threads", "1", "-f", "image2")
WAV_ARGS = ("-async", "1", "-ac", "1", "-vn", "-acodec", "pcm_s16le", "-ar", str(SAMPLE_RATE))
JPEG_PATTERN = "%06d.jpg"
WAV_NAME = "audio.wav"


@dataclass(frozen=True)
class OfficialInputs:
    """A file as the official scripts see it. frames_bgr: uint8 [T, H, W, 3] as cv2.imread gives them (None when
    not asked for); audio: int16 [N] at `sample_rate` as scipy's wavfile gives it (None when not asked for)."""

    path: Path
    frames_bgr: np.ndarray | None
    audio: np.ndarray | None
    sample_rate: int = SAMPLE_RATE

    def frames_rgb(self) -> np.ndarray:
        """The frames in the suite's RGB order (sync_scores swaps them back: a pure channel permutation)."""
        if self.frames_bgr is None:
            raise ValueError(f"{self.path}: frames were not extracted")
        return np.ascontiguousarray(self.frames_bgr[..., ::-1])

    def audio_float(self) -> np.ndarray:
        """float32 [N] = int16 / 32768: exact, and sync_scores' `* 32768` gives back the int16 values."""
        if self.audio is None:
            raise ValueError(f"{self.path}: audio was not extracted")
        return self.audio.astype(np.float32) / np.float32(32768.0)


@lru_cache(maxsize=1)
def ffmpeg_build() -> str:
    """First line of ``ffmpeg -version`` of the binary the file steps run (recorded with paper-mode results)."""
    proc = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    return lines[0] if lines else f"unknown ffmpeg ({ffmpeg_exe()})"


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ClipScoreError(f"{path}: file does not exist; SyncNet paper mode scores the file")
    if path.stat().st_size == 0:
        raise ClipScoreError(f"{path}: empty file (0 bytes)")


def _extract_frames(path: Path, tmp: Path) -> np.ndarray:
    try:
        run_ffmpeg(["-y", "-i", str(path), *JPEG_ARGS, str(tmp / JPEG_PATTERN)], path)
    except MediaError as err:
        raise ClipScoreError(f"{path}: unreadable for SyncNet ({err.problem})") from err
    # sorted glob: the scripts' order (zero-padded names, so lexical = temporal)
    names = sorted(tmp.glob("*.jpg"))
    frames: list[np.ndarray] = []
    for name in names:
        img = cv2.imread(str(name))
        if img is None:
            raise ClipScoreError(f"{path}: ffmpeg wrote a frame cv2 cannot read ({name.name})")
        frames.append(img)
    if not frames:
        raise ClipScoreError(f"{path}: no video frames could be extracted for SyncNet")
    return np.stack(frames)


def _has_audio(path: Path) -> bool:
    try:
        return probe(path).has_audio
    except MediaError:
        return False


def _extract_wav(path: Path, tmp: Path) -> tuple[int, np.ndarray]:
    wav = tmp / WAV_NAME
    try:
        run_ffmpeg(["-y", "-i", str(path), *WAV_ARGS, str(wav)], path)
    except MediaError as err:
        # ffmpeg's last error line for a file without audio is only "Error opening output files", so ask the file
        if not _has_audio(path):
            raise ClipScoreError(f"{path}: no audio track (SyncNet scores the file's own audio)") from err
        raise ClipScoreError(f"{path}: audio track unreadable for SyncNet ({err.problem})") from err
    if not wav.is_file() or wav.stat().st_size == 0:
        raise ClipScoreError(f"{path}: no audio track (ffmpeg wrote no wav)")
    rate, audio = wavfile.read(str(wav))
    if audio.dtype != np.int16 or audio.ndim != 1 or rate != SAMPLE_RATE:
        raise ClipScoreError(f"{path}: extracted wav is {audio.dtype} {audio.shape} at {rate} Hz, not mono s16 16 kHz")
    return int(rate), audio


def extract_official(path: str | os.PathLike[str], *, frames: bool = True, audio: bool = True) -> OfficialInputs:
    """Run the scripts' two ffmpeg commands on `path` in a temporary folder (removed afterwards) and read their
    outputs as the scripts do; `frames` / `audio` False skips that command. Raises ClipScoreError naming the file
    when it is missing or unreadable, has no frames, or (audio asked for) has no audio track."""
    path = Path(path)
    _check_file(path)
    with tempfile.TemporaryDirectory(prefix="talkbench_syncnet_") as td:
        tmp = Path(td)
        bgr = _extract_frames(path, tmp) if frames else None
        rate, pcm = _extract_wav(path, tmp) if audio else (SAMPLE_RATE, None)
    return OfficialInputs(path, bgr, pcm, rate)


def extract_official_from_arrays(
    frames_rgb: np.ndarray, audio: np.ndarray | None, *, frames: bool = True, with_audio: bool = True
) -> OfficialInputs:
    """An in-memory clip (uint8 RGB [T, H, W, 3], float32 audio or None) written as the suite writes generated
    clips (`data.io.write_video`, mp4: H.264 + AAC), then `extract_official` on that file: GT clips, which have
    no file, take the same lossy path as generated ones. Without audio the mp4 has no track (ClipScoreError when
    `with_audio`)."""
    with tempfile.TemporaryDirectory(prefix="talkbench_syncnet_clip_") as td:
        mp4 = Path(td) / "clip.mp4"
        try:
            write_video(mp4, np.asarray(frames_rgb), audio)
        except MediaError as err:
            raise ClipScoreError(f"could not encode the clip for SyncNet paper mode: {err}") from err
        return extract_official(mp4, frames=frames, audio=with_audio)


def file_audio(path: str | os.PathLike[str]) -> np.ndarray:
    """The file's own first audio track as float32 [N] 16 kHz mono (`data.io.read_audio`): standard mode's
    `audio: file`. ClipScoreError naming the file when it has none or cannot be read."""
    path = Path(path)
    _check_file(path)
    try:
        return read_audio(path)
    except MediaError as err:
        if "no audio stream" in err.problem:
            raise ClipScoreError(f"{path}: no audio track (SyncNet scores the file's own audio)") from err
        raise ClipScoreError(f"{path}: audio track unreadable for SyncNet ({err.problem})") from err
