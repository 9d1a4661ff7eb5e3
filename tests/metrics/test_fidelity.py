"""PSNR / SSIM: equal skimage per frame, batched update equals the per-clip loop, failures counted, DDP parity."""

from __future__ import annotations

import numpy as np
import pytest
from ddp_harness import compute_distributed, compute_single

from metrics.base import EvalSample
from metrics.fidelity import FidelityScores, frame_psnr_ssim

skimage_metrics = pytest.importorskip("skimage.metrics")


def _pair(seed: int, t: int = 3, h: int = 32, w: int = 40, noise: int = 25):
    rng = np.random.default_rng(seed)
    real = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    fake = np.clip(real.astype(int) + rng.integers(-noise, noise + 1, real.shape), 0, 255).astype(np.uint8)
    return fake, real


def _sample(i: int, clip_id: str, fake: np.ndarray, real: np.ndarray | None = None) -> EvalSample:
    return EvalSample(index=i, clip_id=clip_id, fake=fake, real=real)


@pytest.mark.parametrize("precision,tol", [("float64", 1e-10), ("float32", 1e-4)])
def test_equals_skimage(precision, tol):
    fake, real = _pair(0)
    fake[:, :12], real[:, :12] = 120, 121  # a flat region: where float32 cancellation shows
    psnr, ssim = frame_psnr_ssim(fake, real, precision=precision)
    for t in range(len(fake)):
        ref_psnr = skimage_metrics.peak_signal_noise_ratio(real[t], fake[t], data_range=255)
        ref_ssim = skimage_metrics.structural_similarity(
            fake[t], real[t], channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=255,
        )  # fmt: skip
        assert psnr[t] == pytest.approx(ref_psnr, rel=1e-7)
        assert ssim[t] == pytest.approx(ref_ssim, abs=tol)


def test_clip_values_batched_update_and_failures():
    samples = [_sample(i, f"c{i}", *_pair(i, t=2 + i)) for i in range(4)]
    samples[1] = _sample(1, "c1", *_pair(1, h=24, w=24))  # another frame size: its own batch
    samples.append(EvalSample(4, "noref", samples[0].fake))
    samples.append(EvalSample(5, "mismatch", samples[0].fake, real=samples[0].real[:1]))
    batched, looped = FidelityScores(batch_size=4), FidelityScores()
    batched.update(samples)
    for s in samples:
        looped.update([s])
    ib, vb = batched.per_clip()
    il, vl = looped.per_clip()
    assert ib.tolist() == il.tolist() == [0, 1, 2, 3]
    assert np.allclose(vb.numpy(), vl.numpy(), rtol=1e-12)
    assert int(batched.n_failed) == 2 and {c for c, _ in batched.failures} == {"noref", "mismatch"}
    psnr, ssim = frame_psnr_ssim(samples[2].fake, samples[2].real)
    assert vb[2].tolist() == pytest.approx([psnr.mean(), ssim.mean()])
    same = FidelityScores()
    same.update([EvalSample(0, "gt", samples[0].real, real=samples[0].real)])
    out = same.compute()
    assert out["psnr"].item() == float("inf") and out["ssim"].item() == pytest.approx(1.0)


def test_two_processes_equal_one():
    samples = [_sample(i, f"c{i}", *_pair(i, t=2)) for i in range(5)]
    one = compute_single(FidelityScores, samples)
    two = compute_distributed(FidelityScores, samples, world_size=2)
    for key in ("psnr", "ssim"):
        assert np.isfinite(one[key]) and two[key] == pytest.approx(one[key], rel=1e-12)
