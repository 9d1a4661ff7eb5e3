"""`bench evaluate` under a paper protocol prints, per mp4, what the official SyncNet script prints for that file:
the same offsets, confidences and min-distances within 1e-4, for files whose audio track leads or lags by 3 frames,
and for one video at two frame sizes (the value depends on the file, never on the corpus's frame size)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from test_runner import small_overrides

from benchmark.cli import main
from benchmark.config import compose
from benchmark.runner import build_corpus
from data.clip import SAMPLES_PER_FRAME
from data.io import write_video

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "metrics"))
from test_sync_paper import official_evaluate  # noqa: E402  (the independent transcription of the scripts)

PAPER = ["--protocol", "dh_table1_synthetic", "metrics.names=[av_offset,av_conf,lse_d,lse_c]"]


def _shifted(audio: np.ndarray, k: int) -> np.ndarray:
    """The audio advanced by k frames (k < 0: delayed), the length kept."""
    n = abs(k) * SAMPLES_PER_FRAME
    if k > 0:
        return np.concatenate([audio[n:], np.zeros(n, audio.dtype)])
    if k < 0:
        return np.concatenate([np.zeros(n, audio.dtype), audio[:-n]])
    return audio


def test_paper_protocol_scores_each_file_as_the_official_script(tmp_path):
    out = tmp_path / "runs"
    overrides = small_overrides(out, expert=False)
    cfg = compose(None, "synthetic", overrides=overrides)
    corpus = build_corpus(cfg)
    corpus.ensure(progress=False)
    clips = corpus.clips("test", limit=3)
    from metrics.sync import load_sync_network, resolve_sync_evaluator

    runs: dict[str, dict[str, Path]] = {}
    for name, shift, scale in (("shift0", 0, 1), ("lead3", 3, 1), ("lag3", -3, 1), ("big", 0, 2)):
        folder = tmp_path / name
        folder.mkdir()
        runs[name] = {}
        for clip in clips:
            video = np.repeat(np.repeat(clip.video, scale, axis=1), scale, axis=2) if scale > 1 else clip.video
            path = folder / f"{clip.clip_id.replace('/', '__')}.mp4"
            write_video(path, np.ascontiguousarray(video), _shifted(clip.audio, shift))
            runs[name][clip.clip_id] = path
        assert (
            main(["evaluate", "--videos", str(folder), "--name", name, "--dataset", "synthetic", *PAPER, *overrides])
            == 0
        )

    net, _ = load_sync_network(resolve_sync_evaluator("calibrated", corpus))
    for name, files in runs.items():
        rows = [json.loads(x) for x in (out / "synthetic" / name / "samples.jsonl").read_text().splitlines()]
        assert len(rows) == len(clips)
        for row in rows:
            offset, conf, lse_d, _ = row["raw"]["metrics.sync:SyncNetScores"]
            ref = official_evaluate(net, files[row["clip_id"]])
            assert offset == ref.offset, (name, row["clip_id"])
            assert conf == pytest.approx(ref.conf, abs=1e-4) and lse_d == pytest.approx(ref.minval, abs=1e-4)
            size = 192 if name == "big" else 96
            assert row["original"]["size"] == [size, size]
    offsets = {
        name: [json.loads(x)["values"]["av_offset"] for x in (out / "synthetic" / name / "samples.jsonl").open()]
        for name in runs
    }
    # the file's own track is heard: a 3-frame lead reads about +3, a lag about -3 (the small calibrated judge)
    assert np.median(np.subtract(offsets["lead3"], offsets["shift0"])) == pytest.approx(3, abs=1)
    assert np.median(np.subtract(offsets["lag3"], offsets["shift0"])) == pytest.approx(-3, abs=1)
