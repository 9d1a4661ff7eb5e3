"""The prepared corpus's manifest: one JSON line per accepted clip, a compact index beside it, rank shards.

`manifest.jsonl` holds one entry per accepted clip (sorted by clip_id) with its split, speaker, frame count,
shard and where its arrays are; `rejects.jsonl` one entry per rejected clip with its reason; `prepared.json` the
settings, counts and the sha256 of the split files. `manifest.index.npz` is written with the manifest: byte
offsets of each line plus split / shard / frame-count / speaker arrays, so a VoxCeleb2-sized manifest (a million
entries) is indexed with a few numpy arrays and an entry is read by seeking to its line; no clip is loaded.

`build_manifest` writes all three from a preparation's per-clip records (data.prepare.run collects them), with
the val speakers `derive_val` takes from train when a corpus has no val split of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from data.clip import FPS
from data.layouts import SPLITS, ClipRef, Layout

if TYPE_CHECKING:
    from data.prepare.config import PrepareConfig

MANIFEST = "manifest.jsonl"
INDEX = "manifest.index.npz"
REJECTS = "rejects.jsonl"
INFO = "prepared.json"
INDEX_VERSION = 2  # 2: speaker names as a unicode array (no object arrays, so no pickle)


class ManifestError(ValueError):
    """A manifest is missing, unreadable or does not match its prepared files."""


def _dump(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, sort_keys=False, separators=(", ", ": ")) + "\n").encode()


def write_bytes_if_changed(path: Path, data: bytes) -> bool:
    """Atomic write that leaves the file (and its mtime) alone when the content is the same; True if written."""
    path = Path(path)
    if path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def write_manifest(folder: str | os.PathLike, entries: Iterable[dict[str, Any]]) -> int:
    """Write manifest.jsonl + its index from `entries` (streamed: never all in memory). Returns the count.

    Each entry needs clip_id, split, shard, n_frames and speaker_id; the file is replaced atomically, and left
    untouched (with its index) when its content did not change, so re-running a finished preparation writes
    nothing.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST
    tmp = folder / f".{MANIFEST}.tmp{os.getpid()}"
    offsets, splits, shards, frames, speakers = [], [], [], [], []
    speaker_codes: dict[str, int] = {}
    digest = hashlib.sha256()
    pos = 0
    with open(tmp, "wb") as f:
        for e in entries:
            if e.get("split") not in SPLITS:
                raise ManifestError(f"manifest entry {e.get('clip_id')!r} has no valid split ({e.get('split')!r})")
            line = _dump(e)
            f.write(line)
            digest.update(line)
            offsets.append(pos)
            pos += len(line)
            splits.append(SPLITS.index(e["split"]))
            shards.append(int(e.get("shard", 0)))
            frames.append(int(e.get("n_frames", 0)))
            speakers.append(speaker_codes.setdefault(str(e.get("speaker_id") or ""), len(speaker_codes)))
    sha = digest.hexdigest()
    if path.exists() and (folder / INDEX).exists() and _index_sha(folder / INDEX) == sha:
        tmp.unlink()
        return len(offsets)
    os.replace(tmp, path)
    _write_index(folder, sha, offsets, splits, shards, frames, speakers, list(speaker_codes))
    return len(offsets)


def _index_sha(path: Path) -> str | None:
    try:
        with np.load(path) as z:
            return str(z["sha256"])
    except (OSError, KeyError, ValueError):
        return None


def _write_index(folder: Path, sha, offsets, splits, shards, frames, speakers, speaker_names) -> None:
    st = (folder / MANIFEST).stat()
    tmp = folder / f".{INDEX}.tmp{os.getpid()}.npz"
    np.savez(
        tmp,
        version=np.int64(INDEX_VERSION),
        sha256=np.str_(sha),
        size=np.int64(st.st_size),
        offsets=np.asarray(offsets, np.int64),
        split=np.asarray(splits, np.int8),
        shard=np.asarray(shards, np.int32),
        n_frames=np.asarray(frames, np.int32),
        speaker=np.asarray(speakers, np.int32),
        # a fixed-width unicode array: the index is read with allow_pickle=False (a prepared folder may be shared)
        speaker_names=np.asarray(speaker_names, dtype=str) if speaker_names else np.zeros(0, dtype="<U1"),
    )
    os.replace(tmp, folder / INDEX)


