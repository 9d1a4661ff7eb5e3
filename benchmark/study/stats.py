"""The statistics of the human study (Diffused Heads, Table 2): Wilson intervals for "judged real" proportions,
Fleiss' kappa for how much raters agree, and t-intervals for mean opinion scores.

Pure functions over counts and lists, so the report's numbers can be checked by hand (tests/benchmark/test_study.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["Interval", "fleiss_kappa", "mean_interval", "normal_quantile", "wilson_interval"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with the bounds of its interval at ``level``; ``n`` observations behind it."""

    value: float
    low: float
    high: float
    n: int
    level: float

    @property
    def half_width(self) -> float:
        """Half the interval's length: what a table prints after ``±`` (Wilson intervals are not symmetric about
        the proportion, so tables that print ``±`` also keep the two bounds in the CSV)."""
        return (self.high - self.low) / 2


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"the confidence level must be in (0, 1), got {level}")


def normal_quantile(level: float) -> float:
    """z such that a standard normal lies in [-z, z] with probability ``level`` (0.95 -> 1.959964)."""
    _check_level(level)
    return NormalDist().inv_cdf(1 - (1 - level) / 2)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval:
    """The Wilson score interval of a binomial proportion (Wilson, JASA 1927).

    Chosen over the normal approximation p ± z·sqrt(p(1-p)/n) because study cells are small (tens of votes) and
    proportions near 0 or 1 are expected (a good method fools nobody, real clips are judged real): there the
    normal interval collapses to zero width or leaves [0, 1], and Wilson's stays inside and keeps its coverage.
    ``value`` is the observed proportion k/n; with n = 0 everything is NaN.
    """
    _check_level(level)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    z = normal_quantile(level)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # at k = 0 (k = n) the bound is exactly 0 (1); float rounding would leave it a hair beside
    low = 0.0 if successes == 0 else centre - half
    high = 1.0 if successes == n else centre + half
    return Interval(p, low, high, n, level)


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa (Fleiss, Psychological Bulletin 1971) of ``counts[i][j]``: how many raters put item ``i`` in
    category ``j``.

    Unequal numbers of raters per item (a rater who stopped early, one excluded by an attention check) are handled
    by the usual generalisation to a varying n_i: item i's agreement is P_i = (Σ_j n_ij² - n_i) / (n_i (n_i - 1))
    with its own n_i; P̄ is the mean of P_i over the items; the category shares are pooled over all ratings,
    p_j = Σ_i n_ij / Σ_i n_i, and P_e = Σ_j p_j². κ = (P̄ - P_e) / (1 - P_e). With a constant n_i this is
    Fleiss' original formula. Items with fewer than two ratings say nothing about agreement and are left out.
    NaN when no item has two ratings, or when every rating is in one category (P_e = 1: chance explains it all).
    """
    rows = [[int(c) for c in row] for row in counts]
    if any(c < 0 for row in rows for c in row):
        raise ValueError("category counts must be >= 0")
    rows = [row for row in rows if sum(row) >= 2]
    if not rows:
        return math.nan
    agreement = [(sum(c * c for c in row) - sum(row)) / (sum(row) * (sum(row) - 1)) for row in rows]
    p_bar = sum(agreement) / len(agreement)
    total = sum(sum(row) for row in rows)
    shares = [sum(row[j] for row in rows) / total for j in range(len(rows[0]))]
    p_e = sum(share * share for share in shares)
    if math.isclose(p_e, 1.0):
        return math.nan
    return (p_bar - p_e) / (1 - p_e)


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """A mean opinion score with its Student-t interval: mean ± t_{1-α/2, n-1} · s / sqrt(n), s the sample
    standard deviation (n - 1 in the denominator).

    The t-interval rather than a bootstrap: scores are bounded 1..5 and cells hold tens of votes, where a
    percentile bootstrap is too narrow (it cannot see beyond the scores it resampled), while the t-interval's
    coverage is close to nominal for bounded scores at these sizes. One score: the mean with NaN bounds.
    """
    _check_level(level)
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    mean = sum(values) / n
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, level)
    from scipy.stats import t  # scipy is a dependency already; imported here so the server never loads it

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(1 - (1 - level) / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level)
