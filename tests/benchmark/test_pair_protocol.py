"""Wav2Lip's pair benchmark end to end on the synthetic corpus: `--protocol wav2lip_synthetic` generates each test
video from another speaker's audio, names clips by list line as the official script names its outputs, and scores
the GT row on the real clips behind the pairs."""

from __future__ import annotations

import json

from test_runner import small_overrides

from benchmark.cli import main
from benchmark.results import load_results


def _rows(path):
    return {r["clip_id"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_wav2lip_pair_protocol_runs_and_a_folder_of_line_named_outputs_matches(tmp_path, capsys):
    assert main(["ls", "protocols"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("wav2lip_lrs2", "wav2lip_lrs3", "wav2lip_lrw", "wav2lip_synthetic"))

    out = tmp_path / "runs"
    base = ["--dataset", "synthetic", "--protocol", "wav2lip_synthetic", *small_overrides(out, expert=False)]
    assert main(["run", "--model", "static", *base]) == 0
    res = load_results(out / "synthetic" / "static" / "results.json")
    pairs = res.protocol.settings["pairs"]
    assert len(pairs["sha256"]) == 64 and pairs["n"] >= 3
    rows = _rows(out / "synthetic" / "static" / "samples.jsonl")
    assert sorted(rows) == ["0", "1", "2"]  # line numbers, the official script's output names
    generated = sorted(p.name for p in (out / "synthetic" / "static" / "generated").glob("*.mp4"))
    assert generated == ["0.mp4", "1.mp4", "2.mp4"]

    # the GT row is the real clips behind the pairs (each video with its own audio): in sync, where the static
    # row (the identity frame repeated under another speaker's audio) is not
    gt = load_results(next((out / "synthetic").glob("GT-*")) / "results.json")
    assert gt.metrics["lse_c"].value > res.metrics["lse_c"].value

    # a folder of outputs named by line (as gen_videos_from_filelist.py writes them) is matched as it is
    folder = out / "synthetic" / "static" / "generated"
    assert main(["evaluate", "--videos", str(folder), "--name", "official_names", *base]) == 0
    again = load_results(out / "synthetic" / "official_names" / "results.json")
    assert again.protocol.hash == res.protocol.hash and again.metrics["lse_d"].n == 3
    assert again.metrics["lse_d"].value == res.metrics["lse_d"].value
