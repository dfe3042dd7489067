"""Small, dependency-free statistics for release decisions.

Everything here is closed-form or a short numeric search over the standard library's
``NormalDist`` and ``math.lgamma``: Wilson intervals for proportions, Newcombe's hybrid score
interval for a difference of proportions (well behaved at 0 % and 100 %, where the plain Wald
interval collapses), a normal interval for a difference of means, and exact binomial tails.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_NORMAL = NormalDist()


def z_for(confidence: float, tests: int = 1) -> float:
    """One-sided critical value for ``confidence``, Bonferroni-corrected over ``tests`` tests."""
    if not 0.5 <= confidence < 1.0:
        raise ValueError("confidence must be within [0.5, 1)")
    alpha = (1.0 - confidence) / max(1, tests)
    return _NORMAL.inv_cdf(1.0 - alpha)


def wilson_interval(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when there is no data."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, z: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``p1 - p2`` (method 10 of Newcombe, 1998)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return low, high


def mean_and_variance(total: float, total_sq: float, n: int) -> tuple[float, float]:
    """Mean and unbiased sample variance from running sums (variance 0 for n < 2)."""
    if n <= 0:
        return 0.0, 0.0
    mean = total / n
    if n < 2:
        return mean, 0.0
    return mean, max(0.0, (total_sq - n * mean * mean) / (n - 1))


def mean_diff_interval(m1: float, v1: float, n1: int, m2: float, v2: float, n2: int,
                       z: float) -> tuple[float, float]:
    """Normal (Welch-style) interval for ``mean1 - mean2`` from summary statistics."""
    se = math.sqrt(v1 / n1 + v2 / n2)
    d = m1 - m2
    return d - z * se, d + z * se


def _log_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def _log_sum(values: list[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed exactly in log space."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(1.0, math.exp(_log_sum([_log_pmf(i, n, p) for i in range(k + 1)])))


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return min(1.0, math.exp(_log_sum([_log_pmf(i, n, p) for i in range(k, n + 1)])))
