"""The cosine noise schedule, its timestep respacing and the DDIM update: one implementation for every diffusion
model here (Diffused Heads' `process.GaussianDiffusion`, VASA's `process.CosineSchedule`).

Official sources: openai/guided-diffusion `guided_diffusion/gaussian_diffusion.py` (`get_named_beta_schedule`
"cosine", `betas_for_alpha_bar`, `ddim_sample`) and `guided_diffusion/respace.py` (`space_timesteps`,
`SpacedDiffusion`); the Diffused Heads repository (MStypulkowski/diffused-heads, `models/diffusion.py`), which
takes the same cosine schedule and respacing. docs/diffusion.md says the same in prose.

- schedule: alpha_bar(t) = cos^2((t + s) / (1 + s) * pi / 2) with s = 0.008 and t = i / T;
  beta_i = min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), 0.999), one Python float64 per step as
  `betas_for_alpha_bar` computes them; the discrete alpha_bar_i = prod_{j <= i} (1 - beta_j) in float64.
- respacing: K of the T steps; a respaced chain takes its betas from alpha_bar at the kept steps
  (`SpacedDiffusion`), so alpha_bar on the kept steps is unchanged and the network still sees original indices.
- DDIM (Song et al. 2021, eq. 12, as `ddim_sample`): x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps
  + sigma z, sigma = eta sqrt((1 - ab_prev) / (1 - ab)) sqrt(1 - ab / ab_prev); eta = 0 is deterministic.

Where the two models differ, each keeps its numbers through a named parameter (`CosineScheduler` fields):
- `spacing`: "accumulated" is respace.py's (a float64 stride (T - 1) / (K - 1) accumulated and rounded, K >= 2;
  Diffused Heads); "linspace_float32" is VASA's (round(torch.linspace(0, T - 1, K)) in float32, K >= 1). They
  agree unless i (T - 1) / (K - 1) lands on a half, where the float32 value rounds (half to even) to one side
  and the accumulated one falls just below it: T = 1000, K = 21 keeps step 499 in the first and 500 in the second.
- `precision`: "float64" keeps every schedule coefficient in float64 and casts it onto the tensor at use
  (guided-diffusion, Diffused Heads); "float32" is VASA's alpha_bar buffer, the float64 table cast to float32,
  on which its DDIM coefficients are computed in float32. Same formulas, different rounding.
- eps from the x0 estimate, the input of the DDIM update: Diffused Heads uses guided-diffusion's
  `_predict_eps_from_xstart` ((sqrt(1/ab) x_t - x0) / sqrt(1/ab - 1), precomputed coefficients, from an x0
  clamped to [-1, 1]); VASA (whose targets are normalised motion latents, not images: no clamp) uses
  `predict_eps` here, (x_t - sqrt(ab) x0) / sqrt(1 - ab). Algebraically equal, not bitwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

COSINE_OFFSET = 0.008  # s of Nichol & Dhariwal 2021 eq. 17 (guided-diffusion get_named_beta_schedule "cosine")
MAX_BETA = 0.999  # betas_for_alpha_bar's max_beta: keeps the last steps from a singular beta = 1
SPACINGS = ("accumulated", "linspace_float32")  # module docstring: respace.py | VASA
PRECISIONS: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}


def cosine_alpha_bar(t: float, offset: float = COSINE_OFFSET) -> float:
    """The continuous cosine curve at t in [0, 1] (not normalised by its value at 0, as in guided-diffusion)."""
    return math.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2


def cosine_betas(n_timesteps: int = 1000, max_beta: float = MAX_BETA, offset: float = COSINE_OFFSET) -> np.ndarray:
    """Betas of the cosine schedule, float64 [T], each computed as `betas_for_alpha_bar` does and clipped."""
    return np.array(
        [
            min(
                1 - cosine_alpha_bar((i + 1) / n_timesteps, offset) / cosine_alpha_bar(i / n_timesteps, offset),
                max_beta,
            )
            for i in range(n_timesteps)
        ],
        dtype=np.float64,
    )


def alphas_cumprod(betas: np.ndarray) -> np.ndarray:
    """alpha_bar_i = prod_{j <= i} (1 - beta_j), float64 (guided-diffusion `alphas_cumprod`)."""
    return np.cumprod(1.0 - np.asarray(betas, np.float64))


def space_timesteps(n_timesteps: int, k: int, spacing: str = "accumulated") -> list[int]:
    """The K kept steps of a T-step chain, ascending, 0 and T - 1 included (K = 1: step 0 alone).

    "accumulated" (respace.py): round(cur) for cur = 0, stride, 2 stride, ... with stride = (T - 1) / (K - 1)
    summed in float64; "linspace_float32" (VASA): round(torch.linspace(0, T - 1, K)) in float32. Python's round
    (half to even) in both.
    """
    if spacing not in SPACINGS:
        raise ValueError(f"unknown timestep spacing {spacing!r}; known: {', '.join(SPACINGS)}")
    lowest = 2 if spacing == "accumulated" else 1  # a stride over K - 1 gaps needs K >= 2
    if not lowest <= k <= n_timesteps:
        raise ValueError(f"respacing needs {lowest} <= K <= {n_timesteps} steps, got {k}")
    if spacing == "linspace_float32":
        values = torch.linspace(0, n_timesteps - 1, k, dtype=torch.float32).tolist()
        return sorted({int(round(v)) for v in values})
    stride = (n_timesteps - 1) / (k - 1)
    steps, cur = [], 0.0
    for _ in range(k):
        steps.append(round(cur))
        cur += stride
    return steps


def respaced_betas(alpha_bar: np.ndarray, keep: list[int]) -> np.ndarray:
    """Betas of the chain that keeps steps `keep` (ascending): 1 - alpha_bar[k_i] / alpha_bar[k_{i-1}]
    (`SpacedDiffusion`), so the kept alpha_bar values stay what they were."""
    betas, last = [], 1.0
    for i in keep:
        betas.append(1.0 - alpha_bar[i] / last)
        last = alpha_bar[i]
    return np.array(betas)


@dataclass(frozen=True)
class CosineScheduler:
    """The cosine schedule of one model: T steps and the named choices in which the models differ."""

    num_steps: int = 1000
    spacing: str = "accumulated"  # SPACINGS
    precision: str = "float64"  # PRECISIONS: the dtype of the alpha_bar the DDIM update is computed on
    max_beta: float = MAX_BETA
    offset: float = COSINE_OFFSET

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"a diffusion needs at least 1 step, got {self.num_steps}")
        if self.spacing not in SPACINGS:
            raise ValueError(f"unknown timestep spacing {self.spacing!r}; known: {', '.join(SPACINGS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}")

    def betas(self) -> np.ndarray:
        """float64 [T] (always: the official computation; `precision` applies to `alpha_bar_tensor`)."""
        return cosine_betas(self.num_steps, self.max_beta, self.offset)

    def alpha_bar(self) -> np.ndarray:
        """float64 [T]."""
        return alphas_cumprod(self.betas())

    def alpha_bar_tensor(self) -> torch.Tensor:
        """alpha_bar [T] as a tensor of `precision`."""
        return torch.from_numpy(self.alpha_bar()).to(PRECISIONS[self.precision])

    def timesteps(self, k: int) -> list[int]:
        """The K kept steps by `spacing`, ascending."""
        return space_timesteps(self.num_steps, k, self.spacing)


# ------------------------------------------------------------------------------------------------ DDIM

Scalar = float | torch.Tensor  # a Python float (float64 schedule) or a 0-dim tensor (a schedule of its dtype)


def _sqrt(v: Scalar) -> Scalar:
    return v.sqrt() if isinstance(v, torch.Tensor) else math.sqrt(v)


def predict_eps(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: Scalar) -> torch.Tensor:
    """The eps that x_t = sqrt(ab) x0 + sqrt(1 - ab) eps implies (VASA's form; module docstring)."""
    return (x_t - _sqrt(alpha_bar) * x0) / _sqrt(1 - alpha_bar)


def ddim_sigma(alpha_bar: float, alpha_bar_prev: float, eta: float) -> float:
    """sigma of the DDIM update (`ddim_sample`), float64: 0 for eta = 0, the ancestral sigma for eta = 1."""
    return eta * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * math.sqrt(1 - alpha_bar / alpha_bar_prev)


def ddim_step(
    x0: torch.Tensor,
    eps: torch.Tensor,
    alpha_bar_prev: Scalar,
    sigma: float = 0.0,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """x_prev = sqrt(ab_prev) x0 + sqrt(max(1 - ab_prev - sigma^2, 0)) eps [+ sigma noise].

    The coefficients are computed in the precision of `alpha_bar_prev`: a Python float for a float64 schedule
    (then cast onto the tensors, as guided-diffusion does), a 0-dim tensor for a schedule kept in that tensor's
    dtype. `noise` (standard normal, drawn by the caller so its generator and batching stay the caller's) is
    added only when sigma > 0.
    """
    direction: torch.Tensor | float
    if isinstance(alpha_bar_prev, torch.Tensor):
        direction = (1 - alpha_bar_prev - sigma**2).clamp(min=0.0).sqrt()
    else:
        direction = math.sqrt(max(1 - alpha_bar_prev - sigma**2, 0.0))
    x = _sqrt(alpha_bar_prev) * x0 + direction * eps
    if sigma > 0 and noise is not None:
        x = x + sigma * noise
    return x
