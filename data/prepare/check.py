"""`bench data check`: a prepared corpus against its manifest and the split files it was prepared with."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from data.clip import FPS, SAMPLES_PER_FRAME
from data.layouts import SPLITS, LayoutError
from data.manifest import INFO, split_file_hashes


def check_prepared(out: str | os.PathLike, root: str | os.PathLike | None = None, split_dir=None) -> list[str]:
    """Problems found when a prepared corpus is checked against its manifest (empty list: all good).

    Checks counts in prepared.json against the manifest, every accepted clip's folder and array shapes
    (read from the .npy headers, not the data), durations against the frame counts, and the sha256 of the
    split files against those recorded at preparation.
    """
    from data.manifest import ManifestIndex

    out = Path(out)
    problems: list[str] = []
    if not (out / INFO).exists():
        return [f"{out / INFO}: missing; run `bench data prepare` first"]
    info = json.loads((out / INFO).read_text())
    index = ManifestIndex.open(out)
    counts = index.counts()
    if sum(counts.values()) != info["counts"]["accepted"]:
        problems.append(f"manifest has {sum(counts.values())} clips, prepared.json says {info['counts']['accepted']}")
    for s in SPLITS:
        if counts[s] != info["counts"]["splits"].get(s, 0):
            problems.append(f"split {s}: manifest {counts[s]} clips, prepared.json {info['counts']['splits'].get(s)}")
    for i in range(len(index)):
        e = index.entry(i)
        d = out / e["dir"]
        if abs(e["seconds"] - e["n_frames"] / FPS) > 1e-3:
            problems.append(f"{e['clip_id']}: {e['seconds']} s but {e['n_frames']} frames")
        for crop, size in e["crops"].items():
            shape = _npy_shape(d / f"crop_{crop}.npy")
            if shape != (e["n_frames"], size, size, 3):
                problems.append(f"{e['clip_id']}: crop_{crop}.npy has shape {shape}, expected {e['n_frames']} frames")
        if _npy_shape(d / "landmarks.npy") != (e["n_frames"], 68, 2):
            problems.append(f"{e['clip_id']}: landmarks.npy (the landmark cache) does not hold {e['n_frames']} frames")
        if _npy_shape(d / "audio.npy") != (e["n_frames"] * SAMPLES_PER_FRAME,):
            problems.append(f"{e['clip_id']}: audio.npy does not hold {e['n_frames']} frames of audio")
    root = Path(root) if root else Path(info["root"])
    if root.is_dir():
        now = split_file_hashes(root, split_dir)
        if now != info.get("split_files", {}):
            problems.append(f"split files changed since preparation: recorded {info.get('split_files')}, now {now}")
    return problems


def _npy_shape(path: Path) -> tuple[int, ...] | None:
    if not path.exists():
        return None
    try:
        return tuple(np.load(path, mmap_mode="r").shape)
    except (ValueError, OSError):
        return None


def layout_error_hint(err: LayoutError) -> str:
    return f"{err} (is dataset.root the folder that holds the corpus?)"
