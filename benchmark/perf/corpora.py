"""Corpus benchmarks: decoding vs the decode-once cache, every registered corpus through its real reading path,
and `bench data prepare` (clips/s and the peak memory of one long video)."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.perf.core import Figure, synthetic_clips, timeit

if TYPE_CHECKING:
    from data.corpus import LayoutCorpus
    from data.layouts import ClipRef


def bench_corpus_decode(quick: bool) -> list[Figure]:
    """Clips/s decoding mp4 (+audio) from disk into the clip contract, vs reading the decode-once cache."""
    from data.corpus import ClipStore, load_clip
    from data.io import write_video
    from data.layouts import ClipRef

    n = 4 if quick else 12
    clips = synthetic_clips(n, size=128)
    with tempfile.TemporaryDirectory() as td:
        refs = []
        for c in clips:
            p = Path(td) / f"{c.clip_id.replace('/', '_')}.mp4"
            write_video(p, c.video, c.audio)
            refs.append(ClipRef(p.stem, p, None, c.speaker_id, "test"))
        decode = timeit(lambda: [load_clip(r) for r in refs], 1 if quick else 2)
        store = ClipStore(Path(td) / "cache")
        for r in refs:
            store.get(r)
        cached = timeit(lambda: [np.asarray(store.get(r).video).sum() for r in refs], 2 if quick else 3)
    return [
        Figure(
            "corpus_decode",
            "cache read (clips/s)",
            n / cached,
            "clips/s",
            n / decode,
            "ffmpeg decode (clips/s)",
            {"clips": n, "seconds_per_clip": 2.0, "size": 128},
        )
    ]


def bench_corpora(quick: bool) -> list[Figure]:
    """Every registered corpus through its real reading path: a miniature copy in the corpus's on-disk layout
    (LRW's word folders with txt headers, CREMA-D's flv + wav, VoxCeleb2's id folders, the synthetic corpus),
    then clips/s loaded for training (prepared memory-mapped arrays, or the synthetic corpus's decode-once cache)
    against decoding the raw files with ffmpeg, and Wav2Lip training windows/s through the shared DataModule
    (streamed from manifest shards where the corpus config streams)."""
    from benchmark.config import compose
    from benchmark.runner import build_corpus
    from benchmark.train import build_model
    from data.corpus import PreparedCorpus, SyntheticCorpus, load_clip
    from data.datamodule import TalkingFaceDataModule
    from data.synthetic.generator import SyntheticConfig
    from data.synthetic.writer import write_corpus

    n = 6 if quick else 16
    batches = 4 if quick else 16
    synth = SyntheticConfig(seed=5, n_speakers=4, n_clips=n, size=96, min_seconds=2.0, max_seconds=2.0)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        td = Path(tmp)
        for name in ("lrw", "crema", "voxceleb2", "lrs2", "lrs3", "synthetic"):
            overrides = [f"dataset.root={td / name}", "run.progress=false"]
            if name == "synthetic":
                overrides += [f"dataset.synth.{k}={v}" for k, v in asdict(synth).items() if k != "seed"]
            else:
                write_corpus(synth, td / name, name, workers=1, progress=False)
                overrides += [
                    f"dataset.prepared={td / (name + '_prepared')}",
                    "dataset.prepare.landmarks=truth",
                    "dataset.prepare.workers=1",
                    "dataset.val_speakers=0",
                ]
            cfg = compose("wav2lip", name, "tiny", overrides)
            corpus = build_corpus(cfg)
            t0 = time.perf_counter()
            if isinstance(corpus, PreparedCorpus):
                corpus.prepare(progress=False)
            else:
                assert isinstance(corpus, SyntheticCorpus)  # every other corpus here is prepared
                corpus.ensure(progress=False)
            ready_s = time.perf_counter() - t0
            refs = corpus.layout.scan(corpus.root)

            def decode(refs: list[ClipRef] = refs) -> object:
                return [load_clip(r) for r in refs]

            def read(c: LayoutCorpus = corpus) -> object:
                return [np.asarray(x.video).sum() for x in c.clips("train")]

            raw = timeit(decode, 1)
            loaded = len(corpus.clips("train"))  # the synthetic corpus's first read fills its decode-once cache
            load = timeit(read, 2)

            needs = {arg: build_model(compose(dep, name, "tiny", overrides)) for arg, dep in cfg.model.needs.items()}
            module = build_model(cfg, needs)
            dm = TalkingFaceDataModule(corpus, module.train_dataset, batch_size=module.cfg.batch_size, seed=0)
            dm.setup("fit")
            it = iter(dm.train_dataloader())
            next(it)
            t0 = time.perf_counter()
            for _ in range(batches):
                next(it)
            windows_s = batches * module.cfg.batch_size / (time.perf_counter() - t0)
            extra = {
                "clips": len(refs),
                "train_clips": loaded,
                "layout": corpus.layout.name,
                "streaming": bool(getattr(corpus, "streaming", False)),
                "prepare_or_write_s": round(ready_s, 2),
                "size": synth.size,
                "seconds_per_clip": synth.min_seconds,
            }
            figures.append(
                Figure(
                    f"corpus_{name}",
                    "load for training (clips/s)",
                    loaded / load,
                    "clips/s",
                    len(refs) / raw,
                    "ffmpeg decode of the raw files (clips/s)",
                    extra,
                )
            )
            figures.append(
                Figure(
                    f"corpus_{name}",
                    f"Wav2Lip windows through the DataModule (windows/s, batch {module.cfg.batch_size})",
                    windows_s,
                    "windows/s",
                    extra=extra,
                )
            )
    return figures


_PREPARE_CHILD = """
import json, resource, sys, time
from data.prepare import PrepareConfig, prepare_corpus
cfg = PrepareConfig(landmarks="file", landmarks_dir=sys.argv[3], crops=["wav2lip"], features=["mel"], workers=1)
t0 = time.perf_counter()
s = prepare_corpus("perf", sys.argv[1], "voxceleb2", sys.argv[2], cfg, progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "accepted": s.accepted,
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "ffmpeg_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _prepare_in_subprocess(root: Path, out: Path, landmarks: Path) -> dict[str, Any]:
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]  # the repository root
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    proc = subprocess.run(
        [sys.executable, "-c", _PREPARE_CHILD, str(root), str(out), str(landmarks)],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"preparation benchmark failed: {proc.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def bench_prepare(quick: bool) -> list[Figure]:
    """`bench data prepare`: clips/s on short clips (vs decoding them with load_clip), and the peak memory of
    preparing one long synthetic 25 fps video (10 minutes; 2 with --quick), measured in a fresh process with
    getrusage (the target is < 2 GiB: frames stream through ffmpeg pipes in fixed-size chunks)."""
    import subprocess

    from data.corpus import load_clip
    from data.io import ffmpeg_exe, write_video, write_wav
    from data.layouts import get_layout

    n = 4 if quick else 12
    minutes = 2 if quick else 10
    clips = synthetic_clips(n, size=96)
    with tempfile.TemporaryDirectory() as tmp:
        td = Path(tmp)

        def place(root: Path, name: str, landmarks: np.ndarray) -> Path:
            path = root / "dev" / "mp4" / "id00001" / "perfvideo00" / f"{name}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            lm = td / "landmarks" / root.name / path.relative_to(root).with_suffix(".npy")
            lm.parent.mkdir(parents=True, exist_ok=True)
            np.save(lm, landmarks)
            return path

        for i, c in enumerate(clips):
            assert c.landmarks is not None  # synthetic clips carry their landmarks
            write_video(place(td / "short", f"{i + 1:05d}", c.landmarks), c.video, c.audio)
        short = _prepare_in_subprocess(td / "short", td / "out_short", td / "landmarks" / "short")
        refs = get_layout("voxceleb2").scan(td / "short")
        decode = timeit(lambda: [load_clip(r) for r in refs], 1)

        # the long video: one 10 s clip repeated, encoded by piping its frames to ffmpeg `loops` times (never
        # the whole video in this process; ffmpeg's -stream_loop with stream copy drifts audio against video)
        base = synthetic_clips(1, size=96, seconds=10.0)[0]
        loops = minutes * 6
        assert base.landmarks is not None
        long_path = place(td / "long", "00001", np.tile(base.landmarks, (loops, 1, 1)))
        write_wav(td / "long.wav", np.tile(base.audio, loops))
        t, h, w, _ = base.video.shape
        enc = subprocess.Popen(
            [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25",
             "-i", "pipe:", "-i", str(td / "long.wav"), "-map", "0:v", "-map", "1:a", "-c:v", "libx264",
             "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", str(long_path)],
            stdin=subprocess.PIPE,
        )  # fmt: skip
        frames = np.ascontiguousarray(base.video).tobytes()
        assert enc.stdin is not None  # stdin=PIPE
        for _ in range(loops):
            enc.stdin.write(frames)
        enc.stdin.close()
        if enc.wait() != 0:
            raise RuntimeError("encoding the long benchmark video failed")
        long = _prepare_in_subprocess(td / "long", td / "out_long", td / "landmarks" / "long")
        if long["accepted"] != 1:
            rejects = (td / "out_long" / "rejects.jsonl").read_text()
            raise RuntimeError(f"the {minutes}-minute benchmark video was rejected, so no memory figure: {rejects}")
    return [
        Figure(
            "prepare",
            "prepare short clips (clips/s)",
            short["accepted"] / short["seconds"],
            "clips/s",
            n / decode,
            "load_clip decode only (clips/s)",
            {"clips": n, "seconds_per_clip": 2.0, "size": 96, "landmarks": "file", "crops": ["wav2lip"]},
        ),
        Figure(
            "prepare",
            f"peak RSS preparing a {minutes}-minute 25 fps video (MiB)",
            long["rss_kb"] / 1024,
            "MiB",
            extra={
                "minutes": minutes,
                "accepted": long["accepted"],  # 1: the whole video went through preparation
                "seconds": round(long["seconds"], 1),
                "ffmpeg_peak_rss_mib": round(long["ffmpeg_rss_kb"] / 1024, 1),
                "target_mib": 2048,
            },
        ),
    ]
