"""Speed columns (`bench perf --run`, `bench leaderboard --speed`) and the Diffused Heads sampler verdicts."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.perf.samplers import SamplerPoint, parse_samplers, recommended, verdicts
from benchmark.perf.speed import (
    FIRST_FRAME,
    SpeedEntry,
    SpeedSettings,
    measure_module,
    merge_entries,
    read_speed,
    write_speed,
)
from benchmark.results import MetricResult, Protocol, Results, RunInfo, find_results
from benchmark.tables import leaderboard_frame, write_leaderboard
from benchmark.tables.speed import (
    NOT_MEASURED,
    run_dirs_for,
    speed_csv_path,
    speed_markdown,
    speed_table,
    speed_terminal,
)

CPU, GPU = "CPU Test Chip (2 threads)", "NVIDIA Test GPU"


def entry(device: str, run: str = "a", fps: float = 10.0, **changes: object) -> SpeedEntry:
    base = SpeedEntry(
        device=device,
        device_type="cuda" if "GPU" in device else "cpu",
        model="wav2lip",
        run=run,
        measured="2026-01-01T00:00:00+00:00",
        clips=2,
        frames=50,
        repeats=3,
        model_fps=fps,
        e2e_fps=fps / 2,
        e2e_path="face_redraw",
        first_frame_compute_s=0.01,
        lookahead_s=0.2125,
        first_frame_latency_s=0.2225,
        lookahead_rule="frame 0's mel window",
        peak_memory_mib=512.0,
        memory_measure="process peak RSS",
        precision="fp32",
        sampler=None,
        sampler_steps=None,
        threads=2,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ speed.json


def test_speed_json_round_trip_and_per_device_merge(tmp_path: Path) -> None:
    assert read_speed(tmp_path) == []
    write_speed(tmp_path, entry(CPU, fps=10.0))
    write_speed(tmp_path, entry(GPU, fps=300.0))
    assert {e.device: e.model_fps for e in read_speed(tmp_path)} == {CPU: 10.0, GPU: 300.0}
    # a new CPU measurement replaces the CPU entry only, never the GPU's
    write_speed(tmp_path, entry(CPU, fps=12.5, notes=["again"]))
    got = {e.device: e for e in read_speed(tmp_path)}
    assert got[CPU].model_fps == 12.5 and got[CPU].notes == ["again"]
    assert got[GPU] == entry(GPU, fps=300.0)
    assert [e.device for e in merge_entries([entry(GPU)], entry(CPU))] == [CPU, GPU]


# ------------------------------------------------------------------------------------------------ the table


def _result(name: str, label: str, kind: str, fvd: float) -> Results:
    run = RunInfo(name, kind, "lrw", None, label, None, 0, None, {}, "2026-01-01T00:00:00", "2026-01-01T01:00:00")
    return Results(
        run=run,
        protocol=Protocol("table1", "abc123def456", "lrw", "test", 10, {}),
        evaluators={},
        metrics={"fvd_16f": MetricResult(fvd, 10, 0, "lower")},
    )


@pytest.fixture
def measured_runs(tmp_path: Path) -> Path:
    """Alpha measured on the CPU and the GPU, Beta on the GPU only, Gamma never; a GT row and an external one."""
    root = tmp_path / "runs"
    rows = [("a", "Alpha", "model"), ("b", "Beta", "model"), ("c", "Gamma", "baseline")]
    rows += [("gt", "GT", "gt"), ("x", "Outside", "external")]
    for i, (name, label, kind) in enumerate(rows):
        _result(name, label, kind, 100.0 + i).save(root / "lrw" / name / "results.json")
    write_speed(root / "lrw" / "a", entry(CPU, "a", fps=11.0))
    write_speed(root / "lrw" / "a", entry(GPU, "a", fps=301.0))
    write_speed(root / "lrw" / "b", entry(GPU, "b", fps=222.0))
    return root


def test_speed_blocks_never_mix_devices(measured_runs: Path) -> None:
    found = [r for _, r in find_results(measured_runs)]
    (table,) = leaderboard_frame(found, "lrw", bootstrap=None)
    speed = speed_table(table, run_dirs_for(table, found))
    assert [b.device for b in speed.blocks] == [CPU, GPU]
    for block in speed.blocks:
        # every figure of a block comes from its own device; GT and external rows have no model to time
        assert [m for m, _, _ in block.rows] == ["Alpha", "Beta", "Gamma"]
        assert all(e is None or e.device == block.device for _, _, e in block.rows)
    cpu, gpu = speed.blocks
    assert [e.model_fps if e else None for _, _, e in cpu.rows] == [11.0, None, None]
    assert [e.model_fps if e else None for _, _, e in gpu.rows] == [301.0, 222.0, None]
    text = speed_markdown(speed)
    assert f"| Beta | {' | '.join([NOT_MEASURED] * 7)} |" in text.split(f"**{GPU}**")[0]  # unmeasured on the CPU
    assert "| Beta | 222.0 | 111.0 | 0.223 | 0.212 | 512 | fp32 | one-shot |" in text
    assert "bench perf --run" in text and str(measured_runs / "lrw" / "c") in text
    assert str(measured_runs / "lrw" / "a") not in text  # Alpha is measured on every device shown
    assert f"[{CPU}]" in speed_terminal(speed)


def test_unmeasured_table_says_how_to_measure(tmp_path: Path) -> None:
    _result("a", "Alpha", "model", 1.0).save(tmp_path / "lrw" / "a" / "results.json")
    found = [r for _, r in find_results(tmp_path)]
    (table,) = leaderboard_frame(found, "lrw", bootstrap=None)
    speed = speed_table(table, run_dirs_for(table, found))
    assert speed.blocks == []
    assert f"bench perf --run {tmp_path / 'lrw' / 'a'}" in speed_markdown(speed)


def test_leaderboard_speed_in_every_format(measured_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.tables import write_report

    assert main(["leaderboard", "--runs", str(measured_runs), "--dataset", "lrw", "--speed", "--bootstrap", "0",
                 "--out", str(measured_runs / "board.md")]) == 0  # fmt: skip
    shown = capsys.readouterr().out
    assert f"[{GPU}]" in shown and "Model frames/s ↑" in shown
    assert f"**{GPU}**" in (measured_runs / "board.md").read_text()

    found = [r for _, r in find_results(measured_runs)]
    out = write_leaderboard(found, "lrw", "csv", measured_runs / "board.csv", bootstrap=None, speed=True)
    rows = speed_csv_path(out).read_text().splitlines()
    assert rows[0].startswith("method,dataset,protocol_hash,device,")
    assert len(rows) == 1 + 3  # Alpha on two devices, Beta on one: one device per row
    tex = write_leaderboard(found, "lrw", "latex", measured_runs / "board.tex", bootstrap=None, speed=True)
    assert "NVIDIA Test GPU" in tex.read_text()
    files = write_report(measured_runs, "lrw", measured_runs / "r.html", grid_clips=0, bootstrap=None, speed=True)
    html = files.html.read_text()
    assert f"<h4>{GPU}</h4>" in html and f"<h4>{CPU}</h4>" in html


# ------------------------------------------------------------------------------------------------ measuring


def _tiny(name: str, overrides: list[str] | None = None):  # type: ignore[no-untyped-def]
    import torch

    from benchmark.config import compose
    from benchmark.train import build_untrained

    cfg = compose(name, "synthetic", "tiny", overrides or [])
    torch.manual_seed(0)
    return cfg, build_untrained(cfg)


def _clips(seconds: float):  # type: ignore[no-untyped-def]
    from benchmark.perf.core import synthetic_clips

    return synthetic_clips(1, size=96, seconds=seconds)


@pytest.mark.slow  # the default run measures `static` through `bench perf --run` below
@pytest.mark.parametrize("name", ["static", "wav2lip"])
def test_tiny_measurement_gives_positive_finite_numbers(name: str) -> None:
    cfg, module = _tiny(name)
    got = measure_module(module, cfg, _clips(1.0), SpeedSettings(clips=1, repeats=1))
    for value in (got.model_fps, got.e2e_fps, got.first_frame_latency_s, got.peak_memory_mib):
        assert math.isfinite(value) and value > 0
    assert got.first_frame_latency_s >= got.lookahead_s >= 1 / 25
    assert got.device.startswith("CPU ") and got.frames == 25 and got.precision == "fp32"
    assert got.sampler_steps is None  # one-shot models sample no chain
    assert got.e2e_path == ("face_redraw" if module.redraws_faces else "whole_frame")


def _check_window_latency(module, got: SpeedEntry) -> None:  # type: ignore[no-untyped-def]
    window = int(module.cfg.window)
    assert got.lookahead_s >= window / 25
    assert got.first_frame_latency_s >= window / 25 + got.first_frame_compute_s - 1e-9
    assert got.sampler_steps == module.cfg.sample_steps


def test_windowed_model_latency_counts_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The VASA-style model's first frame waits for a whole window of audio, whatever its compute takes (the
    network is replaced by a blank generator here; the slow test below times the real one)."""
    import numpy as np

    cfg, module = _tiny("vasa")
    calls: list[int] = []

    def blank(identity, audio, **_):  # type: ignore[no-untyped-def]
        calls.append(audio.shape[1] // 640)
        return np.zeros((len(identity), audio.shape[1] // 640, *identity.shape[1:]), np.uint8)

    monkeypatch.setattr(module, "generate", blank)
    got = measure_module(module, cfg, _clips(1.0), SpeedSettings(clips=1, repeats=1), e2e=False)
    _check_window_latency(module, got)
    assert int(module.cfg.window) in calls  # the first-frame compute is the first window's
    assert math.isnan(got.e2e_fps) and "end-to-end path not measured" in got.notes


@pytest.mark.slow
def test_windowed_model_latency_counts_its_window_measured() -> None:
    cfg, module = _tiny("vasa")
    got = measure_module(module, cfg, _clips(1.0), SpeedSettings(clips=1, repeats=1))
    _check_window_latency(module, got)
    assert got.e2e_fps > 0


def test_every_registered_generator_has_a_first_frame_rule() -> None:
    from benchmark.perf.generation import generators

    assert set(generators()) <= set(FIRST_FRAME)


# ------------------------------------------------------------------------------------------------ sampler curve


def test_sampler_verdicts_on_hand_made_numbers() -> None:
    official = SamplerPoint(
        "ancestral 1000",
        fps=1.0,
        values={"av_conf": 5.0, "fmse": 20.0, "fvd_16f": 80.0},
        intervals={"av_conf": (4.5, 5.5), "fmse": (18.0, 22.0)},
    )
    fast_good = SamplerPoint("ddim 25", fps=40.0, values={"av_conf": 4.6, "fmse": 21.9, "fvd_16f": 95.0})
    fast_bad = SamplerPoint("ddim 5", fps=200.0, values={"av_conf": 4.4, "fmse": 20.0, "fvd_16f": 81.0})
    slow_good = SamplerPoint("ancestral 100", fps=10.0, values={"av_conf": 5.0, "fmse": 20.0, "fvd_16f": 80.0})
    points = [official, fast_good, fast_bad, slow_good]
    got = {v.name: v for v in verdicts(points, target_speedup=20.0)}
    assert got["ancestral 1000"].speedup == 1.0 and not got["ancestral 1000"].meets_target
    assert got["ddim 25"].within == {"av_conf": True, "fmse": True, "fvd_16f": None}
    assert got["ddim 25"].meets_target and got["ddim 25"].untested == ["fvd_16f"]  # FVD: a set metric
    assert got["ddim 5"].within["av_conf"] is False and not got["ddim 5"].meets_target
    assert got["ancestral 100"].speedup == 10.0 and not got["ancestral 100"].meets_target  # too slow
    assert recommended(list(got.values()), points) == "ddim 25"
    assert recommended(verdicts(points, target_speedup=1000.0), points) is None


def test_parse_samplers() -> None:
    specs = parse_samplers("ancestral:1000, ddim:5")
    assert [(s.method, s.steps, s.name) for s in specs] == [
        ("ancestral", 1000, "ancestral 1000"),
        ("ddim", 5, "ddim 5"),
    ]
    with pytest.raises(ValueError, match="method:steps"):
        parse_samplers("ddim")


def _lipgan_mel_first(audio):  # type: ignore[no-untyped-def]
    from models.lipgan.audio import audio_chunks

    return audio_chunks("mel", audio, 25)[0]


def _wav2lip_first(audio):  # type: ignore[no-untyped-def]
    from models.wav2lip.process import mel_chunks

    return mel_chunks(audio, 25)[0]


def _dh_mel_first(audio):  # type: ignore[no-untyped-def]
    from models.common.audio_frontends import frame_mel_windows

    return frame_mel_windows(audio, 25)[:3]  # frame 0 is conditioned on frames 0..2 (n_audio_motion_embs 2)


@pytest.mark.parametrize(
    ("model", "cfg", "first_input"),
    [
        ("wav2lip", {}, _wav2lip_first),
        ("lipgan", {"audio_features": "mel", "frame_offset": 0}, _lipgan_mel_first),
        ("diffused_heads", {"n_audio_motion_embs": 2, "audio_frontend": "mel"}, _dh_mel_first),
    ],
)
def test_lookahead_is_the_audio_frame_zero_reads(model: str, cfg: dict, first_input) -> None:  # type: ignore[no-untyped-def]
    """Audio after the lookahead never reaches frame 0's input; audio a few ms before it does."""
    from types import SimpleNamespace

    import numpy as np

    rule = FIRST_FRAME[model](SimpleNamespace(cfg=SimpleNamespace(**cfg)))
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    cut = round(rule.lookahead_s * 16000)
    later, before = audio.copy(), audio.copy()
    later[cut:] = 0.1 * rng.standard_normal(len(audio) - cut)
    before[cut - 80 :] = 0.1 * rng.standard_normal(len(audio) - cut + 80)  # 5 ms earlier
    assert np.array_equal(first_input(audio), first_input(later))
    assert not np.array_equal(first_input(audio), first_input(before))


SMALL_CORPUS = {"seed": 3, "n_speakers": 4, "n_clips": 24, "size": 96, "min_seconds": 1.2, "max_seconds": 1.8}


def test_bench_perf_run_stores_speed_with_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`bench perf --run` on a run folder (config.yaml as `bench run` saves it): the corpus's test clips, the run's
    model, the entry in <run>/speed.json."""
    from benchmark.config import compose, save_config

    overrides = [f"dataset.synth.{k}={v}" for k, v in SMALL_CORPUS.items()]
    cfg = compose("static", "synthetic", "tiny", [*overrides, f"run.out_dir={tmp_path}", "run.train=false"])
    run_dir = tmp_path / "synthetic" / "static"
    save_config(cfg, run_dir / "config.yaml")
    args = ["perf", "--run", str(run_dir), "--clips", "1", "--repeats", "1", "--device", "cpu", "--threads", "1"]
    assert main(args) == 0
    assert "frames/s" in capsys.readouterr().out
    (got,) = read_speed(run_dir)
    assert got.run == "static" and got.clips == 1 and got.device.endswith("(1 threads)")
    for value in (got.model_fps, got.e2e_fps, got.first_frame_latency_s, got.peak_memory_mib):
        assert math.isfinite(value) and value > 0
    assert got.first_frame_latency_s >= got.lookahead_s >= 1 / 25
    assert got.sampler_steps is None and got.precision == "fp32" and got.e2e_path == "whole_frame"


def test_sampler_curve_tests_fvd_through_its_feature_files(tmp_path: Path) -> None:
    """FVD has no per-clip value: the curve resamples the clip set from the feature files (the tables' set-metric
    intervals), so a sampler far from the official chain reads OUT and one drawn like it reads in."""
    import numpy as np

    from benchmark.perf.samplers import Features, SamplerPoint, _intervals, verdicts
    from benchmark.tables.set_intervals import FeatureSets

    rng = np.random.default_rng(0)
    clips = [f"c{i:02d}" for i in range(24)]
    real_dir = tmp_path / "gt_features"
    real = {c: rng.normal(size=(1, 8)) for c in clips}
    samplers = {"official": 0.3, "close": 0.3, "far": 3.0}
    features, points = [], []
    for k, (name, shift) in enumerate(samplers.items()):
        folder = tmp_path / name
        fake = {c: rng.normal(size=(1, 8)) + shift * (k == 2) + 0.05 * real[c] for c in clips}
        f = Features(folder, real_dir)
        for c in clips:
            (folder / "features").mkdir(parents=True, exist_ok=True)
            (real_dir / "fvd").mkdir(parents=True, exist_ok=True)
            np.save(folder / "features" / f"{c}.npy", fake[c])
            np.save(real_dir / "fvd" / f"{c}.npy", real[c])
            f.fake.setdefault("fvd_16f", {})[c] = f"features/{c}.npy"
            f.real.setdefault("fvd_16f", {})[c] = f"fvd/{c}.npy"
        value, _ = FeatureSets([fake[c] for c in clips], [real[c] for c in clips]).all_ones()
        features.append(f)
        points.append(SamplerPoint(name, 10.0 * (k + 1), {"fvd_16f": value}))
    found = _intervals([{}, {}, {}], {c: "" for c in clips}, points, features)
    assert all("fvd_16f" in f for f in found)
    low, high = found[0]["fvd_16f"]
    assert low <= points[0].values["fvd_16f"] <= high
    for point, interval in zip(points, found):
        point.intervals = interval
    within = [v.within["fvd_16f"] for v in verdicts(points, target_speedup=2.0)]
    assert within == [True, True, False]
