"""How much one more comparison of two models is expected to teach: the pair values of the matchmaker.

Beliefs are TrueSkill-style: model i's skill is N(mu_i, sigma_i^2) and one comparison of i with j is won by i
with probability Phi((s_i - s_j) / (sqrt(2) beta)), beta the performance noise in the same units (TrueSkill's
25/6 for TrueSkill mu/sigma; :data:`ELO_BETA` for Elo-scale Bradley–Terry estimates). In units of
``sqrt(2) beta`` the difference d = s_i - s_j has belief N(x, s2) and P(i wins | d) = Phi(d).

Two values are offered (both in bits, both vectorised over every pair at once):

* :func:`bald`: the mutual information between the comparison's outcome and the skills ("BALD", Houlsby et
  al. 2011, with their closed-form approximation of the expected conditional entropy of a probit).
* :func:`order_gain`: the expected reduction of the entropy of the pair's *order* (is i better than j?):
  h(P(d > 0)) now minus its expectation after the comparison, the posteriors moment-matched exactly as
  TrueSkill updates a 1-vs-1 game. It is high for pairs whose order is uncertain *and* that one comparison
  can move (a new model against anyone; close models with wide beliefs), low for settled orders and for
  near-ties that are already measured tightly. The ranking (Kendall tau) is about orders, so this is the
  default.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_ndtr, ndtr

#: TrueSkill's default performance noise.
TRUESKILL_BETA = 25.0 / 6.0
#: The beta that makes Phi(d / (sqrt(2) beta)) match the Elo curve 1 / (1 + 10^(-d / 400)) in slope at d = 0.
ELO_BETA = 800.0 / (math.sqrt(math.pi) * math.log(10.0))  # about 196 Elo points

_C2 = math.pi * math.log(2.0) / 2.0  # Houlsby et al.: h(Phi(x)) ~ exp(-x^2 / (pi ln 2))
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def pair_beliefs(mu: np.ndarray, sigma: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """``(x, s2)``: the belief N(x, s2) about s_i - s_j for every pair, in units of ``sqrt(2) beta``."""
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    unit = math.sqrt(2.0) * beta
    x = (mu[:, None] - mu[None, :]) / unit
    s2 = (sigma[:, None] ** 2 + sigma[None, :] ** 2) / (unit * unit)
    return x, s2


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """h(p) in bits, 0 at p = 0 or 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1.0 - 1e-16)
    return -(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))


def bald(x: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Mutual information (bits) between one comparison's outcome and the skills."""
    predictive = binary_entropy(ndtr(x / np.sqrt(1.0 + s2)))
    conditional = math.sqrt(_C2) / np.sqrt(s2 + _C2) * np.exp(-x * x / (2.0 * (s2 + _C2)))
    return np.maximum(predictive - conditional, 0.0)


def _posterior(x: np.ndarray, s2: np.ndarray, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """Moment-matched belief about d after i won (``sign`` +1) or lost (-1): TrueSkill's v and w."""
    c2 = 1.0 + s2
    c = np.sqrt(c2)
    t = sign * x / c
    v = np.exp(-0.5 * t * t - log_ndtr(t)) * _INV_SQRT_2PI  # pdf(t) / cdf(t), stable for t << 0
    w = np.clip(v * (v + t), 0.0, 1.0)
    return x + sign * s2 / c * v, s2 * (1.0 - s2 / c2 * w)


def order_gain(x: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Expected reduction (bits) of the entropy of the pair's order after one comparison."""
    s2 = np.maximum(s2, 1e-12)
    now = binary_entropy(ndtr(x / np.sqrt(s2)))
    p_win = ndtr(x / np.sqrt(1.0 + s2))
    x_w, s2_w = _posterior(x, s2, 1.0)
    x_l, s2_l = _posterior(x, s2, -1.0)
    after = p_win * binary_entropy(ndtr(x_w / np.sqrt(np.maximum(s2_w, 1e-12)))) + (1.0 - p_win) * binary_entropy(
        ndtr(x_l / np.sqrt(np.maximum(s2_l, 1e-12)))
    )
    return np.maximum(now - after, 0.0)


VALUES = {"order": order_gain, "bald": bald}


def pair_values(mu: np.ndarray, sigma: np.ndarray, beta: float, value: str = "order") -> np.ndarray:
    """(n, n) symmetric matrix of the chosen value for every pair, 0 on the diagonal."""
    if value not in VALUES:
        raise ValueError(f"unknown pair value {value!r}; one of {', '.join(VALUES)}")
    x, s2 = pair_beliefs(mu, sigma, beta)
    out = VALUES[value](x, s2)
    out = 0.5 * (out + out.T)  # exact symmetry (the formulas are symmetric up to rounding)
    np.fill_diagonal(out, 0.0)
    return out
