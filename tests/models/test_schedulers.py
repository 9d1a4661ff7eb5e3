"""The shared cosine schedule, respacing and DDIM update (models/common/schedulers.py): answers worked out by hand,
and both diffusion models taking their schedule from it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.common import schedulers
from models.common.schedulers import (
    CosineScheduler,
    alphas_cumprod,
    cosine_betas,
    ddim_sigma,
    ddim_step,
    predict_eps,
    respaced_betas,
    space_timesteps,
)
from models.diffused_heads import process as dh
from models.vasa import process as vasa
from models.vasa.motion_dit import CONDITIONS, MotionConditions, MotionDiT


def _f(t: float) -> float:
    """The cosine curve written out: cos^2((t + 0.008) / 1.008 * pi / 2)."""
    return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2


# ------------------------------------------------------------------------------------------- schedule


def test_alpha_bar_at_the_first_and_last_step() -> None:
    T = 1000
    ab = alphas_cumprod(cosine_betas(T))
    assert ab.dtype == np.float64 and ab.shape == (T,)
    # t = 0: one step of the curve, f(1/T) / f(0)
    assert ab[0] == pytest.approx(_f(1 / T) / _f(0), rel=1e-15)
    # before the clip the product telescopes: alpha_bar_i = f((i + 1) / T) / f(0)
    assert ab[T - 2] == pytest.approx(_f((T - 1) / T) / _f(0), rel=1e-9)
    # t = T - 1: f(1) = cos^2(pi / 2) = 0 makes the last beta 1, clipped to 0.999, so a factor 0.001 remains
    assert ab[T - 1] == pytest.approx(ab[T - 2] * (1 - 0.999), rel=1e-12)
    # T = 2 by hand
    ab2 = alphas_cumprod(cosine_betas(2))
    assert ab2[0] == pytest.approx(_f(0.5) / _f(0.0), rel=1e-15)
    assert ab2[1] == pytest.approx(ab2[0] * 0.001, rel=1e-12)


def test_betas_are_clipped_at_0999() -> None:
    betas = cosine_betas(1000)
    assert betas[-1] == 0.999  # 1 - f(1) / f(0.999) = 1 - ~0 before the clip
    assert (betas[:-1] < 0.999).all() and (betas > 0).all()
    assert np.all(np.diff(betas) > 0)  # the cosine schedule's betas grow monotonically
    assert cosine_betas(1000, max_beta=0.5).max() == 0.5
    assert betas[0] == pytest.approx(1 - _f(0.001) / _f(0.0), rel=1e-12)


def test_scheduler_tables_and_precision() -> None:
    s = CosineScheduler(50)
    np.testing.assert_array_equal(s.betas(), cosine_betas(50))
    np.testing.assert_array_equal(s.alpha_bar(), np.cumprod(1 - cosine_betas(50)))
    assert s.alpha_bar_tensor().dtype == torch.float64
    f32 = CosineScheduler(50, precision="float32").alpha_bar_tensor()
    assert f32.dtype == torch.float32 and torch.equal(f32, torch.from_numpy(s.alpha_bar()).float())
    for bad in ({"spacing": "uniform"}, {"precision": "float16"}, {"num_steps": 0}):
        with pytest.raises(ValueError):
            CosineScheduler(**bad)


# ------------------------------------------------------------------------------------------- respacing


def test_respaced_timesteps_by_hand() -> None:
    assert space_timesteps(10, 4) == [0, 3, 6, 9]  # stride 3
    assert space_timesteps(10, 10) == list(range(10))
    assert space_timesteps(10, 2) == [0, 9]
    # stride 4.5: round(4.5) = 4, Python's half to even, in both spacings
    assert space_timesteps(10, 3) == [0, 4, 9]
    assert space_timesteps(10, 3, "linspace_float32") == [0, 4, 9]
    assert space_timesteps(10, 1, "linspace_float32") == [0]
    with pytest.raises(ValueError, match="2 <= K <= 10"):
        space_timesteps(10, 1)
    with pytest.raises(ValueError, match="1 <= K <= 10"):
        space_timesteps(10, 11, "linspace_float32")
    with pytest.raises(ValueError, match="spacing"):
        space_timesteps(10, 3, "even")


def test_the_two_spacings_differ_where_a_step_lands_on_a_half() -> None:
    # T = 1000, K = 21: step 10 is 10 * 999 / 20 = 499.5. Accumulated in float64 the stride 49.95 sums to just
    # under 499.5 (499); float32 linspace gives 499.5 exactly, which rounds half to even (500)
    acc, lin = space_timesteps(1000, 21), space_timesteps(1000, 21, "linspace_float32")
    assert acc[10] == 499 and lin[10] == 500
    assert [a for a, b in zip(acc, lin) if a != b] == [499]
    assert space_timesteps(1000, 50) == space_timesteps(1000, 50, "linspace_float32")  # VASA's default agrees


def test_respaced_betas_keep_alpha_bar_at_the_kept_steps() -> None:
    ab = alphas_cumprod(cosine_betas(10))
    keep = [0, 3, 6, 9]
    b = respaced_betas(ab, keep)
    assert b[0] == 1 - ab[0] and b[1] == pytest.approx(1 - ab[3] / ab[0], rel=1e-15)
    np.testing.assert_allclose(np.cumprod(1 - b), ab[keep], rtol=1e-12)


# ------------------------------------------------------------------------------------------- DDIM


@pytest.mark.parametrize("tensor", [False, True])
def test_ddim_with_the_true_noise_recovers_x0_exactly(tensor: bool) -> None:
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    ab = alphas_cumprod(cosine_betas(1000))[700]
    # the last step lands on alpha_bar_prev = 1: sqrt(1) x0 + sqrt(0) eps, x0 to the bit
    one = torch.tensor(1.0) if tensor else 1.0
    assert torch.equal(ddim_step(x0, eps, one), x0)
    # an intermediate step with the true eps is the forward process at the earlier step
    x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
    ab_prev = alphas_cumprod(cosine_betas(1000))[300]
    prev = ddim_step(x0, predict_eps(x_t, x0, ab), torch.tensor(ab_prev) if tensor else ab_prev)
    torch.testing.assert_close(prev, math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps)


def test_ddim_sigma_and_noise() -> None:
    assert ddim_sigma(0.3, 0.6, 0.0) == 0.0
    # eta = 1: sigma^2 is the posterior variance beta~ = (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
    d = dh.GaussianDiffusion.cosine(1000).respaced(10)
    for i in range(1, 10):
        sigma = ddim_sigma(d.alpha_bar[i], d.alpha_bar_prev[i], 1.0)
        assert sigma**2 == pytest.approx(d.beta_tilde[i], rel=1e-12)
    x0, eps, z = torch.zeros(3), torch.ones(3), torch.full((3,), 2.0)
    assert torch.equal(ddim_step(x0, eps, 0.75, 0.0, z), torch.full((3,), 0.5))  # sigma 0: noise not added
    # sqrt(1 - 0.75 - 0.25^2) = sqrt(0.1875), plus 0.25 * 2
    expect = torch.full((3,), math.sqrt(0.1875) + 0.5)
    torch.testing.assert_close(ddim_step(x0, eps, 0.75, 0.25, z), expect)


# ------------------------------------------------------------------------------------------- both models


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple]:
    calls: list[tuple] = []
    real = getattr(schedulers, name)

    def spy(*args, **kw):
        calls.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(schedulers, name, spy)
    return calls


def test_diffused_heads_takes_its_schedule_from_the_shared_module(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dh.cosine_betas is schedulers.cosine_betas and dh.space_timesteps is schedulers.space_timesteps
    betas = _spy(monkeypatch, "cosine_betas")
    spacing = _spy(monkeypatch, "space_timesteps")
    steps = _spy(monkeypatch, "ddim_step")
    d = dh.GaussianDiffusion.cosine(100)
    assert len(betas) == 1
    np.testing.assert_array_equal(d.betas, CosineScheduler(100).betas())
    x_T = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))

    def denoise(x, t):
        return torch.cat([torch.zeros_like(x), torch.zeros_like(x)], dim=1)

    dh.sample_frame(denoise, d, x_T, dh.SamplerConfig("ddim", 5), torch.Generator().manual_seed(1))
    assert spacing == [(100, 5, "accumulated")]
    assert len(steps) == 5 and all(isinstance(c[2], float) for c in steps)  # float64 coefficients


def test_vasa_takes_its_schedule_from_the_shared_module(monkeypatch: pytest.MonkeyPatch) -> None:
    betas = _spy(monkeypatch, "cosine_betas")
    spacing = _spy(monkeypatch, "space_timesteps")
    steps = _spy(monkeypatch, "ddim_step")
    sched = vasa.CosineSchedule(100)
    assert len(betas) == 1
    assert sched.scheduler == CosineScheduler(100, "linspace_float32", "float32")
    assert torch.equal(sched.alpha_bar, CosineScheduler(100, precision="float32").alpha_bar_tensor())
    torch.manual_seed(0)
    net = MotionDiT(5, 7, window=6, context=2, d_model=16, layers=1, heads=2, dropout=0.0).eval()
    b, w, k = 1, 6, 2
    cond = MotionConditions(
        audio=torch.zeros(b, w, 7),
        audio_valid=torch.ones(b, w, dtype=torch.bool),
        prev_motion=torch.zeros(b, k, 5),
        prev_audio=torch.zeros(b, k, 7),
        gaze=torch.zeros(b, 2),
        distance=torch.zeros(b, 1),
        emotion=torch.zeros(b, 8),
        keep={c: torch.ones(b, dtype=torch.bool) for c in CONDITIONS},
    )
    vasa.sample_window(net, sched, cond, 4, {}, torch.Generator().manual_seed(0))
    assert spacing == [(100, 4, "linspace_float32")]
    # 4 steps: 3 updates, then the last x0 prediction itself; float32 0-dim coefficients
    assert len(steps) == 3 and all(c[2].dtype == torch.float32 and c[2].dim() == 0 for c in steps)


def test_each_module_builds_its_models_schedule() -> None:
    from models.diffused_heads.module import DiffusedHeadsConfig, DiffusedHeadsModule
    from models.vasa.module import VasaConfig, VasaModule

    vm = VasaModule(VasaConfig.preset("tiny", diffusion_steps=200))
    assert vm.schedule.scheduler == CosineScheduler(200, "linspace_float32", "float32")
    dm = DiffusedHeadsModule(DiffusedHeadsConfig.preset("tiny"))
    np.testing.assert_array_equal(dm.diffusion.betas, CosineScheduler(dm.cfg.n_timesteps).betas())
