import math
import random

import pytest
import trueskill

from ratings.online import (
    TrueSkillParams, conservative, duel_constants, trueskill_duel, trueskill_env, trueskill_update,
)
from ratings.outcomes import Outcome


def _package_env(p: TrueSkillParams) -> trueskill.TrueSkill:
    return trueskill.TrueSkill(mu=p.mu, sigma=p.sigma, beta=p.beta, tau=p.tau, draw_probability=p.draw_probability)


def test_defaults_are_the_issues_values():
    p = TrueSkillParams()
    assert (p.mu, p.sigma, p.beta, p.tau, p.draw_probability) == (25.0, 25 / 3, 25 / 6, 25 / 300, 0.10)


@pytest.mark.parametrize("params", [
    TrueSkillParams(),
    TrueSkillParams(mu=0.0, sigma=1.0, beta=0.5, tau=0.01, draw_probability=0.25),
    TrueSkillParams(tau=0.0, draw_probability=0.02),
])
def test_closed_form_duels_equal_the_package_rate_1vs1_over_a_long_sequence(params):
    env = _package_env(params)
    rng = random.Random(7)
    skills = {i: rng.gauss(0, 3 * params.beta) for i in range(12)}  # a wide field: upsets happen
    ours = {i: (params.mu, params.sigma) for i in skills}
    theirs = {i: env.create_rating() for i in skills}
    worst = 0.0
    draws = 0
    for _ in range(4000):
        a, b = rng.sample(sorted(skills), 2)
        perf_a, perf_b = rng.gauss(skills[a], params.beta), rng.gauss(skills[b], params.beta)
        if abs(perf_a - perf_b) < 0.15 * params.beta:
            ranks = (0, 0)
            draws += 1
        else:
            ranks = (0, 1) if perf_a > perf_b else (1, 0)
        outcome = Outcome((a, b), ranks)
        ours.update(trueskill_update(ours, outcome, params))
        if ranks[0] <= ranks[1]:
            theirs[a], theirs[b] = env.rate_1vs1(theirs[a], theirs[b], drawn=outcome.is_draw)
        else:
            theirs[b], theirs[a] = env.rate_1vs1(theirs[b], theirs[a])
        for i in (a, b):
            worst = max(worst, abs(ours[i][0] - theirs[i].mu), abs(ours[i][1] - theirs[i].sigma))
    assert draws > 100
    assert worst < 1e-9


def test_a_draw_between_equals_keeps_means_and_shrinks_sigmas():
    p = TrueSkillParams()
    new = trueskill_update({}, Outcome((1, 2), (0, 0)), p)
    (mu1, s1), (mu2, s2) = new[1], new[2]
    assert mu1 == pytest.approx(25.0, abs=1e-12) and mu2 == pytest.approx(25.0, abs=1e-12)
    assert s1 < p.sigma and s1 == pytest.approx(s2, abs=1e-12)


def test_hand_computed_first_win_matches_the_closed_form_formula():
    p = TrueSkillParams()
    var = p.sigma ** 2 + p.tau ** 2
    c = math.sqrt(2 * p.beta ** 2 + 2 * var)
    margin = duel_constants(p)[2]
    x = -margin / c
    pdf = math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * math.erfc(-x / math.sqrt(2))
    v = pdf / cdf
    w = v * (v + x)
    new = trueskill_update({}, Outcome((1, 2), (0, 1)), p)
    # the package's cdf is an approximation good to ~1e-7, so compare at that level
    assert new[1][0] == pytest.approx(p.mu + var / c * v, abs=1e-5)
    assert new[2][0] == pytest.approx(p.mu - var / c * v, abs=1e-5)
    assert new[1][1] == pytest.approx(math.sqrt(var * (1 - var / c ** 2 * w)), abs=1e-5)
    # the package documentation's first game: winner N(29.396, 7.171), loser N(20.604, 7.171)
    assert (round(new[1][0], 3), round(new[1][1], 3)) == (29.396, 7.171)
    assert (round(new[2][0], 3), round(new[2][1], 3)) == (20.604, 7.171)


def test_an_extreme_upset_is_still_rated_where_the_package_gives_up():
    p = TrueSkillParams()
    env = trueskill_env(p)
    strong, weak = (400.0, 0.5), (0.0, 0.5)  # 67 performance-differences apart: its cdf underflows
    with pytest.raises(FloatingPointError):
        env.rate_1vs1(env.create_rating(*weak), env.create_rating(*strong))
    mu_w, s_w, mu_l, s_l = trueskill_duel(*weak, *strong, False, duel_constants(p))
    assert all(math.isfinite(v) for v in (mu_w, s_w, mu_l, s_l))
    assert mu_w > weak[0] and mu_l < strong[0]
    assert 0 < s_w < math.sqrt(weak[1] ** 2 + p.tau ** 2)


