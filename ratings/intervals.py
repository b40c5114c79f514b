"""Interval and test helpers shared by the arena's reports and the automatic scorers (pure Python + scipy)."""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: float, total: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a share ``successes / total``; ``None`` when there is nothing to share.

    ``successes`` may be fractional (a mean of per-item ratios in [0, 1] times ``total``): a ratio's variance is
    at most p(1 - p), so the interval is then conservative.
    """
    if total <= 0:
        return None
    p = successes / total
    z2 = z * z
    denom = 1.0 + z2 / total
    centre = (p + z2 / (2 * total)) / denom
    half = z * math.sqrt(max(p * (1.0 - p), 0.0) / total + z2 / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Student-t interval for the mean of ``values``; ``None`` with fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    from scipy import stats

    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * math.sqrt(var / n)
    return (mean - half, mean + half)


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def binomial_two_sided(k: int, n: int, p: float = 0.5) -> float | None:
    """Two-sided exact binomial test p-value of ``k`` successes of ``n`` against ``p``; None when ``n`` is 0."""
    if n <= 0:
        return None
    from scipy.stats import binomtest

    return float(binomtest(k, n, p).pvalue)
