"""The calibration registry: metrics name what they need, the runner and `bench calibrate` run it."""

from __future__ import annotations

import time

import pytest

import metrics
from benchmark import calibrate, scoring
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
    assert scoring.prepare_evaluators(cfg, corpus) == ["toy-synthetic-00000000"]
    assert calls == [corpus]


def _toy_calibrator(cfg, corpus):  # replaced in the test
    raise AssertionError


class _Corpus:
    name = "synthetic"


class _Entry:
    name = "toy-synthetic-00000000"
    meta: dict = {}


def test_unknown_calibration_suggests(capsys):
    with pytest.raises(Exception, match="sync"):
        calibrate.run_calibration("synk", None, None)
    assert main(["calibrate", "--dataset", "synthetic", "--what", "synk"]) == 2
    assert "Did you mean 'sync'" in capsys.readouterr().err


def test_sync_budget_excludes_decoding_and_too_few_steps_are_reported(tmp_path, monkeypatch, capsys, clips_corpus):
    """The time budget covers the training loop only: decoding slower than the whole budget still leaves the
    steps. A calibration that stops below min_steps says so; it is still registered, named and hashed."""
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip
    from metrics.calibration import sync as sync_calibration

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path))
    spec = make_corpus_spec(SyntheticConfig(seed=1, n_speakers=4, n_clips=4, size=96, min_seconds=1.0, max_seconds=1.0))
    corpus = clips_corpus([render_clip(spec, i) for i in range(4)], 3, "test-budget")
    decode = sync_calibration._prepare_train

    def prepare_slowly(model, clip):
        time.sleep(1.0)  # a busy machine's decode: 3 train clips take 3 s, longer than the 2 s budget
        return decode(model, clip)

    monkeypatch.setattr(sync_calibration, "_prepare_train", prepare_slowly)
    overrides = ["metrics.calibrate.seconds=2", "metrics.calibrate.max_steps=1", "run.progress=false"]
    report = calibrate.calibrate_corpus(compose(None, "synthetic", None, overrides), corpus).meta["report"]
    assert report["preprocess_seconds"] > 3.0 and (report["steps"], report["stop_reason"]) == (1, "max_steps")
    assert "warning" not in capsys.readouterr().err

    cfg = compose(None, "synthetic", None, ["metrics.calibrate.seconds=0", "run.progress=false"])
    entry = calibrate.calibrate_corpus(cfg, corpus)
    assert (entry.meta["report"]["steps"], entry.meta["report"]["stop_reason"]) == (0, "time")
    assert "got 0 steps" in capsys.readouterr().err and entry.name.startswith("sync_eval_small-synthetic-")


def test_landmark_calibration_takes_a_step_count_from_the_config(tmp_path, monkeypatch, clips_corpus):
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path))
    spec = make_corpus_spec(SyntheticConfig(seed=2, n_speakers=4, n_clips=4, size=96, min_seconds=1.0, max_seconds=1.0))
    corpus = clips_corpus([render_clip(spec, i) for i in range(4)], 3, "test-budget")
    overrides = ["metrics.landmarks.max_steps=3", "metrics.landmarks.batch_size=4", "run.progress=false"]
    entry = calibrate.calibrate_landmarks_corpus(compose(None, "synthetic", None, overrides), corpus)
    assert entry.meta["report"]["steps"] == 3 and entry.name.startswith("landmark_regressor-synthetic-")


def test_lipreader_calibration_is_registered_under_its_network_and_corpus(tmp_path, monkeypatch, clips_corpus):
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path))
    spec = make_corpus_spec(SyntheticConfig(seed=3, n_speakers=4, n_clips=4, size=96, min_seconds=1.0, max_seconds=1.0))
    corpus = clips_corpus([render_clip(spec, i) for i in range(4)], 3, "test-budget")
    steps = ["max_steps=2", "min_steps=1", "eval_every=1"]
    overrides = [f"metrics.lipreader.calibrate.{s}" for s in steps] + ["run.progress=false"]
    entry = calibrate.calibrate_lipreader_corpus(compose(None, "synthetic", None, overrides), corpus)
    assert entry.calibrated and entry.name.startswith("lipreader_small-synthetic-")
    assert entry.name.endswith(entry.content[:8]) and entry.meta["report"]["steps"] == 2
