import itertools
import math
import random
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from ratings.design import (
    UNIFORM, Candidate, DesignParams, FeasibleSets, Matchmaker, NotEnoughModels, Pending, draw,
)
from ratings.information import pair_values
from ratings.matchmaking import pick

GROUPS = [frozenset({1, 2, 3, 4, 5}), frozenset({1, 2, 3, 6}), frozenset({4, 5, 6, 7}), frozenset({2, 7}),
          frozenset({1, 2, 3})]


def _candidates(seed: int = 0, n: int = 7, weights=None) -> list[Candidate]:
    rng = random.Random(seed)
    return [Candidate(i, rng.randrange(100), rng.uniform(20, 30), rng.uniform(0.8, 4.0),
                      weight=1.0 if weights is None else weights[i - 1], polls=None if i % 2 else rng.randrange(60))
            for i in range(1, n + 1)]


def _expected(candidates, k, groups, params: DesignParams, pending: Pending | None = None) -> dict[tuple, float]:
    """The design's distribution written out set by set, with plain loops: the mixture of the module text."""
    params = params.for_poll(k)
    ids = [c.id for c in candidates]
    pos = {c.id: i for i, c in enumerate(candidates)}
    mu = np.array([c.mu for c in candidates])
    values = pair_values(mu, np.array([c.sigma for c in candidates]), params.beta, params.value)
    strength = np.exp(1.702 / (math.sqrt(2) * params.beta) * (mu - mu.max()))
    pending = pending or Pending()
    polls = {c.id: (c.games if c.polls is None else c.polls) + 1 for c in candidates}
    mean_polls = sum(polls.values()) / len(polls)
    sets = [s for s in itertools.combinations(sorted(ids), k) if groups is None or any(set(s) <= g for g in groups)]
    admin, score = {}, {}
    for s in sets:
        admin[s] = math.prod(candidates[pos[m]].weight for m in s)
        total = 0.0
        for a, b in itertools.combinations(s, 2):
            reach = 1.0
            if params.outcome == "best" and k > 2:
                reach = (strength[pos[a]] + strength[pos[b]]) / sum(strength[pos[m]] for m in s)
            total += values[pos[a], pos[b]] * reach * params.pending_pair ** pending.pairs.get((a, b), 0)
        total *= math.prod((mean_polls / polls[m]) ** (params.balance / k) for m in s)
        total *= params.pending_model ** sum(pending.models.get(m, 0) for m in s)
        score[s] = total ** params.sharpness * admin[s]
    a_sum, q_sum = sum(admin.values()), sum(score.values())
    return {s: params.exploration * admin[s] / a_sum + (1 - params.exploration) * score[s] / q_sum for s in sets}


@pytest.mark.parametrize("k,groups", [(2, None), (4, None), (2, GROUPS), (4, GROUPS), (3, GROUPS)])
@pytest.mark.parametrize("params", [DesignParams(), DesignParams(exploration=0.1, sharpness=1.0, value="bald", balance=0.0),
                                    DesignParams(outcome="ranking", sharpness=3.0, balance=1.0), UNIFORM])
def test_propensities_of_the_feasible_sets_are_the_design_and_sum_to_one(k, groups, params):
    candidates = _candidates(weights=[1.0, 2.0, 1.0, 0.5, 1.0, 1.0, 3.0])
    pending = Pending.of([(1, 2, 3, 6), (1, 2), (4, 5, 6, 7)][: 2 if k == 2 else 3])
    for p in (None, pending):
        mm = Matchmaker(candidates, k, groups, params)
        probs = mm.probabilities(p)
        expected = _expected(candidates, k, groups, params, p)
        assert sorted(mm.feasible.sets()) == sorted(expected)  # exactly the feasible sets, each once
        assert probs.sum() == pytest.approx(1.0, abs=1e-12)
        for s, prob in zip(mm.feasible.sets(), probs.tolist()):
            assert prob == pytest.approx(expected[s], rel=1e-9, abs=1e-15)
            assert mm.probability(reversed(s), p) == prob
        # every feasible set keeps at least the exploration floor; an infeasible one has probability 0
        a = {s: math.prod(candidates[m - 1].weight for m in s) for s in expected}
        floor = params.for_poll(k).exploration
        assert all(prob >= floor * a[s] / sum(a.values()) * (1 - 1e-12)
                   for s, prob in zip(mm.feasible.sets(), probs.tolist()))
    if groups is not None:
        assert mm.probability((1, 7, 6, 5)[:k]) == 0.0


