import pytest

from ratings.leaderboard import compute_leaderboard
from ratings.log import VoteRecord
from ratings.outcomes import Outcome, pairwise


def test_a_duel_is_one_pair_scored_for_the_left_model():
    assert pairwise(Outcome((5, 9), (0, 1))) == [(5, 9, 1.0)]
    assert pairwise(Outcome((5, 9), (1, 0))) == [(5, 9, 0.0)]
    assert pairwise(Outcome((5, 9), (0, 0))) == [(5, 9, 0.5)]


def test_best_only_free_for_all_is_the_chosen_image_beating_each_of_the_other_three():
    pairs = pairwise(Outcome((1, 2, 3, 4), (1, 1, 0, 1)))
    assert pairs == [(3, 1, 1.0), (3, 2, 1.0), (3, 4, 1.0)]


def test_full_ranking_is_every_pair_of_the_ranking():
    pairs = pairwise(Outcome((1, 2, 3, 4), (2, 0, 3, 1), full_ranking=True))
    assert pairs == [(1, 2, 0.0), (1, 3, 1.0), (1, 4, 0.0), (2, 3, 1.0), (2, 4, 1.0), (3, 4, 0.0)]


def test_equal_places_in_a_full_ranking_are_ties():
    pairs = pairwise(Outcome((1, 2, 3), (0, 1, 1), full_ranking=True))
    assert pairs == [(1, 2, 1.0), (1, 3, 1.0), (2, 3, 0.5)]


def test_a_free_for_all_with_no_choice_is_a_tie_between_all():
    assert pairwise(Outcome((1, 2, 3, 4), (0, 0, 0, 0))) == [
        (1, 2, 0.5), (1, 3, 0.5), (1, 4, 0.5), (2, 3, 0.5), (2, 4, 0.5), (3, 4, 0.5)]


@pytest.mark.parametrize("players,ranks", [((1,), (0,)), ((1, 2), (0,)), ((1, 1), (0, 1)), ((1, 2), (0, -1))])
def test_malformed_outcomes_are_refused(players, ranks):
    with pytest.raises(ValueError):
        Outcome(players, ranks)


def test_leaderboard_counts_pairwise_games_and_wins_of_a_free_for_all():
    rows = {r.model: r for r in compute_leaderboard([VoteRecord(1, 0.0, "ffa", (1, 2, 3, 4), (1, 0, 1, 1))])}
    assert (rows[2].games, rows[2].wins, rows[2].win_rate) == (3, 3.0, 1.0)
    assert (rows[1].games, rows[1].wins, rows[1].votes) == (1, 0.0, 1)
