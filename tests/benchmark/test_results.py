"""Results schema round trip, atomic writes, resumable JSON lines, provenance, discovery."""

from __future__ import annotations

import json
import math
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from benchmark.results import (
    SCHEMA,
    MetricResult,
    Protocol,
    Results,
    ResultsError,
    ResultsWarning,
    RunInfo,
    append_jsonl,
    environment_info,
    find_results,
    git_hash,
    load_results,
    protocol_hash,
    read_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
)


def make_results(name: str = "wav2lip-tiny", value: float = 6.5) -> Results:
    settings = {"split": "test", "n_clips": 12, "sync": {"vshift": 15, "crop": "tracked"}}
    return Results(
        run=RunInfo(
            name=name,
            kind="model",
            dataset="synthetic",
            model="wav2lip",
            label="Wav2Lip",
            preset="tiny",
            seed=0,
            git="0123abcd",
            versions={"python": "3.11.9", "torch": "2.4.0"},
            started="2025-03-01T10:00:00+00:00",
            finished="2025-03-01T10:05:00+00:00",
            config_hash="c0ffee",
            checkpoint={"path": "last.ckpt", "sha256": "ab" * 32},
            notes=["tiny preset"],
        ),
        protocol=Protocol("synthetic-test", protocol_hash(settings), "synthetic", "test", 12, settings),
        evaluators={"syncnet": {"weights": "syncnet-synthetic-1234abcd", "sha256": "12" * 32}},
        metrics={
            "av_conf": MetricResult(value, 12, 0, "higher", std=0.4),
            "av_offset": MetricResult(-1.0, 11, 1, "match_gt"),
            "ofm": MetricResult(float("nan"), 0, 12, "match_gt", mode="paper"),
        },
    )


def test_round_trip_through_json(tmp_path: Path) -> None:
    res = make_results()
    path = res.save(tmp_path / "run" / "results.json")
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA
    # JSON has no NaN: a metric that scored no clip is stored as null
    assert data["metrics"]["ofm"]["value"] is None
    back = load_results(path)
    assert back.run == res.run
    assert back.protocol == res.protocol
    assert back.evaluators == res.evaluators
    assert back.metrics["av_conf"] == res.metrics["av_conf"]
    assert back.metrics["av_offset"] == res.metrics["av_offset"]
    assert math.isnan(back.metrics["ofm"].value) and back.metrics["ofm"].mode == "paper"
    assert Results.from_dict(back.to_dict()).to_dict() == data


def test_unknown_schema_is_rejected_naming_the_file(tmp_path: Path) -> None:
    data = make_results().to_dict()
    data["schema"] = "talkbench.results/99"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsError, match=r"talkbench.results/99.*results\.json"):
        load_results(path)


@pytest.mark.parametrize(("where", "field"), [("run", "finished"), ("protocol", "hash"), ("metrics.av_conf", "n")])
def test_missing_field_is_rejected_naming_file_and_field(tmp_path: Path, where: str, field: str) -> None:
    data = make_results().to_dict()
    node = data
    for part in where.split("."):
        node = node[part]
    del node[field]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsError, match=rf"{where}\.{field}") as info:
        load_results(path)
    assert str(path) in str(info.value)


def test_wrong_types_and_values_are_rejected() -> None:
    data = make_results().to_dict()
    data["metrics"]["av_conf"]["direction"] = "up"
    with pytest.raises(ResultsError, match="direction"):
        Results.from_dict(data, source="x/results.json")
    data = make_results().to_dict()
    data["run"]["kind"] = "paper"
    with pytest.raises(ResultsError, match="run.kind"):
        Results.from_dict(data)
    data = make_results().to_dict()
    data["metrics"]["av_conf"]["n"] = "12"
    with pytest.raises(ResultsError, match="metrics.av_conf.n"):
        Results.from_dict(data)


