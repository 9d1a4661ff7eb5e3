"""Bootstrap intervals and significance-aware marks on run folders whose per-clip values are known."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from benchmark.results import MetricResult, Protocol, Results, RunInfo, load_results
from benchmark.tables import leaderboard_frame, to_csv, to_latex, to_markdown
from benchmark.tables.intervals import (
    MIN_SPEAKERS,
    BootstrapSettings,
    paired_p_value,
    read_clip_records,
    table_intervals,
)

DIRECTIONS = {"av_conf": "higher", "lse_d": "lower", "ofm": "match_gt"}


def write_run(
    root: Path,
    name: str,
    values: dict[str, list[float]],
    *,
    kind: str = "model",
    speakers: list[str] | None = None,
    shuffle: int | None = None,
) -> Path:
    """A run folder: results.json (means) and samples.jsonl (per-clip values, rows in any order)."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    n = len(next(iter(values.values())))
    rows = [
        {
            "clip_id": f"{(speakers or ['s'] * n)[i]}/c{i:03d}",
            "index": i,
            "speaker": (speakers or [""] * n)[i],
            "values": {k: v[i] for k, v in values.items()},
        }
        for i in range(n)
    ]
    if shuffle is not None:  # as several scoring processes append them
        random.Random(shuffle).shuffle(rows)
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = RunInfo(name, kind, "lrw", None, name, None, 0, None, {}, "2025-03-01T11:00:00+00:00", "2025-03-01T12:00")
    metrics = {k: MetricResult(float(np.mean(v)), n, 0, DIRECTIONS[k]) for k, v in values.items()}
    res = Results(run, Protocol("p", "abc123def456", "lrw", "test", n, {}), {}, metrics)
    res.save(run_dir / "results.json")
    return run_dir / "results.json"


def load(paths: list[Path]) -> list[Results]:
    return [load_results(p) for p in paths]


