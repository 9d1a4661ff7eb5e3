"""One clip: decode, landmarks from its source, crops, audio features -> `<prepared>/clips/<clip_id>/`.

A full preparation (`prepare_clip`) writes `landmarks.npy` [T, 68, 2] in the decoded video's pixels (NaN where no
face was found) beside the crops; that file is the clip's landmark cache. `extend_clip` adds crops or features
a finished clip lacks: it reads the cached landmarks (no detection) and decodes the video once more to cut only
the new crops.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from data.clip import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from data.faces import CROPS, Crop, LandmarksMissing, LandmarkSourceError, build_source, fill_gaps, transform_points
from data.io import MediaError, probe
from data.layouts import ClipRef
from data.prepare.config import ClipRejected, PrepareConfig, PrepareError, crop_versions
from data.prepare.features import write_features
from data.prepare.stream import NpyWriter, stream_audio, stream_frames, truncate_npy

# Frames a crop's map may look ahead, with margin: the wav2lip forward mean 4, syncnet's 13-frame median 6, the
# aligned heads' 5-frame mean 2. A clip whose length is known only after decoding holds back this many frames.
HOLD_FRAMES = 16


def source_stamp(ref: ClipRef) -> dict[str, list[int]]:
    """Size and mtime of a clip's raw files: a changed file makes its record stale."""
    out = {}
    for f in [ref.video] + ([ref.audio] if ref.audio else []):
        st = f.stat()
        out[f.name] = [int(st.st_size), int(st.st_mtime)]
    return out


def _speaker_and_word(ref: ClipRef) -> tuple[str, str | None, str | None]:
    """Speaker, word and transcript: from the layout, else from a synthetic truth sidecar (LRW has none)."""
    speaker, word, transcript = ref.speaker_id, ref.word, None
    side = ref.video.with_name(ref.video.stem + ".truth.json")
    if side.exists():
        try:
            truth = json.loads(side.read_text())
            if not isinstance(truth, dict):
                raise ValueError(f"a JSON object is expected, found {type(truth).__name__}")
        except (ValueError, UnicodeDecodeError) as err:
            raise ClipRejected("bad_sidecar", f"{side}: not a readable truth file ({err})") from None
        speaker = speaker or str(truth.get("speaker_id") or "")
        word = word or truth.get("word")
        transcript = truth.get("transcript")
    return speaker, word, transcript


class CropCutter:
    """Cuts streamed frames into `crop_<name>.npy` (+ `landmarks_<name>.npy`) for each crop.

    `length` is the clip's frame count when known; otherwise (file landmarks, counted while cutting) the maps
    come from landmarks padded to the longest plausible length and the last HOLD_FRAMES frames wait for
    `close(t)`, which recomputes the maps for exactly t frames: a map depends on the clip's end only within
    its smoothing reach, so every frame is cut as if the length had been known from the start.
    """

    def __init__(self, d: Path, crops: list[Crop], filled: np.ndarray, frame_size, length: int | None, tag=""):
        self.d, self.crops, self.filled, self.frame_size, self.tag = d, crops, filled, frame_size, tag
        self.limit = length if length is not None else len(filled)
        self.hold = 0 if length is not None else HOLD_FRAMES
        self.mats = self._maps(self.limit)
        self.writers = {c.name: NpyWriter(self._path(c, "crop"), "|u1", (c.size, c.size, 3)) for c in crops}
        self.pending: list[np.ndarray] = []
        self.count = 0  # frames decoded
        self.cut = 0  # frames written

    def _path(self, c: Crop, kind: str) -> Path:
        return self.d / f"{kind}_{c.name}{self.tag}.npy"

    def _maps(self, t: int) -> dict[str, np.ndarray]:
        return {c.name: c.transforms(self.filled[:t], self.frame_size) for c in self.crops}

    def feed(self, block: np.ndarray) -> None:
        keep = block[: max(0, self.limit - self.count)]
        self.count += len(block)
        self.pending.extend(keep)
        self._flush(len(self.pending) - self.hold)

    def _flush(self, n: int) -> None:
        if n <= 0:
            return
        frames, self.pending = self.pending[:n], self.pending[n:]
        for c in self.crops:
            m = self.mats[c.name]
            self.writers[c.name].append(np.stack([c.apply(f, m[self.cut + i]) for i, f in enumerate(frames)]))
        self.cut += n

    def close(self, t: int) -> None:
        """Cut the held frames with the maps for exactly t frames; write t rows of every crop."""
        if self.hold:
            self.mats = self._maps(t)
        self._flush(min(len(self.pending), t - self.cut))
        for c in self.crops:
            self.writers[c.name].close(rows=t)
            np.save(self._path(c, "landmarks"), transform_points(self.filled[:t], self.mats[c.name][:t]))

    def abort(self) -> None:
        for w in self.writers.values():
            if not w._f.closed:
                w._f.close()

    def publish(self) -> None:
        """Rename the tagged files to their final names (extend_clip writes beside a finished clip's files)."""
        for c in self.crops:
            for kind in ("crop", "landmarks"):
                os.replace(self._path(c, kind), self.d / f"{kind}_{c.name}.npy")


