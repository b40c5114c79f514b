"""A stored leaderboard's rows, computed from the vote log in one call."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass


from ratings.bradley_terry import BTParams, BTResult, bradley_terry, scope_poll_table
from ratings.log import OVERALL, VoteRecord, VoteTable, vote_log_hash
from ratings.online import EloParams, TrueSkillParams, conservative
from ratings.replay import ScopeReplay, replay_table


@dataclass(frozen=True, slots=True)
class LeaderboardRow:
    model: int
    elo: float  # online Elo after the last vote
    twa_elo: float  # time-weighted average Elo (see ratings.replay)
    bt: float  # Bradley–Terry MLE on the Elo scale
    bt_lo: float  # bootstrap interval
    bt_hi: float
    rank: int  # 1 + models whose bt_lo is above this bt_hi
    ts_mu: float
    ts_sigma: float
    conservative: float  # ts_mu - 3 ts_sigma
    votes: int  # polls it took part in
    games: int  # pairwise comparisons
    wins: float  # pairwise wins, ties counting half
    win_rate: float  # wins / games

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def leaderboard_rows(table: VoteTable, scope: str, replayed: ScopeReplay, bt: BTResult) -> list[LeaderboardRow]:
    """Rows of the models with at least one vote in the scope, best first (rank, then -bt, then id)."""
    position = {int(m): i for i, m in enumerate(table.models.tolist())}
    rows = []
    for j, model in enumerate(bt.models.tolist()):
        i = position[model]
        games = int(replayed.games[i])
        wins = float(replayed.wins[i])
        rows.append(LeaderboardRow(
            model=model, elo=float(replayed.elo[i]), twa_elo=float(replayed.twa_elo[i]), bt=float(bt.rating[j]),
            bt_lo=float(bt.lower[j]), bt_hi=float(bt.upper[j]), rank=int(bt.rank[j]), ts_mu=float(replayed.mu[i]),
            ts_sigma=float(replayed.sigma[i]), conservative=conservative(float(replayed.mu[i]), float(replayed.sigma[i])),
            votes=int(replayed.votes[i]), games=games, wins=wins, win_rate=wins / games if games else 0.0,
        ))
    rows.sort(key=lambda r: (r.rank, -r.bt, r.model))
    return rows


def compute_leaderboard(
    records: Iterable[VoteRecord] | VoteTable, *, scope: str = OVERALL, elo: EloParams = EloParams(),
    trueskill: TrueSkillParams = TrueSkillParams(), bt: BTParams = BTParams(), end: float | None = None,
) -> list[LeaderboardRow]:
    """Every rating of every model that has votes in ``scope`` (a mode, or ``"overall"``), from a full replay
    of the log. ``end`` closes the time-weighted average's window (default: the log's last vote)."""
    table = records if isinstance(records, VoteTable) else VoteTable.from_records(records)
    if end is None and len(table):
        end = float(table.timestamps[-1])
    replayed = replay_table(table, scope, elo=elo, trueskill=trueskill, end=end)
    result = bradley_terry(scope_poll_table(table, scope, bt), bt)
    return leaderboard_rows(table, scope, replayed, result)


def leaderboard_params(
    *, elo: EloParams = EloParams(), trueskill: TrueSkillParams = TrueSkillParams(), bt: BTParams = BTParams()
) -> dict:
    """The parameters a stored leaderboard records next to its log hash (JSON-ready)."""
    return {"elo": dataclasses.asdict(elo), "trueskill": dataclasses.asdict(trueskill), "bt": dataclasses.asdict(bt)}


def leaderboard_stamp(records: Iterable[VoteRecord], **params) -> dict:
    """``{"log_hash", "votes", "params"}`` for a stored leaderboard."""
    records = list(records)
    return {"log_hash": vote_log_hash(records), "votes": len(records), "params": leaderboard_params(**params)}


__all__ = ["LeaderboardRow", "compute_leaderboard", "leaderboard_params", "leaderboard_stamp"]
