import numpy as np

from ratings.bradley_terry import BTParams, rank_by_interval
from ratings.leaderboard import compute_leaderboard, leaderboard_params
from ratings.log import VoteRecord
from ratings.online import EloParams
from ratings.replay import replay


def _log():
    rng = np.random.default_rng(5)
    skill = {m: 80.0 * m for m in range(1, 7)}
    records = []
    for i in range(600):
        a, b = (int(x) for x in rng.choice(list(skill), 2, replace=False))
        p = 1 / (1 + 10 ** ((skill[b] - skill[a]) / 400))
        records.append(VoteRecord(i, float(i), "fixed", (a, b), (0, 1) if rng.random() < p else (1, 0), poll=i,
                                  propensity=1 / 15))
    return records


def test_the_leaderboard_ranks_by_bradley_terry_intervals_with_the_other_ratings_as_columns():
    records = _log()
    rows = compute_leaderboard(records, bt=BTParams(rounds=50, seed=1))
    lower = np.array([r.bt_lo for r in rows])
    upper = np.array([r.bt_hi for r in rows])
    assert [r.rank for r in rows] == rank_by_interval(lower, upper).tolist()  # 1 + intervals wholly above
    assert [r.rank for r in rows] == sorted(r.rank for r in rows)  # best first
    assert all(r.bt_lo <= r.bt <= r.bt_hi for r in rows)
    replayed = replay(records)["overall"]
    for r in rows:
        assert (r.elo, r.twa_elo, r.ts_mu, r.ts_sigma) == (
            replayed[r.model].elo, replayed[r.model].twa_elo, replayed[r.model].mu, replayed[r.model].sigma)


def test_ipw_under_a_uniform_design_gives_the_same_leaderboard_and_is_recorded_in_the_parameters():
    records = _log()
    plain = compute_leaderboard(records, bt=BTParams(rounds=30, seed=2))
    weighted = compute_leaderboard(records, bt=BTParams(rounds=30, seed=2, weighting="ipw"))
    assert plain == weighted
    params = leaderboard_params(bt=BTParams(weighting="ipw"), elo=EloParams())
    assert params["bt"]["weighting"] == "ipw" and params["elo"]["twa_settle_games"] is None
