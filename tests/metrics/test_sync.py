"""SyncNet evaluators, the syncnet_python offset algorithm, the SyncNetScores metric and calibration."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from data.clip import SAMPLES_PER_FRAME
from metrics.backbones.syncnet import (
    SyncNetS,
    SyncNetSmall,
    build_sync_evaluator,
    load_sync_evaluator_state,
    sync_evaluator_from_config,
)
from metrics.base import ClipScoreError, EvalSample
from metrics.functional.sync import (
    calc_pdist,
    prepare_clip_frames,
    shift_distances,
    sync_scores,
    sync_scores_reference,
    syncnet_frames,
    syncnet_mfcc,
)
from metrics.sync import SyncNetScores

TABLE = Path(__file__).resolve().parents[1] / "data_files" / "syncnet_python_S_state_dict.tsv"
DTYPES = {"float32": torch.float32, "int64": torch.int64}


def _table() -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    with open(TABLE) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = []
    for row in rows:
        dims = row["shape"].strip("[]").replace(" ", "")
        shape = tuple(int(d) for d in dims.split(",")) if dims else ()
        out.append((row["key"], shape, DTYPES[row["dtype"]]))
    return out


def _state_from_table(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, dtype in _table():
        if dtype == torch.int64:
            state[key] = torch.randint(0, 1000, shape, generator=gen, dtype=dtype)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    return state


# ------------------------------------------------------------------------------------------ S


def test_s_matches_official_table():
    table = _table()
    own = SyncNetS().state_dict()
    assert len(table) == 102
    assert [k for k, _, _ in table] == list(own)
    for key, shape, dtype in table:
        assert tuple(own[key].shape) == shape and own[key].dtype == dtype, key
    assert sum(p.numel() for p in SyncNetS().parameters()) == 13_631_616


def test_s_strict_load_from_table():
    state = _state_from_table()
    model = SyncNetS()
    model.load_state_dict(state, strict=True)  # what a plain strict load of syncnet_v2.model does
    model = SyncNetS()
    load_sync_evaluator_state(model, state)
    assert torch.equal(model.netcnnlip[0].weight, state["netcnnlip.0.weight"])
    # files without BatchNorm counters load too (syncnet_python's loadParameters never needed them)
    no_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    load_sync_evaluator_state(SyncNetS(), no_counters)


def test_s_rejects_misshaped_and_missing_keys():
    state = _state_from_table()
    bad = dict(state)
    bad["netfcaud.3.weight"] = torch.zeros(2048, 512)  # the old syncnetl2 width
    with pytest.raises(ValueError, match=r"netfcaud\.3\.weight.*\(2048, 512\)"):
        load_sync_evaluator_state(SyncNetS(), bad, source="syncnet_v2.model")
    missing = {k: v for k, v in state.items() if k != "netcnnaud.0.weight"}
    with pytest.raises(ValueError, match=r"missing: netcnnaud\.0\.weight"):
        load_sync_evaluator_state(SyncNetS(), missing)
    with pytest.raises(ValueError, match="unexpected: module.x"):
        load_sync_evaluator_state(SyncNetS(), {**state, "module.x": torch.zeros(1)})


def test_s_forward_shapes():
    model = SyncNetS().eval()
    with torch.inference_mode():
        assert model.forward_aud(torch.randn(2, 1, 13, 20)).shape == (2, 1024)
        lip = torch.rand(1, 3, 5, 224, 224) * 255
        assert model.forward_lip(lip).shape == (1, 1024)
        assert model.forward_lipfeat(lip).shape == (1, 512)


def test_evaluator_configs_roundtrip():
    for model in (SyncNetS(), SyncNetSmall(width=0.25, embed_dim=64)):
        config = model.evaluator_config
        rebuilt = sync_evaluator_from_config(config)
        assert type(rebuilt) is type(model) and rebuilt.evaluator_config == config
        load_sync_evaluator_state(rebuilt, model.state_dict())
    assert isinstance(build_sync_evaluator("syncnet_v2"), SyncNetS)
    with pytest.raises(ValueError, match="valid: syncnet_v2, small"):
        build_sync_evaluator("syncnet")


def test_small_interface_and_unit_norm():
    model = SyncNetSmall(width=0.25, embed_dim=64).eval()
    model.set_mfcc_stats(torch.full((13,), 2.0), torch.full((13,), 3.0))
    assert "mfcc_mean" in model.state_dict()
    x = torch.rand(3, 3, 5, 224, 224) * 255
    with torch.inference_mode():
        lip = model.forward_lip(x)
        aud = model.forward_aud(torch.randn(3, 1, 13, 20))
        frames = model.prepare_lip_frames(x.transpose(1, 2).reshape(15, 3, 224, 224)).view(3, 5, 96, 96)
        assert torch.equal(model.forward_lip_prepared(frames), lip)
    assert lip.shape == aud.shape == (3, 64)
    assert torch.allclose(lip.norm(dim=1), torch.ones(3)) and torch.allclose(aud.norm(dim=1), torch.ones(3))


# ------------------------------------------------------------------------------------------ algorithm


def _random_clip(frames: int, seed: int = 0, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    audio = (rng.standard_normal(frames * SAMPLES_PER_FRAME + 123) * 0.1).astype(np.float32)
    return video, audio


@pytest.mark.parametrize(
    "make",
    [lambda: SyncNetSmall(), lambda: SyncNetSmall(width=1.0, embed_dim=128)],
    ids=["small-default", "small-main"],
)
def test_fast_path_equals_reference(make):
    torch.manual_seed(0)
    model = make().eval()
    video, audio = _random_clip(47)
    fast = sync_scores(model, video, audio)
    ref = sync_scores_reference(model, video, audio)
    assert fast.num_windows == ref.num_windows == 47 - 5
    assert fast.offset == ref.offset
    assert fast.conf == ref.conf and fast.min_dist == ref.min_dist
    np.testing.assert_array_equal(fast.mdist, ref.mdist)
    assert len(fast.mdist) == 31
    # another batch size changes nothing but the batching
    assert sync_scores(model, video, audio, batch_size=7).offset == ref.offset


def test_fast_path_equals_reference_s():
    torch.manual_seed(0)
    model = SyncNetS().eval()
    video, audio = _random_clip(9, size=80)
    fast, ref = sync_scores(model, video, audio, vshift=3), sync_scores_reference(model, video, audio, vshift=3)
    assert (fast.offset, fast.conf, fast.min_dist) == (ref.offset, ref.conf, ref.min_dist)
    np.testing.assert_array_equal(fast.mdist, ref.mdist)


def test_shift_distances_equals_calc_pdist():
    gen = torch.Generator().manual_seed(1)
    v, a = torch.randn(23, 16, generator=gen), torch.randn(23, 16, generator=gen)
    for vshift in (1, 5, 15):
        assert torch.equal(shift_distances(v, a, vshift), torch.stack(calc_pdist(v, a, vshift), 1))


class _BinaryPatternEvaluator(nn.Module):
    """Hand-built evaluator with a known answer.

    Frame t of the test video is bright or dark, and frame t of the audio loud or quiet, following the same
    random bit sequence b_t. A video window embeds as the +-1 vector of its 5 frames' brightness bits; an
    audio window as the bits read from MFCC c0 (log energy) at columns 4j + 1, the 25 ms frames that lie
    entirely inside video frame j. So video window i and audio window j are at distance 0 exactly when they
    cover the same bits.
    """

    def __init__(self, c0_threshold: float) -> None:
        super().__init__()
        self.c0_threshold = c0_threshold

    def prepare_lip_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.mean(dim=(1, 2, 3))

    def forward_lip_prepared(self, windows: torch.Tensor) -> torch.Tensor:
        return torch.where(windows > 127.5, 1.0, -1.0)

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_lip_prepared(x.mean(dim=(1, 3, 4)))

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x[:, 0, 0, 1::4] > self.c0_threshold, 1.0, -1.0)


def _bit_clip(frames: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, frames)
    video = np.where(bits[:, None, None, None] == 1, 200, 50).astype(np.uint8)
    video = np.broadcast_to(video, (frames, 32, 32, 3)).copy()
    gain = np.repeat(np.where(bits == 1, 0.5, 0.005), SAMPLES_PER_FRAME)
    audio = (rng.uniform(-1, 1, frames * SAMPLES_PER_FRAME) * gain).astype(np.float32)
    return video, audio


def _advance(audio: np.ndarray, k: int) -> np.ndarray:
    # k > 0: the sound of frame v is heard at frame v - k (first 640 k samples dropped, zeros appended)
    n = abs(k) * SAMPLES_PER_FRAME
    if k >= 0:
        return np.concatenate([audio[n:], np.zeros(n, audio.dtype)])
    return np.concatenate([np.zeros(n, audio.dtype), audio[: audio.size - n]])


@pytest.mark.parametrize("k", [0, 1, 3, -2, -5, 9])
def test_sign_convention_with_known_embeddings(k):
    video, audio = _bit_clip()
    c0 = syncnet_mfcc(audio)[0]
    evaluator = _BinaryPatternEvaluator(c0_threshold=float((c0.max() + c0.min()) / 2))
    shifted = _advance(audio, k)
    for scorer in (sync_scores, sync_scores_reference):
        res = scorer(evaluator, video, shifted)
        assert res.offset == k
        # video window i matches audio window i - k: distance 0 wherever that window exists in the clip
        assert res.mdist[15 - k] == res.min_dist < 1.0
        assert res.conf > 1.0


def test_calibration_shift_matches_generator_perturbation(synthetic_clips):
    from data.synthetic.perturb import shift_audio
    from metrics.calibration.sync import shift_audio_frames

    clip = synthetic_clips[0]
    for k in (3, -3, 1):
        np.testing.assert_array_equal(shift_audio_frames(clip.audio, k), shift_audio(clip, k).audio)
        np.testing.assert_array_equal(shift_audio_frames(clip.audio, k), _advance(clip.audio, k))


def test_in_sync_bit_clip_has_zero_distance():
    video, audio = _bit_clip()
    c0 = syncnet_mfcc(audio)[0]
    res = sync_scores(_BinaryPatternEvaluator(float((c0.max() + c0.min()) / 2)), video, audio)
    assert res.offset == 0 and res.min_dist == pytest.approx(np.sqrt(5) * 1e-6, abs=1e-5)


def test_short_clips_and_crop_modes():
    model = SyncNetSmall(width=0.25, embed_dim=64)
    video, audio = _random_clip(6)
    assert sync_scores(model, video, audio).num_windows == 1
    with pytest.raises(ClipScoreError, match="at least 6"):
        sync_scores(model, video[:5], audio)
    with pytest.raises(ClipScoreError, match="at least 6"):
        sync_scores(model, video, audio[: 5 * SAMPLES_PER_FRAME + 639])
    with pytest.raises(ClipScoreError, match="no face track"):  # random pixels hold no face to track
        sync_scores(model, video, audio, crop="tracked")
    with pytest.raises(ValueError, match="valid crop modes"):
        SyncNetScores(model, crop="face")
    frames = syncnet_frames(video)
    assert frames.shape == (6, 224, 224, 3) and frames.dtype == np.uint8


# ------------------------------------------------------------------------------------------ metric


@pytest.fixture(scope="module")
def synthetic_clips():
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(SyntheticConfig(seed=5, n_clips=6, size=96, min_seconds=1.0, max_seconds=1.6))
    return [render_clip(spec, i) for i in range(6)]


def _samples(clips) -> list[EvalSample]:
    return [EvalSample(index=i, clip_id=c.clip_id, fake=c.video, audio=c.audio) for i, c in enumerate(clips)]


def test_metric_values_and_state_merge(synthetic_clips):
    torch.manual_seed(0)
    evaluator = SyncNetSmall(width=0.25, embed_dim=64)
    samples = _samples(synthetic_clips)
    samples.append(EvalSample(index=6, clip_id="short", fake=samples[0].fake[:4], audio=samples[0].audio))
    samples.append(EvalSample(index=7, clip_id="silent", fake=samples[0].fake, audio=None))

    single = SyncNetScores(evaluator, weights_name="sync_eval_small-test", weights_sha256="ab" * 32)
    single.update(samples)
    assert single.evaluator_info["arch"] == "small" and single.evaluator_info["sha256"] == "ab" * 32
    assert int(single.n_failed) == 2 and {cid for cid, _ in single.failures} == {"short", "silent"}
    idx, vals = single.per_clip()
    assert idx.tolist() == list(range(6))
    assert torch.equal(vals[:, 1], vals[:, 3])  # av_conf == lse_c
    for i, clip in enumerate(synthetic_clips):
        res = sync_scores(evaluator, clip.video, clip.audio)
        assert vals[i].tolist() == [float(res.offset), res.conf, res.min_dist, res.conf]

    # two ranks with disjoint clips, states merged as DDP's cat/sum reductions do
    rank0, rank1 = SyncNetScores(evaluator), SyncNetScores(evaluator)
    rank0.update(samples[::2])
    rank1.update(samples[1::2])
    rank0.merge_state(rank1)
    idx2, vals2 = rank0.per_clip()
    assert torch.equal(idx2, idx) and torch.equal(vals2, vals)
    assert int(rank0.n_failed) == 2
    merged, whole = rank0.compute(), single.compute()
    assert all(torch.equal(merged[k], whole[k]) for k in SyncNetScores.outputs)


def test_metric_keeps_evaluator_in_eval_mode():
    metric = SyncNetScores(SyncNetSmall(width=0.25, embed_dim=64))
    metric.train()
    assert not metric.evaluator.training
    assert not any(p.requires_grad for p in metric.evaluator.parameters())


class _SyntheticLike:
    """A corpus stub that looks synthetic to the old sniffing (`synth_config`): the choice must not depend on it."""

    name = "synthetic"
    synth_config = object()

    def fingerprint(self):
        return {"dataset": "synthetic", "clips": "stub"}


def test_evaluator_choice_is_the_configs_not_the_corpus_type(tmp_path, monkeypatch):
    """`auto` = syncnet_v2 on any corpus, `calibrated` = this corpus's calibration; the synthetic corpus chooses
    `calibrated` in its dataset config (configs/datasets/synthetic.yaml `metrics:`)."""
    from benchmark.config import compose
    from metrics import weights as store
    from metrics.sync import resolve_sync_evaluator

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path))
    corpus = _SyntheticLike()
    with pytest.raises(store.WeightsError, match="evaluator=calibrated"):
        SyncNetScores.calibration_needed({"evaluator": "auto"}, corpus)
    assert resolve_sync_evaluator("calibrated", corpus) is None
    assert SyncNetScores.calibration_needed({"evaluator": "calibrated"}, corpus) == "sync"
    blob = {"x": torch.zeros(1)}
    store.register_object(blob, "syncnet_v2", "syncnet_v2", "official", False)
    mine = store.register_object(
        blob,
        "sync_eval_small-synthetic-{content8}",
        "sync_eval_small",
        "calibrated",
        True,
        {"corpus": corpus.fingerprint()},
    )
    assert resolve_sync_evaluator("auto", corpus) == "syncnet_v2"
    assert resolve_sync_evaluator("calibrated", corpus) == mine.name
    assert SyncNetScores.calibration_needed({"evaluator": "calibrated"}, corpus) is None
    assert compose(None, "synthetic").metrics.sync.evaluator == "calibrated"
    assert compose(None, "crema").metrics.sync.evaluator == "auto"


# ------------------------------------------------------------------------------------------ calibration


def test_training_inputs_equal_evaluation_inputs(synthetic_clips):
    from metrics.calibration.sync import JITTER, _prepare_train

    model = SyncNetSmall(width=0.25, embed_dim=64)
    clip = synthetic_clips[0]
    prepared = _prepare_train(model, clip)
    with torch.no_grad():
        evaluated = model.lower_half(prepare_clip_frames(model, syncnet_frames(clip.video)))
    centre = prepared.frames[:, JITTER : JITTER + 48, JITTER : JITTER + 96]
    assert torch.equal(centre, evaluated[: centre.shape[0]])


def test_calibration_is_deterministic(synthetic_clips):
    from metrics.calibration.sync import calibrate_sync_evaluator

    kwargs = dict(seconds=60, seed=3, arch_kwargs={"width": 0.25, "embed_dim": 32}, max_steps=3, check_every=2)
    model_a, report_a = calibrate_sync_evaluator(synthetic_clips[:4], synthetic_clips[4:], **kwargs)
    model_b, report_b = calibrate_sync_evaluator(synthetic_clips[:4], synthetic_clips[4:], **kwargs)
    assert report_a.steps == 3 and report_a.stop_reason == "max_steps" and report_a.n_val == 2
    sa, sb = model_a.state_dict(), model_b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["mfcc_std"], torch.ones(13))  # training statistics stored with the weights
    assert report_a.checks and {"in_sync_rate", "plus3_rate"} <= set(report_a.checks[0])
    with pytest.raises(ValueError, match="'small' evaluator only"):
        calibrate_sync_evaluator(synthetic_clips[:1], synthetic_clips[1:2], arch="syncnet_v2")


@pytest.mark.slow
def test_calibrated_evaluator_measures_offsets_on_held_out_speakers(calibration_splits):
    """End to end: calibrate on ~60 training clips for <= 90 s, then score unseen test-split speakers through
    the metric path (RGB video -> 224x224 BGR frames -> evaluator), with the generator's own perturbations."""
    from data.synthetic.perturb import freeze_video, shift_audio
    from metrics.calibration.sync import calibrate_sync_evaluator

    train, val, test = calibration_splits["train"], calibration_splits["val"], calibration_splits["test"]

    start = time.perf_counter()
    model, report = calibrate_sync_evaluator(train, val, seconds=90, seed=0)
    assert report.train_seconds < 90 + 15  # the training budget, plus at most a step/check
    elapsed = time.perf_counter() - start
    print(f"calibration: {elapsed:.1f} s, report {report.to_dict()}")

    def scores(clips):
        return [sync_scores(model, c.video, c.audio) for c in clips]

    in_sync = scores(test)
    plus3 = scores([shift_audio(c, 3) for c in test])
    minus3 = scores([shift_audio(c, -3) for c in test])
    frozen = scores([freeze_video(c) for c in test])
    rate_sync = np.mean([abs(r.offset) <= 1 for r in in_sync])
    rate_plus = np.mean([abs(r.offset - 3) <= 1 for r in plus3])
    rate_minus = np.mean([abs(r.offset + 3) <= 1 for r in minus3])
    conf_sync, conf_frozen = np.mean([r.conf for r in in_sync]), np.mean([r.conf for r in frozen])
    print(
        f"held-out test clips n={len(test)}: in-sync {rate_sync:.3f}, +3 {rate_plus:.3f}, -3 {rate_minus:.3f}, "
        f"conf in-sync {conf_sync:.3f} vs frozen {conf_frozen:.3f}"
    )
    assert rate_sync >= 0.9
    assert rate_plus >= 0.9
    assert conf_frozen < conf_sync
