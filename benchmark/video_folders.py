"""The folders `bench evaluate --videos DIR` scores: video files matched to the test clips by name, frame rates
that were resampled noted, and the run folder claimed for one folder (`benchmark.scoring` re-exports these)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data.clip import FPS, Clip
from data.io import MediaError

SOURCE = "source.json"


def claim_run_dir(run_dir: Path, videos: Path, *, overwrite: bool = False) -> None:
    """Make `run_dir` the record of folder `videos`: a run name that holds the scores of another folder is refused
    (the rows of two methods would meet in one) unless `overwrite`, which first removes those scores."""
    import shutil

    from benchmark.results import write_json_atomic

    source = {"videos": str(Path(videos).resolve())}
    path = run_dir / SOURCE
    old = json.loads(path.read_text()) if path.exists() else None
    scored = any((run_dir / f).exists() for f in ("results.json", "samples.jsonl", "samples.partial.jsonl"))
    if old != source and (scored or old is not None):
        if not overwrite:
            was = old["videos"] if old else "another folder (or a bench run)"
            raise FileExistsError(
                f"run name {run_dir.name!r} already holds the scores of {was} ({run_dir}); choose another --name, "
                "or pass --overwrite to replace them"
            )
        for f in ("results.json", "samples.jsonl", *(p.name for p in run_dir.glob("samples.partial*.jsonl"))):
            (run_dir / f).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "features", ignore_errors=True)
    write_json_atomic(path, source)


@dataclass(frozen=True)
class Decoded:
    """A video as scoring receives it: its frames at the file's own size (25 fps), the file, the file's frame rate.

    Metrics resize these frames once, each as its reference does (metrics.functional.resize), and a metric whose
    reference script reads the file (SyncNet's paper mode) reads `file`; the clip's record notes size and rate."""

    frames: np.ndarray
    file: Path | None = None
    fps: float | None = None

    @classmethod
    def read(cls, path: Path) -> Decoded:
        from data.io import probe, read_video

        info = probe(path)  # once: its frame rate is recorded, and the decoder needs its frame size
        return cls(read_video(path, info=info), Path(path), info.fps or None)


def frames_note(fake: np.ndarray, clip: Clip, fetched: Decoded | None) -> dict[str, Any]:
    """What a clip's record says about the video scored: frame counts that differ from the reference's, and for a
    file its original size and frame rate (frames reach the metrics at that size; each resizes once)."""
    note: dict[str, Any] = {}
    if len(fake) != clip.num_frames:
        note["frames"] = {"generated": int(len(fake)), "reference": clip.num_frames}
    if fetched is not None and fetched.file is not None:
        note["original"] = {"size": list(fake.shape[1:3]), "fps": fetched.fps}
    return note


VIDEO_SUFFIXES = (".mp4", ".avi", ".flv", ".mov", ".mkv", ".webm")


def match_videos(folder: Path, clips: Sequence[Clip], mapping: dict[str, str] | None = None) -> dict[str, Path]:
    """Match video files to test clips by file stem: the full id (with '__' for '/'), or the base name if unique.

    Any container ffmpeg reads is accepted (mp4 first when a stem has several); frames are decoded at 25 fps at
    the file's own size (`Decoded`), and each clip's record notes the original size and frame rate."""
    files: dict[str, Path] = {}
    for suffix in reversed(VIDEO_SUFFIXES):
        files.update({p.stem: p for p in sorted(Path(folder).glob(f"*{suffix}"))})
    if not files and not mapping:
        raise FileNotFoundError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)}) to evaluate")
    by_base: dict[str, list[str]] = {}
    for c in clips:
        by_base.setdefault(c.clip_id.rsplit("/", 1)[-1], []).append(c.clip_id)
    out: dict[str, Path] = {}
    for clip in clips:
        full = clip.clip_id.replace("/", "__")
        base = clip.clip_id.rsplit("/", 1)[-1]
        if mapping and clip.clip_id in mapping:
            out[clip.clip_id] = Path(folder) / mapping[clip.clip_id]
        elif full in files:
            out[clip.clip_id] = files[full]
        elif base in files and len(by_base[base]) == 1:
            out[clip.clip_id] = files[base]
    return out


def resampling_notes(videos: dict[str, Path]) -> list[str]:
    """Run notes naming the videos whose frame rate was not 25 fps (decoded resampled to 25 fps)."""
    from data.io import probe

    by_fps: dict[float, list[str]] = {}
    for clip_id, path in videos.items():
        try:
            fps = probe(path).fps
        except MediaError:
            continue  # unreadable files are recorded as per-clip failures when scored
        if fps and abs(fps - FPS) > 1e-3:
            by_fps.setdefault(round(float(fps), 3), []).append(clip_id)
    return [
        f"{len(ids)} videos at {fps:g} fps resampled to {FPS} fps (e.g. {', '.join(ids[:3])})"
        for fps, ids in sorted(by_fps.items())
    ]


def video_key(protocol_hash: str, videos: dict[str, Path]) -> Callable[[int, Clip], dict[str, Any]]:
    """A record's key for scores of video files: the protocol, and the file (resolved path, size, mtime)."""

    def key(i: int, clip: Clip) -> dict[str, Any]:
        path = videos.get(clip.clip_id)
        if path is None or not Path(path).exists():
            return {"protocol": protocol_hash, "video": None}
        st = Path(path).stat()
        return {"protocol": protocol_hash, "video": [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]}

    return key
