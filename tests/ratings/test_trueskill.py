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


@pytest.mark.parametrize("ranks,full", [((2, 0, 1, 1), False), ((0, 1, 1, 1), False), ((3, 1, 0, 2), True)])
def test_free_for_all_is_the_packages_rate_with_ranks(ranks, full):
    p = TrueSkillParams()
    env = _package_env(p)
    start = {1: (27.0, 3.0), 2: (25.0, 8.3), 3: (22.0, 1.5), 4: (30.0, 5.0)}
    ours = trueskill_update(start, Outcome((1, 2, 3, 4), ranks, full_ranking=full), p)
    theirs = env.rate([(env.create_rating(*start[i]),) for i in (1, 2, 3, 4)], ranks=list(ranks))
    for i, (r,) in zip((1, 2, 3, 4), theirs):
        assert ours[i] == (r.mu, r.sigma)


def test_conservative_is_mu_minus_three_sigma():
    assert conservative(25.0, 25 / 3) == pytest.approx(0.0, abs=1e-12)
    assert conservative(30.0, 1.0) == 27.0
