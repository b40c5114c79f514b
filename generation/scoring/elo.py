"""The Elo of the automatic character-similarity duels: the ratings engine's own (``ratings.online`` for the
update, ``ratings.replay.elo_pass`` for the replay and its time-weighted average), fed with the scorers' duels.

Players may be any hashable (variant ids on the site); they are numbered in order of first appearance for the
engine's duel table. Time-weighted average: as on the human leaderboard, each rating is averaged over the log
time it was held, from the duel that settles the player (``EloParams.twa_settle_games``; 0 = from its first
duel, the paper's plain reading), so a player that joined late is not pulled towards the initial rating.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np

from ratings.log import A_WON, B_WON, TIE, VoteTable
from ratings.online import EloParams, elo_expected
from ratings.replay import elo_pass

__all__ = ["Duel", "EloParams", "EloStanding", "elo_expected", "elo_replay"]

_RESULT = {1.0: A_WON, 0.0: B_WON, 0.5: TIE}


@dataclass(frozen=True, slots=True)
class Duel:
    """One duel: ``score_a`` is 1 when a won, 0.5 for a tie, 0 when b won; ``time`` orders and weights."""

    a: Hashable
    b: Hashable
    score_a: float
    time: float = 0.0


@dataclass(slots=True)
class EloStanding:
    elo: float
    twa_elo: float
    duels: int = 0
    wins: int = 0
    losses: int = 0
    ties: int = 0


def elo_replay(duels: Iterable[Duel], params: EloParams = EloParams()) -> dict[Hashable, EloStanding]:
    """Replay ``duels`` in the given order (callers sort by time) and return every player's standing."""
    duels = list(duels)
    for previous, duel in zip([None, *duels], duels):
        if duel.a == duel.b:
            raise ValueError(f"a duel needs two different players, got {duel.a!r} twice")
        if duel.score_a not in _RESULT:
            raise ValueError(f"score_a must be 0, 0.5 or 1, got {duel.score_a!r}")
        if previous is not None and duel.time < previous.time:
            raise ValueError("duels must be given in time order")
    players = list(dict.fromkeys(p for d in duels for p in (d.a, d.b)))
    index = {p: i for i, p in enumerate(players)}
    n = len(duels)
    table = VoteTable.from_duels(
        ids=np.arange(n), timestamps=np.array([float(d.time) for d in duels]),
        a=np.array([index[d.a] for d in duels]), b=np.array([index[d.b] for d in duels]),
        result=np.array([_RESULT[float(d.score_a)] for d in duels]), models=np.arange(len(players)), mode="ccip",
    )
    elo, twa = elo_pass(table, np.arange(n), params)
    standings = {p: EloStanding(elo=float(elo[i]), twa_elo=float(twa[i])) for p, i in index.items()}
    for d in duels:
        for player, score in ((d.a, d.score_a), (d.b, 1.0 - d.score_a)):
            s = standings[player]
            s.duels += 1
            s.wins += score == 1.0
            s.losses += score == 0.0
            s.ties += score == 0.5
    return standings
