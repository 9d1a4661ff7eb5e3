"""Corpora as the rest of the suite sees them: clip references by split, decoded once into a cache.

`LayoutCorpus` reads any corpus written in one of the layouts of `data.layouts`; `SyntheticCorpus` is the
embedded default: it writes the procedural corpus on first use and is then read through the same code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from data.clip import SAMPLES_PER_FRAME, Clip
from data.io import MediaError, read_audio, read_video
from data.layouts import SPLITS, ClipRef, get_layout

# A clip whose audio and video lengths differ by more than this many frames is refused, not silently cut.
MAX_AV_MISMATCH_FRAMES = 2


def talkbench_home() -> Path:
    """Root of caches, corpora, registered weights: $TALKBENCH_HOME or ~/.cache/talkbench."""
    return Path(os.environ.get("TALKBENCH_HOME", Path.home() / ".cache" / "talkbench")).expanduser()


def load_clip(ref: ClipRef) -> Clip:
    """Decode a clip from its files (25 fps / 16 kHz), align audio and video lengths, attach sidecar truth."""
    video = read_video(ref.video)
    audio = read_audio(ref.audio if ref.audio is not None else ref.video)
    t_audio = audio.shape[0] // SAMPLES_PER_FRAME
    if abs(video.shape[0] - t_audio) > MAX_AV_MISMATCH_FRAMES:
        raise MediaError(
            ref.video,
            f"audio lasts {t_audio} frames but video has {video.shape[0]} "
            f"(more than {MAX_AV_MISMATCH_FRAMES} frames apart)",
        )
    # AAC/MP3 decoders append priming/padding samples: keep exactly T frames of audio.
    t = min(video.shape[0], t_audio)
    video, audio = video[:t], audio[: t * SAMPLES_PER_FRAME]
    truth: dict[str, Any] = {}
    landmarks = None
    side = ref.video.with_name(ref.video.stem + ".truth.json")
    if side.exists():
        truth = json.loads(side.read_text())
    npz = ref.video.with_name(ref.video.stem + ".truth.npz")
    if npz.exists():
        with np.load(npz) as z:
            if "landmarks" in z:
                landmarks = z["landmarks"][:t].astype(np.float32)
                if landmarks.shape[0] != t:
                    landmarks = None
    return Clip(
        clip_id=ref.clip_id,
        video=video,
        audio=audio,
        speaker_id=ref.speaker_id or str(truth.get("speaker_id", "")),
        split=ref.split,
        landmarks=landmarks,
        transcript=truth.get("transcript"),
        word=ref.word or truth.get("word"),
        truth=truth,
    )


class ClipStore:
    """Decode-once cache: each clip's arrays are stored as .npy files and memory-mapped on later reads."""

    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)

    def _dir(self, ref: ClipRef) -> Path:
        return self.cache_dir / ref.clip_id

    @staticmethod
    def _stamp(ref: ClipRef) -> dict[str, Any]:
        files = [ref.video] + ([ref.audio] if ref.audio else [])
        return {str(f.name): [f.stat().st_size, int(f.stat().st_mtime)] for f in files}

    def get(self, ref: ClipRef) -> Clip:
        d = self._dir(ref)
        meta_path = d / "meta.json"
        stamp = self._stamp(ref)
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta.get("stamp") == stamp:
                lm = d / "landmarks.npy"
                return Clip(
                    clip_id=ref.clip_id,
                    video=np.load(d / "video.npy", mmap_mode="r"),
                    audio=np.load(d / "audio.npy"),
                    speaker_id=meta["speaker_id"],
                    split=ref.split,
                    landmarks=np.load(lm) if lm.exists() else None,
                    transcript=meta.get("transcript"),
                    word=meta.get("word"),
                    truth=meta.get("truth", {}),
                )
        clip = load_clip(ref)
        self._put(d, clip, stamp)
        return clip

    @staticmethod
    def _put(d: Path, clip: Clip, stamp: dict[str, Any]) -> None:
        tmp = d.with_name(d.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "video.npy", clip.video)
        np.save(tmp / "audio.npy", clip.audio)
        if clip.landmarks is not None:
            np.save(tmp / "landmarks.npy", clip.landmarks)
        meta = {
            "stamp": stamp,
            "speaker_id": clip.speaker_id,
            "transcript": clip.transcript,
            "word": clip.word,
            "truth": clip.truth,
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(d, ignore_errors=True)
        os.replace(tmp, d)


class LayoutCorpus:
    """A corpus on disk in a known layout. Splits come from split files or the layout's own rule."""

    def __init__(self, name: str, root: str | Path, layout: str, label: str | None = None, cache_dir=None):
        self.name = name
        self.label = label or name
        self.root = Path(root).expanduser()
        self.layout = get_layout(layout)
        self._refs: list[ClipRef] | None = None
        key = hashlib.sha256(f"{self.root.resolve()}|{layout}".encode()).hexdigest()[:12]
        self.store = ClipStore(cache_dir or talkbench_home() / "cache" / f"{name}-{key}")

    def ensure(self) -> None:
        """Make sure the corpus exists on disk (real corpora: the user's download)."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: corpus root for dataset {self.name!r} does not exist")

    def all_refs(self) -> list[ClipRef]:
        if self._refs is None:
            self.ensure()
            self._refs = self.layout.scan(self.root)
        return self._refs

    def refs(self, split: str) -> list[ClipRef]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; splits are {SPLITS}")
        refs = [r for r in self.all_refs() if r.split == split]
        if not refs:
            raise ValueError(f"{self.root}: split {split!r} of dataset {self.name!r} is empty")
        return refs

    def clips(self, split: str, limit: int | None = None) -> list[Clip]:
        refs = self.refs(split)
        return [self.store.get(r) for r in refs[: limit or None]]

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this corpus in a protocol: name, layout and a digest of the clip list."""
        ids = "\n".join(f"{r.clip_id}:{r.split}" for r in self.all_refs())
        return {
            "dataset": self.name,
            "layout": self.layout.name,
            "clips": hashlib.sha256(ids.encode()).hexdigest()[:16],
        }

    def speaker_overlap(self) -> dict[str, list[str]]:
        """Speakers found in more than one split (a leaking split), per pair of splits."""
        by_split: dict[str, set[str]] = {}
        for r in self.all_refs():
            if r.speaker_id:
                by_split.setdefault(r.split, set()).add(r.speaker_id)
        out = {}
        names = sorted(by_split)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                common = sorted(by_split[a] & by_split[b])
                if common:
                    out[f"{a}/{b}"] = common
        return out


class SyntheticCorpus(LayoutCorpus):
    """The procedural corpus (SPEC section 2), written on first use under $TALKBENCH_HOME/corpora."""

    def __init__(
        self,
        name: str = "synthetic",
        root: str | Path | None = None,
        layout: str = "crema",
        label: str | None = "Synthetic",
        synth: dict[str, Any] | None = None,
        cache_dir=None,
    ):
        from data.synthetic.generator import SyntheticConfig

        self.synth_config = SyntheticConfig(**(synth or {}))
        digest = hashlib.sha256(
            json.dumps({"layout": layout, **asdict(self.synth_config)}, sort_keys=True, default=str).encode()
        ).hexdigest()[:10]
        root = Path(root) if root else talkbench_home() / "corpora" / f"synthetic-{layout}-{digest}"
        super().__init__(name, root, layout, label, cache_dir)

    def ensure(self, progress: bool = True) -> None:
        if (self.root / "corpus.json").exists():
            return
        from data.synthetic.writer import write_corpus

        # Written to a temporary folder and renamed, so a crash (or a second process) never sees half a corpus.
        tmp = self.root.with_name(self.root.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        write_corpus(self.synth_config, tmp, self.layout.name, progress=progress)
        try:
            os.replace(tmp, self.root)
        except OSError:
            # another process finished first; its corpus is the same (deterministic from the seed)
            shutil.rmtree(tmp, ignore_errors=True)
            for _ in range(600):
                if (self.root / "corpus.json").exists():
                    break
                time.sleep(1)


def clip_ids(clips: Sequence[Clip]) -> list[str]:
    return [c.clip_id for c in clips]
