"""The scorers' Elo (the ratings engine fed with automatic duels) with its time-weighted average, and the interval
helpers, on hand-computed cases."""

import pytest

from generation.scoring.elo import Duel, EloParams, elo_expected, elo_replay
from ratings.intervals import t_interval, wilson_interval

P32 = EloParams(k=32, scale=400, base=10, initial=1000, twa_settle_games=0)  # averaged from the first duel


def test_expected_score_of_equal_ratings_is_a_half_and_400_points_is_ten_to_one():
    assert elo_expected(1000, 1000, P32) == 0.5
    assert elo_expected(1400, 1000, P32) == pytest.approx(10 / 11)


def test_replay_by_hand():
    duels = [
        Duel("A", "B", 1.0, time=0),  # equal ratings: A +16, B -16
        Duel("B", "A", 1.0, time=10),  # B (984) beats A (1016): expected 1/(1+10^(32/400)) = 0.45407808
        Duel("C", "D", 0.5, time=30),  # a tie of equals changes nothing; ends the replay at t=30
    ]
    s = elo_replay(duels, P32)
    change = 32 * (1 - 1 / (1 + 1.202264434617413))  # 10 ** 0.08
    assert change == pytest.approx(17.46950153)
    assert s["B"].elo == pytest.approx(984 + change)
    assert s["A"].elo == pytest.approx(1016 - change)
    assert (s["A"].wins, s["A"].losses, s["A"].duels) == (1, 1, 2)
    assert (s["C"].ties, s["C"].elo, s["D"].elo) == (1, 1000, 1000)
    # A held 1016 from t=0 to 10 and 998.53 from 10 to 30
    assert s["A"].twa_elo == pytest.approx((1016 * 10 + (1016 - change) * 20) / 30)
    # C's only value was held for no time: its time-weighted average is its rating
    assert s["C"].twa_elo == 1000


def test_an_unsettled_player_is_rated_by_its_current_elo_as_on_the_human_board():
    """With the settling rule (the default: K=32 settles after 66 games), two duels are too few to start the
    average, so the time-weighted Elo is the current one (a late model is not pulled towards 1000)."""
    settled = EloParams(k=32, scale=400, base=10, initial=1000)
    assert settled.settle_games() == 66
    s = elo_replay([Duel("A", "B", 1.0, time=0), Duel("B", "A", 1.0, time=10), Duel("C", "D", 0.5, time=30)], settled)
    assert s["A"].twa_elo == s["A"].elo and s["B"].twa_elo == s["B"].elo


def test_replay_refuses_out_of_order_and_self_duels():
    with pytest.raises(ValueError):
        elo_replay([Duel("A", "B", 1, 5), Duel("A", "B", 1, 4)])
    with pytest.raises(ValueError):
        elo_replay([Duel("A", "A", 1, 0)])


def test_wilson_interval_matches_the_textbook_value():
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(0, 5)
    assert lo == 0.0 and 0 < hi < 0.5


def test_t_interval_by_hand():
    lo, hi = t_interval([0.1, 0.2, 0.3])
    half = 4.302652729749462 * 0.1 / 3 ** 0.5  # t(0.975, 2) * s / sqrt(n)
    assert (lo, hi) == (pytest.approx(0.2 - half), pytest.approx(0.2 + half))
    assert t_interval([1.0]) is None
