"""The paper variants of FVD: StyleGAN-V's `fvd2048_16f` (biased covariance, seeded random real offsets, the 2048-clip
cap) against an independent numpy re-implementation of its formula, and VideoGPT/TATS's `fvd_videogpt`
(state-dict I3D only, its own preprocessing) against an independent re-implementation of theirs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from test_fvd import _ScriptedI3D

from benchmark.features import clip_set_features
from metrics.backbones.i3d import StateDictI3D
from metrics.base import ClipFeatures, EvalSample
from metrics.fvd import (
    FrechetVideoDistance,
    FrechetVideoDistanceStyleGANV,
    FrechetVideoDistanceVideoGPT,
    real_window_start,
)


def stylegan_v_fvd(fake: np.ndarray, real: np.ndarray) -> float:
    """StyleGAN-V's `FeatureStats` (float32 features, float64 sums, divided by n) and `compute_fvd` (scipy sqrtm of
    sigma_gen @ sigma_real, real part), written out independently."""

    def mean_cov(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x64 = np.asarray(x, dtype=np.float32).astype(np.float64)
        mean = x64.sum(axis=0) / len(x64)
        return mean, (x64.T @ x64) / len(x64) - np.outer(mean, mean)

    mu_gen, sigma_gen = mean_cov(fake)
    mu_real, sigma_real = mean_cov(real)
    m = np.square(mu_gen - mu_real).sum()
    s, _ = scipy.linalg.sqrtm(np.dot(sigma_gen, sigma_real), disp=False)
    return float(np.real(m + np.trace(sigma_gen + sigma_real - s * 2)))


def fixed_features(seed: int, n_fake: int, n_real: int, dim: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((dim, dim)) / 20
    fake = (rng.standard_normal((n_fake, dim)) @ mix).astype(np.float32)
    real = (rng.standard_normal((n_real, dim)) @ mix + 0.1).astype(np.float32)
    return fake, real


def feed(metric: FrechetVideoDistance, fake: np.ndarray, real: np.ndarray) -> None:
    """One clip per feature vector, as `fvd2048_16f` takes one window per clip."""
    metric.update([ClipFeatures(i, f"f{i}", torch.from_numpy(f[None])) for i, f in enumerate(fake)])
    metric.update([ClipFeatures(i, f"r{i}", torch.from_numpy(r[None]), real=True) for i, r in enumerate(real)])


# ------------------------------------------------------------------------------------------------ fvd2048_16f


def test_fvd2048_16f_equals_stylegan_v_formula() -> None:
    fake, real = fixed_features(5, 600, 650)
    metric = FrechetVideoDistanceStyleGANV(weights="random")
    feed(metric, fake, real)
    ours = metric.compute()["fvd2048_16f"].item()
    assert ours == pytest.approx(stylegan_v_fvd(fake, real), rel=1e-6)
    # the unbiased fvd_16f on the same features is a different number: the covariance convention is the variant's
    unbiased = FrechetVideoDistance(weights="random")
    feed(unbiased, fake, real)
    assert unbiased.compute()["fvd_16f"].item() > ours * (1 + 1e-4)
    assert metric.evaluator_info is not None and metric.evaluator_info["covariance"] == "biased"
    assert metric.evaluator_info["max_clips"] == 2048 and metric.evaluator_info["protocol"].startswith("StyleGAN-V")


def test_biased_is_unbiased_less_the_trace_part_over_n() -> None:
    """With n vectors per set, d_biased = d_unbiased - (tr S1 + tr S2 - 2 tr (S1 S2)^(1/2)) / n exactly."""
    fake, real = fixed_features(6, 500, 500)
    biased, unbiased = FrechetVideoDistanceStyleGANV(weights="random"), FrechetVideoDistance(weights="random")
    feed(biased, fake, real)
    feed(unbiased, fake, real)
    diff = fake.astype(np.float64).mean(0) - real.astype(np.float64).mean(0)
    trace_part = unbiased.compute()["fvd_16f"].item() - float(diff @ diff)
    expected = unbiased.compute()["fvd_16f"].item() - trace_part / 500
    assert biased.compute()["fvd2048_16f"].item() == pytest.approx(expected, rel=1e-9)


def test_clips_beyond_2048_are_capped_not_failed() -> None:
    fake, real = fixed_features(7, 420, 420)
    metric = FrechetVideoDistanceStyleGANV(weights="random")
    feed(metric, fake, real)
    value = metric.compute()["fvd2048_16f"].item()
    extra = torch.full((1, 400), 50.0)  # far off: used, it would move the value
    metric.update([ClipFeatures(2048 + i, f"x{i}", extra, real=i % 2 == 0) for i in range(6)])
    metric.update([EvalSample(4000, "y", np.zeros((16, 8, 8, 3), np.uint8), real=np.zeros((16, 8, 8, 3), np.uint8))])
    assert metric.compute()["fvd2048_16f"].item() == value
    assert int(metric.fake_capped) == 4 and int(metric.real_capped) == 4 and metric.n_capped() == 4
    assert int(metric.n_failed) == 0 and metric.n_clips() == 420
    assert metric.is_capped(2048) and not metric.is_capped(2047)
    assert not FrechetVideoDistance(weights="random").is_capped(10**6)  # fvd_16f: every clip


# ------------------------------------------------------------------------------------------------ real offsets


def test_real_offsets_are_seeded_per_clip_and_generated_clips_start_at_zero(tmp_path) -> None:
    starts = [real_window_start(0, f"spk/clip{i:03d}", 100) for i in range(40)]
    assert starts == [real_window_start(0, f"spk/clip{i:03d}", 100) for i in range(40)]
    assert all(0 <= s <= 100 - 16 for s in starts) and len(set(starts)) > 20
    assert starts != [real_window_start(1, f"spk/clip{i:03d}", 100) for i in range(40)]
    assert {real_window_start(3, f"c{i}", 16) for i in range(20)} == {0}  # a 16-frame clip has one window
    assert max(real_window_start(0, f"c{i}", 17) for i in range(50)) == 1  # both ends of [0, T - 16] occur

    seen: list[np.ndarray] = []

    def record(videos: Sequence[np.ndarray]) -> list[torch.Tensor]:
        seen.extend(videos)
        return [torch.zeros(1, 400) for _ in videos]

    metric = FrechetVideoDistanceStyleGANV(weights="random", offset_seed=7)
    metric.clip_features_batch = record  # type: ignore[method-assign]
    video = np.broadcast_to(np.arange(60, dtype=np.uint8)[:, None, None, None], (60, 4, 4, 3)).copy()
    start = real_window_start(7, "s/c1", 60)
    metric.clip_features(video, clip_id="s/c1", real=True)
    metric.clip_features(video, clip_id="s/c1")
    metric.update([EvalSample(0, "s/c1", video, real=video)])
    fake_frames = [v[:, 0, 0, 0].tolist() for v in (seen[1], seen[2])]
    real_frames = [v[:, 0, 0, 0].tolist() for v in (seen[0], seen[3])]
    assert real_frames == [list(range(start, start + 16))] * 2
    # the generated clip goes in whole: its one window starts at 0
    assert fake_frames == [list(range(60))] * 2 and metric.window_starts(60) == [0]
    with pytest.raises(ValueError, match="clip id"):
        metric.clip_features(video, real=True)

    # the real side's features are cached apart from a generated clip's of the same id, and reused
    real_feats, real_path = clip_set_features(metric, "s/c1", video, tmp_path, real=True)
    _, fake_path = clip_set_features(metric, "s/c1", video, tmp_path)
    assert real_path != fake_path and real_path.parent.name.startswith("fvd2048_16f-")
    n_seen = len(seen)
    again, path = clip_set_features(metric, "s/c1", video, tmp_path, reuse=True, real=True)
    assert path == real_path and len(seen) == n_seen and torch.equal(again, real_feats)
    # fvd_16f's sides see the same frames: one cache entry for both
    plain = FrechetVideoDistance(weights="random")
    plain.clip_features_batch = record  # type: ignore[method-assign]
    assert (
        clip_set_features(plain, "s/c1", video, tmp_path, real=True)[1]
        == clip_set_features(plain, "s/c1", video, tmp_path)[1]
    )


def test_reference_set_takes_the_real_windows_and_counts_capped_clips(tmp_path) -> None:
    """`benchmark.features.reference_features` (the real side of every generated run) extracts with real=True,
    caches per protocol, and never extracts a clip beyond the cap."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from benchmark.features import features_missing, reference_features

    seen: list[np.ndarray] = []

    def record(videos: Sequence[np.ndarray]) -> list[torch.Tensor]:
        seen.extend(videos)
        return [torch.full((1, 400), float(v[0, 0, 0, 0])) for v in videos]

    cfg = OmegaConf.create({"run": {"out_dir": str(tmp_path)}, "dataset": {"name": "synthetic"}})
    protocol = SimpleNamespace(hash="0123456789ab")
    video = np.broadcast_to(np.arange(40, dtype=np.uint8)[:, None, None, None], (40, 4, 4, 3)).copy()
    clips = [SimpleNamespace(clip_id=f"s/c{i}", video=video) for i in range(5)]
    for _ in range(2):  # the second pass reads the GT cache back
        metric = FrechetVideoDistanceStyleGANV(weights="random")
        metric.max_clips = 3  # StyleGAN-V's 2048, scaled down
        metric.clip_features_batch = record  # type: ignore[method-assign]
        reference_features(cfg, clips, protocol)(metric)  # type: ignore[arg-type]
        assert int(metric.real_features_num_samples) == 3 and int(metric.real_capped) == 2
        starts = [real_window_start(0, f"s/c{i}", 40) for i in range(3)]
        assert metric.real_features_sum[0].item() == pytest.approx(sum(starts))
    assert [int(v[0, 0, 0, 0]) for v in seen] == starts and all(len(v) == 16 for v in seen)
    # a scored clip's record may say it was capped: no feature file to miss, nothing to score again
    target = "metrics.fvd:FrechetVideoDistanceStyleGANV"
    assert not features_missing({"capped": [target]}, {target: metric}, tmp_path)
    assert features_missing({"features": {}}, {target: metric}, tmp_path)


