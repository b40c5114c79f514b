"""Exact replay of the vote log, and the incremental (live-style) path it must equal.

Every vote counts in two scopes, its mode and :data:`~ratings.log.OVERALL`. In each scope the votes
are applied one by one in the log's stable order (timestamp, then id) with the very functions of
:mod:`ratings.online` that the live vote path calls, so a replay gives bit for bit the ratings that
the live updates gave. Two spots are written for speed, both checked equal to the online functions bit
for bit by the property test in tests/ratings: a duel's Elo change is ``elo_update``'s expression for its
one pair, written out in the loop (10^6 votes replay in under a second); a duel's TrueSkill update calls
:func:`~ratings.online.trueskill_duel`, the closed form that ``trueskill_update`` itself calls.
Free-for-all polls go through ``elo_update`` and ``trueskill_update`` unchanged.

Time-weighted average Elo (the Illustrious paper's Figure 5): a model's Elo averaged over the time it held
each value. The paper says no more than "time-weighted average is applied" to the Elo of its Figure 5 (its
caption: "Character Similarity ELO Ratings Result, time-weighted average is applied"); we read it as the
average of each model's online Elo trajectory over log time, which smooths the K-factor's random walk. Its
window is what matters for a model that joins late: averaged from its first vote, the long climb from the
initial 1000 to its level is counted in, and a late model sat ~42 points from its true level (issue 9; its
online Elo ~19). So the window starts once the model has *settled*: after the vote that brings its
pairwise games to ``EloParams.settle_games()`` (522 at K=4, when an initial offset has decayed to ~5%;
``twa_settle_games=0`` gives the plain average from the first vote). The rating held from then on is the
one after that vote. The window ends at the end of the log, by default the last vote's timestamp (a later
``end`` may be given, e.g. "now"). Each value is weighted by how long, in log time (timestamps, seconds),
it was held. A model that has not settled, or whose window is empty, gets its current Elo, so a late model
is never rated worse than by its online Elo. ``simulate_arena --late`` measures it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ratings.log import DUEL_SCORE, OVERALL, VoteRecord, VoteTable
from ratings.online import (
    EloParams, TrueSkillParams, duel_constants, elo_update, trueskill_duel, trueskill_update,
)
from ratings.outcomes import Outcome, pairwise


@dataclass(frozen=True, slots=True)
class ModelRating:
    """A model's ratings in one scope after a replay."""

    elo: float
    twa_elo: float
    mu: float
    sigma: float
    votes: int  # polls it took part in
    games: int  # pairwise comparisons
    wins: float  # pairwise wins, ties counting half


@dataclass
class ScopeReplay:
    """Per-model arrays (aligned with ``models``) of one scope's replay."""

    models: np.ndarray
    elo: np.ndarray
    twa_elo: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    votes: np.ndarray
    games: np.ndarray
    wins: np.ndarray

    def ratings(self) -> dict[int, ModelRating]:
        """Only the models that took part in at least one vote of the scope."""
        out = {}
        for i in np.flatnonzero(self.votes > 0).tolist():
            out[int(self.models[i])] = ModelRating(
                elo=float(self.elo[i]), twa_elo=float(self.twa_elo[i]), mu=float(self.mu[i]),
                sigma=float(self.sigma[i]), votes=int(self.votes[i]), games=int(self.games[i]),
                wins=float(self.wins[i]),
            )
        return out


