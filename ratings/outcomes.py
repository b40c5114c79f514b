"""Poll outcomes and their expansion into pairwise results.

An outcome is the list of players shown (model ids, in screen order) and a rank per player, 0 the best;
equal ranks are a tie. Kinds of outcome:

* duel: two players; ranks ``[0, 1]`` (left won), ``[1, 0]`` (right won) or ``[0, 0]`` (a tie or "both
  bad": both rate as a tie, the log keeps which one it was);
* free-for-all, best only: the chosen image has rank 0, the others rank 1. Pairwise this is only
  "the chosen image beats each of the other three": nothing is known about the unchosen ones among
  themselves, so they form no pair;
* free-for-all, full ranking (``full_ranking=True``): every ordered pair of the ranking is a result.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outcome:
    players: tuple[int, ...]
    ranks: tuple[int, ...]
    full_ranking: bool = False

    def __post_init__(self) -> None:
        if len(self.players) < 2:
            raise ValueError("an outcome needs at least two players")
        if len(self.players) != len(self.ranks):
            raise ValueError("one rank per player")
        if len(set(self.players)) != len(self.players):
            raise ValueError("a player appears twice in one outcome")
        if any(rank < 0 for rank in self.ranks):
            raise ValueError("ranks are non-negative")

    @property
    def is_draw(self) -> bool:
        return len(set(self.ranks)) == 1


def pairwise(outcome: Outcome) -> list[tuple[int, int, float]]:
    """Expand an outcome into ``(a, b, score_of_a)`` results with score 1, 0.5 or 0.

    Pairs are listed in screen order of their first member, which fixes the order of any sequential use.
    """
    players, ranks = outcome.players, outcome.ranks
    n = len(players)
    if n == 2:
        return [(players[0], players[1], _score(ranks[0], ranks[1]))]
    if outcome.full_ranking:
        return [(players[i], players[j], _score(ranks[i], ranks[j])) for i in range(n) for j in range(i + 1, n)]
    best = min(ranks)
    winners = [i for i in range(n) if ranks[i] == best]
    if len(winners) == n:  # nobody chosen: a draw among all, every pair a tie
        return [(players[i], players[j], 0.5) for i in range(n) for j in range(i + 1, n)]
    pairs: list[tuple[int, int, float]] = []
    for w in winners:
        for j in range(n):
            if ranks[j] != best:
                pairs.append((players[w], players[j], 1.0))
    return pairs


def _score(rank_a: int, rank_b: int) -> float:
    if rank_a < rank_b:
        return 1.0
    if rank_a > rank_b:
        return 0.0
    return 0.5