def test_interval_of_a_mean_has_the_normal_width_and_repeats_under_a_seed(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(0.5, 1.0, 400)
    path = write_run(tmp_path, "a", {"av_conf": list(values)})
    table = leaderboard_frame(load([path]), "lrw")[0]
    assert table.intervals is not None and table.intervals.unit == "clip"
    half = table.intervals.half_width(0, "av_conf")
    assert half is not None and abs(half - 1.96 * values.std() / np.sqrt(400)) < 0.012
    assert table.intervals.low.at[0, "av_conf"] < values.mean() < table.intervals.high.at[0, "av_conf"]
    again = leaderboard_frame(load([path]), "lrw")[0].intervals
    assert again is not None and again.low.equals(table.intervals.low) and again.high.equals(table.intervals.high)
    other = leaderboard_frame(load([path]), "lrw", bootstrap=BootstrapSettings(seed=7))[0].intervals
    assert other is not None and not other.low.equals(table.intervals.low)


def test_rows_written_in_any_order_give_identical_intervals(tmp_path: Path) -> None:
    """1 and N scoring processes write samples.jsonl in different orders: the intervals must not change."""
    rng = np.random.default_rng(2)
    values = {"av_conf": list(rng.normal(0, 1, 50)), "lse_d": list(rng.normal(7, 1, 50))}
    one = write_run(tmp_path / "one", "a", values)
    many = write_run(tmp_path / "many", "a", values, shuffle=3)
    a = leaderboard_frame(load([one]), "lrw")[0].intervals
    b = leaderboard_frame(load([many]), "lrw")[0].intervals
    assert a is not None and b is not None
    assert a.low.equals(b.low) and a.high.equals(b.high)


def test_speakers_are_the_unit_when_there_are_enough(tmp_path: Path) -> None:
    """Clips of one speaker share an offset: resampling speakers gives the wider, honest interval."""
    rng = np.random.default_rng(3)
    n_speakers, per = 12, 10
    offsets = rng.normal(0, 1.0, n_speakers)
    values = [offsets[s] + rng.normal(0, 0.1) for s in range(n_speakers) for _ in range(per)]
    speakers = [f"spk{s:02d}" for s in range(n_speakers) for _ in range(per)]
    grouped = write_run(tmp_path / "g", "a", {"av_conf": values}, speakers=speakers)
    table = leaderboard_frame(load([grouped]), "lrw")[0]
    assert table.intervals is not None and (table.intervals.unit, table.intervals.n_units) == ("speaker", 12)
    speaker_half = table.intervals.half_width(0, "av_conf")
    unnamed = write_run(tmp_path / "u", "a", {"av_conf": values})
    clip_table = leaderboard_frame(load([unnamed]), "lrw")[0]
    assert clip_table.intervals is not None and clip_table.intervals.unit == "clip"
    clip_half = clip_table.intervals.half_width(0, "av_conf")
    assert speaker_half is not None and clip_half is not None and speaker_half > 2 * clip_half


def test_too_few_speakers_resample_clips_and_say_so(tmp_path: Path) -> None:
    speakers = [f"spk{i % 2}" for i in range(40)]
    path = write_run(tmp_path, "a", {"av_conf": list(np.linspace(0, 1, 40))}, speakers=speakers)
    table = leaderboard_frame(load([path]), "lrw")[0]
    assert table.intervals is not None and table.intervals.unit == "clip"
    assert any(f"from 2 speaker(s), fewer than {MIN_SPEAKERS}" in n for n in table.notes)


def test_best_is_marked_only_when_the_paired_difference_is_significant(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    base = rng.normal(0, 1, 60)  # clip difficulty, shared by every row: the paired test removes it
    rows = {
        "clear": base + 0.30 + rng.normal(0, 0.05, 60),
        "close": base + 0.01 + rng.normal(0, 0.3, 60),
        "same": base + rng.normal(0, 0.3, 60),
    }
    paths = [write_run(tmp_path, name, {"av_conf": list(v)}) for name, v in rows.items()]
    table = leaderboard_frame(load(paths), "lrw")[0]
    by_name = {str(table.frame.at[i, "name"]): i for i in table.frame.index}
    assert table.mark(by_name["clear"], "av_conf") == "best"
    # "close" and "same" are second and third by value, but not distinguishable: no second mark
    assert table.mark(by_name["close"], "av_conf") is None and table.mark(by_name["same"], "av_conf") is None
    assert any("no second mark" in n and "close" in n and "same" in n for n in table.notes)
    # by value alone (no bootstrap) the second mark is given
    plain = leaderboard_frame(load(paths), "lrw", bootstrap=None)[0]
    assert plain.intervals is None and plain.mark(by_name["close"], "av_conf") == "second"


def test_a_tie_at_the_top_marks_nobody(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(0, 1, 40)
    paths = [
        write_run(tmp_path, name, {"lse_d": list(base + shift + rng.normal(0, 0.5, 40))})
        for name, shift in (("a", 0.0), ("b", 0.02))
    ]
    table = leaderboard_frame(load(paths), "lrw")[0]
    assert all(table.mark(i, "lse_d") is None for i in table.frame.index)
    assert any("no best mark" in n for n in table.notes)


def test_match_gt_columns_compare_distances_to_the_gt_row_of_each_resample(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    gt = rng.normal(50, 5, 60)
    paths = [
        write_run(tmp_path, "gt", {"ofm": list(gt)}, kind="gt"),
        write_run(tmp_path, "near", {"ofm": list(gt + rng.normal(0.1, 0.2, 60))}),
        write_run(tmp_path, "far", {"ofm": list(gt + 4 + rng.normal(0, 0.2, 60))}),
    ]
    table = leaderboard_frame(load(paths), "lrw")[0]
    by_name = {str(table.frame.at[i, "name"]): i for i in table.frame.index}
    assert table.mark(by_name["near"], "ofm") == "best"


def test_renderers_show_the_interval(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    paths = [write_run(tmp_path, n, {"av_conf": list(rng.normal(m, 0.2, 30))}) for n, m in (("a", 1), ("b", 0))]
    table = leaderboard_frame(load(paths), "lrw")[0]
    assert table.intervals is not None
    half = table.intervals.half_width(0, "av_conf")
    assert half is not None
    md = to_markdown(table)
    assert f" ± {half:.2f}" in md and "percentile bootstrap interval" in md
    csv = to_csv(table)
    assert "av_conf_ci_low" in csv.splitlines()[0] and "av_conf_ci_high" in csv.splitlines()[0]
    assert "\\pm" not in to_latex(table) and "\\pm" in to_latex(table, intervals=True)
    assert "p $<$ 0.05" in to_latex(table)


def test_table_intervals_without_per_clip_values_is_none() -> None:
    import pandas as pd

    frame = pd.DataFrame({"x": [1.0]})
    assert table_intervals(frame, [("x", "x")], [None], BootstrapSettings()) is None


def test_paired_p_value_and_settings_checks() -> None:
    a = np.linspace(1, 2, 1000)
    assert paired_p_value(a, a - 5) == 0.0
    assert paired_p_value(a, a) == 1.0
    with pytest.raises(ValueError, match="level"):
        BootstrapSettings(level=1.5)


def test_speakers_are_read_from_samples(tmp_path: Path) -> None:
    path = write_run(tmp_path, "a", {"av_conf": [1.0, 2.0]}, speakers=["x", "y"])
    records = read_clip_records(path.parent)
    assert records.speakers == {"x/c000": "x", "y/c001": "y"} and records.values["av_conf"]["y/c001"] == 2.0


# ------------------------------------------------------------------- the evaluator–trainer overlap ledger


def test_cells_judged_by_the_family_a_model_was_trained_against_are_marked(tmp_path: Path) -> None:
    from benchmark.tables import render_terminal

    paths = {
        name: write_run(tmp_path, name, {"av_conf": [0.2, 0.3], "ofm": [40.0, 41.0]}) for name in ("wav2lip", "dh")
    }
    res = load(list(paths.values()))
    res[0].run.trained_against = {"syncnet": "its frozen SyncNet expert (lipsync_expert)"}
    res[0].save(paths["wav2lip"])  # the field round-trips through results.json
    res = load(list(paths.values()))
    assert res[0].run.trained_against == {"syncnet": "its frozen SyncNet expert (lipsync_expert)"}
    table = leaderboard_frame(res, "lrw", bootstrap=None)[0]
    by_name = {str(table.frame.at[i, "name"]): i for i in table.frame.index}
    assert table.overlap is not None
    assert table.overlap.at[by_name["wav2lip"], "av_conf"] and not table.overlap.at[by_name["wav2lip"], "ofm"]
    assert not table.overlap.loc[by_name["dh"]].any()
    text = render_terminal(table)
    assert "0.25⚠" in text and "wav2lip was trained against its frozen SyncNet expert" in text
    assert "\\star" in to_latex(table)


def test_wav2lip_declares_its_expert_and_no_other_model_declares_syncnet() -> None:
    from benchmark.registry import models

    declared = {name: models().get(name).trained_against for name in models().names()}
    assert "syncnet" in declared["wav2lip"] and "syncnet" in declared["wav2lip_gan"]
    assert [n for n, d in declared.items() if "syncnet" in d] == ["wav2lip", "wav2lip_gan"]
    assert "lipgan_sync_disc" in declared["lipgan"]


def test_a_set_metric_on_few_clips_is_warned_about(tmp_path: Path) -> None:
    from metrics import SMALL_SET_CLIPS, describe

    spec = describe("fvd_16f")
    assert spec is not None and spec.min_clips == SMALL_SET_CLIPS == 256
    path = write_run(tmp_path, "a", {"av_conf": [0.1, 0.2, 0.3]})
    res = load_results(path)
    res.metrics["fvd_16f"] = MetricResult(120.0, 3, 0, "lower")
    table = leaderboard_frame([res], "lrw")[0]
    assert any(n.startswith("FVD from 3 clips (under 256)") for n in table.notes)
    assert table.intervals is not None and table.intervals.half_width(0, "fvd_16f") is None
    res.metrics["fvd_16f"] = MetricResult(120.0, 300, 0, "lower")
    assert not any("FVD from" in n for n in leaderboard_frame([res], "lrw")[0].notes)