def elo_pass(
    table: VoteTable, rows: np.ndarray, params: EloParams, end: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Online Elo over ``rows`` of the table in order: ``(elo, time-weighted average elo)`` per model."""
    m = len(table.models)
    elo = [params.initial] * m
    first = [math.nan] * m  # start of the averaging window (nan: not settled yet)
    played = [0] * m
    settle = params.settle_games()
    last = [0.0] * m
    acc = [0.0] * m
    k, base, scale = params.k, params.base, params.scale
    ids = table.models.tolist()
    index = {mid: i for i, mid in enumerate(ids)}
    a_col, b_col, res_col = table.a[rows].tolist(), table.b[rows].tolist(), table.result[rows].tolist()
    ts_col = table.timestamps[rows].tolist()
    polls = table.polls
    score_of = DUEL_SCORE
    for row, a, b, res, t in zip(rows.tolist(), a_col, b_col, res_col, ts_col):
        if a >= 0:
            ra, rb = elo[a], elo[b]
            # elo_update for one pair: before + (0.0 + change), before + (0.0 - change)
            change = k * (score_of[res] - 1.0 / (1.0 + base ** ((rb - ra) / scale)))
            elo[a] = ra + change
            elo[b] = rb - change
            for i, held in ((a, ra), (b, rb)):
                if first[i] == first[i]:  # settled (not nan)
                    acc[i] += held * (t - last[i])
                else:
                    played[i] += 1
                    if played[i] >= settle:
                        first[i] = t
                last[i] = t
        else:
            outcome = polls[row]
            members = [index[p] for p in outcome.players]
            new = elo_update({p: elo[i] for p, i in zip(outcome.players, members)}, outcome, params)
            games = dict.fromkeys(outcome.players, 0)
            for x, y, _ in pairwise(outcome):
                games[x] += 1
                games[y] += 1
            for p, i in zip(outcome.players, members):
                if first[i] == first[i]:
                    acc[i] += elo[i] * (t - last[i])
                else:
                    played[i] += games[p]
                    if played[i] >= settle:
                        first[i] = t
                last[i] = t
                elo[i] = new[p]
    if len(ts_col):
        stop = ts_col[-1] if end is None else float(end)
        if stop < ts_col[-1]:
            raise ValueError("the end of the averaging window is before the last vote")
    else:
        stop = 0.0
    twa = list(elo)
    for i in range(m):
        if first[i] == first[i] and stop > first[i]:
            twa[i] = (acc[i] + elo[i] * (stop - last[i])) / (stop - first[i])
    return np.array(elo, dtype=np.float64), np.array(twa, dtype=np.float64)


def trueskill_pass(table: VoteTable, rows: np.ndarray, params: TrueSkillParams) -> tuple[np.ndarray, np.ndarray]:
    """TrueSkill over ``rows`` of the table in order: ``(mu, sigma)`` per model."""
    m = len(table.models)
    mu = [params.mu] * m
    sigma = [params.sigma] * m
    constants = duel_constants(params)
    ids = table.models.tolist()
    index = {mid: i for i, mid in enumerate(ids)}
    a_col, b_col, res_col = table.a[rows].tolist(), table.b[rows].tolist(), table.result[rows].tolist()
    polls = table.polls
    duel = trueskill_duel
    for row, a, b, res in zip(rows.tolist(), a_col, b_col, res_col):
        if a >= 0:
            if res == 1:  # b won
                mu[b], sigma[b], mu[a], sigma[a] = duel(mu[b], sigma[b], mu[a], sigma[a], False, constants)
            else:
                mu[a], sigma[a], mu[b], sigma[b] = duel(mu[a], sigma[a], mu[b], sigma[b], res >= 2, constants)
        else:
            outcome = polls[row]
            members = [index[p] for p in outcome.players]
            new = trueskill_update({p: (mu[i], sigma[i]) for p, i in zip(outcome.players, members)}, outcome, params)
            for p, i in zip(outcome.players, members):
                mu[i], sigma[i] = new[p]
    return np.array(mu, dtype=np.float64), np.array(sigma, dtype=np.float64)


def count_pass(table: VoteTable, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(votes, games, wins)`` per model over ``rows``: polls taken part in, pairwise comparisons, pairwise
    wins with ties counting half."""
    m = len(table.models)
    a, b, res = table.a[rows], table.b[rows], table.result[rows]
    duel = a >= 0
    a, b, res = a[duel], b[duel], res[duel]
    score = np.asarray(DUEL_SCORE)[res] if len(res) else np.zeros(0)
    votes = np.bincount(a, minlength=m) + np.bincount(b, minlength=m)
    games = votes.copy()
    wins = np.bincount(a, weights=score, minlength=m) + np.bincount(b, weights=1.0 - score, minlength=m)
    index = {int(mid): i for i, mid in enumerate(table.models.tolist())}
    for row in rows[~duel].tolist():
        outcome = table.polls[row]
        for p in outcome.players:
            votes[index[p]] += 1
        for x, y, s in pairwise(outcome):
            games[index[x]] += 1
            games[index[y]] += 1
            wins[index[x]] += s
            wins[index[y]] += 1.0 - s
    return votes.astype(np.int64), games.astype(np.int64), wins.astype(np.float64)


def replay_table(
    table: VoteTable, scope: str = OVERALL, *, elo: EloParams = EloParams(),
    trueskill: TrueSkillParams = TrueSkillParams(), end: float | None = None,
) -> ScopeReplay:
    rows = table.rows_in(scope)
    elo_now, twa = elo_pass(table, rows, elo, end)
    mu, sigma = trueskill_pass(table, rows, trueskill)
    votes, games, wins = count_pass(table, rows)
    return ScopeReplay(table.models, elo_now, twa, mu, sigma, votes, games, wins)


def replay(
    records: Iterable[VoteRecord], *, elo: EloParams = EloParams(), trueskill: TrueSkillParams = TrueSkillParams(),
    end: float | None = None, scopes: Sequence[str] | None = None,
) -> dict[str, dict[int, ModelRating]]:
    """Replay the log (any order in, replayed in (timestamp, id) order): per scope, per model id, its
    ratings. Scopes are :data:`OVERALL` and each mode present (or those asked for); ``end`` closes the
    time-weighted average's window (default: the last vote of the whole log)."""
    table = VoteTable.from_records(records)
    if end is None and len(table):
        end = float(table.timestamps[-1])
    return {
        scope: replay_table(table, scope, elo=elo, trueskill=trueskill, end=end).ratings()
        for scope in (scopes if scopes is not None else table.scopes())
    }


class IncrementalRatings:
    """Ratings kept the way the live vote path keeps them: one vote at a time, each applied with
    ``elo_update`` and ``trueskill_update`` to its mode and to :data:`OVERALL`. ``apply`` must be called in
    replay order; the result then equals :func:`replay` bit for bit."""

    def __init__(self, elo: EloParams = EloParams(), trueskill: TrueSkillParams = TrueSkillParams()) -> None:
        self.elo_params, self.ts_params = elo, trueskill
        self.elo: dict[str, dict[int, float]] = {}
        self.ts: dict[str, dict[int, tuple[float, float]]] = {}
        self.games: dict[str, dict[int, int]] = {}
        self.wins: dict[str, dict[int, float]] = {}
        self.votes: dict[str, dict[int, int]] = {}
        self._last: tuple[float, int] | None = None

    def apply(self, record: VoteRecord) -> None:
        key = record.sort_key()
        if self._last is not None and key <= self._last:
            raise ValueError("votes must be applied in replay order (timestamp, then id)")
        self._last = key
        outcome: Outcome = record.outcome
        for scope in (record.mode, OVERALL):
            elo = self.elo.setdefault(scope, {})
            ts = self.ts.setdefault(scope, {})
            elo.update(elo_update(elo, outcome, self.elo_params))
            ts.update(trueskill_update(ts, outcome, self.ts_params))
            games = self.games.setdefault(scope, {})
            wins = self.wins.setdefault(scope, {})
            votes = self.votes.setdefault(scope, {})
            for p in outcome.players:
                votes[p] = votes.get(p, 0) + 1
            for a, b, s in pairwise(outcome):
                games[a] = games.get(a, 0) + 1
                games[b] = games.get(b, 0) + 1
                wins[a] = wins.get(a, 0.0) + s
                wins[b] = wins.get(b, 0.0) + (1.0 - s)