def test_protocol_hash_is_canonical() -> None:
    a = protocol_hash({"b": [1, 2], "a": {"y": 25.0, "x": (0.5,)}})
    b = protocol_hash({"a": {"x": [0.5], "y": 25}, "b": [1, 2]})
    assert a == b and len(a) == 12 and int(a, 16) >= 0
    assert protocol_hash({"fps": np.int64(25)}) == protocol_hash({"fps": 25})
    assert protocol_hash({"a": 1}) != protocol_hash({"a": 2})


def test_atomic_write_keeps_old_file_when_serialisation_fails(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_json_atomic(path, {"version": 1})
    with pytest.raises(TypeError, match="object"):
        write_json_atomic(path, {"version": 2, "bad": object()})
    assert json.loads(path.read_text()) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_atomic_jsonl_keeps_old_file_when_a_row_fails_mid_stream(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    write_jsonl_atomic(path, [{"clip": "a"}, {"clip": "b"}])

    def rows():
        yield {"clip": "c"}
        yield {"clip": "d"}
        yield {"clip": object()}  # fails after two rows reached the temporary file

    with pytest.raises(TypeError):
        write_jsonl_atomic(path, rows())
    assert read_jsonl(path) == [{"clip": "a"}, {"clip": "b"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.jsonl"]


def test_numpy_values_and_nan_are_stored(tmp_path: Path) -> None:
    path = write_jsonl_atomic(tmp_path / "s.jsonl", [{"v": np.float32(0.5), "a": np.arange(2), "bad": np.nan}])
    assert read_jsonl(path) == [{"v": 0.5, "a": [0, 1], "bad": None}]


def test_read_jsonl_skips_a_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text('{"clip": "a", "v": 1}\n{"clip": "b", "v": 2}\n{"clip": "c", "v"')
    with pytest.warns(ResultsWarning, match="truncated"):
        rows = read_jsonl(path)
    assert rows == [{"clip": "a", "v": 1}, {"clip": "b", "v": 2}]


def test_read_jsonl_raises_on_corruption_before_the_end(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text('{"clip": "a"}\n{"clip": \n{"clip": "c"}\n')
    with pytest.raises(ResultsError, match="line 2"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "absent.jsonl", missing_ok=True) == []


def test_append_resumes_after_a_crash_mid_line(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    append_jsonl(path, {"clip": "a"})
    append_jsonl(path, {"clip": "b"})
    with open(path, "a") as handle:  # a crash while writing the third record
        handle.write('{"clip": "c", "val')
    with pytest.warns(ResultsWarning):
        done = read_jsonl(path)
    assert [r["clip"] for r in done] == ["a", "b"]
    with pytest.warns(ResultsWarning, match="cut short"):
        append_jsonl(path, {"clip": "c"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r["clip"] for r in read_jsonl(path)] == ["a", "b", "c"]


def test_environment_info_has_versions() -> None:
    info = environment_info()
    for key in ("python", "torch", "lightning", "torchmetrics", "numpy", "opencv", "platform", "cpu_count"):
        assert key in info
    assert info["numpy"] == np.__version__
    json.dumps(info)


def test_git_hash_outside_a_repository_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert git_hash(tmp_path) is None
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    assert git_hash(tmp_path) is None


def test_git_hash_of_a_repository(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    try:
        git("init", "-q")
        (tmp_path / "f.txt").write_text("1")
        git("add", "f.txt")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not usable here")
    head = git_hash(tmp_path)
    assert head is not None and len(head) == 40
    (tmp_path / "f.txt").write_text("2")
    assert git_hash(tmp_path) == head + "+dirty"


def test_find_results_skips_unreadable_files_with_a_warning(tmp_path: Path) -> None:
    make_results("a").save(tmp_path / "synthetic" / "a" / "results.json")
    make_results("b").save(tmp_path / "synthetic" / "b" / "results.json")
    (tmp_path / "synthetic" / "broken").mkdir()
    (tmp_path / "synthetic" / "broken" / "results.json").write_text('{"schema": "talkbench.results/1", "run"')
    with pytest.warns(ResultsWarning, match=r"broken.results\.json.*not valid JSON"):
        found = find_results(tmp_path)
    assert [r.run.name for _, r in found] == ["a", "b"]
    assert all(p.name == "results.json" for p, _ in found)
