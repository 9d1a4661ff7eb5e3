"""The Fréchet distance between two Gaussians fitted to feature sets (FID, FVD), in float64.

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

tr((S1 S2)^(1/2)) is computed as tr((A S2 A)^(1/2)) with A = S1^(1/2): A S2 A is symmetric positive
semi-definite and similar to S1 S2, so its eigenvalues (from `eigh`, clipped at 0 against round-off) are those
of S1 S2 and the trace of the square root is the sum of their square roots. This avoids the non-symmetric
`scipy.linalg.sqrtm(S1 @ S2)` of pytorch-fid / StyleGAN-V, which can return complex parts or fail on singular
covariances (pytorch-fid retries with an eps on the diagonal); on well-conditioned inputs the two agree.

Feature statistics are kept as sums (n, sum x, sum x x^T) so that processes can add them (DDP) and
per-clip features can be merged in any order. The covariance is the unbiased one (divided by n - 1, as np.cov,
pytorch-fid, torchmetrics and VideoGPT/TATS) unless `covariance="biased"` (divided by n, as StyleGAN-V's
`FeatureStats.get_mean_cov`). The trace terms are homogeneous of degree 1 in (S1, S2), so when both sets hold n
vectors the biased distance is the unbiased one less (tr S1 + tr S2 - 2 tr (S1 S2)^(1/2)) / n: a share of the
value that matters at tens of clips and vanishes at thousands.
"""

from __future__ import annotations

import torch

COVARIANCES: tuple[str, ...] = ("unbiased", "biased")


def covariance_ddof(covariance: str) -> int:
    """The "delta degrees of freedom" of a covariance convention: the denominator is n - ddof."""
    if covariance not in COVARIANCES:
        raise ValueError(f"unknown covariance {covariance!r}; valid: {', '.join(COVARIANCES)}")
    return 1 if covariance == "unbiased" else 0


def _sym_sqrt(mat: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((mat + mat.T) / 2)
    root: torch.Tensor = (vecs * vals.clamp(min=0).sqrt()) @ vecs.T
    return root


def trace_sqrt_product(sigma1: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """tr((sigma1 sigma2)^(1/2)) for symmetric PSD matrices, float64."""
    s1, s2 = sigma1.double(), sigma2.double()
    root = _sym_sqrt(s1)
    inner = root @ s2 @ root
    vals: torch.Tensor = torch.linalg.eigvalsh((inner + inner.T) / 2)
    return vals.clamp(min=0).sqrt().sum()


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); a float64 scalar tensor.

    mu: [d], sigma: [d, d] (symmetric PSD). Example: two identical Gaussians are at distance 0, and shifting a
    mean by v adds ||v||^2.
    """
    mu1, mu2 = mu1.double().flatten(), mu2.double().flatten()
    sigma1, sigma2 = sigma1.double(), sigma2.double()
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.numel(), mu1.numel()):
        raise ValueError(
            f"shape mismatch: mu {tuple(mu1.shape)} / {tuple(mu2.shape)}, sigma {tuple(sigma1.shape)} / "
            f"{tuple(sigma2.shape)}"
        )
    diff = mu1 - mu2
    return diff.dot(diff) + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt_product(sigma1, sigma2)


def moments_from_sums(
    n: int | torch.Tensor, total: torch.Tensor, outer: torch.Tensor, covariance: str = "unbiased"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [d], covariance [d, d]) from n, sum x [d] and sum x x^T [d, d] (float64); the covariance divided by
    n - 1 ("unbiased") or n ("biased")."""
    n = int(n)
    ddof = covariance_ddof(covariance)
    # one vector has a biased covariance (zero), but no set metric is meaningful on it: both conventions refuse
    if n < 2:
        raise ValueError(f"a covariance needs at least 2 feature vectors, got {n}")
    total, outer = total.double(), outer.double()
    mu = total / n
    cov = (outer - n * torch.outer(mu, mu)) / (n - ddof)
    return mu, (cov + cov.T) / 2


def frechet_distance_from_sums(
    n1: int | torch.Tensor,
    sum1: torch.Tensor,
    outer1: torch.Tensor,
    n2: int | torch.Tensor,
    sum2: torch.Tensor,
    outer2: torch.Tensor,
    covariance: str = "unbiased",
) -> torch.Tensor:
    """Fréchet distance of the Gaussians fitted to two feature sets given as sufficient statistics."""
    mu1, s1 = moments_from_sums(n1, sum1, outer1, covariance)
    mu2, s2 = moments_from_sums(n2, sum2, outer2, covariance)
    return frechet_distance(mu1, s1, mu2, s2)


def frechet_distance_features(feats1: torch.Tensor, feats2: torch.Tensor, covariance: str = "unbiased") -> torch.Tensor:
    """Fréchet distance between two feature sets `[n1, d]` and `[n2, d]` (two-pass moments, float64)."""
    a, b = feats1.double(), feats2.double()
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors per set, got {a.shape[0]} and {b.shape[0]}")
    ddof = covariance_ddof(covariance)
    return frechet_distance(a.mean(0), torch.cov(a.T, correction=ddof), b.mean(0), torch.cov(b.T, correction=ddof))
