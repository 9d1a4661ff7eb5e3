"""Write the synthetic corpus as real containers in a real corpus layout, with truth sidecars.

Per clip, beside its video: `<stem>.truth.json` (the truth without landmarks and render parameters) and
`<stem>.truth.npz` (`landmarks` [T,68,2] float32 plus every per-frame render parameter under its own name,
see data.synthetic.face). The corpus root gets `corpus.json` (config, vocabulary, speakers, counts, clip list)
and `splits/{train,val,test}.txt` (relative video paths), which override a layout's own split rule.

Decoded lengths, measured with data.io.read_video / read_audio (bundled ffmpeg): the video always decodes to
exactly T frames. Audio: the .wav (CREMA AudioWAV) holds exactly T*640 samples; AAC in .mp4 decodes to exactly
T*640 samples, aligned (the mp4 edit list trims the encoder priming and the end padding); MP3 in .flv decodes
aligned to T*640 plus 50-420 samples of end padding (MP3 frames of 1152 samples at 22.05 kHz).

CREMA-D .flv files go through data.io.write_video, which keeps MP3-in-FLV aligned (see its docstring).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from data.clip import FPS, Clip
from data.io import MediaError, write_video, write_wav
from data.synthetic.generator import (
    DIFFICULTY,
    GENERATOR_VERSION,
    CorpusSpec,
    SyntheticConfig,
    make_corpus_spec,
    render_clip,
)
from data.synthetic.speakers import Speaker
from data.workers import init_pool_worker

TRUTH_JSON = ".truth.json"
TRUTH_NPZ = ".truth.npz"


def truth_paths(video: str | os.PathLike) -> tuple[Path, Path]:
    """The two truth sidecars of a video file."""
    video = Path(video)
    return video.with_name(video.stem + TRUTH_JSON), video.with_name(video.stem + TRUTH_NPZ)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def truth_json(clip: Clip) -> dict[str, Any]:
    """The clip's truth as JSON-ready data: everything except landmarks and per-frame render parameters."""
    truth = {k: v for k, v in clip.truth.items() if k != "render"}
    truth.setdefault("clip_id", clip.clip_id)
    truth.setdefault("speaker_id", clip.speaker_id)
    truth.setdefault("split", clip.split)
    truth.setdefault("transcript", clip.transcript)
    truth.setdefault("word", clip.word)
    return _jsonable(truth)


def write_truth(video: str | os.PathLike, clip: Clip) -> None:
    """Write both sidecars of `clip` beside `video`."""
    js, npz = truth_paths(video)
    js.write_text(json.dumps(truth_json(clip)))
    # values typed Any: numpy's savez stub checks a **dict against its `allow_pickle: bool` keyword too
    arrays: dict[str, Any] = {k: np.asarray(v) for k, v in clip.truth.get("render", {}).items()}
    if clip.landmarks is not None:
        arrays["landmarks"] = clip.landmarks.astype(np.float32)
    with open(npz, "wb") as f:
        np.savez_compressed(f, **arrays)


def read_truth(video: str | os.PathLike) -> tuple[dict[str, Any], np.ndarray | None]:
    """(truth with `render` parameters restored, landmarks or None) from a video's sidecars.

    A clip read from disk with this truth can be re-rendered (e.g. by `perturb.remove_blinks`).
    """
    js, npz = truth_paths(video)
    truth: dict[str, Any] = json.loads(js.read_text()) if js.exists() else {}
    landmarks = None
    if npz.exists():
        with np.load(npz) as z:
            render = {k: z[k] for k in z.files if k != "landmarks"}
            landmarks = z["landmarks"] if "landmarks" in z.files else None
        if render:
            truth["render"] = render
    return truth, landmarks


# --------------------------------------------------------------------------------------------- corpus

_SPEC_CACHE: dict[str, CorpusSpec] = {}


def _spec(cfg_dict: dict[str, Any]) -> CorpusSpec:
    key = json.dumps(cfg_dict, sort_keys=True)
    if key not in _SPEC_CACHE:
        _SPEC_CACHE.clear()
        _SPEC_CACHE[key] = make_corpus_spec(SyntheticConfig(**cfg_dict))
    return _SPEC_CACHE[key]


def _write_clip(cfg_dict: dict[str, Any], layout_name: str, i: int, video: str, audio: str | None) -> dict[str, Any]:
    from data.layouts import get_layout

    clip = render_clip(_spec(cfg_dict), i)
    vpath = Path(video)
    try:
        write_video(vpath, clip.video, clip.audio, fps=FPS)
        if audio is not None:
            Path(audio).parent.mkdir(parents=True, exist_ok=True)
            write_wav(audio, clip.audio)
        get_layout(layout_name).write_header(vpath, clip)
        write_truth(vpath, clip)
    except OSError as e:  # e.g. a full disk: OSError names no file for a plain write
        raise MediaError(vpath, f"{e.strerror or e} writing this clip or its sidecars") from e
    return {"index": i, "n_frames": clip.num_frames, "seconds": clip.duration}


