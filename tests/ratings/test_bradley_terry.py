import math

import numpy as np
import pytest
from scipy.optimize import minimize

from ratings.bradley_terry import (
    BTParams, bootstrap_ratings, bradley_terry, bradley_terry_scope, ipw_weights, poll_table, rank_by_interval,
)
from ratings.log import VoteRecord, VoteTable, in_replay_order
from ratings.outcomes import pairwise

SCALE_FACTOR = 400.0 / math.log(10.0)


def _random_log(seed: int, models: int = 6, duels: int = 600, ffa: int = 80) -> list[VoteRecord]:
    rng = np.random.default_rng(seed)
    skill = np.linspace(-150, 150, models)
    records = []
    for i in range(duels):
        a, b = (int(x) for x in rng.choice(models, 2, replace=False))
        u = rng.random()
        if u < 0.12:
            ranks = (0, 0)
        else:
            ranks = (0, 1) if rng.random() < 1 / (1 + 10 ** ((skill[b] - skill[a]) / 400)) else (1, 0)
        records.append(VoteRecord(i, float(i), "fixed", (a + 10, b + 10), ranks, both_bad=u < 0.05))
    for j in range(ffa):
        players = tuple(int(x) + 10 for x in rng.choice(models, 4, replace=False))
        if j % 3 == 0:
            order = rng.permutation(4)
            records.append(VoteRecord(10_000 + j, float(j), "ffa", players, tuple(int(r) for r in order), True))
        else:
            best = int(rng.integers(4))
            records.append(VoteRecord(10_000 + j, float(j), "ffa", players, tuple(0 if k == best else 1 for k in range(4))))
    return records


def _independent_fit(records: list[VoteRecord], l2: float, weights=None) -> dict[int, float]:
    """Logistic regression on the raw battles with scipy: one row per pairwise result, a tie a target of 0.5,
    each row weighted by its record's weight (default 1)."""
    models = sorted({p for r in records for p in r.players})
    col = {m: i for i, m in enumerate(models)}
    rows, targets, row_w = [], [], []
    for n, r in enumerate(records):
        for a, b, score in pairwise(r.outcome):
            rows.append((col[a], col[b]))
            targets.append(score)
            row_w.append(1.0 if weights is None else weights[n])
    rows, y, c = np.array(rows), np.array(targets), np.array(row_w)

    def nll(theta):
        d = theta[rows[:, 0]] - theta[rows[:, 1]]
        loss = (c * (y * np.logaddexp(0, -d) + (1 - y) * np.logaddexp(0, d))).sum() + 0.5 * l2 * theta @ theta
        p = 1 / (1 + np.exp(-d))
        g = np.zeros_like(theta)
        np.add.at(g, rows[:, 0], c * (p - y))
        np.add.at(g, rows[:, 1], c * (y - p))
        return loss, g + l2 * theta

    res = minimize(nll, np.zeros(len(models)), jac=True, method="BFGS", options={"gtol": 1e-9, "maxiter": 10_000})
    theta = res.x - res.x.mean()
    return {m: 1000.0 + SCALE_FACTOR * theta[col[m]] for m in models}


def test_mle_equals_an_independent_logistic_regression_on_the_raw_battles():
    records = _random_log(1)
    table = VoteTable.from_records(records)
    ours = bradley_terry_scope(table, "overall", BTParams(rounds=0))
    theirs = _independent_fit(records, l2=1e-6)
    assert len(ours.models) == 6
    for m, rating in zip(ours.models.tolist(), ours.rating.tolist()):
        assert rating == pytest.approx(theirs[m], abs=1e-3)
    assert ours.rating.mean() == pytest.approx(1000.0, abs=1e-9)


def test_ratings_are_on_the_elo_scale():
    # 3 wins to 1 between two models: the MLE odds are 3:1, i.e. 400*log10(3) Elo apart
    records = [VoteRecord(i, float(i), "fixed", (1, 2), (0, 1) if i < 3 else (1, 0)) for i in range(4)]
    result = bradley_terry_scope(VoteTable.from_records(records), "overall", BTParams(rounds=0))
    gap = result.rating[0] - result.rating[1]
    assert gap == pytest.approx(400 * math.log10(3), abs=1e-3)
    assert result.rating.tolist() == pytest.approx([1000 + gap / 2, 1000 - gap / 2], abs=1e-9)


