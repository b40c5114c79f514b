"""Which models meet in the next poll: :func:`pick`, the older one-call interface, for every strategy.

New code should use :mod:`ratings.design` (``Matchmaker``/``draw``): it draws from an explicit distribution
over the *feasible* sets (models sharing a prompt group), returns the probability of the set drawn (store
it with the poll), and takes issued-but-unvoted polls into account. ``pick("info", ...)`` is that default
design without groups or pending polls, for callers of this interface.

Strategies (``pick(strategy, candidates, k, rng)`` returns ``k`` distinct model ids in random screen order):

* ``info``: :data:`ratings.design.DesignParams` defaults: a uniform exploration share mixed with sampling in
  proportion to the expected information about the pairs' order (see :mod:`ratings.design`).
* ``uniform``: ``k`` distinct models, each equally likely.
* ``weighted``: drawn one after another without replacement, each with probability proportional to its
  ``weight`` among those left.
* ``active`` (legacy, kept so the simulator can reproduce what it did): K-Sort-Arena style. The model with
  the fewest pairwise comparisons is the pivot (ties broken at random), so a new model plays until it has
  caught up; the other ``k - 1`` are
  added one at a time, each the model with the best upper-confidence score: skill closeness to those
  already chosen plus an exploration bonus ``EXPLORATION * sqrt(ln(1 + all games) / (1 + its games))``
  that grows for models compared less often. Closeness is measured as how uncertain the order of two
  models still is: the binary entropy of P(skill_a > skill_b) = Φ((μ_a − μ_b) / sqrt(σ_a² + σ_b²)), 1 bit
  for models whose order is a coin flip, 0 for a settled order.
* ``widest``: the alternative rule that was measured against it: the model with the widest interval
  (largest σ) as pivot, opponents by σ times TrueSkill match quality.

``active`` and ``widest`` are deterministic given the ratings: they stop comparing pairs they believe
settled and lock in wrong orders. Measured (issue 9): with 20 models of Normal(0, 150) Elo skills and
1,000 best-only 4-way polls, the 95% Bradley–Terry intervals under ``active`` contain the truth for 0.295
of the models with the engine it was written for (10 seeds; the issue: 0.31), and 0.655 in
``simulate_arena`` with today's TrueSkill rule for best-only polls (uniform polls: 0.925). Do not use them
on the site.

In every strategy a disabled candidate, or one with weight 0, is never drawn, and no model appears twice
(duplicate candidate ids count once; an id with any disabled entry is not drawn). Fewer eligible models
than ``k`` raise :class:`NotEnoughModels`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from ratings.design import Candidate, Matchmaker, NotEnoughModels, eligible

__all__ = ["STRATEGIES", "Candidate", "NotEnoughModels", "eligible", "pick"]

#: TrueSkill's default beta (the performance noise), used to judge closeness of skills.
BETA = 25.0 / 6.0
#: Weight of the exploration bonus in ``active``.
EXPLORATION = 1.0

STRATEGIES = ("info", "uniform", "weighted", "active", "widest")


def pick(strategy: str, candidates: Sequence[Candidate], k: int, rng: random.Random) -> list[int]:
    """``k`` distinct eligible model ids for the next poll, in random screen order."""
    if k < 1:
        raise ValueError("a poll needs at least one model")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown matchmaking strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    pool = eligible(candidates)
    if len(pool) < k:
        raise NotEnoughModels(f"{len(pool)} eligible models, {k} needed")
    if strategy == "info":
        if k == 1:
            return [rng.choice(pool).id]
        return list(Matchmaker(pool, k).draw(rng).models)
    if strategy == "uniform":
        chosen = rng.sample(pool, k)
    elif strategy == "weighted":
        chosen = _weighted(pool, k, rng)
    elif strategy == "active":
        chosen = _active(pool, k, rng)
    else:
        chosen = _widest(pool, k, rng)
    ids = [c.id for c in chosen]
    rng.shuffle(ids)
    return ids


def _weighted(pool: list[Candidate], k: int, rng: random.Random) -> list[Candidate]:
    left = list(pool)
    chosen = []
    for _ in range(k):
        total = sum(c.weight for c in left)
        x = rng.random() * total
        i = 0
        for i, c in enumerate(left):
            x -= c.weight
            if x < 0:
                break
        chosen.append(left.pop(i))
    return chosen


def closeness(a: Candidate, b: Candidate, beta: float = BETA) -> float:
    """TrueSkill match quality of a 1-vs-1 game: near 1 for equal, certain skills; near 0 for a mismatch."""
    c2 = 2 * beta * beta + a.sigma * a.sigma + b.sigma * b.sigma
    d = a.mu - b.mu
    return math.sqrt(2 * beta * beta / c2) * math.exp(-d * d / (2 * c2))


def order_uncertainty(a: Candidate, b: Candidate) -> float:
    """Binary entropy (bits) of P(a's skill > b's skill) under their N(μ, σ²) beliefs."""
    z = (a.mu - b.mu) / math.sqrt(a.sigma * a.sigma + b.sigma * b.sigma)
    p = 0.5 * math.erfc(-z / math.sqrt(2))
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def _active(pool: list[Candidate], k: int, rng: random.Random) -> list[Candidate]:
    fewest = min(c.games for c in pool)
    pivot = rng.choice([c for c in pool if c.games == fewest])
    chosen = [pivot]
    rest = [c for c in pool if c is not pivot]
    log_total = math.log(1 + sum(c.games for c in pool))
    bonus = {c.id: EXPLORATION * math.sqrt(log_total / (1 + c.games)) for c in rest}
    while len(chosen) < k:
        best, best_score = None, -math.inf
        for c in rest:
            score = sum(order_uncertainty(s, c) for s in chosen) / len(chosen) + bonus[c.id] + 1e-9 * rng.random()
            if score > best_score:
                best, best_score = c, score
        chosen.append(best)
        rest.remove(best)
    return chosen


def _widest(pool: list[Candidate], k: int, rng: random.Random) -> list[Candidate]:
    widest = max(c.sigma for c in pool)
    pivot = rng.choice([c for c in pool if c.sigma == widest])
    chosen = [pivot]
    rest = [c for c in pool if c is not pivot]
    while len(chosen) < k:
        best, best_score = None, -math.inf
        for c in rest:
            score = c.sigma * sum(closeness(s, c) for s in chosen) / len(chosen) + 1e-9 * rng.random()
            if score > best_score:
                best, best_score = c, score
        chosen.append(best)
        rest.remove(best)
    return chosen
