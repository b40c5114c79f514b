"""Online Elo and TrueSkill updates for one outcome. Both the live vote path and full replays call these."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import trueskill

from arena.ratings.outcomes import Outcome, pairwise


@dataclass(frozen=True, slots=True)
class EloParams:
    k: float = 4.0
    scale: float = 400.0
    base: float = 10.0
    initial: float = 1000.0


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


def trueskill_update(
    ratings: dict[int, tuple[float, float]], outcome: Outcome, params: TrueSkillParams
) -> dict[int, tuple[float, float]]:
    """New (mu, sigma) of the outcome's players, with the ``trueskill`` package's factor graph.

    A duel is ``rate_1vs1`` (a tie is a draw); a free-for-all is ``rate`` with one team per player and the
    outcome's ranks (best-only polls rank the unchosen images equal).
    """
    env = trueskill_env(params)
    players = outcome.players
    current = [env.create_rating(*ratings.get(p, (params.mu, params.sigma))) for p in players]
    if len(players) == 2:
        if outcome.ranks[0] <= outcome.ranks[1]:
            new_a, new_b = env.rate_1vs1(current[0], current[1], drawn=outcome.is_draw)
        else:
            new_b, new_a = env.rate_1vs1(current[1], current[0], drawn=False)
        new = [new_a, new_b]
    else:
        new = [team[0] for team in env.rate([(r,) for r in current], ranks=list(outcome.ranks))]
    return {p: (r.mu, r.sigma) for p, r in zip(players, new)}


def conservative(mu: float, sigma: float) -> float:
    """The leaderboard's conservative skill estimate, mu - 3 sigma."""
    return mu - 3.0 * sigma


def is_finite(value: float) -> bool:
    return math.isfinite(value)