def test_a_tie_counts_half_a_win_each_way():
    tie_log = [VoteRecord(1, 0.0, "fixed", (1, 2), (0, 0)), VoteRecord(2, 1.0, "fixed", (1, 2), (0, 1))]
    split_log = [
        VoteRecord(1, 0.0, "fixed", (1, 2), (0, 1)), VoteRecord(2, 1.0, "fixed", (1, 2), (0, 1)),
        VoteRecord(3, 2.0, "fixed", (1, 2), (0, 1)), VoteRecord(4, 3.0, "fixed", (1, 2), (1, 0)),
    ]
    # one tie + one win = 1.5 : 0.5, the same odds as 3 : 1 (up to the tiny ridge, which weighs more on 2 polls)
    tie = bradley_terry_scope(VoteTable.from_records(tie_log), "overall", BTParams(rounds=0))
    split = bradley_terry_scope(VoteTable.from_records(split_log), "overall", BTParams(rounds=0))
    assert tie.rating.tolist() == pytest.approx(split.rating.tolist(), abs=1e-3)
    assert tie.rating[0] - tie.rating[1] == pytest.approx(400 * math.log10(3), abs=1e-3)


def test_anchor_pins_the_chosen_model_at_the_initial_rating():
    table = VoteTable.from_records(_random_log(2))
    mean_anchored = bradley_terry_scope(table, "overall", BTParams(rounds=0))
    pinned = bradley_terry_scope(table, "overall", BTParams(rounds=0, anchor=13, initial=1200.0))
    i = mean_anchored.models.tolist().index(13)
    assert pinned.rating[i] == 1200.0
    np.testing.assert_allclose(pinned.rating - pinned.rating[i], mean_anchored.rating - mean_anchored.rating[i], atol=1e-9)


def test_bootstrap_is_deterministic_for_a_seed_and_differs_across_seeds():
    polls = poll_table(VoteTable.from_records(_random_log(3)), np.arange(680))
    first = bootstrap_ratings(polls, BTParams(rounds=20, seed=5))
    again = bootstrap_ratings(polls, BTParams(rounds=20, seed=5))
    other = bootstrap_ratings(polls, BTParams(rounds=20, seed=6))
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)
    result = bradley_terry(polls, BTParams(rounds=50, seed=5))
    assert np.all(result.lower < result.rating) and np.all(result.rating < result.upper)


def test_bootstrap_resamples_whole_polls():
    # 40 identical best-only polls and 40 of another: two distinct outcomes, each one unit of resampling
    records = [VoteRecord(i, float(i), "ffa", (1, 2, 3, 4), (0, 1, 1, 1)) for i in range(40)]
    records += [VoteRecord(100 + i, float(i), "ffa", (1, 2, 3, 4), (1, 1, 0, 1)) for i in range(40)]
    polls = poll_table(VoteTable.from_records(records), np.arange(80))
    assert polls.counts.tolist() == [40, 40]
    assert len(polls.entry_cell) == 6  # three pairs per outcome
    w = polls.wins_matrix()
    assert w[0, 1] == w[0, 3] == 40 and w[2, 1] == w[2, 3] == 40 and w[0, 2] == 40 and w[2, 0] == 40
    # in every round, model 1's wins over 2 and over 4 come from the same resampled polls
    rng = np.random.default_rng(0)
    for _ in range(10):
        counts = rng.multinomial(80, polls.counts / 80)
        w = polls.wins_matrix(counts)
        assert w[0, 1] == w[0, 3] == w[0, 2] == counts[0]


def test_intervals_narrow_with_more_polls():
    small = bradley_terry(poll_table(VoteTable.from_records(_random_log(4, duels=200, ffa=0)), np.arange(200)),
                          BTParams(rounds=40))
    large = bradley_terry(poll_table(VoteTable.from_records(_random_log(4, duels=3000, ffa=0)), np.arange(3000)),
                          BTParams(rounds=40))
    assert np.mean(large.upper - large.lower) < 0.6 * np.mean(small.upper - small.lower)


