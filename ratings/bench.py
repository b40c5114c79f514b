"""Benchmark of a full recompute of every rating from a long synthetic duel log.

The log (``synthetic_duels``): ``models`` models with true skills evenly spaced ``spacing`` Elo points
apart, ``votes`` duels between uniformly drawn distinct pairs, outcomes from the Bradley–Terry model of
those skills, with ties: a duel is a tie with probability ``tie_rate`` (half of them "both bad"),
otherwise decided by Bradley–Terry. Timestamps advance by exponential gaps (mean 1 s); ids count up. It is
held as numpy columns (:class:`~ratings.log.VoteTable`), the shape a replay of the stored log takes.

The recompute, timed stage by stage: online Elo with the time-weighted average (``elo_s``), the
Bradley–Terry fit from the aggregated poll table (``bt_s``), its bootstrap (``bootstrap_s``), TrueSkill
(``trueskill_s``, the closed-form duel update vote by vote), plus the per-model counts; ``total_s`` is the
whole recompute. ``peak_rss_mb`` is the process's peak resident memory so far.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict
from typing import IO

import numpy as np

from ratings.battles import write_table_battles
from ratings.bradley_terry import BTParams, point_estimate, poll_table, with_interval
from ratings.leaderboard import LeaderboardRow, leaderboard_rows
from ratings.log import A_WON, B_WON, BOTH_BAD, OVERALL, TIE, VoteTable
from ratings.online import EloParams, TrueSkillParams
from ratings.replay import ScopeReplay, count_pass, elo_pass, trueskill_pass


def model_name(i: int) -> str:
    return f"model-{i:03d}"


def synthetic_duels(
    *, votes: int, models: int, seed: int, spacing: float = 20.0, tie_rate: float = 0.1, mode: str = "duel",
) -> VoteTable:
    rng = np.random.default_rng(seed)
    skills = spacing * (np.arange(models) - (models - 1) / 2.0)
    a = rng.integers(0, models, votes)
    b = (a + rng.integers(1, models, votes)) % models  # uniform over the other models
    p_a = 1.0 / (1.0 + 10.0 ** ((skills[b] - skills[a]) / 400.0))
    u = rng.random(votes)
    result = np.where(rng.random(votes) < p_a, A_WON, B_WON)
    result = np.where(u < tie_rate, np.where(u < tie_rate / 2, BOTH_BAD, TIE), result)
    gaps = rng.exponential(1.0, votes)
    timestamps = 1.7e9 + np.round(np.cumsum(gaps), 6)
    return VoteTable.from_duels(
        ids=np.arange(1, votes + 1), timestamps=timestamps, a=a, b=b, result=result.astype(np.int8),
        models=np.arange(1, models + 1), mode=mode,
    )


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def recompute(
    table: VoteTable, *, elo: EloParams = EloParams(), trueskill: TrueSkillParams = TrueSkillParams(),
    bt: BTParams = BTParams(), scope: str = OVERALL,
) -> tuple[dict, list[LeaderboardRow]]:
    """Timings (seconds) of a full recompute of ``scope`` and its leaderboard rows."""
    t0 = time.perf_counter()
    rows = table.rows_in(scope)
    end = float(table.timestamps[rows[-1]]) if len(rows) else None
    elo_now, twa = elo_pass(table, rows, elo, end)
    t1 = time.perf_counter()
    polls = poll_table(table, rows)
    theta, rating = point_estimate(polls, bt)
    t2 = time.perf_counter()
    result = with_interval(polls, bt, theta, rating)
    t3 = time.perf_counter()
    mu, sigma = trueskill_pass(table, rows, trueskill)
    t4 = time.perf_counter()
    votes, games, wins = count_pass(table, rows)
    replayed = ScopeReplay(table.models, elo_now, twa, mu, sigma, votes, games, wins)
    board = leaderboard_rows(table, scope, replayed, result)
    t5 = time.perf_counter()
    timings = {
        "votes": int(len(rows)), "elo_s": round(t1 - t0, 3), "bt_s": round(t2 - t1, 3),
        "bootstrap_s": round(t3 - t2, 3), "trueskill_s": round(t4 - t3, 3), "total_s": round(t5 - t0, 3),
    }
    return timings, board


def run_bench(
    *, votes: int, models: int, seed: int, rounds: int = 100, export_battles: IO[str] | None = None,
    out: IO[str] | None = None,
) -> dict:
    """Build the log, recompute, optionally write the battles and the ratings; the JSON-ready line."""
    table = synthetic_duels(votes=votes, models=models, seed=seed)
    elo, ts, bt = EloParams(), TrueSkillParams(), BTParams(rounds=rounds, seed=seed)
    timings, board = recompute(table, elo=elo, trueskill=ts, bt=bt)
    line = {**timings, "peak_rss_mb": round(peak_rss_mb(), 1)}
    names = {int(m): model_name(int(m)) for m in table.models}
    if export_battles is not None:
        write_table_battles(export_battles, table, names)
    if out is not None:
        json.dump({
            "votes": int(len(table)), "models": models, "seed": seed,
            "params": {"elo": asdict(elo), "trueskill": asdict(ts), "bt": asdict(bt)},
            "ratings": [{"name": names[r.model], **r.as_dict()} for r in board],
        }, out, indent=1)
        out.write("\n")
    return line