def test_paper_variants_pin_their_window_protocol() -> None:
    styleganv = FrechetVideoDistanceStyleGANV(weights="random", window_stride=4, max_windows=3)
    videogpt = FrechetVideoDistanceVideoGPT(weights="random", window_stride=4, bn_eps=1e-3)
    assert styleganv.window_starts(40) == [0] and videogpt.window_starts(40) == [0]
    assert videogpt.evaluator_info is not None and videogpt.evaluator_info["bn_eps"] == 1e-5
    assert videogpt.evaluator_info["covariance"] == "unbiased" and videogpt.evaluator_info["real_offset"] == "first"


# ------------------------------------------------------------------------------------------------ fvd_videogpt


def videogpt_preprocess(videos: np.ndarray) -> torch.Tensor:
    """VideoGPT/TATS `preprocess`: uint8 (B, T, H, W, C) -> bilinear 224x224 (align_corners=False) -> 2x/255 - 1,
    (B, C, T, 224, 224)."""
    b, t, h, w, c = videos.shape
    frames = torch.FloatTensor(videos).flatten(end_dim=1).permute(0, 3, 1, 2).contiguous()
    resized = F.interpolate(frames, size=(224, 224), mode="bilinear", align_corners=False)
    resized = resized.view(b, t, c, 224, 224).transpose(1, 2).contiguous()
    return 2.0 * resized / 255.0 - 1


