"""No silent mixing: a run name holds one folder's scores, resumed records must match the files, one writer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_runner import small_overrides

from benchmark.cli import main
from benchmark.results import load_results


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two folders of videos for the same test clips: the identity frame repeated, and the same made darker."""
    from data.io import read_audio, read_video, write_video

    out = tmp_path_factory.mktemp("runs")
    assert main(["run", "--model", "static", "--dataset", "synthetic", *small_overrides(out, expert=False)]) == 0
    a = out / "synthetic" / "static" / "generated"
    b = out / "darker"
    b.mkdir()
    for f in sorted(a.glob("*.mp4")):
        write_video(b / f.name, (read_video(f) // 2).astype(np.uint8), read_audio(f))
    return out, a, b


def _evaluate(out: Path, videos: Path, name: str, *extra: str) -> int:
    args = ["evaluate", "--videos", str(videos), "--name", name, "--dataset", "synthetic", *extra]
    return main([*args, *small_overrides(out, expert=False)])


def test_a_name_holds_one_folder_unless_overwritten(folders, capsys):
    out, a, b = folders
    assert _evaluate(out, a, "method") == 0
    first = load_results(out / "synthetic" / "method" / "results.json")
    assert _evaluate(out, b, "method") == 2
    err = capsys.readouterr().err
    assert "already holds the scores of" in err and str(a.resolve()) in err and "--overwrite" in err
    assert load_results(out / "synthetic" / "method" / "results.json").metrics == first.metrics  # untouched
    assert _evaluate(out, b, "method", "--overwrite") == 0
    second = load_results(out / "synthetic" / "method" / "results.json")
    assert second.metrics != first.metrics  # the darker folder's own scores, none of the first folder's
    assert second.run.notes[0] == f"videos: {b.resolve()}"


def test_resumed_records_must_match_the_files(folders, tmp_path):
    """An interrupted scoring pass resumes only the records made from the same file (path, size, mtime) under
    the same protocol; a replaced file is scored again."""
    from benchmark.scoring import score_clips, video_key
    from metrics.flow import FrameMSE

    _, a, _ = folders
    files = {p.stem: p for p in sorted(a.glob("*.mp4"))}

    class _Clip:
        def __init__(self, cid):
            from data.io import read_video

            self.clip_id, self.video, self.audio, self.landmarks = cid, read_video(files[cid]), None, None
            self.num_frames, self.speaker_id = len(self.video), ""

    clips = [_Clip(cid) for cid in list(files)[:3]]
    videos = {c.clip_id: tmp_path / f"{c.clip_id}.mp4" for c in clips}
    for c in clips:
        shutil.copy(files[c.clip_id], videos[c.clip_id])
    fetched: list[str] = []

    def fetch(i, clip):
        from data.io import read_video

        fetched.append(clip.clip_id)
        return read_video(videos[clip.clip_id])

    samples = tmp_path / "samples.partial.jsonl"
    key = video_key("p1", videos)
    score_clips(clips, fetch, {"t": FrameMSE()}, ["fmse"], samples, progress=False, key=key)
    assert len(fetched) == 3
    fetched.clear()
    shutil.copy(files[clips[0].clip_id], videos[clips[1].clip_id])  # another file under the same name
    score_clips(clips, fetch, {"t": FrameMSE()}, ["fmse"], samples, progress=False, key=key)
    assert fetched == [clips[1].clip_id]
    fetched.clear()
    score_clips(clips, fetch, {"t": FrameMSE()}, ["fmse"], samples, progress=False, key=video_key("p2", videos))
    assert len(fetched) == 3  # another protocol: nothing is reused


def test_a_run_folder_has_one_writer(folders, capsys):
    out, a, _ = folders
    run_dir = out / "synthetic" / "locked"
    run_dir.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_dir / ".lock").write_text(str(sleeper.pid))
        assert _evaluate(out, a, "locked") == 2
        assert f"in use by PID {sleeper.pid}" in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _evaluate(out, a, "locked") == 0  # the holder died: its lock is taken over
    assert not (run_dir / ".lock").exists()


def test_a_resumed_pass_puts_back_non_finite_values(tmp_path):
    """PSNR of a clip equal to its reference is +inf: its record keeps "inf" (JSON has none), so a resumed pass puts
    it back as scored instead of failing on it; records of earlier versions (null) are scored again."""
    import json
    import math

    import numpy as np

    from benchmark.scoring import score_clips
    from metrics.fidelity import FidelityScores

    rng = np.random.default_rng(0)

    class _Clip:
        def __init__(self, cid: str, video: np.ndarray) -> None:
            self.clip_id, self.video, self.audio, self.landmarks = cid, video, None, None
            self.num_frames, self.speaker_id = len(video), ""

    clips = [_Clip(f"c{i}", rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)) for i in range(2)]
    fetched: list[str] = []

    def fetch(i, clip):
        fetched.append(clip.clip_id)
        return clip.video if i == 0 else np.clip(clip.video.astype(int) + 3, 0, 255).astype(np.uint8)

    samples = tmp_path / "samples.partial.jsonl"
    first, _ = score_clips(clips, fetch, {"t": FidelityScores()}, ["psnr"], samples, progress=False)
    assert math.isinf(first["psnr"].value) and fetched == ["c0", "c1"]
    assert json.loads(samples.read_text().splitlines()[0])["raw"]["t"][0] == "inf"
    fetched.clear()
    again, _ = score_clips(clips, fetch, {"t": FidelityScores()}, ["psnr"], samples, progress=False)
    assert fetched == [] and math.isinf(again["psnr"].value)
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    rows[0]["raw"]["t"][0] = None  # as earlier versions wrote it
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    score_clips(clips, fetch, {"t": FidelityScores()}, ["psnr"], samples, progress=False)
    assert fetched == ["c0"]