@pytest.mark.parametrize("ranks", [(3, 1, 0, 2), (0, 1, 2, 3), (0, 0, 0, 0)])
def test_a_full_ranking_and_an_all_draw_are_the_packages_rate_with_ranks(ranks):
    p = TrueSkillParams()
    env = _package_env(p)
    start = {1: (27.0, 3.0), 2: (25.0, 8.3), 3: (22.0, 1.5), 4: (30.0, 5.0)}
    ours = trueskill_update(start, Outcome((1, 2, 3, 4), ranks, full_ranking=ranks != (0, 0, 0, 0)), p)
    theirs = env.rate([(env.create_rating(*start[i]),) for i in (1, 2, 3, 4)], ranks=list(ranks))
    for i, (r,) in zip((1, 2, 3, 4), theirs):
        assert ours[i] == (r.mu, r.sigma)


@pytest.mark.parametrize("params", [TrueSkillParams(), TrueSkillParams(tau=0.0, draw_probability=0.25)])
@pytest.mark.parametrize("best", [0, 1, 2, 3])
def test_best_only_free_for_all_is_the_winner_beating_each_other_image_from_pre_poll_ratings(params, best):
    """The documented rule, checked against the package: each unchosen image j gets exactly the loser's side
    of ``rate_1vs1(winner, j)`` from the ratings before the poll; the winner's mean moves by the sum of its
    three mean changes and its variance (plus tau^2, once) shrinks by the product of the three factors."""
    env = _package_env(params)
    start = {1: (27.0, 3.0), 2: (25.0, 8.3), 3: (22.0, 1.5), 4: (30.0, 5.0)}
    players = (1, 2, 3, 4)
    ranks = tuple(0 if i == best else 1 for i in range(4))
    ours = trueskill_update(start, Outcome(players, ranks), params)
    winner = players[best]
    w0 = env.create_rating(*start[winner])
    var = start[winner][1] ** 2 + params.tau ** 2
    mu, factor = start[winner][0], 1.0
    for loser in players:
        if loser == winner:
            continue
        new_w, new_l = env.rate_1vs1(w0, env.create_rating(*start[loser]))
        assert ours[loser][0] == pytest.approx(new_l.mu, abs=1e-9)
        assert ours[loser][1] == pytest.approx(new_l.sigma, abs=1e-9)
        assert ours[loser][0] < start[loser][0]  # an unchosen image only ever loses
        mu += new_w.mu - start[winner][0]
        factor *= new_w.sigma ** 2 / var
    assert ours[winner][0] == pytest.approx(mu, abs=1e-9)
    assert ours[winner][1] == pytest.approx(math.sqrt(var * factor), abs=1e-9)


def test_best_only_rating_does_not_depend_on_screen_order():
    p = TrueSkillParams()
    start = {1: (27.0, 3.0), 2: (25.0, 8.3), 3: (22.0, 1.5), 4: (30.0, 5.0)}
    a = trueskill_update(start, Outcome((1, 2, 3, 4), (1, 0, 1, 1)), p)
    b = trueskill_update(start, Outcome((4, 3, 2, 1), (1, 1, 0, 1)), p)
    for i in start:
        assert a[i] == pytest.approx(b[i], abs=1e-12)


def test_the_old_ranks_rule_let_an_unchosen_image_gain_by_losing():
    """Why the rule changed: the package's ``rate`` with ranks [0, 1, 1, 1] tells the three unchosen images
    they drew, so a weak, uncertain unchosen image drawn level with strong ones gains rating."""
    p = TrueSkillParams()
    env = _package_env(p)
    start = {1: (30.0, 2.0), 2: (28.0, 2.0), 3: (27.0, 2.0), 4: (15.0, 6.0)}
    old = env.rate([(env.create_rating(*start[i]),) for i in (1, 2, 3, 4)], ranks=[0, 1, 1, 1])
    assert old[3][0].mu > start[4][0]  # the weak unchosen image gained by losing
    new = trueskill_update(start, Outcome((1, 2, 3, 4), (0, 1, 1, 1)), p)
    assert all(new[i][0] < start[i][0] for i in (2, 3, 4))


def test_conservative_is_mu_minus_three_sigma():
    assert conservative(25.0, 25 / 3) == pytest.approx(0.0, abs=1e-12)
    assert conservative(30.0, 1.0) == 27.0
