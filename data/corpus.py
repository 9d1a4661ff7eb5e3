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
from data.io import MediaError, read_audio, read_video, sweep_stale_temps, temp_beside
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
        try:
            truth = json.loads(side.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise MediaError(side, f"the truth sidecar is not valid JSON ({err})") from None
    npz = ref.video.with_name(ref.video.stem + ".truth.npz")
    if npz.exists():
        try:
            z = np.load(npz, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise MediaError(npz, f"the truth sidecar cannot be read ({err})") from None
        with z:
            if "landmarks" in z:
                landmarks = z["landmarks"][:t].astype(np.float32)
                if landmarks.shape[0] != t:
                    landmarks = None
            # per-frame render parameters: with them a synthetic clip read from disk can be re-rendered
            # (perturb.remove_blinks, jitter...) exactly as the generator made it
            render = {k: z[k][:t] if z[k].ndim else z[k] for k in z.files if k != "landmarks"}
        if render:
            truth["render"] = {**truth.get("render", {}), **render}
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
        self._swept = False

    def _dir(self, ref: ClipRef) -> Path:
        return self.cache_dir / ref.clip_id

    @staticmethod
    def _stamp(ref: ClipRef) -> dict[str, Any]:
        files = [ref.video] + ([ref.audio] if ref.audio else [])
        return {str(f.name): [f.stat().st_size, int(f.stat().st_mtime)] for f in files}

    def get(self, ref: ClipRef) -> Clip:
        d = self._dir(ref)
        if not self._swept:  # once per store: decodes killed earlier left temporary folders beside their clips
            sweep_stale_temps(d.parent)
            self._swept = True
        meta_path = d / "meta.json"
        stamp = self._stamp(ref)
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta.get("stamp") == stamp:
                lm = d / "landmarks.npy"
                truth = meta.get("truth", {})
                if (d / "render.npz").exists():
                    with np.load(d / "render.npz") as z:
                        truth["render"] = {**truth.get("render", {}), **{k: z[k] for k in z.files}}
                return Clip(
                    clip_id=ref.clip_id,
                    video=np.load(d / "video.npy", mmap_mode="r"),
                    audio=np.load(d / "audio.npy"),
                    speaker_id=meta["speaker_id"],
                    split=ref.split,
                    landmarks=np.load(lm) if lm.exists() else None,
                    transcript=meta.get("transcript"),
                    word=meta.get("word"),
                    truth=truth,
                )
        clip = load_clip(ref)
        self._put(d, clip, stamp)
        return clip

    @staticmethod
    def _put(d: Path, clip: Clip, stamp: dict[str, Any]) -> None:
        with temp_beside(d) as tmp:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            np.save(tmp / "video.npy", clip.video)
            np.save(tmp / "audio.npy", clip.audio)
            if clip.landmarks is not None:
                np.save(tmp / "landmarks.npy", clip.landmarks)
            truth = dict(clip.truth)
            # values typed Any: numpy's savez stub checks a **dict against its `allow_pickle: bool` keyword too
            arrays: dict[str, Any] = {k: v for k, v in truth.get("render", {}).items() if isinstance(v, np.ndarray)}
            if arrays:
                np.savez(tmp / "render.npz", **arrays)
                truth["render"] = {k: v for k, v in truth["render"].items() if k not in arrays}
            meta = {
                "stamp": stamp,
                "speaker_id": clip.speaker_id,
                "transcript": clip.transcript,
                "word": clip.word,
                "truth": truth,
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
    """The procedural corpus (docs/synthetic_corpus.md), written on first use under $TALKBENCH_HOME/corpora."""

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
        sweep_stale_temps(self.root.parent)  # a corpus write killed earlier left its temporary folder
        tmp = self.root.with_name(self.root.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        write_corpus(self.synth_config, tmp, self.layout.name, progress=progress)  # removes tmp if it fails
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


# Clips whose training windows a stream draws from at once (data.datamodule.StreamingWindows): whole shards
# are opened until they hold this many clips, so a batch mixes clips of several shards (docs/streaming.md).
DEFAULT_SHUFFLE_BUFFER = 256


class SplitLeakError(ValueError):
    """Speakers appear in more than one split of a corpus that is about to be evaluated."""


class PreparedCorpus(LayoutCorpus):
    """A real corpus (the user's LRW / CREMA-D / VoxCeleb2 download) read from its prepared form.

    `root` is the download (required: the dataset config reads it from an environment variable or
    `dataset.root=...`); `prepared` the output of `bench data prepare` (default
    $TALKBENCH_HOME/prepared/<name>-<digest of root>). Clips are the `crop` family's face crops with their audio
    and landmarks in crop pixels, memory-mapped from the prepared arrays. The first use prepares the corpus
    when it has no manifest yet (resumable: an interrupted preparation continues where it stopped).

    Splits: the layout's official rule, or split files (`root/splits/` or `split_dir`); `val_speakers` train
    speakers become the val split when the corpus has none. Evaluation refuses a split whose speakers also
    appear in another one unless `allow_leaking_splits`.
    """

    root_env: str = ""
    card: str = ""

    def __init__(
        self,
        name: str,
        root: str | Path | None,
        layout: str,
        label: str | None = None,
        prepared: str | Path | None = None,
        crop: str = "wav2lip",
        split_dir: str | Path | None = None,
        val_speakers: int = 0,
        allow_leaking_splits: bool = False,
        streaming: bool = False,
        prepare: dict[str, Any] | None = None,
        cache_dir=None,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    ):
        if root in (None, ""):
            env = f"set {self.root_env} or " if self.root_env else ""
            raise ValueError(
                f"dataset {name!r} needs the folder of your copy of the corpus: {env}pass dataset.root=/path/to/it "
                f"(see data/cards/{self.card or name}.yaml for how to obtain it)"
            )
        super().__init__(name, root, layout, label, cache_dir)
        from data.faces import crop_name
        from data.prepare import PrepareConfig

        try:
            crop = crop_name(crop)
        except ValueError as err:
            raise ValueError(f"dataset {name!r}: {err}") from None
        prepare = dict(prepare or {})
        if prepare.get("crops") is None:
            prepare["crops"] = [crop]  # the dataset's crop is what `bench data prepare` cuts by default
        self.prepare_config = PrepareConfig.from_dict(prepare)
        if crop not in self.prepare_config.crops:
            self.prepare_config.crops = [*self.prepare_config.crops, crop]
        self.crop = crop
        if int(shuffle_buffer) < 0:
            raise ValueError(f"dataset {name!r}: shuffle_buffer must be >= 0 clips, got {shuffle_buffer}")
        self.shuffle_buffer = int(shuffle_buffer)
        self.split_dir = Path(split_dir).expanduser() if split_dir else None
        self.val_speakers = int(val_speakers)
        self.allow_leaking_splits = bool(allow_leaking_splits)
        self.streaming = bool(streaming)
        key = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
        self.prepared = Path(prepared).expanduser() if prepared else talkbench_home() / "prepared" / f"{name}-{key}"
        self._index = None

    # ------------------------------------------------------------------ preparation
    def prepare(self, progress: bool = True, strict: bool = False, workers: int | None = None):
        """Run (or resume) `bench data prepare` for this corpus; returns the summary."""
        from data.prepare import prepare_corpus

        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: corpus root for dataset {self.name!r} does not exist")
        if workers is not None:
            self.prepare_config.workers = int(workers)
        summary = prepare_corpus(
            self.name,
            self.root,
            self.layout,
            self.prepared,
            self.prepare_config,
            split_dir=self.split_dir,
            val_speakers=self.val_speakers,
            strict=strict,
            progress=progress,
        )
        self._index = None
        return summary

    def _info(self) -> dict[str, Any] | None:
        from data.manifest import INFO, MANIFEST

        if not (self.prepared / MANIFEST).exists() or not (self.prepared / INFO).exists():
            return None
        return json.loads((self.prepared / INFO).read_text())

    def is_prepared(self) -> bool:
        """A manifest exists and every accepted clip has this corpus's crop. Other settings may differ: a corpus
        prepared with `bench data prepare ... prepare.landmarks=file` is used as is; prepare again to change it.
        A prepared corpus without this crop is not prepared yet: `ensure` adds the crop from cached landmarks."""
        info = self._info()
        return info is not None and self.crop in info.get("crops", info.get("settings", {}).get("crops", []))

    def add_crop(self, progress: bool = True, strict: bool = False):
        """Cut this corpus's crop for an already prepared corpus that lacks it, from each clip's cached
        landmarks (no detection): preparation runs again with the settings the corpus was prepared with
        (prepared.json), only the crop list grows. Returns the summary."""
        from data.prepare import PrepareConfig, prepare_corpus

        info = self._info()
        if info is None:
            return self.prepare(progress=progress, strict=strict)
        recorded = {**info.get("settings", {}), "workers": self.prepare_config.workers}
        cfg = PrepareConfig.from_dict(recorded)
        cfg.crops = [*cfg.crops, self.crop] if self.crop not in cfg.crops else cfg.crops
        summary = prepare_corpus(
            self.name,
            self.root,
            self.layout,
            self.prepared,
            cfg,
            split_dir=self.split_dir,
            val_speakers=self.val_speakers,
            strict=strict,
            progress=progress,
        )
        self._index = None
        return summary

    def ensure(self, progress: bool = True) -> None:
        """Prepare the corpus if needed (or only add its crop to a prepared one), then refuse leaking splits
        unless allowed."""
        if not self.is_prepared():
            if self._info() is None:
                print(f"[prepare] {self.name}: preparing {self.root} -> {self.prepared}", flush=True)
                print(self.prepare(progress=progress).format(), flush=True)
            else:
                print(f"[prepare] {self.name}: adding the {self.crop} crop from cached landmarks", flush=True)
                print(self.add_crop(progress=progress).format(), flush=True)
        leaks = self.speaker_overlap()
        if leaks and not self.allow_leaking_splits:
            detail = "; ".join(f"{pair}: {', '.join(s[:5])}{' ...' if len(s) > 5 else ''}" for pair, s in leaks.items())
            raise SplitLeakError(
                f"dataset {self.name!r}: speakers appear in more than one split ({detail}). Fix the split files, "
                "or pass dataset.allow_leaking_splits=true to evaluate anyway (the numbers will not be comparable)"
            )

    @property
    def index(self):
        from data.manifest import ManifestIndex

        if self._index is None:
            if not self.is_prepared():
                self.ensure()
            self._index = ManifestIndex.open(self.prepared)
        return self._index

    # ------------------------------------------------------------------ the corpus interface
    def all_refs(self) -> list[ClipRef]:
        """ClipRefs of the accepted clips (reads every manifest line: use `index` for large corpora)."""
        out = []
        for e in self.index.entries(range(len(self.index))):
            audio = self.root / e["audio"] if e.get("audio") else None
            out.append(ClipRef(e["clip_id"], self.root / e["video"], audio, e["speaker_id"], e["split"], e.get("word")))
        return out

    def refs(self, split: str) -> list[ClipRef]:
        return [r for r in self.all_refs() if r.split == split] or super().refs(split)

    def entries(self, split: str, indices=None) -> list[dict[str, Any]]:
        idx = self.index.select(split) if indices is None else indices
        if len(idx) == 0:
            raise ValueError(f"{self.prepared}: split {split!r} of dataset {self.name!r} is empty")
        return self.index.entries(idx)

    def load(self, entry: dict[str, Any]) -> Clip:
        """The clip of one manifest entry: the crop (memory-mapped), audio, landmarks in crop pixels."""
        d = self.prepared / entry["dir"]
        if self.crop not in entry["crops"]:
            raise ValueError(
                f"{d}: prepared without the {self.crop!r} crop (has {sorted(entry['crops'])}); "
                f"run `bench data prepare --dataset {self.name}` again"
            )
        lm = d / f"landmarks_{self.crop}.npy"
        return Clip(
            clip_id=entry["clip_id"],
            video=np.load(d / f"crop_{self.crop}.npy", mmap_mode="c"),  # copy-on-write: writable, file untouched
            audio=np.load(d / "audio.npy"),
            speaker_id=entry.get("speaker_id") or "",
            split=entry["split"],
            landmarks=np.load(lm) if lm.exists() else None,
            transcript=entry.get("transcript"),
            word=entry.get("word"),
            truth={"prepared": str(d), "crop": self.crop},
        )

    def clips(self, split: str, limit: int | None = None) -> list[Clip]:
        idx = self.index.select(split)
        return [self.load(e) for e in self.entries(split, idx[: limit or None])]

    def fingerprint(self) -> dict[str, Any]:
        h = hashlib.sha256()
        with open(self.prepared / "manifest.jsonl", "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return {
            "dataset": self.name,
            "layout": self.layout.name,
            "crop": self.crop,
            "clips": h.hexdigest()[:16],
        }

    def speaker_overlap(self) -> dict[str, list[str]]:
        return self.index.speaker_overlap()
