"""Unverified is never "official": three evaluator states in every table, broken files and NaN values refused."""

from __future__ import annotations

import pytest
import torch

from benchmark.results import MetricResult, Protocol, Results, RunInfo
from benchmark.tables import leaderboard_frame, to_latex, to_markdown
from metrics import weights as store
from metrics.base import ClipMetric, EvalSample


@pytest.fixture
def fresh_store(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))


def test_non_finite_weights_are_refused_at_import(tmp_path, fresh_store):
    from benchmark.weights import import_weights
    from models.checkpoints import build_network

    sd = build_network("lipsync_expert").state_dict()
    first = next(k for k, v in sd.items() if v.is_floating_point())
    sd[first] = torch.full_like(sd[first], float("nan"))
    torch.save({"state_dict": sd}, tmp_path / "lipsync_expert.pth")
    with pytest.raises(store.WeightsError, match=r"lipsync_expert\.pth: 1 tensors hold NaN or infinite values"):
        import_weights(tmp_path / "lipsync_expert.pth", "lipsync_expert")
    assert "lipsync_expert" not in store.list_weights()


def test_an_official_name_without_a_pinned_digest_is_unverified(tmp_path, fresh_store):
    from benchmark.weights import import_weights
    from models.checkpoints import build_network

    torch.save({"state_dict": build_network("wav2lip").state_dict()}, tmp_path / "wav2lip.pth")
    entry = import_weights(tmp_path / "wav2lip.pth", "wav2lip")
    assert entry.status == "unverified" and entry.source.startswith("imported, unverified")
    pinned = store.WeightsEntry("x", "x.pt", "ab", "net", "official", "now", meta={"sha256_official": True})
    assert pinned.status == "official"
    assert store.WeightsEntry("y", "y.pt", "ab", "net", "s", "now", calibrated=True).status == "calibrated"


def test_every_table_marks_an_unverified_evaluator():
    run = RunInfo("a", "model", "synthetic", None, "Alpha", None, 0, None, {}, "2026-01-01T00:00:00+00:00", "x")
    res = Results(
        run=run,
        protocol=Protocol("synthetic-test", "feedc0ffee12", "synthetic", "test", 10, {}),
        evaluators={"syncnet": {"name": "syncnet_v2", "sha256": "ab" * 32, "status": "unverified"}},
        metrics={"av_conf": MetricResult(6.0, 10, 0, "higher")},
    )
    (table,) = leaderboard_frame([res], "synthetic")
    md = to_markdown(table)
    assert "| 6.00§ |" in md
    assert "not verified against a pinned official sha256 (syncnet=syncnet\\_v2)" in md
    assert r"$^{\S}$" in to_latex(table)


class _BrokenEvaluator(ClipMetric):
    outputs = ("score",)

    def score_clip(self, sample: EvalSample):
        return (float("nan"),) if sample.index == 1 else (1.0,)


def test_a_nan_from_the_evaluator_is_a_counted_failure():
    import numpy as np

    metric = _BrokenEvaluator()
    metric.update([EvalSample(index=i, clip_id=f"c{i}", fake=np.zeros((2, 4, 4, 3), np.uint8)) for i in range(3)])
    assert int(metric.n_failed) == 1 and metric.failures == [("c1", "the evaluator gave non-finite score")]
    assert float(metric.compute()["score"]) == 1.0
