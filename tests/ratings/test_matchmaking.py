import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratings.matchmaking import STRATEGIES, Candidate, NotEnoughModels, pick

candidates_st = st.lists(
    st.builds(
        Candidate,
        id=st.integers(0, 30),
        games=st.integers(0, 500),
        mu=st.floats(0, 50),
        sigma=st.floats(0.1, 9),
        weight=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
        enabled=st.booleans(),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(candidates=candidates_st, k=st.sampled_from([2, 4]), strategy=st.sampled_from(STRATEGIES), seed=st.integers(0, 2**32))
def test_never_a_disabled_or_zero_weight_model_and_never_the_same_model_twice(candidates, k, strategy, seed):
    barred = {c.id for c in candidates if not c.enabled or c.weight == 0}
    eligible_ids = {c.id for c in candidates} - barred
    if len(eligible_ids) < k:
        with pytest.raises(NotEnoughModels):
            pick(strategy, candidates, k, random.Random(seed))
        return
    ids = pick(strategy, candidates, k, random.Random(seed))
    assert len(ids) == k
    assert len(set(ids)) == k
    assert set(ids) <= eligible_ids


def test_not_enough_models_is_a_value_error_the_site_can_catch():
    cands = [Candidate(1, 0, 25, 8), Candidate(2, 0, 25, 8, enabled=False)]
    with pytest.raises(NotEnoughModels):
        pick("uniform", cands, 2, random.Random(0))
    assert issubclass(NotEnoughModels, ValueError)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown matchmaking strategy"):
        pick("elo-greedy", [Candidate(i, 0, 25, 8) for i in range(4)], 2, random.Random(0))


def test_weighted_draws_in_proportion_to_weight():
    cands = [Candidate(1, 0, 25, 8, weight=6.0), Candidate(2, 0, 25, 8, weight=1.0), Candidate(3, 0, 25, 8, weight=1.0)]
    rng = random.Random(1)
    counts = Counter(pick("weighted", cands, 1, rng)[0] for _ in range(4000))
    assert counts[1] / 4000 == pytest.approx(0.75, abs=0.03)


def test_screen_order_is_random():
    cands = [Candidate(i, 0, 25, 8) for i in range(2)]
    rng = random.Random(2)
    firsts = Counter(pick("active", cands, 2, rng)[0] for _ in range(400))
    assert 150 < firsts[0] < 250


def test_active_always_includes_the_least_compared_model():
    rng = random.Random(3)
    for _ in range(50):
        games = rng.sample(range(10, 1000), 12)
        cands = [Candidate(i, g, rng.uniform(15, 35), rng.uniform(1, 8)) for i, g in enumerate(games)]
        newest = min(cands, key=lambda c: c.games).id
        assert newest in pick("active", cands, 4, rng)


def test_active_prefers_opponents_whose_order_with_the_pivot_is_uncertain():
    pivot = Candidate(0, 0, 25.0, 1.0)
    close = Candidate(1, 400, 25.5, 1.0)
    far = [Candidate(i, 400, 25.0 + 10 * i, 1.0) for i in range(2, 12)]
    rng = random.Random(4)
    picks = Counter(i for _ in range(100) for i in pick("active", [pivot, close, *far], 2, rng))
    assert picks[0] == 100 and picks[1] == 100