def test_rank_is_one_plus_models_whose_lower_bound_beats_this_upper_bound():
    lower = np.array([1100.0, 1050.0, 990.0, 900.0])
    upper = np.array([1200.0, 1120.0, 1060.0, 1000.0])
    # model 1: no lower bound above 1120 -> 1; model 2: 1100 > 1060 -> 2; model 3: 1100 and 1050 > 1000 -> 3
    assert rank_by_interval(lower, upper).tolist() == [1, 1, 2, 3]


def test_a_model_that_never_lost_still_gets_a_finite_rating():
    records = [VoteRecord(i, float(i), "fixed", (1, 2 + i % 2), (0, 1)) for i in range(10)]
    records.append(VoteRecord(10, 10.0, "fixed", (2, 3), (0, 1)))
    result = bradley_terry_scope(VoteTable.from_records(records), "overall", BTParams(rounds=10))
    assert np.all(np.isfinite(result.rating)) and result.rating[0] == result.rating.max()


def _designed_log(seed: int, propensity) -> list[VoteRecord]:
    """Duels and best-only 4-way polls from BT skills, each with the propensity ``propensity(players)``."""
    rng = np.random.default_rng(seed)
    skill = np.linspace(-200, 200, 6)
    records = []
    for i in range(400):
        k = 2 if i % 2 else 4
        players = tuple(int(x) for x in rng.choice(6, k, replace=False))
        strength = 10 ** (skill[list(players)] / 400)
        best = int(rng.choice(k, p=strength / strength.sum()))
        ranks = tuple(0 if j == best else 1 for j in range(k))
        records.append(VoteRecord(i, float(i), "duel" if k == 2 else "ffa", players, ranks, poll=i,
                                  propensity=propensity(players)))
    return records


def test_inverse_propensity_weighting_changes_nothing_under_a_uniform_design():
    # every duel has probability 1/15 and every 4-way set 1/15 (C(6,2) = C(6,4) = 15), as a uniform design draws
    table = VoteTable.from_records(_designed_log(7, lambda players: 1 / 15))
    for scope in ("overall", "duel", "ffa"):
        plain = bradley_terry_scope(table, scope, BTParams(rounds=30, seed=3))
        weighted = bradley_terry_scope(table, scope, BTParams(rounds=30, seed=3, weighting="ipw"))
        assert np.array_equal(plain.rating, weighted.rating)
        assert np.array_equal(plain.lower, weighted.lower) and np.array_equal(plain.upper, weighted.upper)


def test_inverse_propensity_weights_count_each_poll_by_one_over_its_probability():
    # a design that shows polls holding model 0 four times as often: IPW weights them 1/4 as much
    prop = lambda players: 0.4 if 0 in players else 0.1  # noqa: E731
    records = _designed_log(8, prop)
    table = VoteTable.from_records(records)
    rows = table.rows_in("overall")
    w = ipw_weights(table, rows)
    for mode in ("duel", "ffa"):
        mine = table.scope[rows] == table.modes.index(mode)
        inverse = np.array([1 / r.propensity for r in in_replay_order(records) if r.mode == mode])
        np.testing.assert_allclose(w[mine], inverse / inverse.mean(), rtol=1e-12)
    # the weighted MLE is the scipy weighted logistic regression on the raw battles
    ours = bradley_terry_scope(table, "overall", BTParams(rounds=0, weighting="ipw"))
    theirs = _independent_fit(in_replay_order(records), l2=1e-6, weights=w)
    for m, rating in zip(ours.models.tolist(), ours.rating.tolist()):
        assert rating == pytest.approx(theirs[m], abs=1e-3)
    unweighted = bradley_terry_scope(table, "overall", BTParams(rounds=0))
    assert not np.allclose(ours.rating, unweighted.rating, atol=0.1)


def test_ipw_needs_a_propensity_on_every_poll():
    records = _designed_log(9, lambda players: 0.5)
    records[3] = VoteRecord(3, 3.0, records[3].mode, records[3].players, records[3].ranks)
    with pytest.raises(ValueError, match="no stored propensity"):
        bradley_terry_scope(VoteTable.from_records(records), "overall", BTParams(weighting="ipw"))