def prepare_clip(ref: ClipRef, root: Path, out: Path, cfg: PrepareConfig, source: str) -> dict[str, Any]:
    """Prepare one clip into out/clips/<clip_id>/ and return its record (status ok, or rejected + reason)."""
    try:
        speaker, word, transcript = _speaker_and_word(ref)
    except ClipRejected as rej:
        speaker, word, transcript = ref.speaker_id, ref.word, None
        sidecar_error: ClipRejected | None = rej
    else:
        sidecar_error = None
    record: dict[str, Any] = {
        "clip_id": ref.clip_id,
        "video": ref.video.relative_to(root).as_posix(),
        "audio": ref.audio.relative_to(root).as_posix() if ref.audio else None,
        "speaker_id": speaker,
        "word": word,
        "transcript": transcript,
        "stamp": source_stamp(ref),
        "settings": cfg.clip_settings(source),
        "landmark_source": source,
    }
    final = out / "clips" / ref.clip_id
    tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if sidecar_error is not None:
            raise sidecar_error
        record.update(_prepare_into(ref, tmp, cfg, source))
        record["status"] = "ok"
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        record["dir"] = final.relative_to(out).as_posix()
    except ClipRejected as rej:
        record.update(status="rejected", reason=rej.reason, message=rej.message)
        shutil.rmtree(final, ignore_errors=True)
    except MediaError as err:
        record.update(status="rejected", reason="corrupt", message=str(err))
        shutil.rmtree(final, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def _probe_or_reject(path: Path):
    try:
        return probe(path)
    except MediaError as err:
        raise ClipRejected("corrupt", str(err)) from None


def _landmarks_of(ref: ClipRef, cfg: PrepareConfig, source: str, w: int, h: int) -> tuple[np.ndarray, bool]:
    """(landmarks, from frames): a detector source decodes the video once here (pass 1); a file source reads
    its file, and the frames are counted later while cropping (one decode in all)."""
    try:
        src = build_source(source, cfg.landmarks_dir, cfg.device, cfg.detect_batch)
        if not src.needs_frames:
            return src.known(ref), False
    except LandmarksMissing as err:
        raise ClipRejected("no_landmarks", str(err)) from None
    except LandmarkSourceError as err:
        raise PrepareError(str(err)) from None
    parts = [src.detect(block) for block in stream_frames(ref.video, w, h, cfg.chunk_frames)]
    return (np.concatenate(parts) if parts else np.zeros((0, 68, 2), np.float32)), True


def _prepare_into(ref: ClipRef, d: Path, cfg: PrepareConfig, source: str) -> dict[str, Any]:
    vinfo = _probe_or_reject(ref.video)
    if not vinfo.has_video or vinfo.width <= 0:
        raise ClipRejected("corrupt", f"{ref.video}: no video stream")
    audio_file = ref.audio if ref.audio is not None else ref.video
    ainfo = vinfo if ref.audio is None else _probe_or_reject(ref.audio)
    if not ainfo.has_audio:
        raise ClipRejected("no_audio", f"{audio_file}: has no audio stream")

    # audio first (small: 64 kB per second), streamed to disk
    writer = NpyWriter(d / "audio.npy", "<f4", ())
    try:
        for block in stream_audio(audio_file, int(cfg.audio_chunk_s * SAMPLE_RATE)):
            writer.append(block)
    finally:
        n_audio = writer.rows
        writer.close()
    if n_audio == 0:
        raise ClipRejected("no_audio", f"{audio_file}: the audio stream decodes to no samples")

    w, h = vinfo.width, vinfo.height
    raw, detected = _landmarks_of(ref, cfg, source, w, h)

    def check_lengths(t_video: int) -> int:
        t_audio = n_audio // SAMPLES_PER_FRAME
        if t_video == 0:
            raise ClipRejected("corrupt", f"{ref.video}: decodes to no video frames (truncated or empty)")
        if abs(t_video - t_audio) > cfg.max_av_mismatch_frames:
            raise ClipRejected(
                "av_mismatch",
                f"{ref.video}: video has {t_video} frames but the audio lasts {t_audio} frames "
                f"(tolerance {cfg.max_av_mismatch_frames})",
            )
        t = min(t_video, t_audio)
        if t < cfg.min_frames:
            raise ClipRejected("too_short", f"{ref.video}: {t} frames ({t / FPS:.2f} s) < min_frames {cfg.min_frames}")
        return t

    def checked_landmarks(t: int) -> tuple[np.ndarray, float]:
        lm = np.full((t, 68, 2), np.nan, np.float32)
        lm[: min(t, len(raw))] = raw[:t]
        ok = np.isfinite(lm).all(axis=(1, 2))
        missing = 1.0 - ok.mean()
        if missing > cfg.max_no_face or not ok.any():
            raise ClipRejected(
                "no_face", f"{ref.video}: no face in {missing:.0%} of {t} frames (max_no_face {cfg.max_no_face:.0%})"
            )
        return lm, float(missing)

    t = None
    if detected:
        t = check_lengths(len(raw))
        lm, missing = checked_landmarks(t)
    else:
        # file landmarks: the frame count is known only after decoding, so crop with landmarks padded to the
        # longest plausible length and check afterwards (CropCutter holds back the frames near the end)
        t_guess = max(len(raw), n_audio // SAMPLES_PER_FRAME + cfg.max_av_mismatch_frames)
        lm = np.full((t_guess, 68, 2), np.nan, np.float32)
        lm[: len(raw)] = raw
        if not np.isfinite(lm).all(axis=(1, 2)).any():
            raise ClipRejected("no_face", f"{ref.video}: the landmarks file marks no frame with a face")
        missing = 0.0
    cutter = CropCutter(d, [CROPS[c] for c in cfg.crops], fill_gaps(lm), (w, h), t)
    try:
        for block in stream_frames(ref.video, w, h, cfg.chunk_frames):
            cutter.feed(block)
        if t is None:
            t = check_lengths(cutter.count)
            lm, missing = checked_landmarks(t)  # the crops' maps stay those of the filled landmarks
        elif cutter.count < t:
            raise ClipRejected("corrupt", f"{ref.video}: decoded {cutter.count} frames on the second pass, {t} first")
        cutter.close(t)
    finally:
        cutter.abort()
    np.save(d / "landmarks.npy", lm[:t])
    truncate_npy(d / "audio.npy", t * SAMPLES_PER_FRAME)
    return {
        "n_frames": int(t),
        "seconds": round(t / FPS, 3),
        "source": {
            "width": w,
            "height": h,
            "fps": vinfo.fps,
            "video_frames": int(cutter.count),
            "audio_samples": n_audio,
        },
        "no_face_fraction": round(missing, 4),
        "crops": {c: CROPS[c].size for c in cfg.crops},
        "crop_versions": crop_versions(cfg.crops),
        "features": write_features(d, cfg.features, t * SAMPLES_PER_FRAME, cfg.audio_chunk_s),
    }


def extend_clip(ref: ClipRef, out: Path, record: dict[str, Any], cfg: PrepareConfig, crops, features) -> dict:
    """Add `crops` and `features` to a finished clip from its cached landmarks.npy and audio.npy: no landmark
    detection, one more decode of the video when crops are added. Returns the updated record.

    New files are written under temporary names and renamed once all are complete; the record, rewritten by
    the caller, lists them only then, so an interrupted extension is simply done again.
    """
    d = out / record["dir"]
    t = int(record["n_frames"])
    rec = dict(record)
    if crops:
        w, h = record["source"]["width"], record["source"]["height"]
        filled = fill_gaps(np.load(d / "landmarks.npy"))
        cutter = CropCutter(d, [CROPS[c] for c in crops], filled, (w, h), t, tag=f".tmp{os.getpid()}")
        frames = stream_frames(ref.video, w, h, cfg.chunk_frames)
        try:
            for block in frames:
                cutter.feed(block)
                if cutter.count >= t:
                    break
            frames.close()  # stops ffmpeg: the frames after t are not needed
            if cutter.count < t:
                raise MediaError(ref.video, f"decodes to {cutter.count} frames, {t} when it was prepared")
            cutter.close(t)
            cutter.publish()
        finally:
            cutter.abort()
            for p in d.glob(f"*.tmp{os.getpid()}.npy"):
                p.unlink()
        rec["crops"] = {**record["crops"], **{c: CROPS[c].size for c in crops}}
        rec["crop_versions"] = {**record.get("crop_versions", {}), **crop_versions(crops)}
    if features:
        rec["features"] = {
            **record["features"],
            **write_features(d, features, t * SAMPLES_PER_FRAME, cfg.audio_chunk_s),
        }
    return rec
