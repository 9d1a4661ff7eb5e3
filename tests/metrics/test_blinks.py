"""Blink detection: EAR, the reference rule's events, known answers on synthetic truth and on the real fixture."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from data.synthetic.generator import SyntheticConfig, iter_clips
from data.synthetic.perturb import remove_blinks
from metrics.backbones.landmarks import FileLandmarks
from metrics.base import EvalSample
from metrics.blinks import BlinkMetrics
from metrics.functional.blinks import blink_onsets, detect_blinks, eye_aspect_ratio

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "blink_example.mp4"


@pytest.fixture(scope="module")
def clips():
    cfg = SyntheticConfig(seed=3, n_speakers=4, n_clips=12, size=96, min_seconds=2.5, max_seconds=3.0)
    return list(iter_clips(cfg))


def _sample(i, clip):
    return EvalSample(
        index=i,
        clip_id=clip.clip_id,
        fake=clip.video,
        real=clip.video,
        fake_landmarks=clip.landmarks,
        real_landmarks=clip.landmarks,
    )


def _eye_landmarks(gaps: np.ndarray, width: float = 10.0) -> np.ndarray:
    """[T, 68, 2] with both eyes `width` wide and lids `gaps` apart: EAR = gap / width."""
    lm = np.zeros((len(gaps), 68, 2))
    for start, cx in ((36, 30.0), (42, 70.0)):
        xs = cx + width * np.array([-0.5, -1 / 6, 1 / 6, 0.5, 1 / 6, -1 / 6])
        lm[:, start : start + 6, 0] = xs
        lm[:, start + 1 : start + 3, 1] = -gaps[:, None] / 2
        lm[:, start + 4 : start + 6, 1] = gaps[:, None] / 2
    return lm


def test_ear_known_answer():
    gaps = np.array([3.0, 1.0, 0.0])
    assert eye_aspect_ratio(_eye_landmarks(gaps)) == pytest.approx([0.3, 0.1, 0.0])
    with pytest.raises(ValueError, match=r"\[T, 68, 2\]"):
        eye_aspect_ratio(np.zeros((3, 5, 2)))


def test_onsets_threshold_and_distance():
    ear = np.full(30, 0.3)
    ear[5:8] = [0.1, 0.1, 0.2]  # drop 0.2 at frame 4
    ear[20:22] = [0.25, 0.25]  # drop 0.05: a blink for the 2018 threshold 0.0425, not for 0.072
    assert blink_onsets(ear).tolist() == [4]
    assert blink_onsets(ear, threshold=0.0425).tolist() == [4, 19]
    close = np.full(20, 0.3)
    close[3], close[5] = 0.1, 0.1  # two drops 2 frames apart: the distance rule keeps the larger only
    assert len(blink_onsets(close)) == 1


def test_paper_rule_quirks():
    # an open stretch that touches the segment's border is no scipy peak: the reference drops that blink
    ear = np.full(30, 0.3)
    ear[10:13] = 0.1
    ear[20:23] = 0.1
    paper = detect_blinks(ear, mode="paper")
    standard = detect_blinks(ear, mode="standard")
    assert [(e.start, e.end) for e in standard] == [(9, 13), (19, 23)]
    assert [e.frames("standard") for e in standard] == [3, 3]
    # paper: after the first onset the open stretch runs into the next onset's segment border, so scipy finds no
    # EAR peak there and the reference drops that blink; the last one ends at the last frame
    assert [(e.onset, e.start, e.end) for e in paper] == [(19, 19, 29)]


def test_standard_mode_matches_synthetic_truth(clips):
    checked = 0
    for clip in clips:
        truth = clip.truth["blinks"]
        # blink onsets closer than the rule's 4-frame distance merge; compare clips without such pairs
        if any(b[0] - a[1] < 6 for a, b in zip(truth, truth[1:])):
            continue
        events = detect_blinks(eye_aspect_ratio(clip.landmarks), mode="standard")
        assert [(e.start + 1, e.end) for e in events] == [tuple(b) for b in truth], clip.clip_id
        checked += len(truth)
    assert checked >= 3


def test_metric_aggregates_and_records_events(clips):
    samples = [_sample(i, c) for i, c in enumerate(clips)]
    metric = BlinkMetrics(mode="standard", backend=FileLandmarks())
    metric.update(samples)
    out = metric.compute()
    n_events = sum(len(v) for v in metric.events.values())
    seconds = sum(c.num_frames for c in clips) / 25.0
    assert out["n_blinks"].item() == n_events > 0
    assert out["blinks_per_s"].item() == pytest.approx(n_events / seconds)
    durs = [(e["end"] - e["start"] - 1) / 25.0 for v in metric.events.values() for e in v]
    assert out["blink_dur"].item() == pytest.approx(float(np.median(durs)))
    assert samples[0].extra["blinks"]["mode"] == "standard"
    # a duplicated clip (sampler padding) counts once
    again = BlinkMetrics(mode="standard", backend=FileLandmarks())
    again.update(samples + samples[:3])
    assert again.compute()["blink_dur"].item() == pytest.approx(out["blink_dur"].item())
    assert again.compute()["blinks_per_s"].item() == pytest.approx(out["blinks_per_s"].item())


def test_no_blinks_perturbation_gives_zero(clips):
    blinking = [c for c in clips if c.truth["blinks"]][:2]
    still = [remove_blinks(c) for c in blinking]
    assert all(not c.truth["blinks"] for c in still)
    for mode in ("paper", "standard"):
        metric = BlinkMetrics(mode=mode, backend=FileLandmarks())
        metric.update([_sample(i, c) for i, c in enumerate(still)])
        out = metric.compute()
        assert out["blinks_per_s"].item() == 0.0
        assert np.isnan(out["blink_dur"].item())


def test_missing_landmarks_is_a_counted_failure(clips):
    metric = BlinkMetrics(backend=FileLandmarks())
    metric.update([EvalSample(index=0, clip_id="x", fake=clips[0].video)])
    assert metric.n_failed.item() == 1 and "no precomputed landmarks" in metric.failures[0][1]


@pytest.mark.skipif(not FIXTURE.exists(), reason="shared/fixtures/blink_example.mp4 absent")
def test_real_fixture_two_blinks_with_dlib():
    pytest.importorskip("dlib")
    if importlib.util.find_spec("face_recognition_models") is None:  # its __init__ needs pkg_resources: not imported
        pytest.skip("face-recognition-models (dlib model files) not installed")
    from data.io import read_video
    from metrics.backbones.landmarks import build_backend

    video = read_video(FIXTURE)
    lm = build_backend("dlib").estimate(video)
    ear = eye_aspect_ratio(lm)
    # the reference procedure gives EAR 0.178-0.339, onsets at frames 13 and 36 (docs/metrics_reference.md, Blinks)
    assert ear.min() == pytest.approx(0.178, abs=2e-3) and ear.max() == pytest.approx(0.339, abs=2e-3)
    events = detect_blinks(ear, mode="paper")
    assert [e.onset for e in events] == [13, 36]
    metric = BlinkMetrics(landmarks="dlib")
    metric.update([EvalSample(index=0, clip_id="example", fake=video)])
    out = metric.compute()
    assert out["n_blinks"].item() == 2
    assert out["blinks_per_s"].item() == pytest.approx(2 / 3.0)
    assert metric.evaluator_info["status"] == "official" and len(metric.evaluator_info["sha256"]) == 64


@pytest.mark.slow
def test_learned_landmarks_known_answer_on_synthetic_test_split():
    """Acceptance: calibrate the regressor (`bench calibrate --what landmarks`), then on the GT test clips the
    blink rate is within 10 % of the truth and the median duration within 1 frame; no blinks -> 0 blinks/s."""
    from omegaconf import OmegaConf

    from benchmark.calibrate import calibrate_landmarks_corpus
    from data.corpus import SyntheticCorpus

    corpus = SyntheticCorpus()
    corpus.ensure(progress=False)
    cfg = OmegaConf.create(
        {
            "metrics": {"landmarks": {"seconds": 600, "batch_size": 32, "max_frames": 6000}},
            "run": {"seed": 0, "progress": False},
        }
    )
    entry = calibrate_landmarks_corpus(cfg, corpus)
    assert entry.calibrated and entry.meta["report"]["val_eye_px"] < 1.0
    # rendered in memory: remove_blinks re-renders from the full render parameters
    test = list(iter_clips(corpus.synth_config, [c.truth["clip_index"] for c in corpus.clips("test")]))
    metric = BlinkMetrics(mode="standard", landmarks="learned", corpus=corpus)  # the synthetic config's choice
    assert metric.evaluator_info["backend"] == "learned" and metric.evaluator_info["status"] == "calibrated"
    metric.update([EvalSample(i, c.clip_id, c.video) for i, c in enumerate(test)])
    out = metric.compute()
    seconds = sum(c.num_frames for c in test) / 25.0
    truth = [b[1] - b[0] for c in test for b in c.truth["blinks"]]
    assert out["blinks_per_s"].item() == pytest.approx(len(truth) / seconds, rel=0.10)
    assert abs(out["blink_dur"].item() * 25.0 - float(np.median(truth))) <= 1.0
    still = BlinkMetrics(mode="standard", landmarks="learned", corpus=corpus)
    still.update([EvalSample(i, c.clip_id, remove_blinks(c).video) for i, c in enumerate(test) if c.truth["blinks"]])
    assert still.compute()["blinks_per_s"].item() == 0.0