def test_fvd_videogpt_preprocessing_matches_theirs() -> None:
    torch.set_num_threads(1)
    metric = FrechetVideoDistanceVideoGPT(weights="random")
    assert metric.evaluator_info is not None and metric.evaluator_info["arch"] == "i3d_inception_v1"
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (18, 36, 44, 3), dtype=np.uint8)
    ours = metric.clip_features(video)
    assert isinstance(metric.i3d, StateDictI3D)
    # the first 16 frames only, through their preprocessing, logits averaged over time
    theirs = metric.i3d.net(videogpt_preprocess(video[None, :16]))
    assert ours.shape == (1, 400)
    torch.testing.assert_close(ours, theirs.float(), rtol=1e-5, atol=1e-5)


def test_fvd_videogpt_never_takes_the_torchscript(tmp_path, monkeypatch) -> None:
    from benchmark.weights import import_weights

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))
    torch.jit.script(_ScriptedI3D()).save(str(tmp_path / "i3d_torchscript.pt"))
    import_weights(tmp_path / "i3d_torchscript.pt", "i3d_torchscript")
    assert FrechetVideoDistance().evaluator_info["arch"].startswith("i3d_torchscript")  # type: ignore[index]
    # auto: the TorchScript is not VideoGPT's network, so without i3d_pretrained_400 it is the random init
    assert FrechetVideoDistanceVideoGPT().evaluator_info["status"] == "random"  # type: ignore[index]
    with pytest.raises(ValueError, match="state dict"):
        FrechetVideoDistanceVideoGPT(weights="i3d_torchscript")
