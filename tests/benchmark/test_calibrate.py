"""The calibration registry: metrics name what they need, the runner and `bench calibrate` run it."""

from __future__ import annotations

import pytest

import metrics
from benchmark import calibrate, runner
from benchmark.cli import main
from benchmark.config import compose
from metrics.base import ClipMetric


class NeedsToy(ClipMetric):
    """A metric that needs a corpus calibration only in one setting, as the landmark metrics do."""

    outputs = ("toy",)
    config_section = "flow"

    @classmethod
    def calibration_needed(cls, settings, corpus):
        return "toy" if settings["mode"] == "paper" else None

    def score_clip(self, sample):
        return (0.0,)


def test_calibrations_needed_and_run(monkeypatch):
    monkeypatch.setitem(metrics.METRICS, "toy", metrics.MetricSpec("test_calibrate:NeedsToy", "lower", "toy"))
    cfg = compose("static", "synthetic", None, ["metrics.names=[ofm,toy]"])
    assert calibrate.calibrations_needed(cfg, corpus=None) == ["toy"]
    cfg.metrics.flow.mode = "standard"
    assert calibrate.calibrations_needed(cfg, corpus=None) == []

    calls = []
    monkeypatch.setitem(calibrate.CALIBRATORS, "toy", "test_calibrate:_toy_calibrator")
    monkeypatch.setattr("test_calibrate._toy_calibrator", lambda cfg, corpus: calls.append(corpus) or _Entry())
    cfg.metrics.flow.mode = "paper"
    cfg.metrics.names = ["toy"]
    corpus = _Corpus()
    assert runner.prepare_evaluators(cfg, corpus) is None  # no SyncNet metric: no evaluator
    assert calls == [corpus]


def _toy_calibrator(cfg, corpus):  # replaced in the test
    raise AssertionError


class _Corpus:
    name = "synthetic"


class _Entry:
    name = "toy-synthetic-00000000"


def test_unknown_calibration_suggests(capsys):
    with pytest.raises(Exception, match="sync"):
        calibrate.run_calibration("synk", None, None)
    assert main(["calibrate", "--dataset", "synthetic", "--what", "synk"]) == 2
    assert "Did you mean 'sync'" in capsys.readouterr().err
