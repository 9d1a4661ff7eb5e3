"""`bench study create`: pick clips from finished runs, balanced over speakers and methods, copy them under
opaque names, add attention checks, and write the study manifest (:mod:`benchmark.study.manifest`).

Everything random comes from ``seed``: the same runs, corpus and seed give the same study, tokens included.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.results import Results, find_results, read_jsonl, utc_now
from benchmark.study.manifest import (
    CLIPS_DIR,
    REAL_LABEL,
    Manifest,
    StudyClip,
    StudyError,
    StudyMethod,
)
from benchmark.tables.grids import ReferenceSource, corpus_reference, generated_video
from benchmark.tables.model import finished_key

__all__ = ["StudyRequest", "create_study", "find_method_runs"]


@dataclass(frozen=True)
class StudyRequest:
    dataset: str
    methods: Sequence[str]  # run names, labels or model names of finished runs
    n_real: int
    per_method: int
    seed: int = 0
    attention: int = 2


def find_method_runs(runs_root: Path, dataset: str, methods: Sequence[str]) -> list[tuple[Path, Results]]:
    """The newest finished run of ``dataset`` for each name in ``methods``: a run name first, else a unique label or
    model name (case-insensitive), as `bench leaderboard` names its rows."""
    found = [(p.parent, r) for p, r in find_results(runs_root) if r.run.dataset.casefold() == dataset.casefold()]
    found = [(d, r) for d, r in found if r.run.kind != "gt"]
    out = []
    for wanted in methods:
        hits = [(d, r) for d, r in found if r.run.name == wanted]
        if not hits:
            key = wanted.casefold()
            hits = [(d, r) for d, r in found if key in {r.run.label.casefold(), (r.run.model or "").casefold()}]
            if len({r.run.name for _, r in hits}) > 1:
                names = ", ".join(sorted({r.run.name for _, r in hits}))
                raise StudyError(f"method {wanted!r} names several runs of {dataset!r} ({names}); pass a run name")
        if not hits:
            known = ", ".join(sorted({r.run.name for _, r in found})) or "none"
            raise StudyError(f"no finished run of {dataset!r} under {runs_root} is {wanted!r} (runs: {known})")
        out.append(max(hits, key=lambda item: finished_key(item[1])))
    if len({r.run.name for _, r in out}) < len(out):
        raise StudyError(f"--methods names one run twice: {', '.join(methods)}")
    return out


def _test_clips(run_dir: Path) -> list[tuple[str, str]]:
    """(clip id, speaker) of the test clips a run scored, in test-list order; the generated file names when the
    run kept no per-clip record."""
    rows = sorted(
        (r for r in read_jsonl(run_dir / "samples.jsonl", missing_ok=True) if "clip_id" in r),
        key=lambda r: r.get("index", 0),
    )
    if rows:
        return list(dict.fromkeys((str(r["clip_id"]), str(r.get("speaker") or "")) for r in rows))
    return [(p.stem.replace("__", "/"), "") for p in sorted((run_dir / "generated").glob("*.mp4"))]


def _balanced(
    candidates: Sequence[tuple[str, str]], n: int, rng: random.Random, used: set[str]
) -> list[tuple[str, str]]:
    """``n`` of ``candidates`` spread evenly over their speakers (round robin over a shuffled speaker order), clip
    ids no other row took first, so one utterance is seldom shown by two methods (a rater could compare them)."""
    by_speaker: dict[str, list[tuple[str, str]]] = {}
    for clip in candidates:
        by_speaker.setdefault(clip[1], []).append(clip)
    speakers = sorted(by_speaker)
    rng.shuffle(speakers)
    queues = []
    for speaker in speakers:
        clips = list(by_speaker[speaker])
        rng.shuffle(clips)
        clips.sort(key=lambda c: c[0] in used)  # stable: the shuffle decides among the unused
        queues.append(clips)
    picked: list[tuple[str, str]] = []
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    used.update(c for c, _ in picked)
    return picked


def _remux(src: Path, dst: Path) -> None:
    """Copy a clip's streams into a fresh mp4 without its metadata (an encoder tag or a title written by a method's
    own pipeline would name it), with the index first so the browser starts playing before the end arrives."""
    from data.io import MediaError, read_audio, read_video, run_ffmpeg, write_video

    args = ["-y", "-i", str(src), "-map", "0:v:0", "-map", "0:a:0?", "-c", "copy", "-map_metadata", "-1"]
    try:
        run_ffmpeg([*args, "-movflags", "+faststart", "-f", "mp4", str(dst)], src)
    except MediaError:  # a stream mp4 cannot hold as it is (external videos in any codec): encode it like ours
        dst.unlink(missing_ok=True)
        try:
            audio = read_audio(src)
        except MediaError:
            audio = None
        write_video(dst, read_video(src), audio)


def _broken(video: np.ndarray, audio: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """An attention check: the clip upside down with inverted colours and reversed audio, which nobody watching
    takes for a real recording, whatever the quality of the methods."""
    frames = 255 - video[:, ::-1]
    return np.ascontiguousarray(frames), (np.ascontiguousarray(audio[::-1]) if audio is not None else None)


def create_study(
    runs_root: str | Path,
    request: StudyRequest,
    out: str | Path,
    reference: ReferenceSource | None = None,
) -> Manifest:
    """Make the study folder ``out`` (``study.json`` + ``clips/<token>.mp4``) from the runs under ``runs_root``.

    ``reference`` loads the real clips (default: the corpus the runs used, :func:`corpus_reference`). The folder is
    written beside ``out`` and renamed onto it at the end, so a failed create leaves nothing half-made.
    """
    from data.io import MediaError, read_audio, read_video, temp_beside, write_video

    out = Path(out)
    if request.n_real < 0 or request.per_method < 1 or request.attention < 0:
        raise StudyError("--per-method must be >= 1, --real and --attention >= 0")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudyError(f"{out} exists and is not empty: a study folder holds votes; pick a new folder")
    runs = find_method_runs(Path(runs_root), request.dataset, request.methods)
    labels = [r.run.label or r.run.name for _, r in runs]
    if len(set(labels)) < len(labels) or REAL_LABEL in labels:
        labels = [r.run.name for _, r in runs]  # two rows shown alike could not be told apart in the report
    token_rng = random.Random(f"{request.seed}:tokens")
    tokens: set[str] = set()

    def new_token() -> str:
        while (token := f"{token_rng.getrandbits(64):016x}") in tokens:
            pass
        tokens.add(token)
        return token

    used: set[str] = set()
    clips: list[StudyClip] = []
    sources: list[tuple[StudyClip, Path | tuple[np.ndarray, np.ndarray]]] = []
    for (run_dir, result), label in zip(runs, labels):
        available = [(c, s) for c, s in _test_clips(run_dir) if generated_video(run_dir, result, c) is not None]
        if len(available) < request.per_method:
            raise StudyError(
                f"{result.run.name}: {len(available)} generated test clips, fewer than --per-method "
                f"{request.per_method}"
            )
        for clip_id, speaker in _balanced(
            available, request.per_method, random.Random(f"{request.seed}:{label}"), used
        ):
            path = generated_video(run_dir, result, clip_id)
            assert path is not None  # filtered above
            clip = StudyClip(new_token(), "generated", label, result.run.name, clip_id, speaker)
            clips.append(clip)
            sources.append((clip, path))

    if request.n_real:
        pool = list(dict.fromkeys(c for d, _ in runs for c in _test_clips(d)))
        chosen = _balanced(pool, request.n_real, random.Random(f"{request.seed}:{REAL_LABEL}"), used)
        load = reference or corpus_reference([d for d, _ in runs])
        loaded = load(request.dataset, [c for c, _ in chosen])
        missing = [c for c, _ in chosen if c not in loaded]
        if len(chosen) < request.n_real or missing:
            raise StudyError(
                f"{len(chosen) - len(missing)} real test clips found for --real {request.n_real}"
                + (f" (the corpus lacks {', '.join(missing[:3])})" if missing else "")
            )
        for clip_id, speaker in chosen:
            clip = StudyClip(new_token(), "real", REAL_LABEL, None, clip_id, speaker)
            clips.append(clip)
            sources.append((clip, loaded[clip_id]))

    bases = random.Random(f"{request.seed}:attention").sample(clips, min(request.attention, len(clips)))
    checks = [StudyClip(new_token(), "attention", None, None, None, "", source=b.token) for b in bases]

    out.parent.mkdir(parents=True, exist_ok=True)
    with temp_beside(out) as tmp:
        folder = tmp / CLIPS_DIR
        folder.mkdir(parents=True)
        for clip, source in sources:
            if isinstance(source, Path):
                _remux(source, folder / clip.file)
            else:
                write_video(folder / clip.file, *source)
        for check in checks:
            base = folder / f"{check.source}.mp4"
            try:
                audio: np.ndarray | None = read_audio(base)
            except MediaError:  # a clip without sound breaks without it
                audio = None
            write_video(folder / check.file, *_broken(read_video(base), audio))
        manifest = Manifest(
            dataset=request.dataset,
            seed=request.seed,
            created=utc_now(),
            methods=[
                StudyMethod(label, r.run.name, r.run.model, str(d.resolve())) for (d, r), label in zip(runs, labels)
            ],
            clips=sorted([*clips, *checks], key=lambda c: c.token),
            settings={"real": request.n_real, "per_method": request.per_method, "attention": len(checks)},
        )
        manifest.save(tmp)
        stamp = time.time()
        for path in folder.iterdir():
            os.utime(path, (stamp, stamp))  # written method by method: their times would group them
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    return manifest
