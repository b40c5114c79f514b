"""Online Elo and TrueSkill updates for one outcome. Both the live vote path and full replays call these."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import trueskill

from ratings.outcomes import Outcome, pairwise


@dataclass(frozen=True, slots=True)
class EloParams:
    k: float = 4.0
    scale: float = 400.0
    base: float = 10.0
    initial: float = 1000.0
    #: Pairwise games a model plays before its time-weighted average starts (see ratings.replay); None:
    #: :meth:`settle_games`' default, 0: from its first vote (the plain average, which penalises late models).
    twa_settle_games: int | None = None

    def settle_games(self) -> int:
        """Games after which the initial rating has stopped mattering: online Elo pulls a rating's error
        towards 0 by at most ``k * ln(base) / scale / 4`` of it per game (at even odds), so after
        ``3 / that`` games (522 for k=4) an initial offset is down to about 5% (e^-3) at best."""
        if self.twa_settle_games is not None:
            return self.twa_settle_games
        return math.ceil(3.0 / (self.k * math.log(self.base) / self.scale / 4.0))


@dataclass(frozen=True, slots=True)
class TrueSkillParams:
    mu: float = 25.0
    sigma: float = 25.0 / 3.0
    beta: float = 25.0 / 6.0
    tau: float = 25.0 / 300.0
    draw_probability: float = 0.10


def elo_expected(r_a: float, r_b: float, params: EloParams) -> float:
    """Expected score of a against b."""
    return 1.0 / (1.0 + params.base ** ((r_b - r_a) / params.scale))


def elo_update(ratings: dict[int, float], outcome: Outcome, params: EloParams) -> dict[int, float]:
    """New Elo ratings of the outcome's players.

    All pairwise results of one poll are applied simultaneously: every expected score is computed from the
    ratings before the poll, and each player's changes are summed. A missing player starts at
    ``params.initial``. Returns only the players of the outcome.
    """
    before = {p: ratings.get(p, params.initial) for p in outcome.players}
    delta = dict.fromkeys(outcome.players, 0.0)
    for a, b, score in pairwise(outcome):
        change = params.k * (score - elo_expected(before[a], before[b], params))
        delta[a] += change
        delta[b] -= change
    return {p: before[p] + delta[p] for p in outcome.players}


@lru_cache(maxsize=16)
def trueskill_env(params: TrueSkillParams) -> trueskill.TrueSkill:
    return trueskill.TrueSkill(
        mu=params.mu, sigma=params.sigma, beta=params.beta, tau=params.tau,
        draw_probability=params.draw_probability, backend=None,
    )


@lru_cache(maxsize=16)
def duel_constants(params: TrueSkillParams) -> tuple[float, float, float]:
    """``(2 beta^2, tau^2, draw margin)`` of a 1-vs-1 game, the draw margin from the package's own ``ppf``."""
    env = trueskill_env(params)
    return 2.0 * params.beta ** 2, params.tau ** 2, trueskill.calc_draw_margin(params.draw_probability, 2, env)


_SQRT2 = math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _erfc(x: float) -> float:
    """The ``trueskill`` package's own erfc approximation (its default backend), so results match it."""
    z = abs(x)
    t = 1.0 / (1.0 + z / 2.0)
    r = t * math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277)))))))))
    return 2.0 - r if x < 0 else r


def _cdf(x: float) -> float:
    return 0.5 * _erfc(-x / _SQRT2)


def _pdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-(x * x) / 2)


def trueskill_duel(
    mu_w: float, sigma_w: float, mu_l: float, sigma_l: float, drawn: bool, constants: tuple[float, float, float]
) -> tuple[float, float, float, float]:
    """Closed-form TrueSkill update of a 1-vs-1 game: ``(mu_w, sigma_w, mu_l, sigma_l)`` after it.

    ``w`` won over ``l``, or they drew (then the order does not matter). ``constants`` is
    :func:`duel_constants`. This is the package's factor graph for two players solved in closed form (for two
    teams its message passing converges after one pass), with the package's own approximate ``cdf`` and
    ``pdf``; it equals ``TrueSkill.rate_1vs1`` to about 1e-13 per game (tests/ratings check 1e-9 over long
    sequences). Where the package raises ``FloatingPointError`` (an extreme upset that its approximate
    ``cdf`` cannot resolve: the variance factor ``w`` leaves (0, 1)), this uses the limit of ``w`` instead,
    so a vote can always be counted.
    """
    two_beta2, tau2, margin = constants
    var_w = sigma_w * sigma_w + tau2
    var_l = sigma_l * sigma_l + tau2
    c2 = two_beta2 + var_w + var_l
    c = math.sqrt(c2)
    t = (mu_w - mu_l) / c
    e = margin / c
    if drawn:
        abs_t = abs(t)
        a, b = e - abs_t, -e - abs_t
        denom = _cdf(a) - _cdf(b)
        if denom:
            pdf_a, pdf_b = _pdf(a), _pdf(b)
            v_abs = (pdf_b - pdf_a) / denom
            w = v_abs * v_abs + (a * pdf_a - b * pdf_b) / denom
            v = -v_abs if t < 0 else v_abs
        else:
            v = -a if t < 0 else a
            w = 1.0
        if not 0.0 < w < 1.0:
            w = 1.0 if w >= 1.0 else 0.0
    else:
        x = t - e
        denom = _cdf(x)
        v = _pdf(x) / denom if denom else -x
        w = v * (v + x)
        if not 0.0 < w < 1.0:
            w = 1.0 if x < 0.0 else 0.0
    new_mu_w = mu_w + var_w / c * v
    new_mu_l = mu_l - var_l / c * v
    new_sigma_w = math.sqrt(var_w * (1.0 - var_w / c2 * w))
    new_sigma_l = math.sqrt(var_l * (1.0 - var_l / c2 * w))
    return new_mu_w, new_sigma_w, new_mu_l, new_sigma_l


