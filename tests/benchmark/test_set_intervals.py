"""Bootstrap intervals of set metrics (FID, FVD) from the per-clip features scoring keeps in run folders."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.linalg
import torch

from benchmark.results import MetricResult, Protocol, Results, RunInfo, load_results
from benchmark.tables import leaderboard_frame, to_markdown
from benchmark.tables.intervals import BootstrapSettings
from benchmark.tables.model import Table
from benchmark.tables.set_intervals import FeatureSets, covariance_ddof, frechet_replicates, trace_sqrt_small
from metrics.base import ClipFeatures, SetMetric

TARGET = "metrics.fvd:FrechetVideoDistance"
FOLDER = "features/fvd_16f-0123abcd"
SETTINGS = BootstrapSettings(replicates=300, set_replicates=200)


class _Frechet(SetMetric):
    """The Fréchet distance exactly as SetMetric computes it, on features handed in directly."""

    outputs = ("fvd_16f",)
    mode = "16f"

    def __init__(self, dim: int, covariance: str = "unbiased") -> None:
        self.feature_dim = dim
        self.covariance = covariance
        super().__init__(allow_low_n=True)

    def clip_features_batch(self, videos: Sequence[np.ndarray]) -> list[torch.Tensor]:
        raise AssertionError("features are given, never extracted here")


def metric_value(fake: Sequence[np.ndarray], real: Sequence[np.ndarray], covariance: str = "unbiased") -> float:
    metric = _Frechet(fake[0].shape[1], covariance)
    metric.update([ClipFeatures(i, f"c{i}", torch.from_numpy(f)) for i, f in enumerate(fake)])
    metric.update([ClipFeatures(i, f"c{i}", torch.from_numpy(f), real=True) for i, f in enumerate(real)])
    return float(metric.compute()["fvd_16f"])


def clip_id(i: int) -> str:
    return f"s/c{i:03d}"


def write_run(
    root: Path,
    name: str,
    features: Sequence[np.ndarray],
    *,
    real: Sequence[np.ndarray] | None = None,
    shuffle: int | None = None,
    value: float | None = None,
    output: str = "fvd_16f",
) -> Path:
    """A run folder as scoring leaves it: one .npy per clip, samples.jsonl rows naming them, results.json. The GT
    row (``real`` None) holds the real clips' features and no set-metric value; a model row's value comes from the
    metric's own code path against ``real`` (with ``output``'s covariance convention)."""
    run_dir = root / "lrw" / name
    rows = []
    for i, feats in enumerate(features):
        file = f"{FOLDER.replace('fvd_16f', output)}/{clip_id(i).replace('/', '__')}.npy"
        (run_dir / file).parent.mkdir(parents=True, exist_ok=True)
        np.save(run_dir / file, feats.astype(np.float32))
        rows.append(
            {
                "clip_id": clip_id(i),
                "index": i,
                "speaker": "",
                "values": {"lse_d": float(feats.mean())},
                "raw": {},
                "failed": {},
                "features": {TARGET: {"file": file, "n": len(feats)}},
            }
        )
    if shuffle is not None:  # as several scoring processes append them
        random.Random(shuffle).shuffle(rows)
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    kind = "gt" if real is None else "model"
    run = RunInfo(name, kind, "lrw", None, name, None, 0, None, {}, "2025-03-01T11:00:00+00:00", "2025-03-01T12:00")
    n = len(features)
    metrics = {"lse_d": MetricResult(float(np.mean([f.mean() for f in features])), n, 0, "lower")}
    if real is not None:
        stored = [f.astype(np.float32) for f in features]
        covariance = "biased" if covariance_ddof(output) == 0 else "unbiased"
        recorded = metric_value(stored, [r.astype(np.float32) for r in real], covariance) if value is None else value
        metrics[output] = MetricResult(recorded, n, 0, "lower", "16f")
    Results(run, Protocol("p", "abc123def456", "lrw", "test", n, {}), {}, metrics).save(run_dir / "results.json")
    return run_dir / "results.json"


def clips(rng: np.random.Generator, n: int, frames: int, dim: int, shift: float = 0.0) -> list[np.ndarray]:
    return [rng.normal(shift, 1.0, (frames, dim)) for _ in range(n)]


def noisy(real: Sequence[np.ndarray], rng: np.random.Generator, scale: float, shift: float = 0.0) -> list[np.ndarray]:
    """Generated features that follow their clip's real ones, as a model's output follows its input."""
    return [r + shift + rng.normal(0, scale, r.shape) for r in real]


def table_of(paths: Sequence[Path], settings: BootstrapSettings = SETTINGS) -> Table:
    return leaderboard_frame([load_results(p) for p in paths], "lrw", bootstrap=settings)[0]


def by_name(table: Table) -> dict[str, int]:
    return {str(table.frame.at[i, "name"]): int(i) for i in table.frame.index}


# ---------------------------------------------------------------------------------------------------- the formula


@pytest.mark.parametrize(("n", "frames", "dim"), [(40, 3, 8), (12, 2, 64)])
def test_all_ones_weights_give_the_metric_value(n: int, frames: int, dim: int) -> None:
    """Every clip once is the scored set: the value SetMetric.compute records (n > d: to float rounding; n < d:
    the metric's eigh route clips each null eigenvalue's round-off, sqrt(eps)-sized, which the SVD route avoids)."""
    rng = np.random.default_rng(0)
    real = [f.astype(np.float32) for f in clips(rng, n, frames, dim)]
    fake = [f.astype(np.float32) for f in noisy(real, rng, 0.5, 0.3)]
    ours, scale = FeatureSets(fake, real).all_ones()
    expected = metric_value(fake, real)
    tolerance = 1e-9 * abs(expected) if n * frames > dim else 1e-7 * scale
    assert abs(ours - expected) <= tolerance
    assert FeatureSets(fake, real).pair.small == (n * frames < dim)


@pytest.mark.parametrize(("n", "frames", "dim"), [(40, 3, 8), (12, 2, 64)])
def test_a_biased_metric_gets_its_value_back_with_unit_weights(n: int, frames: int, dim: int) -> None:
    """StyleGAN-V's fvd2048_16f divides by n: the table resamples it so (its class says so), and every clip once
    is its recorded value, which the unbiased formula would miss by about the trace part / n."""
    assert covariance_ddof("fvd2048_16f") == 0
    assert covariance_ddof("fvd_16f") == covariance_ddof("fvd_videogpt") == covariance_ddof("fid_pytorchfid") == 1
    assert covariance_ddof("not_a_metric") == 1
    rng = np.random.default_rng(10)
    real = [f.astype(np.float32) for f in clips(rng, n, frames, dim)]
    fake = [f.astype(np.float32) for f in noisy(real, rng, 0.5, 0.3)]
    expected = metric_value(fake, real, "biased")
    ours, scale = FeatureSets(fake, real, ddof=0).all_ones()
    tolerance = 1e-9 * abs(expected) if n * frames > dim else 1e-7 * scale
    assert abs(ours - expected) <= tolerance
    unbiased, _ = FeatureSets(fake, real).all_ones()
    assert abs(unbiased - expected) > 1e3 * tolerance
    ones = np.ones((1, n))
    assert frechet_replicates(fake, real, ones, ones, ddof=0)[0] == pytest.approx(expected, rel=1e-6)


def test_a_biased_metric_column_gets_intervals(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    real = clips(rng, 40, 2, 6)
    gt = write_run(tmp_path, "GT-abc123de", real, output="fvd2048_16f")
    model = write_run(tmp_path, "m", noisy(real, rng, 0.5), real=real, output="fvd2048_16f")
    table = table_of([gt, model])
    index = by_name(table)["m"]
    assert table.intervals is not None and not any("not the recorded" in n for n in table.notes), table.notes
    assert table.intervals.half_width(index, "fvd2048_16f") is not None
    # a value the unbiased formula gave is not what these features give under the column's convention
    fake = noisy(real, rng, 0.5)
    wrong = metric_value([f.astype(np.float32) for f in fake], [r.astype(np.float32) for r in real], "unbiased")
    gt = write_run(tmp_path / "b", "GT-abc123de", real, output="fvd2048_16f")
    table = table_of([gt, write_run(tmp_path / "b", "m", fake, real=real, output="fvd2048_16f", value=wrong)])
    assert table.intervals is not None and table.intervals.half_width(by_name(table)["m"], "fvd2048_16f") is None
    assert any("not the recorded" in n for n in table.notes)


@pytest.mark.parametrize(("rows1", "rows2", "dim"), [(30, 45, 200), (300, 260, 20)])
def test_the_trace_term_is_the_nuclear_norm_of_the_cross_matrix(rows1: int, rows2: int, dim: int) -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (rows1, dim)) @ rng.normal(0, 1, (dim, dim)) / np.sqrt(dim)
    b = rng.normal(0.2, 1, (rows2, dim))
    s1, s2 = a.T @ a, b.T @ b
    expected = float(np.trace(scipy.linalg.sqrtm(s1 @ s2)).real)
    # sqrtm of a singular product (rows < dim) carries sqrt(eps)-sized errors of its own
    tolerance = 1e-9 if min(rows1, rows2) > dim else 1e-6
    assert trace_sqrt_small(a, b) == pytest.approx(expected, rel=tolerance)


@pytest.mark.parametrize(("n", "frames", "dim"), [(30, 2, 100), (50, 4, 10)])
def test_both_routes_give_the_same_replicates(n: int, frames: int, dim: int) -> None:
    """The cross-matrix SVD and the d x d eigendecomposition agree on weighted (resampled) sets."""
    rng = np.random.default_rng(2)
    real = clips(rng, n, frames, dim)
    fake = noisy(real, rng, 0.7, 0.1)
    weights = rng.multinomial(n, np.ones(n) / n, size=20).astype(np.float64)
    sets = FeatureSets(fake, real)
    sets.pair.small = True
    svd = sets.replicates(weights, weights)
    sets.pair.small = False
    dense = sets.replicates(weights, weights)
    np.testing.assert_allclose(svd, dense, rtol=1e-6 if n * frames < dim else 1e-9)
    # a weight of 2 is the clip twice: the same as the set with its features repeated
    doubled = frechet_replicates(fake + fake[:1], real + real[:1], np.ones((1, n + 1)), np.ones((1, n + 1)))
    two = np.ones((1, n))
    two[0, 0] = 2
    np.testing.assert_allclose(frechet_replicates(fake, real, two, two), doubled, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------- the tables


def test_rows_from_one_distribution_are_not_marked_a_clearly_worse_one_loses(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    real = clips(rng, 60, 3, 8)
    gt = write_run(tmp_path / "a", "GT-abc123de", real)
    same_a = write_run(tmp_path / "a", "model_a", noisy(real, rng, 0.5), real=real)
    same_b = write_run(tmp_path / "a", "model_b", noisy(real, rng, 0.5), real=real)
    table = table_of([gt, same_a, same_b])
    assert table.intervals is not None and table.intervals.set_replicates == 200
    names = by_name(table)
    for name in ("model_a", "model_b"):
        low, high = table.intervals.low.at[names[name], "fvd_16f"], table.intervals.high.at[names[name], "fvd_16f"]
        assert low < table.frame.at[names[name], "fvd_16f"] < high
        assert len(table.intervals.replicates[(names[name], "fvd_16f")]) == 200
        assert table.mark(names[name], "fvd_16f") is None
    assert any("FVD: no best mark" in n for n in table.notes)
    assert table.intervals.half_width(names["GT-abc123de"], "fvd_16f") is None

    worse = write_run(tmp_path / "a", "model_worse", noisy(real, rng, 0.5, shift=0.6), real=real)
    table = table_of([gt, same_a, worse])
    names = by_name(table)
    assert table.mark(names["model_a"], "fvd_16f") == "best"
    assert table.mark(names["model_worse"], "fvd_16f") != "best"
    assert "FID / FVD: the first 200" in to_markdown(table)


def test_rows_written_in_any_order_give_identical_set_intervals(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    real = clips(rng, 30, 2, 6)
    fake = noisy(real, rng, 0.4, 0.2)
    tables = []
    for folder, shuffle in (("one", None), ("many", 5)):
        gt = write_run(tmp_path / folder, "GT-abc123de", real, shuffle=shuffle)
        tables.append(table_of([gt, write_run(tmp_path / folder, "m", fake, real=real, shuffle=shuffle)]))
    one, many = (t.intervals for t in tables)
    assert one is not None and many is not None
    assert one.low.equals(many.low) and one.high.equals(many.high)
    index = by_name(tables[0])["m"]
    assert np.array_equal(one.replicates[(index, "fvd_16f")], many.replicates[(index, "fvd_16f")])


def test_set_and_per_clip_columns_share_their_first_replicates(tmp_path: Path) -> None:
    """A replicate is one resampled test set for every column: with one clip drawn k times, both see weight k."""
    rng = np.random.default_rng(5)
    real = clips(rng, 25, 2, 4)
    fake = noisy(real, rng, 0.5)
    paths = [write_run(tmp_path, "GT-abc123de", real), write_run(tmp_path, "m", fake, real=real)]
    table = table_of(paths, BootstrapSettings(replicates=50, set_replicates=50))
    index = by_name(table)["m"]
    assert table.intervals is not None
    per_clip = table.intervals.replicates[(index, "lse_d")]
    fid = table.intervals.replicates[(index, "fvd_16f")]
    draws = np.random.default_rng(0).integers(0, 25, size=(50, 25))
    weights = np.stack([np.bincount(d, minlength=25) for d in draws]).astype(np.float64)
    lse = np.array([f.mean() for f in fake], dtype=np.float64)
    np.testing.assert_allclose(per_clip, weights @ lse / 25, rtol=1e-9)
    stored = [f.astype(np.float32) for f in fake]
    raw = frechet_replicates(stored, [r.astype(np.float32) for r in real], weights, weights)
    # shifted so that their mean is the recorded value: a resampled set's distance is biased upward
    np.testing.assert_allclose(fid, raw - (raw.mean() - table.frame.at[index, "fvd_16f"]), rtol=1e-9)
    assert (raw > table.frame.at[index, "fvd_16f"]).mean() > 0.5


def test_missing_features_or_gt_row_give_a_note_not_a_crash(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    real = clips(rng, 20, 2, 4)
    gt = write_run(tmp_path, "GT-abc123de", real)
    kept = write_run(tmp_path, "kept", noisy(real, rng, 0.5), real=real)
    gone = write_run(tmp_path, "gone", noisy(real, rng, 0.5), real=real)
    shutil.rmtree(gone.parent / "features")
    table = table_of([gt, kept, gone])
    names = by_name(table)
    assert table.intervals is not None
    assert table.intervals.half_width(names["kept"], "fvd_16f") is not None
    assert table.intervals.half_width(names["gone"], "fvd_16f") is None
    assert [n for n in table.notes if n.startswith("FVD: no interval for gone: features are gone")]

    table = table_of([kept, gone])  # no GT row: no real side
    assert table.intervals is not None and table.intervals.half_width(0, "fvd_16f") is None
    assert sum("the GT row, whose real-clip features it resamples, is not in the table" in n for n in table.notes) == 1

    shutil.rmtree(gt.parent / "features")
    table = table_of([gt, kept])
    assert any(n.startswith("FVD: no interval: the real-clip features are gone") for n in table.notes)


def test_features_that_do_not_give_the_recorded_value_are_not_used(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    real = clips(rng, 20, 2, 4)
    gt = write_run(tmp_path, "GT-abc123de", real)
    stale = write_run(tmp_path, "stale", noisy(real, rng, 0.5), real=real, value=123.0)
    table = table_of([gt, stale])
    assert table.intervals is not None and table.intervals.half_width(by_name(table)["stale"], "fvd_16f") is None
    assert any("not the recorded 123" in n for n in table.notes)


def test_a_cell_too_costly_to_resample_is_said_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.tables import set_intervals

    # the 1000-clip FID case, ~5 s a replicate on one core, is over the cap; 60 clips x 7 frames are not
    assert set_intervals.work(7000, 7000, 2048, 200) > set_intervals.MAX_WORK > set_intervals.work(420, 420, 2048, 1000)
    rng = np.random.default_rng(8)
    real = clips(rng, 20, 2, 4)
    paths = [write_run(tmp_path, "GT-abc123de", real), write_run(tmp_path, "m", noisy(real, rng, 0.5), real=real)]
    monkeypatch.setattr(set_intervals, "MAX_WORK", 0.0)
    table = table_of(paths)
    assert table.intervals is not None and table.intervals.half_width(by_name(table)["m"], "fvd_16f") is None
    assert any("m: 40 generated and 40 real vectors would take about" in n for n in table.notes)


class _MeanColour(SetMetric):
    """A cheap stand-in for FVD (the mean RGB of each frame, d = 3), run through the real scoring code."""

    outputs = ("fvd_16f",)
    feature_dim = 3
    mode = "16f"

    def check_clip(self, video: np.ndarray) -> None:
        from metrics.base import ClipScoreError

        if len(video) < 2:
            raise ClipScoreError("needs 2 frames")

    def clip_features_batch(self, videos: Sequence[np.ndarray]) -> list[torch.Tensor]:
        return [torch.from_numpy(v.reshape(len(v), -1, 3).mean(1)).float() for v in videos]


class _Clip:
    def __init__(self, clip_id: str, video: np.ndarray) -> None:
        self.clip_id, self.video, self.audio, self.landmarks = clip_id, video, None, None
        self.num_frames, self.speaker_id = len(video), ""


def test_runs_scored_by_the_pipeline_get_intervals(tmp_path: Path) -> None:
    """GT row and model row scored by benchmark.scoring (features written, the value from the metric states):
    the table finds the files, gets the recorded value back from them and resamples; a clip the generated side
    could not use stays in the real set, as in the recorded value."""
    from benchmark.features import clip_set_features
    from benchmark.scoring import score_clips

    rng = np.random.default_rng(9)
    # duck-typed clips, as the scoring tests of metrics/ use them
    clips_: list[Any] = [_Clip(f"c{i:02d}", rng.integers(0, 255, (4, 6, 6, 3), dtype=np.uint8)) for i in range(30)]
    fakes = {c.clip_id: np.clip(c.video.astype(int) + rng.integers(-20, 40), 0, 255).astype(np.uint8) for c in clips_}
    fakes["c07"] = fakes["c07"][:1]  # too short for the metric: a counted failure of the generated side
    gt_dir, run_dir = tmp_path / "lrw" / "GT-abc123de", tmp_path / "lrw" / "model"

    def metric() -> _MeanColour:
        m = _MeanColour(allow_low_n=True)
        m.evaluator_info = {"arch": "mean colour"}
        return m

    def reference(m: SetMetric) -> None:
        for i, clip in enumerate(clips_):
            feats, _ = clip_set_features(m, clip.clip_id, clip.video, gt_dir / "features", reuse=True)
            m.update([ClipFeatures(i, clip.clip_id, feats, real=True)])

    paths = []
    for name, folder, fetch, ref in (
        ("GT", gt_dir, lambda i, c: c.video, None),
        ("model", run_dir, lambda i, c: fakes[c.clip_id], reference),
    ):
        res, _ = score_clips(
            clips_, fetch, {TARGET: metric()}, ["fvd_16f"], folder / "samples.jsonl", progress=False, reference=ref
        )
        kind = "gt" if ref is None else "model"
        run = RunInfo(name, kind, "lrw", None, name, None, 0, None, {}, "2025-03-01T11:00", "2025-03-01T12:00")
        Results(run, Protocol("p", "abc123def456", "lrw", "test", 30, {}), {}, res).save(folder / "results.json")
        paths.append(folder / "results.json")
    table = table_of(paths)
    index = by_name(table)["model"]
    assert table.intervals is not None and table.intervals.set_replicates == 200
    assert table.intervals.half_width(index, "fvd_16f") is not None, table.notes
    assert len(table.intervals.replicates[(index, "fvd_16f")]) == 200