def write_corpus(
    cfg: SyntheticConfig,
    out_dir: str | os.PathLike,
    layout: str,
    workers: int = 2,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Render and write every clip of `cfg` under `out_dir` in `layout` ("lrw", "crema", "voxceleb2").

    Output is identical for any number of `workers` (processes; <= 1 renders in this process). Refuses a
    non-empty `out_dir` unless `overwrite` (files of an earlier corpus that this one does not rewrite would
    stay; corpus.json and the split files always describe the new corpus). Returns a summary dict.
    """
    from data.layouts import get_layout, write_split_files

    start = time.perf_counter()
    lay = get_layout(layout)
    root = Path(out_dir)
    fresh = not root.exists() or not any(root.iterdir())
    if not fresh and not overwrite:
        raise FileExistsError(f"{root}: output folder is not empty; choose a new folder or pass overwrite=True")
    root.mkdir(parents=True, exist_ok=True)
    spec = make_corpus_spec(cfg)

    jobs = []
    per_word_split: dict[tuple[str, str], int] = {}
    for cs in spec.clips:
        if lay.name == "lrw":  # LRW numbers clips per word and split
            index = per_word_split.get((cs.word, cs.split), 0)
            per_word_split[(cs.word, cs.split)] = index + 1
        else:
            index = cs.speaker_clip
        video, audio = lay.clip_path(root, speaker=cs.speaker, index=index, split=cs.split, word=cs.word)
        jobs.append((cs, video, audio))

    cfg_dict = asdict(cfg)
    done: list[dict[str, Any]] = []
    bar = _progress(progress, len(jobs), f"synthetic corpus -> {root} ({lay.name})")
    try:
        if workers <= 1:
            for cs, video, audio in jobs:
                done.append(_write_clip(cfg_dict, lay.name, cs.index, str(video), _str(audio)))
                bar.advance()
        else:
            ctx = multiprocessing.get_context("spawn")  # safe with threads/torch in the parent, unlike fork
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_pool_worker) as pool:
                futures = [
                    pool.submit(_write_clip, cfg_dict, lay.name, cs.index, str(video), _str(audio))
                    for cs, video, audio in jobs
                ]
                for fut in as_completed(futures):
                    done.append(fut.result())
                    bar.advance()
    except BaseException:
        if fresh:  # half a corpus is of no use, and a retry would find the folder not empty
            shutil.rmtree(root, ignore_errors=True)
        raise
    finally:
        bar.stop()

    n_frames = {d["index"]: d["n_frames"] for d in done}
    refs: dict[str, list[str]] = {s: [] for s in ("train", "val", "test")}
    clips = []
    for cs, video, audio in jobs:
        rel = video.relative_to(root).as_posix()
        refs[cs.split].append(rel)
        clips.append(
            {
                "clip_id": cs.clip_id,
                "video": rel,
                "audio": audio.relative_to(root).as_posix() if audio else None,
                "speaker_id": spec.speakers[cs.speaker].speaker_id,
                "split": cs.split,
                "word": cs.word,
                "transcript": cs.transcript,
                "n_frames": n_frames[cs.index],
            }
        )
    write_split_files(root, {s: paths for s, paths in refs.items() if paths})
    counts = {s: len(p) for s, p in refs.items()}
    seconds = float(sum(n_frames.values()) / FPS)
    corpus = {
        "generator": "talkbench.synthetic",
        "generator_version": GENERATOR_VERSION,
        "layout": lay.name,
        "seed": cfg.seed,
        "config": cfg_dict,
        "difficulty": asdict(DIFFICULTY[cfg.difficulty]),
        "vocabulary": spec.vocabulary,
        "speakers": [{**sp.to_dict(), "split": cfg.speaker_split(sp.index)} for sp in spec.speakers],
        "counts": {"clips": len(clips), "seconds": seconds, **counts},
        "clips": clips,
    }
    (root / "corpus.json").write_text(json.dumps(_jsonable(corpus), indent=1))
    return {
        "root": str(root),
        "layout": lay.name,
        "clips": len(clips),
        "seconds": round(seconds, 2),
        "splits": counts,
        "speakers": {s: [sp.speaker_id for sp in spec.speakers if cfg.speaker_split(sp.index) == s] for s in refs},
        "difficulty": cfg.difficulty,
        "size": cfg.size,
        "seed": cfg.seed,
        "workers": max(1, workers),
        "elapsed_s": round(time.perf_counter() - start, 2),
    }


def _str(p: Path | None) -> str | None:
    return None if p is None else str(p)


class _NoBar:
    def advance(self) -> None:
        pass

    def stop(self) -> None:
        pass


class _RichBar:
    def __init__(self, total: int, label: str):
        from rich.progress import Progress

        self._p = Progress(transient=False)
        self._p.start()
        self._task = self._p.add_task(label, total=total)

    def advance(self) -> None:
        self._p.advance(self._task)

    def stop(self) -> None:
        self._p.stop()


def _progress(enabled: bool, total: int, label: str) -> _NoBar | _RichBar:
    return _RichBar(total, label) if enabled else _NoBar()


def synth_main(layout: str, out: str | os.PathLike, seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """`bench data synth`: write the corpus and return the summary.

    `overrides` are SyntheticConfig fields (aliases: clips -> n_clips, speakers -> n_speakers,
    vocab -> vocab_size) plus `workers`, `progress` and `overwrite` for the writer.
    """
    workers = int(overrides.pop("workers", 2))
    progress = bool(overrides.pop("progress", True))
    overwrite = bool(overrides.pop("overwrite", False))
    cfg = SyntheticConfig.from_overrides(seed=seed, **{k: v for k, v in overrides.items() if v is not None})
    return write_corpus(cfg, Path(out), layout, workers=workers, progress=progress, overwrite=overwrite)


def speaker_of(truth: dict[str, Any]) -> Speaker:
    """The Speaker recorded in a clip's truth."""
    return Speaker.from_dict(truth["speaker"])
