"""The simulated world of ``simulate_arena``: hidden true skills, voters who know them, Kendall's tau.

True skills are on the Elo scale with mean 1000: ``spaced`` puts them ``spread`` Elo points apart (the
earlier runs' "50 models 40 apart"), ``normal`` draws them from Normal(1000, spread^2). They are shuffled
over the model ids.

A voter judges a duel by the Bradley–Terry model of the true skills (P(a beats b) = 1 / (1 + 10^((s_b -
s_a) / 400)), no ties) and a free-for-all by the Plackett–Luce model (the best image is i with probability
proportional to 10^(s_i / 400); with ``full_ranking`` the rest of the ranking follows the same rule among
those left). A noisy voter (``flip``) answers at random instead with that probability: in a duel they pick
the other image, in a free-for-all one of the others (uniformly).
"""

from __future__ import annotations

import math
import random

import numpy as np

from ratings.outcomes import Outcome

SKILLS = ("spaced", "normal")


def true_skills(models: int, kind: str, spread: float, rng: random.Random) -> dict[int, float]:
    """``{model id: true skill}`` for ids 0..models-1 (see the module text)."""
    if kind == "spaced":
        values = [1000.0 + spread * (i - (models - 1) / 2) for i in range(models)]
        rng.shuffle(values)
    elif kind == "normal":
        values = [rng.gauss(1000.0, spread) for _ in range(models)]
    else:
        raise ValueError(f"skills are one of {', '.join(SKILLS)}")
    return dict(enumerate(values))


class Voter:
    """Answers polls from hidden true skills (Elo scale)."""

    def __init__(self, skills: dict[int, float], flip: float, rng: random.Random, full_ranking: bool = False):
        self.skills, self.flip, self.rng, self.full_ranking = skills, flip, rng, full_ranking

    def __call__(self, players: list[int] | tuple[int, ...]) -> Outcome:
        rng = self.rng
        strength = [10.0 ** (self.skills[p] / 400.0) for p in players]
        n = len(players)
        if n == 2:
            a_wins = rng.random() < strength[0] / (strength[0] + strength[1])
            if rng.random() < self.flip:
                a_wins = not a_wins
            return Outcome(tuple(players), (0, 1) if a_wins else (1, 0))
        order = self._plackett_luce(strength)
        best = order[0]
        if rng.random() < self.flip:
            best = rng.choice([i for i in range(n) if i != best])
            if self.full_ranking:
                order.remove(best)
                order.insert(0, best)
        if self.full_ranking:
            ranks = [0] * n
            for place, i in enumerate(order):
                ranks[i] = place
            return Outcome(tuple(players), tuple(ranks), full_ranking=True)
        return Outcome(tuple(players), tuple(0 if i == best else 1 for i in range(n)))

    def _plackett_luce(self, strength: list[float]) -> list[int]:
        order: list[int] = []
        left = list(range(len(strength)))
        while left:
            x = self.rng.random() * sum(strength[i] for i in left)
            chosen = left[-1]
            for i in left:
                x -= strength[i]
                if x < 0:
                    chosen = i
                    break
            order.append(chosen)
            left.remove(chosen)
            if not self.full_ranking:
                break
        return order


class KendallTau:
    """Kendall's tau-b between estimates and fixed true values without ties (O(n^2) numpy, n ~ 50)."""

    def __init__(self, truth: np.ndarray) -> None:
        self.iu = np.triu_indices(len(truth), 1)
        self.true_sign = np.sign(truth[:, None] - truth[None, :])[self.iu]
        self.pairs = len(self.true_sign)

    def __call__(self, estimate: np.ndarray) -> float:
        s = np.sign(estimate[:, None] - estimate[None, :])[self.iu]
        untied = np.count_nonzero(s)
        if untied == 0:
            return 0.0
        return float((s * self.true_sign).sum() / math.sqrt(self.pairs * untied))


def converged_at(taus: list[float] | np.ndarray, threshold: float, step: int = 1) -> int | None:
    """The first vote count after which every tau is >= threshold (``taus[i]`` measured after
    ``(i + 1) * step`` votes); None if the last one is below."""
    taus = np.asarray(taus)
    if not len(taus) or taus[-1] < threshold:
        return None
    below = np.flatnonzero(taus < threshold)
    first_ok = 0 if not len(below) else below[-1] + 1
    return int((first_ok + 1) * step)
