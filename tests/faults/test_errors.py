"""Clear errors, counted rejects, nothing lost: bad input is named with its problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.config import ConfigError, compose


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.max_steps=abc", "trainer.max_steps takes a number"),
        ("run.limit=0", "run.limit must be >= 1"),
        ("metrics.names=ofm", "metrics.names takes a list"),
        ("syncnet_expert.trainer.max_stepz=5", "Did you mean 'syncnet_expert.trainer.max_steps'"),
    ],
)
def test_config_values_are_checked_when_composed(override, message, capsys):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        compose("wav2lip", "synthetic", "tiny", [override])
    assert main(["validate", "--model", "wav2lip", override]) == 2
    assert message in capsys.readouterr().err


def test_a_protocol_suggestion_fits_the_dataset():
    with pytest.raises(ConfigError, match="Did you mean 'dh_table1_synthetic'"):
        compose("wav2lip", "synthetic", "tiny", protocol="dh_table1")


def test_random_bytes_are_not_a_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))
    path = tmp_path / "wav2lip.pth"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 1 << 19, dtype=np.uint8).tobytes())
    assert main(["weights", "import", str(path), "--as", "wav2lip"]) == 2
    err = capsys.readouterr().err
    assert "wav2lip.pth: not a readable checkpoint" in err and "index out of range" not in err


def test_an_invalid_mapping_names_the_file(tmp_path, capsys):
    mapping = tmp_path / "map.json"
    mapping.write_text("{not json")
    args = ["evaluate", "--videos", str(tmp_path), "--name", "x", "--mapping", str(mapping), "run.limit=2"]
    assert main([*args, f"run.out_dir={tmp_path / 'runs'}", "run.progress=false"]) == 2
    assert f"--mapping {mapping}: not a readable JSON file" in capsys.readouterr().err


def test_a_folder_without_matching_videos_writes_no_row(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "unrelated.mp4").write_bytes(b"")
    args = ["evaluate", "--videos", str(videos), "--name", "x", f"run.out_dir={tmp_path / 'runs'}"]
    assert main([*args, "run.progress=false"]) == 2
    err = capsys.readouterr().err
    assert "none of its videos matches a test clip" in err and "--mapping" in err and ".mp4" in err
    assert not list((tmp_path / "runs").rglob("results.json"))


def test_an_edited_protocol_hash_is_refused_by_name(tmp_path):
    from benchmark.results import MetricResult, Protocol, Results, ResultsError, RunInfo, load_results, protocol_hash

    settings = {"corpus": "c", "metrics": ["ofm"]}
    run = RunInfo("a", "model", "synthetic", None, "A", None, 0, None, {}, "2026-01-01T00:00:00+00:00", "x")
    res = Results(
        run=run,
        protocol=Protocol("p", protocol_hash(settings), "synthetic", "test", 3, settings),
        evaluators={},
        metrics={"ofm": MetricResult(1.0, 3, 0, "match_gt")},
    )
    res.save(tmp_path / "results.json")
    assert load_results(tmp_path / "results.json").protocol.hash == protocol_hash(settings)
    data = json.loads((tmp_path / "results.json").read_text())
    data["protocol"]["settings"]["metrics"] = ["ofm", "fmse"]  # hand-edited, hash kept
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(ResultsError, match=r"results\.json: protocol 'p' records hash .* the file was edited"):
        load_results(tmp_path / "results.json")


def _row(name: str, value: float, failed: int, kind: str = "model"):
    from benchmark.results import MetricResult, Protocol, Results, RunInfo

    run = RunInfo(name, kind, "synthetic", None, name, None, 0, None, {}, "2026-01-01T00:00:00+00:00", "x")
    return Results(
        run=run,
        protocol=Protocol("p", "feedc0ffee12", "synthetic", "test", 10, {}),
        evaluators={},
        metrics={"lse_d": MetricResult(value, 10 - failed, failed, "lower")},
    )


def test_a_row_with_unscored_clips_is_not_ranked_against_complete_rows():
    from benchmark.tables import leaderboard_frame

    (table,) = leaderboard_frame([_row("A", 0.5, 3), _row("B", 0.9, 0), _row("C", 1.1, 0)], "synthetic")
    ranks = dict(zip(table.frame["method"], table.ranks["lse_d"]))
    assert np.isnan(ranks["A"]) and ranks["B"] == 1 and ranks["C"] == 2  # A's 0.5 is over 7 clips only
    assert any(n.startswith("A: not ranked on LSE-D: clips were left unscored") for n in table.notes)


def test_a_time_capped_training_is_reported_and_marked(tmp_path, capsys):
    """A wall-clock safety net that binds before the step budget: the [train] line says so, the weights' info
    records it, and every table marks the row."""
    from test_runner import small_overrides

    from benchmark import train
    from benchmark.runner import build_corpus
    from benchmark.tables import leaderboard_frame, time_capped

    extra = ["trainer.max_steps=100000", "trainer.max_time=00:00:00:01", "trainer.val_check_interval=100000"]
    cfg = compose("syncnet_expert", "synthetic", "tiny", [*small_overrides(tmp_path, expert=False), *extra])
    corpus = build_corpus(cfg)
    corpus.ensure()
    _, info = train.train_or_load(cfg, corpus)
    assert info["budget"]["stopped_by"] == "time" and info["budget"]["steps"] < 100000
    assert "stopped by the wall-clock safety net (trainer.max_time=00:00:00:01)" in capsys.readouterr().out
    row = _row("W", 1.0, 0)
    row.run.model = "wav2lip"
    row.run.checkpoint = {"source": "trained", "needs": {"expert": info}}
    assert time_capped(row) == [f"expert: {info['budget']['steps']} of 100000 steps"]
    (table,) = leaderboard_frame([row, _row("B", 0.9, 0)], "synthetic")
    assert "W (time cap)" in list(table.frame["method"])
    assert any("wall-clock safety net" in n for n in table.notes)


def test_ls_models_marks_components_and_baselines(capsys):
    assert main(["ls", "models"]) == 0
    lines = dict(line.split(maxsplit=1) if " " in line else (line, "") for line in capsys.readouterr().out.split("\n"))
    assert lines["syncnet_expert"] == "component" and lines["static"] == "baseline" and lines["wav2lip"] == ""


def test_prepare_counts_unreadable_sidecars_as_rejects(tmp_path):
    """A corrupt truth sidecar or a landmarks file holding a pickled object array: a counted reject naming the
    file, not the end of the whole run."""
    from data.prepare import PrepareConfig, prepare_corpus
    from data.synthetic.generator import SyntheticConfig
    from data.synthetic.writer import write_corpus

    root = tmp_path / "crema"
    write_corpus(SyntheticConfig(seed=2, n_speakers=4, n_clips=6, size=96, max_seconds=1.2), root, "crema", 1, False)
    videos = sorted(root.rglob("*.flv"))
    videos[0].with_name(videos[0].stem + ".truth.json").write_text("{broken")
    lm_dir = tmp_path / "lm"
    for v in videos:
        clip_id = v.relative_to(root).with_suffix("").as_posix()
        (lm_dir / clip_id).parent.mkdir(parents=True, exist_ok=True)
        lm = np.load(v.with_name(v.stem + ".truth.npz"))["landmarks"]
        np.save(lm_dir / f"{clip_id}.npy", lm)
    bad = lm_dir / f"{videos[1].relative_to(root).with_suffix('').as_posix()}.npy"
    evil = np.empty(1, dtype=object)
    evil[0] = {"x": 1}
    np.save(bad, evil, allow_pickle=True)
    cfg = PrepareConfig(landmarks="file", landmarks_dir=str(lm_dir), workers=1)
    summary = prepare_corpus("crema", root, "crema", tmp_path / "out", cfg, progress=False)
    assert summary.accepted == 4 and sum(summary.rejected.values()) == 2
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    messages = " ".join(r["message"] for r in rejects)
    assert "truth.json: not a readable truth file" in messages and f"{bad}: cannot be read as landmarks" in messages


def test_tampered_stored_weights_are_refused(tmp_path, monkeypatch):
    from metrics import weights as store

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))
    entry = store.register_object({"w": torch.zeros(3)}, "net-x-{content8}", "net", "calibrated", calibrated=True)
    path = store.weights_dir() / entry.file
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(store.WeightsError, match="does not match the registered"):
        store.load(entry.name)


def test_interrupted_jsonl_keeps_finished_records(tmp_path):
    from benchmark.results import append_jsonl, read_jsonl

    path = tmp_path / "samples.partial.jsonl"
    append_jsonl(path, {"clip_id": "a", "values": {"ofm": 1.0}})
    with open(path, "a") as f:
        f.write('{"clip_id": "b", "val')  # a kill in the middle of a write
    with pytest.warns(Warning):
        rows = read_jsonl(path)
    assert rows == [{"clip_id": "a", "values": {"ofm": 1.0}}]
    append_jsonl(path, {"clip_id": "c"})
    assert [r["clip_id"] for r in read_jsonl(path)] == ["a", "c"]
    assert Path(path).read_text().count("\n") == 2


def test_generate_on_a_photo_without_a_face_is_an_error(tmp_path, capsys):
    import cv2

    from data.io import write_wav
    from models.wav2lip.module import Wav2LipConfig
    from models.wav2lip.nets import Wav2LipGenerator

    cv2.imwrite(str(tmp_path / "wall.png"), np.full((120, 120, 3), 128, np.uint8))
    write_wav(tmp_path / "a.wav", np.zeros(8000, np.float32))
    torch.save(Wav2LipGenerator(width=Wav2LipConfig.preset("tiny").width).state_dict(), tmp_path / "w.pt")
    args = ["generate", "--model", "wav2lip", "--face", str(tmp_path / "wall.png"), "--audio", str(tmp_path / "a.wav")]
    args += ["--checkpoint", str(tmp_path / "w.pt"), "--preset", "tiny", "--out", str(tmp_path / "o.mp4")]
    assert main([*args, "--detector", "dlib"]) == 2
    assert "wall.png: no face found in any of its 1 frames" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_debris_of_killed_processes_is_swept_on_the_next_start(tmp_path):
    import subprocess
    import sys

    from data.io import sweep_stale_temps

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / f"synthetic-crema-abc.tmp{pid}").mkdir()
    (tmp_path / f"synthetic-crema-abc.tmp{pid}" / "half.mp4").write_bytes(b"x")
    (tmp_path / f".wav2lip.tmp{pid}.pt").write_bytes(b"x")
    (tmp_path / f"registry.json.tmp{pid}").write_text("{")
    (tmp_path / "kept.pt").write_bytes(b"x")
    live = tmp_path / f"other.tmp{Path('/proc/self').resolve().name}"  # this process: still writing
    live.write_bytes(b"x")
    removed = sweep_stale_temps(tmp_path)
    assert len(removed) == 3 and sorted(p.name for p in tmp_path.iterdir()) == sorted(["kept.pt", live.name])
