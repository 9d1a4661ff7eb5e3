"""Run folders and sample grids: per-clip values from ``samples.jsonl``, the videos a run generated, and grid
videos of GT and every method side by side on one test clip, with the clip's audio (like Figure 4 of Diffused
Heads, Stypulkowski et al., WACV 2023, but moving)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.results import Results, read_jsonl
from benchmark.tables.intervals import read_clip_records
from benchmark.tables.model import Table
from data.clip import SAMPLES_PER_FRAME

__all__ = [
    "GridVideo",
    "ReferenceSource",
    "corpus_reference",
    "generated_video",
    "per_clip_values",
    "sample_grids",
    "write_sample_grid",
]

#: (dataset, clip ids) -> {clip id: (video uint8 [T,H,W,3], audio float32 [N])} for the clips it can find
ReferenceSource = Callable[[str, Sequence[str]], dict[str, tuple[np.ndarray, np.ndarray]]]

# --------------------------------------------------------------------------------------------------------------
# run folders


def per_clip_values(run_dir: str | Path) -> dict[str, dict[str, float]]:
    """``{metric: {clip_id: value}}`` from a run's ``samples.jsonl`` (empty when the file is absent)."""
    return read_clip_records(run_dir).values


def _clip_order(run_dir: Path) -> list[str]:
    rows = read_jsonl(run_dir / "samples.jsonl", missing_ok=True)
    rows = sorted((r for r in rows if "clip_id" in r), key=lambda r: r.get("index", 0))
    return list(dict.fromkeys(r["clip_id"] for r in rows))


def _video_file(clip_id: str) -> str:
    from benchmark.features import video_name  # the naming of generated clips; imported only for grids

    return video_name(clip_id)


def generated_video(run_dir: Path, result: Results, clip_id: str) -> Path | None:
    """The video a run produced for ``clip_id``: ``generated/<name>.mp4`` in its folder, or, for videos scored by
    ``bench evaluate --videos DIR`` (recorded in the run's notes), the file of that name in DIR."""
    name = _video_file(clip_id)
    candidates = [run_dir / "generated" / name]
    for note in result.run.notes:
        if note.startswith("videos: "):
            folder = Path(note.removeprefix("videos: "))
            candidates += [folder / name, folder / (clip_id.rsplit("/", 1)[-1] + ".mp4")]
    return next((p for p in candidates if p.is_file()), None)