def test_uniform_design_gives_every_feasible_set_the_same_probability():
    mm = Matchmaker(_candidates(), 4, GROUPS, UNIFORM)
    probs = mm.probabilities()
    assert len(probs) == len(mm.feasible) == 5 + 1 + 1  # 4-subsets of {1..5}, {1,2,3,6}, {4,5,6,7}
    assert np.all(probs == probs[0]) and probs[0] == 1 / 7


@pytest.mark.parametrize("k,groups", [(2, None), (4, GROUPS)])
def test_observed_frequencies_match_the_propensities(k, groups):
    """Chi-square goodness of fit of 30,000 seeded draws against the stated probabilities; each Pick's
    probability is its set's; the group drawn holds every model of the set, uniformly among those that do."""
    mm = Matchmaker(_candidates(seed=3), k, groups, DesignParams(exploration=0.2))
    pending = Pending.of([(1, 2, 3, 6), (1, 2, 3, 4)]) if k == 4 else Pending.of([(1, 2)])
    probs = dict(zip(mm.feasible.sets(), mm.probabilities(pending).tolist()))
    rng = random.Random(11)
    seen, group_seen = Counter(), Counter()
    for _ in range(30_000):
        pick_ = mm.draw(rng, pending)
        key = tuple(sorted(pick_.models))
        assert pick_.probability == probs[key]
        seen[key] += 1
        if groups is not None:
            holding = [g for g, members in enumerate(groups) if set(key) <= members]
            assert pick_.group in holding and pick_.group_probability == 1 / len(holding)
            group_seen[(key, pick_.group)] += 1
        else:
            assert pick_.group is None and pick_.group_probability == 1.0
    keys = sorted(probs)
    observed = np.array([seen[s] for s in keys])
    expected = np.array([probs[s] for s in keys]) * 30_000
    assert stats.chisquare(observed, expected).pvalue > 0.001
    if groups is not None:  # {1,2,3,4}... sets inside two groups split evenly between them
        both = [s for s in keys if sum(set(s) <= g for g in groups) == 2]
        for s in both:
            a, b = (group_seen[(s, g)] for g, m in enumerate(groups) if set(s) <= m)
            assert stats.binomtest(a, a + b, 0.5).pvalue > 0.001


def test_pending_polls_lower_a_pairs_probability():
    candidates = _candidates(seed=5)
    mm = Matchmaker(candidates, 2)
    probs = dict(zip(mm.feasible.sets(), mm.probabilities().tolist()))
    (a, b), free = max(probs.items(), key=lambda item: item[1])  # the pair the design favours most
    assert free > mm.params.exploration / 21 * 1.5  # well above the exploration floor
    once = mm.probability((a, b), Pending.of([(a, b)]))
    assert once < free
    assert mm.probability((a, b), Pending.of([(a, b)] * 3)) < once
    # a pending poll of model a with someone else makes a less likely to be shown at all (with the default's
    # sharpness one pair holds nearly all of the information share, so this is checked on a flatter design)
    flat = Matchmaker(candidates, 2, params=DesignParams(sharpness=1.0))
    other = next(m for m in range(1, 8) if m not in (a, b))
    shown = lambda p: sum(x for s, x in zip(flat.feasible.sets(), flat.probabilities(p).tolist()) if a in s)  # noqa: E731
    assert shown(Pending.of([(a, other)])) < shown(None)
    # and never below the exploration floor
    assert mm.probability((a, b), Pending.of([(a, b)] * 50)) >= mm.params.exploration / math.comb(7, 2) * (1 - 1e-12)


def test_repeated_page_loads_between_votes_spread_over_pairs():
    """1,600 page loads with no vote in between: each issued poll stays pending. The legacy ``active`` rule
    handed out one pair almost every time (issue 9: 1,511 of 1,600); the design spreads them."""
    candidates = [Candidate(i, 40 + 10 * i, 25.0 + 0.5 * i, 1.2) for i in range(1, 8)]
    rng = random.Random(2)
    issued = [tuple(pick("active", candidates, 2, rng)) for _ in range(1600)]
    assert Counter(tuple(sorted(p)) for p in issued).most_common(1)[0][1] > 1400
    mm = Matchmaker(candidates, 2)
    open_polls: list[tuple[int, ...]] = []
    for _ in range(1600):
        open_polls.append(mm.draw(rng, Pending.of(open_polls[-200:])).models)
    counts = Counter(tuple(sorted(p)) for p in open_polls)
    assert len(counts) == 21 and counts.most_common(1)[0][1] < 0.15 * 1600


