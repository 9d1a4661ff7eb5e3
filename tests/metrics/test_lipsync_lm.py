"""Landmark lip-sync (lsync_lm): known answers on hand-made signals, the AV-offset sign, failures, the acceptance
on the synthetic corpus's test clips (GT above frozen and +-3-shifted copies, the lag reads the shift) and 1 vs 2
processes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from ddp_harness import compute_distributed, compute_single

from data.clip import SAMPLES_PER_FRAME
from data.synthetic.generator import SyntheticConfig, iter_clips, make_corpus_spec, render_clip
from data.synthetic.perturb import freeze_video, shift_audio
from metrics.backbones.landmarks import FileLandmarks
from metrics.base import EvalSample
from metrics.calibration.sync import shift_audio_frames
from metrics.functional.lipsync_lm import (
    audio_frames,
    best_lag,
    lipsync_lm,
    mouth_opening,
    voiced_frames,
)
from metrics.lipsync_lm import LandmarkLipSync

ROOT = Path(__file__).resolve().parents[2]
SHIFT = 3  # the injected shift of the acceptance (the SyncNet calibration's TEST_SHIFT)
TONE_HZ = 150.0  # a voiced-like carrier: 6 whole periods per 640-sample frame, 0.019 crossings per sample


def _face(openings: np.ndarray, iod: float = 40.0) -> np.ndarray:
    """Landmarks [T, 68, 2]: outer eye corners `iod` apart, inner lips (61-63 over 67-65) opened by
    openings * iod; every other point fixed."""
    t = len(openings)
    lm = np.zeros((t, 68, 2))
    lm[:, :, 0] = np.linspace(0.0, 60.0, 68)  # distinct, fixed points
    lm[:, 36] = [10.0, 20.0]
    lm[:, 45] = [10.0 + iod, 20.0]
    gap = np.asarray(openings) * iod
    for j, (up, low) in enumerate(zip((61, 62, 63), (67, 66, 65))):
        lm[:, up, 0] = lm[:, low, 0] = 22.0 + 8.0 * j
        lm[:, up, 1] = 50.0 - gap / 2
        lm[:, low, 1] = 50.0 + gap / 2
    return lm


def _opening_track(frames: int = 100) -> np.ndarray:
    """A mouth that opens and closes irregularly: two sinusoids of incommensurate periods (23 and 9.7 frames)."""
    t = np.arange(frames)
    return 0.25 + 0.12 * np.sin(2 * np.pi * t / 23.0) + 0.06 * np.sin(2 * np.pi * t / 9.7 + 1.0)


def _speech_for(openings: np.ndarray) -> np.ndarray:
    """Audio whose loudness (dB) is a linear function of the opening, frame by frame: a 150 Hz tone at a
    per-frame level from -30 dBFS (closed) up."""
    levels_db = -30.0 + 60.0 * np.asarray(openings)
    amp = np.repeat(10.0 ** (levels_db / 20.0), SAMPLES_PER_FRAME)
    n = amp.size
    return (amp * np.sin(2 * np.pi * TONE_HZ * np.arange(n) / 16_000.0)).astype(np.float32)


# ------------------------------------------------------------------------------------------ functional


def test_mouth_opening_known_answer_and_scale_free():
    openings = np.array([0.0, 0.1, 0.35])
    lm = _face(openings, iod=40.0)
    np.testing.assert_allclose(mouth_opening(lm), openings, atol=1e-12)
    # zoom, frame size and position do not change it: it is measured in inter-ocular distances
    np.testing.assert_allclose(mouth_opening(2.5 * lm + np.array([13.0, -7.0])), openings, atol=1e-12)
    np.testing.assert_allclose(mouth_opening(_face(openings, iod=90.0)), openings, atol=1e-12)
    with pytest.raises(ValueError, match=r"\[T, 68, 2\]"):
        mouth_opening(np.zeros((3, 20, 2)))
    bad = lm.copy()
    bad[1, 45] = bad[1, 36]
    with pytest.raises(ValueError, match="eye corners coincide in 1 frames"):
        mouth_opening(bad)


@pytest.mark.parametrize("k", [0, 1, SHIFT, -SHIFT, 5, -7])
def test_an_envelope_shifted_by_k_frames_reads_lag_k(k):
    openings = _opening_track()
    lm, audio = _face(openings), _speech_for(openings)
    # the calibration's helper: audio advanced by k frames, which syncnet_python reports as AV offset +k
    # (tests/metrics/test_sync.py::test_sign_convention_with_known_embeddings)
    res = lipsync_lm(lm, shift_audio_frames(audio, k), mouth_lead_ms=0.0)
    assert res.lag == k
    assert res.peak > 0.999
    assert res.curve.shape == (17,) and res.curve[res.lag + 8] == res.peak
    if k == 0:
        assert res.corr == res.peak
    else:
        assert res.corr < 0.9  # the clip as shown is out of sync


def test_scale_and_gain_invariance():
    openings = _opening_track(80)
    lm, audio = _face(openings), shift_audio_frames(_speech_for(openings), 2)
    ref = lipsync_lm(lm, audio, mouth_lead_ms=0.0)
    for lm2, audio2 in ((3.0 * lm + 11.0, audio), (lm, audio * 0.2), (0.5 * lm, audio * 2.5)):
        got = lipsync_lm(lm2, audio2, mouth_lead_ms=0.0)
        assert got.lag == ref.lag == 2
        np.testing.assert_allclose(got.curve, ref.curve, atol=1e-9)


def test_mouth_lead_moves_the_loudness_window():
    # the mouth opens one frame (40 ms) before its sound: with the lead compensated, in sync reads 0
    openings = _opening_track()
    lm, audio = _face(openings), shift_audio_frames(_speech_for(openings), -1)
    assert lipsync_lm(lm, audio, mouth_lead_ms=0.0).lag == -1
    assert lipsync_lm(lm, audio, mouth_lead_ms=40.0).lag == 0
    with pytest.raises(ValueError, match="lead must be >= 0"):
        audio_frames(audio, lead_ms=-5.0)


def test_vad_energy_zero_crossings_and_hangover():
    openings = _opening_track(30)
    speech = _speech_for(openings)
    speech[: 10 * SAMPLES_PER_FRAME] = 0.0  # digital silence
    rng = np.random.default_rng(0)
    speech[20 * SAMPLES_PER_FRAME :] = rng.normal(0, 0.3, 10 * SAMPLES_PER_FRAME)  # loud hiss: many zero crossings
    voiced = voiced_frames(audio_frames(speech), hangover=0)
    assert voiced.tolist() == [False] * 10 + [True] * 10 + [False] * 10
    widened = voiced_frames(audio_frames(speech), hangover=2)
    assert widened.tolist() == [False] * 8 + [True] * 14 + [False] * 8


def test_silence_and_noise_cannot_be_scored():
    lm = _face(_opening_track(50))
    with pytest.raises(ValueError, match="0 voiced frames"):
        lipsync_lm(lm, np.zeros(50 * SAMPLES_PER_FRAME, np.float32))
    noise = np.random.default_rng(1).normal(0, 0.1, 50 * SAMPLES_PER_FRAME)
    with pytest.raises(ValueError, match="0 voiced frames"):
        lipsync_lm(lm, noise)
    # a few voiced frames are not enough either (min_pairs)
    short = _speech_for(_opening_track(6))
    with pytest.raises(ValueError, match="6 voiced frames .* at least 10"):
        lipsync_lm(lm[:6], short, mouth_lead_ms=0.0)


def test_a_still_mouth_correlates_with_nothing():
    openings = _opening_track()
    res = lipsync_lm(_face(np.full(100, 0.2)), _speech_for(openings))
    assert res.lag == 0 and res.corr == 0.0 and res.peak == 0.0
    assert best_lag(np.array([np.nan, 0.5, 0.2, 0.5, 0.5])) == -1  # ties: smallest |lag|, then the negative one
    with pytest.raises(ValueError, match="no lag"):
        best_lag(np.full(5, np.nan))


# ------------------------------------------------------------------------------------------ metric


def _sample(i, clip, video_clip=None, audio=None):
    shown = video_clip if video_clip is not None else clip
    return EvalSample(
        index=i,
        clip_id=clip.clip_id,
        fake=shown.video,
        audio=clip.audio if audio is None else audio,
        real=clip.video,
        fake_landmarks=shown.landmarks,
        real_landmarks=clip.landmarks,
    )


@pytest.fixture(scope="module")
def few_clips():
    cfg = SyntheticConfig(seed=3, n_speakers=4, n_clips=4, size=96, min_seconds=2.0, max_seconds=2.6)
    return list(iter_clips(cfg))


def test_metric_values_failures_and_sign(few_clips):
    metric = LandmarkLipSync(backend=FileLandmarks())
    samples = [_sample(i, c, audio=shift_audio(c, SHIFT).audio) for i, c in enumerate(few_clips)]
    clip = few_clips[0]
    samples += [
        EvalSample(index=10, clip_id="mute", fake=clip.video, audio=None, fake_landmarks=clip.landmarks),
        EvalSample(
            index=11, clip_id="silent", fake=clip.video, audio=np.zeros_like(clip.audio), fake_landmarks=clip.landmarks
        ),
        EvalSample(index=12, clip_id="faceless", fake=clip.video, audio=clip.audio),
    ]
    metric.update(samples)
    reasons = dict(metric.failures)
    assert int(metric.n_failed) == 3 and set(reasons) == {"mute", "silent", "faceless"}
    assert "needs the clip's audio" in reasons["mute"]
    assert "0 voiced frames" in reasons["silent"]
    assert "no precomputed landmarks" in reasons["faceless"]
    idx, vals = metric.per_clip()
    assert idx.tolist() == [0, 1, 2, 3]
    # audio advanced by 3 frames: the truth's av_offset_frames (syncnet_python's reading) is +3, and so is the lag
    assert [c.truth["av_offset_frames"] for c in (shift_audio(c, SHIFT) for c in few_clips)] == [SHIFT] * 4
    assert vals[:, 0].tolist() == [float(SHIFT)] * 4
    out = metric.compute()
    assert set(out) == {"lsync_lm_offset", "lsync_lm_corr", "lsync_lm_peak"}
    assert out["lsync_lm_offset"].item() == SHIFT and out["lsync_lm_peak"] > out["lsync_lm_corr"]
    assert metric.evaluator_info["backend"] == "file"
    assert samples[0].extra["lipsync_lm"]["curve"].shape == (17,)
    with pytest.raises(ValueError, match="max_lag >= 1"):
        LandmarkLipSync(backend=FileLandmarks(), max_lag=0)


def test_config_section_builds_the_metric():
    from benchmark.config import compose

    section = compose(None, "synthetic").metrics.lipsync_lm
    assert section.landmarks == "learned"  # the synthetic corpus's drawn faces: its calibrated regressor
    settings = {k: v for k, v in section.items() if k != "landmarks"}
    metric = LandmarkLipSync(backend=FileLandmarks(), **settings)
    default = LandmarkLipSync(backend=FileLandmarks())  # the YAML states the functional module's constants
    names = ("max_lag", "min_pairs", "mouth_lead_ms", "energy_ratio", "max_zcr", "hangover")
    assert [getattr(metric, n) for n in names] == [getattr(default, n) for n in names]


def _ddp_metric():
    return LandmarkLipSync(landmarks="file")


def test_two_processes_equal_one(few_clips):
    samples = [_sample(i, c, audio=shift_audio(c, i - 1).audio) for i, c in enumerate(few_clips)]
    samples.append(_sample(4, few_clips[0], freeze_video(few_clips[0])))
    samples.append(EvalSample(index=5, clip_id="bare", fake=few_clips[0].video, audio=few_clips[0].audio))
    one = compute_single(_ddp_metric, samples)
    two = compute_distributed(_ddp_metric, samples, world_size=2)
    assert one.keys() == two.keys() == {"lsync_lm_offset", "lsync_lm_corr", "lsync_lm_peak"}
    for k, v in one.items():
        assert np.isfinite(v) and two[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k


# ------------------------------------------------------------------------------------------ acceptance


def acceptance(metric: LandmarkLipSync, clips) -> dict[str, float]:
    """Per-clip comparisons of the acceptance over `clips`: the share where GT's correlation is above the
    frozen-video copy's and each +-3-shifted copy's, and where the lag reads the injected shift +-1. A copy
    that cannot be scored counts against the metric."""
    variants = {
        "gt": lambda c: _sample(0, c),
        "frozen": lambda c: _sample(0, c, freeze_video(c)),
        "plus": lambda c: _sample(0, c, audio=shift_audio(c, SHIFT).audio),
        "minus": lambda c: _sample(0, c, audio=shift_audio(c, -SHIFT).audio),
    }
    rows: dict[str, list[tuple[float, float] | None]] = {k: [] for k in variants}
    start = time.perf_counter()
    for clip in clips:
        for name, make in variants.items():
            metric.reset()
            metric.update([make(clip)])
            _, vals = metric.per_clip()
            rows[name].append((float(vals[0, 0]), float(vals[0, 1])) if vals.shape[0] else None)
    seconds = (time.perf_counter() - start) / (len(clips) * len(variants))

    def above(other: str) -> float:
        return float(
            np.mean([g is not None and o is not None and g[1] > o[1] for g, o in zip(rows["gt"], rows[other])])
        )

    def reads(name: str, shift: int) -> float:
        return float(np.mean([r is not None and abs(r[0] - shift) <= 1 for r in rows[name]]))

    return {
        "gt_above_frozen": above("frozen"),
        "gt_above_plus3": above("plus"),
        "gt_above_minus3": above("minus"),
        "lag_gt": reads("gt", 0),
        "lag_plus3": reads("plus", SHIFT),
        "lag_minus3": reads("minus", -SHIFT),
        "seconds_per_clip": seconds,
    }


def _check(result: dict[str, float]) -> None:
    print({k: round(v, 4) for k, v in result.items()})
    for key, value in result.items():
        if key != "seconds_per_clip":
            assert value >= 0.9, result


def test_acceptance_on_synthetic_test_clips_with_truth_landmarks():
    """The default synthetic corpus's test split (its 60 held-out-speaker clips, rendered in memory), with the
    clips' exact landmarks (`file` backend): GT > frozen and GT > +-3-shifted on >= 90 % of clips, and the lag
    reads the injected shift +-1 on >= 90 %."""
    from data.corpus import SyntheticCorpus

    spec = make_corpus_spec(SyntheticCorpus().synth_config)  # the benchmark's corpus; nothing written
    clips = [render_clip(spec, c.index) for c in spec.clips if c.split == "test"]
    assert len(clips) == 60
    _check(acceptance(LandmarkLipSync(backend=FileLandmarks()), clips))


@pytest.mark.slow
def test_acceptance_with_the_calibrated_landmark_regressor():
    """The same acceptance through the synthetic corpus's own backend: the landmark regressor calibrated on its
    train split (`bench calibrate --what landmarks`, ~8 min), on the decoded test files."""
    from omegaconf import OmegaConf

    from benchmark.calibrate import calibrate_landmarks_corpus
    from data.corpus import SyntheticCorpus

    corpus = SyntheticCorpus()
    corpus.ensure(progress=False)
    settings = OmegaConf.load(ROOT / "configs" / "metrics" / "default.yaml").landmarks  # the step budget binds
    cfg = OmegaConf.create({"metrics": {"landmarks": settings}, "run": {"seed": 0, "progress": False}})
    calibrate_landmarks_corpus(cfg, corpus)
    metric = LandmarkLipSync(landmarks="learned", corpus=corpus)  # the synthetic config's choice
    assert metric.evaluator_info["backend"] == "learned" and metric.evaluator_info["status"] == "calibrated"
    _check(acceptance(metric, corpus.clips("test")))