def trueskill_update(
    ratings: dict[int, tuple[float, float]], outcome: Outcome, params: TrueSkillParams
) -> dict[int, tuple[float, float]]:
    """New (mu, sigma) of the outcome's players, with the ``trueskill`` package's model.

    * A duel is the package's ``rate_1vs1`` (a tie is a draw), computed by its closed form
      :func:`trueskill_duel`.
    * A best-only free-for-all (one image chosen, the others unranked among themselves) is its pairwise
      expansion (:func:`ratings.outcomes.pairwise`: the chosen image beats each other image), each pair a
      ``rate_1vs1`` from the *pre-poll* ratings, combined per player: the mean changes add up and the
      variance shrink factors multiply, ``sigma'^2 = (sigma^2 + tau^2) * prod_j (sigma_j'^2 / (sigma^2 +
      tau^2))`` (the dynamics ``tau`` is added once per poll). So no draw is invented among the unchosen
      images, the result does not depend on screen order, and an unchosen image can only lose rating. See
      :func:`trueskill_pairwise`; tests/ratings check it against the package's ``rate_1vs1``.
    * A full ranking is the package's ``rate`` with one team per player and the ranks (its factor graph
      for a ranking); so is a poll where nobody was chosen (all ranks equal: a draw among all). Should
      ``rate`` raise ``FloatingPointError`` (an extreme upset its approximate cdf cannot resolve), the same
      game is rated with the package's exact scipy backend instead.

    A missing player starts at ``(params.mu, params.sigma)``.
    """
    players = outcome.players
    if len(players) == 2:
        a, b = players
        mu_a, sigma_a = ratings.get(a, (params.mu, params.sigma))
        mu_b, sigma_b = ratings.get(b, (params.mu, params.sigma))
        constants = duel_constants(params)
        if outcome.ranks[0] <= outcome.ranks[1]:
            mu_a, sigma_a, mu_b, sigma_b = trueskill_duel(mu_a, sigma_a, mu_b, sigma_b, outcome.is_draw, constants)
        else:
            mu_b, sigma_b, mu_a, sigma_a = trueskill_duel(mu_b, sigma_b, mu_a, sigma_a, False, constants)
        return {a: (mu_a, sigma_a), b: (mu_b, sigma_b)}
    if not outcome.full_ranking and not outcome.is_draw:
        return trueskill_pairwise(ratings, outcome, params)
    groups = [(ratings.get(p, (params.mu, params.sigma)),) for p in players]
    try:
        new = _rate_free_for_all(trueskill_env(params), groups, outcome.ranks)
    except FloatingPointError:
        new = _rate_free_for_all(trueskill_scipy_env(params), groups, outcome.ranks)
    return dict(zip(players, new))


def trueskill_pairwise(
    ratings: dict[int, tuple[float, float]], outcome: Outcome, params: TrueSkillParams
) -> dict[int, tuple[float, float]]:
    """A poll rated as its pairwise results, each a 1-vs-1 game from the pre-poll ratings (see
    :func:`trueskill_update`): per player, ``mu + sum of the mean changes`` and
    ``(sigma^2 + tau^2) * product of the variance factors``."""
    constants = duel_constants(params)
    tau2 = constants[1]
    before = {p: ratings.get(p, (params.mu, params.sigma)) for p in outcome.players}
    shift = dict.fromkeys(outcome.players, 0.0)
    shrink = dict.fromkeys(outcome.players, 1.0)
    for a, b, score in pairwise(outcome):
        w, l = (a, b) if score >= 0.5 else (b, a)
        (mu_w, sigma_w), (mu_l, sigma_l) = before[w], before[l]
        new_mu_w, new_sigma_w, new_mu_l, new_sigma_l = trueskill_duel(
            mu_w, sigma_w, mu_l, sigma_l, score == 0.5, constants
        )
        shift[w] += new_mu_w - mu_w
        shift[l] += new_mu_l - mu_l
        shrink[w] *= new_sigma_w * new_sigma_w / (sigma_w * sigma_w + tau2)
        shrink[l] *= new_sigma_l * new_sigma_l / (sigma_l * sigma_l + tau2)
    out = {}
    for p, (mu, sigma) in before.items():
        out[p] = (mu + shift[p], math.sqrt((sigma * sigma + tau2) * shrink[p]))
    return out


def _rate_free_for_all(env: trueskill.TrueSkill, groups, ranks) -> list[tuple[float, float]]:
    teams = [(env.create_rating(mu, sigma),) for (mu, sigma), in groups]
    return [(team[0].mu, team[0].sigma) for team in env.rate(teams, ranks=list(ranks))]


@lru_cache(maxsize=16)
def trueskill_scipy_env(params: TrueSkillParams) -> trueskill.TrueSkill:
    return trueskill.TrueSkill(
        mu=params.mu, sigma=params.sigma, beta=params.beta, tau=params.tau,
        draw_probability=params.draw_probability, backend="scipy",
    )


def conservative(mu: float, sigma: float) -> float:
    """The leaderboard's conservative skill estimate, mu - 3 sigma."""
    return mu - 3.0 * sigma


def is_finite(value: float) -> bool:
    return math.isfinite(value)