def corpus_reference(run_dirs: Sequence[Path] = ()) -> ReferenceSource:
    """GT clips from the corpus a run used: the resolved ``config.yaml`` of one of ``run_dirs`` when there is
    one (the same root and overrides), else the dataset's default config."""

    def load(dataset: str, clip_ids: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        from omegaconf import DictConfig, OmegaConf

        from benchmark import runner
        from benchmark.config import compose

        configs = [d / "config.yaml" for d in run_dirs if (d / "config.yaml").is_file()]
        cfg = OmegaConf.load(configs[0]) if configs else compose(None, dataset)
        assert isinstance(cfg, DictConfig)  # a run's config.yaml is a mapping
        corpus = runner.build_corpus(cfg)
        corpus.ensure()
        wanted = set(clip_ids)
        out = {}
        for ref in corpus.refs("test"):
            if ref.clip_id in wanted:
                clip = corpus.store.get(ref)
                out[clip.clip_id] = (np.asarray(clip.video), np.asarray(clip.audio))
        return out

    return load


def _resize_nearest(video: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    h, w = hw
    if video.shape[1:3] == (h, w):
        return video
    rows = (np.arange(h) * video.shape[1] / h).astype(int)
    cols = (np.arange(w) * video.shape[2] / w).astype(int)
    return video[:, rows][:, :, cols]


def write_sample_grid(path: str | Path, tiles: Sequence[np.ndarray], audio: np.ndarray) -> int:
    """Tiles (uint8 [T_i, H, W, 3], GT first) side by side, cut to the shortest, with ``audio`` cut to match;
    an mp4 with sound through ``data.io.write_video``. Returns the number of frames."""
    from data.io import write_video

    if not tiles:
        raise ValueError(f"{path}: a sample grid needs at least one video")
    h, w = tiles[0].shape[1:3]
    frames = min(len(t) for t in tiles)
    if frames == 0:
        raise ValueError(f"{path}: a video of the grid has no frames")
    grid = np.concatenate([_resize_nearest(t[:frames], (h, w)) for t in tiles], axis=2)
    # H.264 in yuv420p needs even sides
    pad_h, pad_w = grid.shape[1] % 2, grid.shape[2] % 2
    if pad_h or pad_w:
        grid = np.pad(grid, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    sound = np.zeros(frames * SAMPLES_PER_FRAME, np.float32)
    clip = np.asarray(audio, np.float32)[: len(sound)]
    sound[: len(clip)] = clip
    write_video(path, grid, sound)
    return frames


@dataclass
class GridVideo:
    clip_id: str
    path: Path
    labels: list[str]  # tile labels, left to right
    frames: int


def sample_grids(
    table: Table,
    folders: dict[str, tuple[Path, Results]],
    assets: Path,
    slug: str,
    reference: ReferenceSource | None,
    n_clips: int,
    notes: list[str],
) -> list[GridVideo]:
    """Up to ``n_clips`` grid videos of ``table`` into ``assets``: test clips every method generated, GT tile first
    (from the GT run folder, else ``reference``), methods in table order; what is left out goes to ``notes``."""
    from data.io import MediaError, read_audio, read_video

    gt_names = [str(n) for n, k in zip(table.frame["name"], table.frame["kind"]) if k == "gt"]
    methods = [
        (str(m), folders[str(n)])
        for m, n, k in zip(table.frame["method"], table.frame["name"], table.frame["kind"])
        if k != "gt" and str(n) in folders
    ]
    gt_folder = folders.get(gt_names[-1]) if gt_names else None
    order = _clip_order(gt_folder[0]) if gt_folder else []
    for _, (run_dir, _) in methods:
        order += [c for c in _clip_order(run_dir) if c not in order]
    if not methods:  # a GT-only or published-only block has nothing to put beside the GT
        return []
    usable = [c for c in order if all(generated_video(d, r, c) for _, (d, r) in methods)]
    if not usable:
        notes.append(f"{table.title}: no test clip has a generated video from every method; no sample grid")
        return []
    chosen = usable[:n_clips]
    gt_videos: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if gt_folder is not None:
        for clip_id in chosen:
            path = gt_folder[0] / "generated" / _video_file(clip_id)
            if path.is_file():
                gt_videos[clip_id] = (read_video(path), read_audio(path))
    missing = [c for c in chosen if c not in gt_videos]
    if missing and reference is not None:
        try:
            gt_videos.update(reference(table.dataset, missing))
        except Exception as err:  # the report is still worth having without the GT tile
            notes.append(f"{table.title}: GT videos could not be loaded ({err}); grids show the methods only")
    grids = []
    for clip_id in chosen:
        tiles, labels, audio = [], [], None
        if clip_id in gt_videos:
            video, audio = gt_videos[clip_id]
            tiles.append(np.asarray(video))
            labels.append("GT")
        for method, (run_dir, result) in methods:
            made = generated_video(run_dir, result, clip_id)
            assert made is not None  # a chosen clip is one every method generated
            try:
                size = (tiles[0].shape[2], tiles[0].shape[1]) if tiles else None
                tiles.append(read_video(made, size=size))
                if audio is None:
                    audio = read_audio(made)
            except MediaError as err:
                notes.append(f"{table.title}: {method} left out of the grid of {clip_id}: {err}")
                continue
            labels.append(method)
        if len(tiles) < 2 or audio is None:
            continue
        name = f"{slug}_grid_{re.sub(r'[^A-Za-z0-9_.-]+', '_', clip_id)}.mp4"
        frames = write_sample_grid(assets / name, tiles, audio)
        grids.append(GridVideo(clip_id, assets / name, labels, frames))
    if grids and "GT" not in grids[0].labels:
        notes.append(f"{table.title}: no GT video found for the sample grid (pass a reference source)")
    return grids
