"""Bad submitted videos: each is a counted failure naming the file and its problem, the good ones are scored, and
an interrupted evaluation loses nothing it finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_runner import small_overrides

from benchmark.cli import main
from benchmark.results import load_results

ROOT = Path(__file__).resolve().parents[2]


def _small(out: Path, clips: int) -> list[str]:
    return small_overrides(out, expert=False, **{"run.limit": clips})


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    args = ["run", "--model", "static", "--dataset", "synthetic", *_small(out, 6)]
    assert main(args) == 0
    return out, sorted((out / "synthetic" / "static" / "generated").glob("*.mp4"))


def _bad_folder(folder: Path, files: list[Path]) -> dict[str, str]:
    """The six test clips' videos: two kept as they are, four broken; returns clip stem -> the expected
    problem (None: scored)."""
    from data.io import read_audio, read_video, write_video, write_wav

    folder.mkdir()
    good, corrupt, zero, truncated, audio_only, one_frame = files
    expected = {}
    (folder / good.name).write_bytes(good.read_bytes())
    expected[good.stem] = None
    (folder / corrupt.name).write_bytes(np.random.default_rng(0).bytes(20_000))
    expected[corrupt.stem] = "not a readable media file"
    (folder / zero.name).write_bytes(b"")
    expected[zero.stem] = "empty file (0 bytes)"
    data = truncated.read_bytes()
    (folder / truncated.name).write_bytes(data[: len(data) // 3])
    expected[truncated.stem] = "not a readable media file"
    wav = folder / "speech.wav"
    write_wav(wav, read_audio(audio_only))
    os.replace(wav, folder / audio_only.name)  # a sound file named .mp4: no video stream
    expected[audio_only.stem] = "has no video stream"
    write_video(folder / one_frame.name, read_video(one_frame)[:1], read_audio(one_frame))
    expected[one_frame.stem] = "needs at least 2 frames, clip has 1"  # read, then refused by each metric
    return expected


def test_broken_videos_are_counted_failures_naming_the_file(generated, capsys):
    out, files = generated
    assert len(files) == 6
    folder = out / "broken"
    expected = _bad_folder(folder, files)
    one_frame = files[5].stem
    args = ["evaluate", "--videos", str(folder), "--name", "broken", "--dataset", "synthetic"]
    assert main([*args, *_small(out, 6)]) == 0
    rows = [json.loads(line) for line in (out / "synthetic" / "broken" / "samples.jsonl").read_text().splitlines()]
    by_clip = {r["clip_id"].replace("/", "__"): r for r in rows}
    for stem, problem in expected.items():
        row = by_clip[stem]
        if problem is None:
            assert not row["failed"] and row["values"], stem
            continue
        reasons = set(row["failed"].values())
        assert row["failed"] and not row["values"], stem
        assert any(problem in r for r in reasons), (stem, reasons)
        if stem != one_frame:
            assert all(f"{stem}.mp4: " in r for r in reasons), reasons  # an unreadable file is named
    res = load_results(out / "synthetic" / "broken" / "results.json")
    fmse = res.metrics["fmse"]
    assert fmse.n == 1 and fmse.n_failed == 5


def test_odd_rates_and_sizes_are_resampled_and_noted(generated, tmp_path):
    """A 30 fps video and a video of another size are scored (decoded at 25 fps, resized) and the run says so;
    a symlink loop is a failure naming the file."""
    from data.io import read_audio, read_video, write_video

    out, files = generated
    folder = tmp_path / "odd"
    folder.mkdir()
    a, b, c = files[:3]
    frames = read_video(a)
    idx = np.round(np.arange(round(len(frames) * 30 / 25)) * 25 / 30).astype(int).clip(0, len(frames) - 1)
    write_video(folder / a.name, frames[idx], read_audio(a), fps=30)
    write_video(folder / b.name, np.ascontiguousarray(read_video(b)[:, ::2, ::2]), read_audio(b))
    os.symlink(folder / c.name, folder / c.name)  # points at itself
    args = ["evaluate", "--videos", str(folder), "--name", "odd", "--dataset", "synthetic"]
    assert main([*args, *_small(out, 3)]) == 0
    res = load_results(out / "synthetic" / "odd" / "results.json")
    assert any("30 fps resampled to 25 fps" in n for n in res.run.notes)
    rows = {
        json.loads(x)["clip_id"].replace("/", "__"): json.loads(x)
        for x in (out / "synthetic" / "odd" / "samples.jsonl").read_text().splitlines()
    }
    assert rows[a.stem]["values"] and not rows[a.stem]["failed"]
    assert rows[b.stem]["values"] and not rows[b.stem]["failed"]
    # frames reach the metrics at the file's own size (each resizes once); the record says what the file was
    assert rows[b.stem]["original"] == {"size": [48, 48], "fps": 25.0}
    assert rows[a.stem]["original"]["fps"] == 30.0
    assert all(f"{c.name}: a symbolic link that leads to no file" in r for r in rows[c.stem]["failed"].values())


def test_sigint_keeps_the_finished_clips(generated, tmp_path):
    """Ctrl-C during scoring: the process stops with the interrupt, the clips scored before it are kept, and the
    rerun scores only the rest."""
    out, files = generated
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "benchmark.cli", "evaluate", "--videos", str(files[0].parent), "--name", "intr"]
    args += ["--dataset", "synthetic", *_small(out, 6)]
    samples = out / "synthetic" / "intr" / "samples.partial.jsonl"
    # a test run started in the background of a shell without job control inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: give the child the default disposition, as a terminal would
    proc = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        import time

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if samples.exists() and len(samples.read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read()
        proc.send_signal(signal.SIGINT)
        log = proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
    assert proc.returncode != 0, log[-2000:]
    assert "interrupted" in log.lower(), log[-2000:]
    kept = [json.loads(x)["clip_id"] for x in samples.read_text().splitlines()]
    assert len(kept) >= 2
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    res = load_results(out / "synthetic" / "intr" / "results.json")
    assert res.metrics["fmse"].n == 6
    assert f"resuming: {len(set(kept))} of 6 clips" in rerun.stdout + rerun.stderr
