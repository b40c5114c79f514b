"""A minimal online Elo with a time-weighted average, for the automatic character-similarity duels.

Pure Python, no Django. (``ratings`` has the human-vote version, but generation may not import arena;
the formulas are the same: expected = 1 / (1 + base ** ((r_b - r_a) / scale)), r' = r + K (actual - expected).)

Time-weighted average (the paper's Figure 5): each player's rating is averaged over the replay, weighted by how
long it held each value. A player's value after a duel at time t_i is held until its next duel t_{i+1}, and its
last value until the end of the replay (the time of the last duel of all). The initial rating, held for no
time, does not count. When a player's values were held for no time at all (it only played at the very end),
the time-weighted average is its current rating.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EloParams:
    k: float = 4.0
    scale: float = 400.0
    base: float = 10.0
    initial: float = 1000.0


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
    history: list[tuple[float, float]] = field(default_factory=list)  # (time, rating after the duel)


def elo_expected(r_a: float, r_b: float, params: EloParams) -> float:
    """Expected score of a against b."""
    return 1.0 / (1.0 + params.base ** ((r_b - r_a) / params.scale))


def elo_update(r_a: float, r_b: float, score_a: float, params: EloParams) -> tuple[float, float]:
    """Ratings of a and b after one duel."""
    change = params.k * (score_a - elo_expected(r_a, r_b, params))
    return r_a + change, r_b - change


def time_weighted_average(history: list[tuple[float, float]], end: float, current: float) -> float:
    """Average of the values in ``history`` ((time, value) in time order), each held until the next or ``end``."""
    total = 0.0
    weight = 0.0
    for i, (t, value) in enumerate(history):
        t_next = history[i + 1][0] if i + 1 < len(history) else end
        held = max(t_next - t, 0.0)
        total += value * held
        weight += held
    return total / weight if weight > 0 else current


def elo_replay(duels: Iterable[Duel], params: EloParams = EloParams()) -> dict[Hashable, EloStanding]:
    """Replay ``duels`` in the given order (callers sort by time) and return every player's standing."""
    ratings: dict[Hashable, float] = {}
    standings: dict[Hashable, EloStanding] = {}
    end = None
    for duel in duels:
        if duel.a == duel.b:
            raise ValueError(f"a duel needs two different players, got {duel.a!r} twice")
        if duel.score_a not in (0.0, 0.5, 1.0):
            raise ValueError(f"score_a must be 0, 0.5 or 1, got {duel.score_a!r}")
        if end is not None and duel.time < end:
            raise ValueError("duels must be given in time order")
        end = duel.time
        r_a = ratings.get(duel.a, params.initial)
        r_b = ratings.get(duel.b, params.initial)
        r_a, r_b = elo_update(r_a, r_b, duel.score_a, params)
        ratings[duel.a], ratings[duel.b] = r_a, r_b
        for player, rating, score in ((duel.a, r_a, duel.score_a), (duel.b, r_b, 1.0 - duel.score_a)):
            s = standings.setdefault(player, EloStanding(elo=params.initial, twa_elo=params.initial))
            s.elo = rating
            s.duels += 1
            if score == 1.0:
                s.wins += 1
            elif score == 0.0:
                s.losses += 1
            else:
                s.ties += 1
            s.history.append((duel.time, rating))
    for s in standings.values():
        s.twa_elo = time_weighted_average(s.history, end if end is not None else 0.0, s.elo)
    return standings