@dataclass
class ManifestIndex:
    """Line offsets and per-entry split / shard / frames / speaker codes of a manifest; entries read on demand."""

    path: Path
    offsets: np.ndarray
    split: np.ndarray
    shard: np.ndarray
    n_frames: np.ndarray
    speaker: np.ndarray
    speaker_names: list[str]

    @classmethod
    def open(cls, folder: str | os.PathLike) -> ManifestIndex:
        """Load the index beside a manifest; rebuild it (one parse of the manifest) when missing or stale."""
        folder = Path(folder)
        path = folder / MANIFEST
        if not path.exists():
            raise ManifestError(f"{path}: no manifest; run `bench data prepare` for this dataset first")
        ipath = folder / INDEX
        if ipath.exists():
            try:
                with np.load(ipath, allow_pickle=False) as z:
                    if int(z["version"]) == INDEX_VERSION and int(z["size"]) == path.stat().st_size:
                        return cls(
                            path,
                            z["offsets"],
                            z["split"],
                            z["shard"],
                            z["n_frames"],
                            z["speaker"],
                            [str(s) for s in z["speaker_names"]],
                        )
            except (OSError, KeyError, ValueError):
                pass  # unreadable index: rebuilt below
        return cls.rebuild(folder)

    @classmethod
    def rebuild(cls, folder: str | os.PathLike) -> ManifestIndex:
        folder = Path(folder)
        path = folder / MANIFEST

        def lines() -> Iterator[dict[str, Any]]:
            with open(path, "rb") as f:
                for n, line in enumerate(f, 1):
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as err:
                        raise ManifestError(f"{path}: line {n} is not JSON ({err})") from None

        # write_manifest streams the entries back out unchanged, so the index matches the file byte for byte
        tmp = folder / f".rebuild{os.getpid()}"
        tmp.mkdir(exist_ok=True)
        try:
            write_manifest(tmp, lines())
            os.replace(tmp / INDEX, folder / INDEX)
        finally:
            for p in tmp.iterdir():
                p.unlink()
            tmp.rmdir()
        return cls.open(folder)

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    def entry(self, i: int) -> dict[str, Any]:
        """Entry i, read from its line (the manifest is never held in memory)."""
        with open(self.path, "rb") as f:
            f.seek(int(self.offsets[i]))
            return json.loads(f.readline())

    def entries(self, indices: Iterable[int]) -> list[dict[str, Any]]:
        with open(self.path, "rb") as f:
            out = []
            for i in indices:
                f.seek(int(self.offsets[i]))
                out.append(json.loads(f.readline()))
            return out

    def select(self, split: str) -> np.ndarray:
        """Entry indices of one split, in manifest (clip_id) order."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; splits are {SPLITS}")
        return np.flatnonzero(self.split == SPLITS.index(split))

    def counts(self) -> dict[str, int]:
        return {s: int((self.split == i).sum()) for i, s in enumerate(SPLITS)}

    def rank_indices(self, split: str, rank: int, world_size: int) -> np.ndarray:
        """The entries of `split` that process `rank` of `world_size` reads: whole shards, disjoint across ranks.

        Shards go round-robin to ranks. When a split has fewer shards than processes, entries go round-robin
        instead, so no rank is left without data (and ranks still never share a clip).
        """
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        idx = self.select(split)
        shard_ids = np.unique(self.shard[idx])
        if len(shard_ids) >= world_size:
            mine = shard_ids[rank::world_size]
            return idx[np.isin(self.shard[idx], mine)]
        return idx[rank::world_size]

    def speaker_overlap(self) -> dict[str, list[str]]:
        """Speakers that appear in more than one split, per pair of splits (unlabelled entries are ignored)."""
        by_split = {}
        for i, s in enumerate(SPLITS):
            codes = set(np.unique(self.speaker[self.split == i]).tolist())
            by_split[s] = {self.speaker_names[c] for c in codes} - {""}
        out = {}
        for i, a in enumerate(SPLITS):
            for b in SPLITS[i + 1 :]:
                common = sorted(by_split[a] & by_split[b])
                if common:
                    out[f"{a}/{b}"] = common
        return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def shard_order_key(clip_id: str, seed: int = 0) -> str:
    """A clip's place in the shard order: a hash of (seed, clip id), so the order is random with respect to
    speakers yet the same on every run and machine."""
    return hashlib.sha1(f"{seed}:{clip_id}".encode()).hexdigest()


def assign_shards(entries: list[dict[str, Any]], shard_clips: int, seed: int = 0) -> None:
    """Give each entry a shard id: runs of `shard_clips` entries of one split (ids unique overall), the entries
    taken in a seeded hashed order of their clip ids (`shard_order_key`).

    Clip ids put one speaker's clips next to each other (a CREMA-D actor, a VoxCeleb2 identity); shards cut from
    that order would each hold one or two speakers, and a stream reading a shard at a time would fill whole
    batches with one speaker. In hashed order a shard holds clips of many speakers (docs/streaming.md).
    """
    if shard_clips < 1:
        raise ValueError(f"shard_clips must be >= 1, got {shard_clips}")
    next_id = 0
    for split in SPLITS:
        members = sorted((e for e in entries if e["split"] == split), key=lambda e: shard_order_key(e["clip_id"], seed))
        for k, e in enumerate(members):
            e["shard"] = next_id + k // shard_clips
        next_id += (len(members) + shard_clips - 1) // shard_clips


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split_file_hashes(root: Path, split_dir: str | os.PathLike | None) -> dict[str, str]:
    """File name -> sha256 of the split files (`split_dir`, else root/splits/), recorded in prepared.json."""
    folder = Path(split_dir) if split_dir else Path(root) / "splits"
    return {p.name: _sha256(p) for p in sorted(folder.glob("*.txt"))} if folder.is_dir() else {}


def derive_val(refs: list[ClipRef], speakers_of: dict[str, str], val_speakers: int) -> dict[str, str]:
    """clip_id -> "val" for every clip of `val_speakers` train speakers, chosen by a hash of the speaker id
    (stable, independent of the order of files), when the corpus has no val split of its own."""
    if val_speakers <= 0 or any(r.split == "val" for r in refs):
        return {}
    train = sorted({speakers_of[r.clip_id] for r in refs if r.split == "train" and speakers_of.get(r.clip_id)})
    if len(train) < 2:
        return {}
    train.sort(key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    chosen = set(train[: min(val_speakers, len(train) - 1)])
    return {r.clip_id: "val" for r in refs if r.split == "train" and speakers_of.get(r.clip_id) in chosen}


def build_manifest(
    name: str,
    root: Path,
    lay: Layout,
    out: Path,
    refs: list[ClipRef],
    records: dict[str, dict[str, Any]],
    cfg: PrepareConfig,
    *,
    split_dir: str | os.PathLike | None = None,
    val_speakers: int = 0,
) -> dict[str, Any]:
    """manifest.jsonl, rejects.jsonl and prepared.json from the finished records (deterministic: sorted, no
    times), so an interrupted and resumed run writes the same files as an uninterrupted one."""
    # imported here, not at the top: data.prepare's __init__ imports this module (data.prepare.run, .check)
    from data.prepare.config import PREPARE_VERSION

    speakers = {cid: rec.get("speaker_id") or "" for cid, rec in records.items()}
    to_val = derive_val(refs, speakers, val_speakers)
    entries: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for ref in refs:
        rec = records.get(ref.clip_id)
        if rec is None:
            continue
        split = to_val.get(ref.clip_id, ref.split)
        if rec["status"] != "ok":
            rejects.append({"clip_id": ref.clip_id, "split": split, "reason": rec["reason"], "message": rec["message"]})
            continue
        if split not in SPLITS:
            continue  # a split file that does not list this clip leaves it out
        entries.append(
            {
                "clip_id": ref.clip_id,
                "split": split,
                "shard": 0,
                "n_frames": rec["n_frames"],
                "speaker_id": rec["speaker_id"],
                "seconds": rec["seconds"],
                "word": rec.get("word"),
                "transcript": rec.get("transcript"),
                "dir": rec["dir"],
                "video": rec["video"],
                "audio": rec["audio"],
                "crops": rec["crops"],
                "features": rec["features"],
                "no_face_fraction": rec["no_face_fraction"],
                "landmark_source": rec.get("landmark_source"),
            }
        )
    assign_shards(entries, cfg.shard_clips)
    write_manifest(out, entries)
    write_bytes_if_changed(out / REJECTS, "".join(json.dumps(r) + "\n" for r in rejects).encode())
    splits = Counter(e["split"] for e in entries)
    reasons = Counter(r["reason"] for r in rejects)
    sources = dict(sorted(Counter(e["landmark_source"] for e in entries).items()))
    # the crops every accepted clip has: what data.corpus.PreparedCorpus can serve without preparing more
    crops = set.intersection(*(set(e["crops"]) for e in entries)) if entries else set()
    info = {
        "dataset": name,
        "layout": lay.name,
        "root": str(root),
        "version": PREPARE_VERSION,
        "settings": cfg.recorded(),
        "settings_hash": cfg.settings_hash(),
        "crops": sorted(crops),
        "landmark_sources": sources,
        "counts": {
            "clips": len(refs),
            "accepted": len(entries),
            "rejected": len(rejects),
            "splits": {s: splits.get(s, 0) for s in SPLITS},
            "frames": int(sum(e["n_frames"] for e in entries)),
            "seconds": round(sum(e["n_frames"] for e in entries) / FPS, 2),
            "reasons": dict(sorted(reasons.items())),
            "speakers": {s: len({e["speaker_id"] for e in entries if e["split"] == s} - {""}) for s in SPLITS},
        },
        "split_files": split_file_hashes(root, split_dir),
        "val_from_train_speakers": val_speakers if to_val else 0,
    }
    write_bytes_if_changed(out / INFO, (json.dumps(info, indent=1, sort_keys=True) + "\n").encode())
    return {
        "accepted": len(entries),
        "rejected": dict(reasons),
        "splits": {s: splits.get(s, 0) for s in SPLITS},
        "landmark_sources": sources,
    }