def test_a_new_model_is_drawn_far_more_often_than_its_uniform_share():
    settled = [Candidate(i, 400, 20.0 + 0.7 * i, 1.0) for i in range(1, 20)]
    newcomer = Candidate(99, 0, 25.0, 25.0 / 3.0)
    mm = Matchmaker([*settled, newcomer], 4)
    share = sum(p for s, p in zip(mm.feasible.sets(), mm.probabilities().tolist()) if 99 in s)
    assert share > 2 * 4 / 20  # uniform: 0.2


def test_disabled_and_zero_weight_models_are_never_drawn_and_infeasible_polls_are_refused():
    candidates = _candidates()
    candidates[0] = Candidate(1, 0, 25, 3, enabled=False)
    candidates[1] = Candidate(2, 0, 25, 3, weight=0.0)
    mm = Matchmaker(candidates, 2, GROUPS)
    assert all(1 not in s and 2 not in s for s in mm.feasible.sets())
    rng = random.Random(0)
    assert all({1, 2}.isdisjoint(mm.draw(rng).models) for _ in range(200))
    with pytest.raises(NotEnoughModels):
        Matchmaker(_candidates(), 4, [frozenset({1, 2, 3}), frozenset({4, 5})])
    with pytest.raises(NotEnoughModels):
        draw(_candidates(n=3), 4, rng)


def test_a_prepared_feasible_set_is_reused_only_for_the_same_models():
    candidates = _candidates()
    feasible = FeasibleSets([c.id for c in candidates], 4, GROUPS)
    a = Matchmaker(candidates, 4, GROUPS, feasible=feasible)
    b = Matchmaker(candidates, 4, GROUPS)
    assert np.array_equal(a.probabilities(), b.probabilities())
    with pytest.raises(ValueError):
        Matchmaker(candidates[:-1], 4, GROUPS, feasible=feasible)


def test_screen_order_is_random():
    mm = Matchmaker(_candidates(n=2), 2)
    rng = random.Random(4)
    firsts = Counter(mm.draw(rng).models[0] for _ in range(2000))
    assert stats.binomtest(firsts[1], 2000, 0.5).pvalue > 0.001


def test_duels_and_four_way_polls_have_their_own_defaults():
    assert DesignParams().for_poll(2) == DesignParams(exploration=0.7, sharpness=2.0)
    assert DesignParams().for_poll(4) == DesignParams(exploration=0.3, sharpness=10.0)
    assert DesignParams(sharpness=5.0).for_poll(2).sharpness == 5.0
    assert Matchmaker(_candidates(), 2).params.exploration == 0.7


def test_a_voters_excluded_images_restrict_the_draw_exactly():
    """A voter who has seen model 1's image in group 0 and model 4's in group 2 may be shown a set only through a
    group where none of its members is excluded: the allowed sets, written out by hand, get the design's
    probabilities renormalised over them; draws match; the group drawn is an allowed one."""
    candidates = _candidates(seed=5)
    mm = Matchmaker(candidates, 2, GROUPS, DesignParams(exploration=0.3))
    excluded = {0: {1}, 2: {4}}
    base = dict(zip(mm.feasible.sets(), mm.probabilities().tolist()))

    def allowed(s):
        return any(set(s) <= g and not set(s) & excluded.get(i, set()) for i, g in enumerate(GROUPS))

    kept = {s: p for s, p in base.items() if allowed(s)}
    assert (1, 4) not in kept and (1, 5) not in kept  # only group 0 holds them, where 1 was seen
    assert (1, 2) in kept and (4, 5) in kept and (5, 6) in kept  # through groups 1 or 4; group 0; group 2 (4 unused)
    assert (mm.feasible.allowed(excluded) == np.array([allowed(s) for s in mm.feasible.sets()])).all()
    total = sum(kept.values())
    rng = random.Random(2)
    seen = Counter()
    for _ in range(20_000):
        pick_ = mm.draw(rng, excluded=excluded)
        key = tuple(sorted(pick_.models))
        assert key in kept and pick_.probability == pytest.approx(kept[key] / total, rel=1e-12)
        assert not set(key) & excluded.get(pick_.group, set()) and set(key) <= GROUPS[pick_.group]
        seen[key] += 1
    keys = sorted(kept)
    assert stats.chisquare([seen[s] for s in keys], [kept[s] / total * 20_000 for s in keys]).pvalue > 0.001
    assert mm.feasible.allowed({}) is None  # nothing excluded: the plain design
    with pytest.raises(NotEnoughModels):
        mm.draw(rng, excluded={i: set(g) for i, g in enumerate(GROUPS)})
