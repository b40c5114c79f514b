import random

import numpy as np
import pytest
from scipy.stats import kendalltau

from ratings.simulate import KendallTau, Voter, converged_at, run_newcomer, simulate_arena, true_skills


def test_kendall_tau_is_tau_b():
    truth = np.arange(12.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        estimate = np.round(rng.normal(truth, 3.0))  # with ties
        assert KendallTau(truth)(estimate) == pytest.approx(kendalltau(estimate, truth).statistic, abs=1e-12)
    assert KendallTau(truth)(np.zeros(12)) == 0.0


def test_converged_at_is_the_first_count_after_which_tau_stays_above_the_threshold():
    assert converged_at([0.5, 0.95, 0.85, 0.91, 0.92], 0.9) == 4
    assert converged_at([0.95, 0.96], 0.9) == 1
    assert converged_at([0.95, 0.85], 0.9) is None
    assert converged_at([0.5, 0.95, 0.97], 0.9, step=10) == 20


def test_voters_follow_the_true_skills_and_a_flip_reverses_them():
    skills = {1: 2000.0, 2: 0.0, 3: 0.0, 4: 0.0}
    honest = Voter(skills, 0.0, random.Random(0))
    noisy = Voter(skills, 1.0, random.Random(0))
    assert all(honest([2, 1]).ranks == (1, 0) for _ in range(50))
    assert all(noisy([2, 1]).ranks == (0, 1) for _ in range(50))
    assert all(honest([3, 1, 2, 4]).ranks == (1, 0, 1, 1) for _ in range(50))
    assert all(noisy([3, 1, 2, 4]).ranks[1] == 1 for _ in range(50))
    full = Voter({1: 3000.0, 2: 2000.0, 3: 1000.0, 4: 0.0}, 0.0, random.Random(0), full_ranking=True)
    outcome = full([4, 2, 1, 3])
    assert outcome.full_ranking and outcome.ranks == (3, 1, 0, 2)


def test_a_small_simulation_runs_and_finds_the_ranking():
    line = simulate_arena(models=8, mode="ffa4", strategy="active", seed=1, votes=300, baseline_votes=600,
                          spacing=150.0, bt_every=5, newcomer_warmup=50, newcomer_after=40)
    assert set(line) >= {"chosen_trueskill", "chosen_bt", "uniform_duel_elo", "uniform_duel_bt"}
    for key in ("chosen_trueskill", "chosen_bt", "uniform_duel_elo", "uniform_duel_bt"):
        assert set(line[key]) == {"votes_to_converge", "final_tau", "votes_run"}
    assert line["chosen_trueskill"]["votes_run"] == 300 and line["uniform_duel_elo"]["votes_run"] == 600
    assert line["chosen_trueskill"]["final_tau"] >= 0.9
    assert line["chosen_trueskill"]["votes_to_converge"] is not None
    assert line["newcomer"]["polls_in_run"] > 0


def test_a_newcomer_is_pivot_under_active_matchmaking_until_it_catches_up():
    skills = true_skills(12, 60.0, random.Random(0))
    result = run_newcomer(skills=skills, strategy="active", k=4, warmup=300, after=30, flip=0.0, seed=5, spacing=60.0)
    # the others have had ~150 comparisons each, the newcomer at most 3 per poll: it is the pivot throughout
    assert result["polls_in_run"] == 30
    assert result["polls_to_settle"] is not None and result["polls_to_settle"] <= 30


def test_simulation_refuses_too_few_models_for_the_mode():
    with pytest.raises(ValueError):
        simulate_arena(models=3, mode="ffa4", votes=10, baseline_votes=10)
