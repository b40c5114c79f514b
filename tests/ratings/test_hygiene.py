import itertools
import random

import numpy as np
import pytest
from scipy import stats

from ratings.hygiene import (
    benjamini_hochberg, flagged_voters, holm, poisson_binomial_cdf, position_bias, voter_tests,
)
from ratings.log import VoteRecord

SKILL = {m: 1000.0 + 60.0 * (m - 5) for m in range(12)}  # 12 models, 60 Elo apart


def _crowd(seed: int, honest: int = 40, votes: int = 40, cheats: tuple[str, ...] = ()):
    """A log and its voter map: honest voters answer by the Bradley–Terry truth (10% ties), free-for-all by
    Plackett–Luce; "left" always picks the left / first image; "contrarian" always picks the weaker model."""
    rng = random.Random(seed)
    records, voters = [], {}
    kinds = ["honest"] * honest + list(cheats)
    for v, kind in enumerate(kinds):
        for _ in range(votes):
            vid = len(records)
            if rng.random() < 0.6:
                a, b = rng.sample(range(12), 2)
                p_a = 1 / (1 + 10 ** ((SKILL[b] - SKILL[a]) / 400))
                if kind == "left":
                    ranks = (0, 1)
                elif kind == "contrarian":
                    ranks = (0, 1) if SKILL[a] < SKILL[b] else (1, 0)
                elif rng.random() < 0.1:
                    ranks = (0, 0)
                else:
                    ranks = (0, 1) if rng.random() < p_a else (1, 0)
                records.append(VoteRecord(vid, float(vid), "fixed", (a, b), ranks))
            else:
                players = rng.sample(range(12), 4)
                if kind == "left":
                    best = 0
                elif kind == "contrarian":
                    best = min(range(4), key=lambda i: SKILL[players[i]])
                else:
                    s = [10 ** (SKILL[p] / 400) for p in players]
                    best = rng.choices(range(4), weights=s)[0]
                records.append(VoteRecord(vid, float(vid), "ffa", tuple(players), tuple(0 if i == best else 1 for i in range(4))))
            voters[vid] = f"{kind}-{v}"
    return records, voters


def test_benjamini_hochberg_and_holm_match_their_definitions():
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    # BH: q_(i) = min_{j >= i} p_(j) * n / j over the sorted p-values
    ordered = sorted(p)
    expected_bh = {x: min(ordered[j] * 5 / (j + 1) for j in range(i, 5)) for i, x in enumerate(ordered)}
    assert benjamini_hochberg(p).tolist() == pytest.approx([expected_bh[x] for x in p], abs=1e-15)
    # Holm: running max of p_(i) * (n - i + 1)
    running, expected_holm = 0.0, {}
    for i, x in enumerate(ordered):
        running = max(running, min(1.0, x * (5 - i)))
        expected_holm[x] = running
    assert holm(p).tolist() == pytest.approx([expected_holm[x] for x in p], abs=1e-15)


def test_poisson_binomial_cdf_equals_enumeration_and_the_binomial():
    q = np.array([0.9, 0.3, 0.55, 0.7])
    for s in range(5):
        exact = sum(np.prod([qi if x else 1 - qi for qi, x in zip(q, bits)])
                    for bits in itertools.product([0, 1], repeat=4) if sum(bits) <= s)
        assert poisson_binomial_cdf(q, s) == pytest.approx(exact, abs=1e-14)
    assert poisson_binomial_cdf(np.full(30, 0.4), 9) == pytest.approx(stats.binom.cdf(9, 30, 0.4), abs=1e-13)


def test_an_always_left_voter_and_a_contrarian_are_caught_and_honest_voters_are_not():
    records, voters = _crowd(seed=1, cheats=("left", "contrarian"))
    tests = voter_tests(records, voters, fdr=0.05, min_votes=20)
    flagged = flagged_voters(tests)
    assert flagged == {"left-40", "contrarian-41"}
    why = {(t.voter, t.test) for t in tests if t.flagged}
    assert ("left-40", "position") in why and ("contrarian-41", "consensus") in why
    contrarian = next(t for t in tests if t.voter == "contrarian-41" and t.test == "consensus")
    assert contrarian.observed == 0.0 and contrarian.expected > 0.5


def test_honest_crowds_are_flagged_no_more_often_than_the_false_discovery_rate_allows():
    """Control: 20 crowds of honest voters only. Under the global null BH at 0.05 flags anything with
    probability at most 0.05 (the tests here are discrete, so less): at most 3 of 20 crowds may show a flag
    (P(4 or more | p = 0.05) = 0.016)."""
    crowds_with_a_flag = 0
    for seed in range(20):
        records, voters = _crowd(seed=100 + seed, honest=25, votes=30)
        crowds_with_a_flag += bool(flagged_voters(voter_tests(records, voters, fdr=0.05, min_votes=20)))
    assert crowds_with_a_flag <= 3


def test_voters_with_too_few_votes_are_not_tested():
    records, voters = _crowd(seed=2, honest=10, votes=15, cheats=("left",))
    assert voter_tests(records, voters, min_votes=20) == []


def test_position_bias_per_mode_is_holm_corrected_and_can_leave_flagged_voters_out():
    records, voters = _crowd(seed=3, honest=40, votes=40, cheats=("left",) * 3)
    biased = {b.mode: b for b in position_bias(records, voters=voters)}
    assert set(biased) == {"fixed", "ffa"}
    for b in biased.values():
        assert b.p_holm >= b.p_value and b.n > 0 and sum(b.shares) == pytest.approx(1.0)
    assert biased["fixed"].biased  # three always-left voters tilt the crowd
    cleaned = {b.mode: b for b in position_bias(records, voters=voters, exclude={"left-40", "left-41", "left-42"})}
    assert not cleaned["fixed"].biased and not cleaned["ffa"].biased
    # the duel p-value is the binomial test of left picks against 1/2
    left = sum(1 for r in records if r.mode == "fixed" and r.ranks[0] < r.ranks[1])
    decisive = sum(1 for r in records if r.mode == "fixed" and r.ranks[0] != r.ranks[1])
    assert biased["fixed"].p_value == pytest.approx(stats.binomtest(left, decisive, 0.5).pvalue, rel=1e-12)
