"""The Diffused Heads diffusion process, apart from the network: schedule, losses, respacing, samplers.

Facts from the official code (MStypulkowski/diffused-heads `train` @2838e57, models/diffusion.py and utils.py;
docs/diffused_heads.md, docs/diffusion.md):
- cosine schedule alpha_bar(t) = cos^2((t + 0.008) / 1.008 * pi / 2), T = 1000, beta clipped at 0.999
  (models/common/schedulers.py, shared with VASA: float64 throughout, "accumulated" respacing);
- learned variance (improved DDPM): nu = (nu_out + 1) / 2, log sigma^2 = nu log beta_t + (1 - nu) log beta~_t with
  beta~ clipped (its first entry replaced by the second); x0 predicted from eps and clamped to [-1, 1];
- loss L_simple + 1e-4 L_vlb (eps detached inside L_vlb; KL in bits, discretised Gaussian decoder NLL at t = 0)
  + 0.2 L_lip (MSE of eps inside the mouth box of landmarks 48-67 widened by 5 px);
- respacing: K steps at round(i (T - 1) / (K - 1)), i = 0..K-1 (0 and T-1 included), betas recomputed from
  alpha_bar at the kept steps; the network still receives the original step index;
- DDIM (not in the official code, which only samples ancestrally): the update of Song et al. (eta = 0:
  deterministic) on the respaced schedule, as guided-diffusion's `ddim_sample` does on a spaced diffusion
  (`schedulers.ddim_step`).
- prediction target (`GaussianDiffusion.prediction`): "eps" is the official parameterisation (the network's first
  three output channels are epsilon); "x0" is improved-diffusion's `ModelMeanType.START_X` (they are the clean
  frame; loss targets x0), offered for the CPU `tiny` preset, where a few hundred optimiser steps must give clean
  faces. Everything downstream (posterior mean, learned variance, DDIM) goes through `x0_from_output`, so both
  parameterisations share the samplers.

Everything here works on a `denoise(x_t, t_original) -> (B, 6, H, W)` callable, so the samplers are separate from
the network (diffusers' scheduler/pipeline split).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.common import schedulers
from models.common.schedulers import cosine_betas as cosine_betas  # re-exported: callers import it from here
from models.common.schedulers import space_timesteps as space_timesteps

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# one generator for the batch, or one per sample (then a sample's noise does not depend on its batch-mates)
Generators = torch.Generator | Sequence[torch.Generator] | None
PREDICTIONS = ("eps", "x0")  # what the network's first three output channels are (eps: official)
# respacing as the official code (guided-diffusion respace.py); schedule coefficients in float64, cast on use
SPACING = "accumulated"
PRECISION = "float64"


@dataclass
class GaussianDiffusion:
    """Schedule coefficients (float64 numpy, cast on use) for a (possibly respaced) chain.

    `timesteps[i]` is the original step index the network sees at chain position i.
    """

    betas: np.ndarray
    timesteps: np.ndarray
    prediction: str = "eps"

    @classmethod
    def cosine(cls, n_timesteps: int = 1000, prediction: str = "eps") -> GaussianDiffusion:
        return cls(
            schedulers.CosineScheduler(n_timesteps, SPACING, PRECISION).betas(), np.arange(n_timesteps), prediction
        )

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        b = np.asarray(self.betas, np.float64)
        self.betas = b
        self.timesteps = np.asarray(self.timesteps, np.int64)
        self.alphas = 1.0 - b
        self.alpha_bar = np.cumprod(self.alphas)
        self.alpha_bar_prev = np.append(1.0, self.alpha_bar[:-1])
        self.beta_tilde = b * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar)
        # beta~_0 = 0: the official code (and improved DDPM) replace it by beta~_1 before the log
        self.log_beta_tilde_clipped = np.log(np.append(self.beta_tilde[1] if len(b) > 1 else b[0], self.beta_tilde[1:]))
        self.coef1_x0 = np.sqrt(1.0 / self.alpha_bar)
        self.coef2_x0 = np.sqrt(1.0 / self.alpha_bar - 1.0)
        self.coef1_q = b * np.sqrt(self.alpha_bar_prev) / (1.0 - self.alpha_bar)
        self.coef2_q = (1.0 - self.alpha_bar_prev) * np.sqrt(self.alphas) / (1.0 - self.alpha_bar)

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    def respaced(self, k: int) -> GaussianDiffusion:
        """The K-step chain of the official `space`: betas from alpha_bar at the kept steps."""
        if k == self.num_steps:
            return self
        keep = schedulers.space_timesteps(self.num_steps, k, SPACING)
        return GaussianDiffusion(schedulers.respaced_betas(self.alpha_bar, keep), self.timesteps[keep], self.prediction)

    # ----- tensors -------------------------------------------------------------------------------------------
    @staticmethod
    def _take(arr: np.ndarray, idx: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        out = torch.as_tensor(arr, dtype=torch.float64, device=idx.device)[idx].to(like.dtype)
        return out.reshape(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, idx: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps at chain positions `idx`."""
        ab = self._take(self.alpha_bar, idx, x0)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise

    def predict_x0(self, xt: torch.Tensor, idx: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        x0 = self._take(self.coef1_x0, idx, xt) * xt - self._take(self.coef2_x0, idx, xt) * eps
        return x0.clamp(-1.0, 1.0)  # official get_q_params clamps before the posterior mean

    def x0_from_output(self, pred: torch.Tensor, xt: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The clamped x0 estimate from the network's first three output channels (eps or x0, per `prediction`)."""
        if self.prediction == "x0":
            return pred.clamp(-1.0, 1.0)
        return self.predict_x0(xt, idx, pred)

    def eps_from_x0(self, xt: torch.Tensor, idx: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The eps consistent with x_t and an x0 estimate (guided-diffusion `_predict_eps_from_xstart`)."""
        return (self._take(self.coef1_x0, idx, xt) * xt - x0) / self._take(self.coef2_x0, idx, xt)

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self._take(self.coef1_q, idx, xt) * x0 + self._take(self.coef2_q, idx, xt) * xt
        return mean, self._take(self.log_beta_tilde_clipped, idx, xt).expand_as(xt)

    def p_mean_logvar(
        self, out: torch.Tensor, xt: torch.Tensor, idx: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, log variance and clamped x0 of p(x_{t-1} | x_t) from the network output [eps or x0, nu_out]."""
        pred, nu = out.chunk(2, dim=1)
        frac = (nu + 1.0) / 2.0
        logvar = frac * self._take(np.log(self.betas), idx, xt) + (1.0 - frac) * self._take(
            self.log_beta_tilde_clipped, idx, xt
        )
        x0 = self.x0_from_output(pred, xt, idx)
        mean, _ = self.q_posterior(x0, xt, idx)
        return mean, logvar, x0


# ------------------------------------------------------------------------------------------------ losses


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise, nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_nll(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """-log p(x) of 8-bit data in [-1, 1] under a Gaussian discretised into 256 bins (improved DDPM), nats."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_std_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    log_probs = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))
    return -log_probs


def vlb_terms(
    diffusion: GaussianDiffusion, out: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, idx: torch.Tensor
) -> torch.Tensor:
    """Per-sample L_vlb in bits: KL(q || p) for t > 0, the decoder NLL at t = 0 (official `vlb_loss`)."""
    p_mean, p_logvar, _ = diffusion.p_mean_logvar(out, xt, idx)
    q_mean, q_logvar = diffusion.q_posterior(x0, xt, idx)
    kl = normal_kl(q_mean, q_logvar, p_mean, p_logvar).mean(dim=(1, 2, 3)) / math.log(2.0)
    nll = discretized_gaussian_nll(x0, p_mean, 0.5 * p_logvar).mean(dim=(1, 2, 3)) / math.log(2.0)
    return torch.where(idx == 0, nll, kl)


def mouth_boxes(landmarks: torch.Tensor, size: int, margin: int = 5) -> torch.Tensor:
    """(B, 20, 2) mouth landmarks (x, y) in pixels of a size x size image -> (B, 4) int boxes (r0, r1, c0, c1).

    Official `lip_loss`: floor of the minimum and ceil of the maximum, widened by `margin` px, clipped to the
    image.
    """
    lo = landmarks.amin(dim=1).floor().long() - margin
    hi = landmarks.amax(dim=1).ceil().long() + margin
    r0, c0 = lo[:, 1].clamp(0, size), lo[:, 0].clamp(0, size)
    r1, c1 = hi[:, 1].clamp(0, size), hi[:, 0].clamp(0, size)
    return torch.stack([r0, r1, c0, c1], dim=1)


def lip_loss(target: torch.Tensor, pred: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the MSE between the target (eps officially; x0 under x0-prediction) and its prediction
    inside each sample's mouth box."""
    total = target.new_zeros(())
    n = 0
    for e, p, (r0, r1, c0, c1) in zip(target, pred, boxes.tolist()):
        if r1 <= r0 or c1 <= c0:
            continue  # a box outside the image: nothing to compare (the official code would average nothing: NaN)
        total = total + ((e[:, r0:r1, c0:c1] - p[:, r0:r1, c0:c1]) ** 2).mean()
        n += 1
    return total / max(n, 1)


# ------------------------------------------------------------------------------------------------ samplers


def randn(shape: Sequence[int], generator: Generators, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise of `shape` on `like`'s device and dtype; with a sequence of generators, sample b of
    the batch (dim 0) is drawn from generator b."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(tuple(shape), generator=generator, device=like.device, dtype=like.dtype)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
    return torch.stack(
        [torch.randn(tuple(shape[1:]), generator=g, device=like.device, dtype=like.dtype) for g in generator]
    )


def sample_ancestral(
    denoise: Denoiser, diffusion: GaussianDiffusion, x_t: torch.Tensor, generator: Generators = None
) -> torch.Tensor:
    """Official `sample_loop`: ancestral sampling with the learned variance over the (respaced) chain."""
    b = x_t.shape[0]
    for i in reversed(range(diffusion.num_steps)):
        idx = torch.full((b,), i, dtype=torch.long, device=x_t.device)
        t = torch.full((b,), int(diffusion.timesteps[i]), dtype=torch.long, device=x_t.device)
        mean, logvar, _ = diffusion.p_mean_logvar(denoise(x_t, t), x_t, idx)
        if i > 0:
            noise = randn(x_t.shape, generator, x_t)
            x_t = mean + noise * torch.exp(0.5 * logvar)
        else:
            x_t = mean
    return x_t


def sample_ddim(
    denoise: Denoiser,
    diffusion: GaussianDiffusion,
    x_t: torch.Tensor,
    generator: Generators = None,
    eta: float = 0.0,
) -> torch.Tensor:
    """DDIM over the (respaced) chain; eta = 0 is deterministic. The variance output is not used."""
    b = x_t.shape[0]
    for i in reversed(range(diffusion.num_steps)):
        idx = torch.full((b,), i, dtype=torch.long, device=x_t.device)
        t = torch.full((b,), int(diffusion.timesteps[i]), dtype=torch.long, device=x_t.device)
        pred, _ = denoise(x_t, t).chunk(2, dim=1)
        x0 = diffusion.x0_from_output(pred, x_t, idx)
        eps = diffusion.eps_from_x0(x_t, idx, x0)  # consistent with the clamped x0, as guided-diffusion does
        ab_prev = float(diffusion.alpha_bar_prev[i])  # Python floats: float64 coefficients (PRECISION)
        sigma = schedulers.ddim_sigma(float(diffusion.alpha_bar[i]), ab_prev, eta)
        noise = randn(x_t.shape, generator, x_t) if sigma > 0 and i > 0 else None
        x_t = schedulers.ddim_step(x0, eps, ab_prev, sigma, noise)
    return x_t


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"ancestral": sample_ancestral, "ddim": sample_ddim}


@dataclass
class SamplerConfig:
    """How frames are sampled: `method` in SAMPLERS over a chain of `steps` respaced steps (steps = T: none)."""

    method: str = "ancestral"
    steps: int = 100  # official main-branch inference_steps; config_gen_test.yaml uses 200
    eta: float = 0.0  # DDIM only


def sample_frame(
    denoise: Denoiser,
    diffusion: GaussianDiffusion,
    x_t: torch.Tensor,
    cfg: SamplerConfig,
    generator: Generators = None,
    chain: GaussianDiffusion | None = None,
) -> torch.Tensor:
    """One frame from x_T by `cfg.method` over the `cfg.steps`-step respacing of `diffusion` (`chain`: that
    respacing, precomputed by a caller that samples many frames)."""
    if cfg.method not in SAMPLERS:
        raise ValueError(f"unknown sampler {cfg.method!r}; known: {', '.join(SAMPLERS)}")
    chain = chain if chain is not None else diffusion.respaced(cfg.steps)
    if cfg.method == "ddim":
        return sample_ddim(denoise, chain, x_t, generator, eta=cfg.eta)
    return sample_ancestral(denoise, chain, x_t, generator)


# ------------------------------------------------------------------------------------------------ video


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W), ITU-R 601 weights (torchvision `Grayscale`, the official motion transform)."""
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def mask_lower_half(x: torch.Tensor) -> torch.Tensor:
    """Motion frames with their lower half (mouth and chin) set to 0, mid-grey in [-1, 1]."""
    out = x.clone()
    out[..., x.shape[-2] // 2 :, :] = 0.0
    return out


# what the motion frames show the network. "none" is the paper. "lower_half" is NOT in the paper: an option of the
# CPU `tiny` preset, whose few hundred steps otherwise learn to copy the previous mouth from the motion frames (the
# shortcut that makes the motion frames' mouth a far better predictor than audio early in training) and never get
# to audio; without the mouth in them the motion frames still give the head pose, and the mouth must come from
# the audio (Wav2Lip masks its input's lower half for the same reason).
MOTION_MASKS: dict[str, Callable[[torch.Tensor], torch.Tensor] | None] = {"none": None, "lower_half": mask_lower_half}


def audio_window_ids(frame: int, n_frames: int, m: int) -> list[int]:
    """Audio embedding indices frame-m .. frame+m, clamped to [0, n_frames - 1] (official sample/dataset)."""
    return [min(max(frame + d, 0), n_frames - 1) for d in range(-m, m + 1)]


def autoregressive_sample(
    unet: Callable[..., torch.Tensor],
    diffusion: GaussianDiffusion,
    identity: torch.Tensor,
    audio_emb: torch.Tensor,
    *,
    n_motion_frames: int,
    n_audio_motion_embs: int,
    grayscale_motion: bool,
    sampler: SamplerConfig,
    generator: Generators,
    segment_len: int | None = None,
    progress: Callable[[int], None] | None = None,
    motion_mask: str = "none",
) -> torch.Tensor:
    """Frame-by-frame generation (official `Diffusion.sample`), batched over clips.

    identity: (B, 3, S, S) in [-1, 1]; audio_emb: (B, T, D). Every x_T is drawn up front from `generator`
    (B, T, 3, S, S), so a clip's frames do not depend on how many frames were sampled before a change; with one
    generator per clip, a clip's frames do not depend on the other clips of the batch either.
    Motion frames start as the identity frame repeated and shift in each new frame; with `segment_len`, every
    `segment_len` frames the oldest motion frame is replaced by the identity frame (train-branch `stabilize`).
    Returns (B, T, 3, S, S) in [-1, 1].
    """
    b, n_frames = audio_emb.shape[:2]
    x_T = randn((b, n_frames, *identity.shape[1:]), generator, identity)
    chain = diffusion.respaced(sampler.steps)

    if motion_mask not in MOTION_MASKS:
        raise ValueError(f"unknown motion_mask {motion_mask!r}; known: {', '.join(MOTION_MASKS)}")
    mask = MOTION_MASKS[motion_mask]

    def motion_of(x: torch.Tensor) -> torch.Tensor:
        x = to_grayscale(x) if grayscale_motion else x
        return mask(x) if mask is not None else x

    mc = 1 if grayscale_motion else 3
    motion = torch.cat([motion_of(identity)] * n_motion_frames, dim=1)
    frames = []
    for i in range(n_frames):
        if segment_len and i > 0 and i % segment_len == 0:
            motion = torch.cat([motion_of(identity), motion[:, mc:]], dim=1)
        window = audio_emb[:, audio_window_ids(i, n_frames, n_audio_motion_embs)]

        def denoise(x_t: torch.Tensor, t: torch.Tensor, motion: torch.Tensor = motion, window=window) -> torch.Tensor:
            return unet(x_t, t, identity, motion, window)

        frame = sample_frame(denoise, diffusion, x_T[:, i], sampler, generator, chain).clamp(-1.0, 1.0)
        frames.append(frame)
        motion = torch.cat([motion[:, mc:], motion_of(frame)], dim=1)
        if progress is not None:
            progress(i)
    return torch.stack(frames, dim=1)
