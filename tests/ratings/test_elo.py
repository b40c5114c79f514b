import math

import pytest

from ratings.log import VoteRecord
from ratings.online import EloParams, elo_expected, elo_update
from ratings.outcomes import Outcome
from ratings.replay import replay

DEFAULT = EloParams()


def test_defaults_are_chatbot_arenas_published_values():
    assert (DEFAULT.k, DEFAULT.scale, DEFAULT.base, DEFAULT.initial) == (4.0, 400.0, 10.0, 1000.0)


def test_equal_ratings_winner_gains_half_of_k():
    new = elo_update({1: 1000.0, 2: 1000.0}, Outcome((1, 2), (0, 1)), DEFAULT)
    assert new == {1: 1002.0, 2: 998.0}


def test_right_side_win_moves_ratings_the_other_way():
    new = elo_update({1: 1000.0, 2: 1000.0}, Outcome((1, 2), (1, 0)), DEFAULT)
    assert new == {1: 998.0, 2: 1002.0}


def test_favourite_gains_little_and_loses_more_on_a_tie():
    expected = 1 / (1 + 10 ** (-200 / 400))  # 0.7597469266479578
    assert elo_expected(1200.0, 1000.0, DEFAULT) == pytest.approx(0.7597469266479578, abs=1e-15)
    win = elo_update({1: 1200.0, 2: 1000.0}, Outcome((1, 2), (0, 1)), DEFAULT)
    assert win[1] == pytest.approx(1200 + 4 * (1 - expected), abs=1e-12)  # +0.961
    assert win[2] == pytest.approx(1000 - 4 * (1 - expected), abs=1e-12)
    tie = elo_update({1: 1200.0, 2: 1000.0}, Outcome((1, 2), (0, 0)), DEFAULT)
    assert tie[1] == pytest.approx(1200 + 4 * (0.5 - expected), abs=1e-12)  # -1.039
    assert tie[2] == pytest.approx(1000 - 4 * (0.5 - expected), abs=1e-12)


def test_k_scale_base_and_initial_are_configurable():
    params = EloParams(k=32.0, scale=173.7178, base=math.e, initial=1500.0)
    new = elo_update({}, Outcome((1, 2), (0, 1)), params)  # both start at 1500
    assert new == {1: 1516.0, 2: 1484.0}
    # a difference of `scale` means odds of `base` to 1
    assert elo_expected(1500.0 + 173.7178, 1500.0, params) == pytest.approx(math.e / (1 + math.e), abs=1e-12)


def test_both_bad_rates_as_a_tie_but_stays_distinct_in_the_log():
    tie = VoteRecord(1, 10.0, "fixed", (1, 2), (0, 0))
    both_bad = VoteRecord(1, 10.0, "fixed", (1, 2), (0, 0), both_bad=True)
    assert replay([tie]) == replay([both_bad])
    assert tie != both_bad
    with pytest.raises(ValueError):
        VoteRecord(2, 10.0, "fixed", (1, 2), (0, 1), both_bad=True)


def test_best_only_free_for_all_applies_three_pairs_from_pre_poll_ratings():
    new = elo_update({}, Outcome((1, 2, 3, 4), (1, 0, 1, 1)), DEFAULT)
    assert new == {1: 998.0, 2: 1006.0, 3: 998.0, 4: 998.0}


def test_full_ranking_applies_every_pair_from_pre_poll_ratings():
    new = elo_update({}, Outcome((1, 2, 3, 4), (0, 1, 2, 3), full_ranking=True), DEFAULT)
    assert new == {1: 1006.0, 2: 1002.0, 3: 998.0, 4: 994.0}


def test_time_weighted_average_weights_each_value_by_how_long_it_was_held():
    # the plain average (window from the first vote, twa_settle_games=0)
    # model 1: after t=0 it holds r1 for 10 s, after t=10 it holds r2 until the log ends at t=30
    plain = EloParams(twa_settle_games=0)
    records = [
        VoteRecord(1, 0.0, "fixed", (1, 2), (0, 1)),
        VoteRecord(2, 10.0, "fixed", (1, 3), (0, 1)),
        VoteRecord(3, 30.0, "fixed", (2, 3), (0, 1)),
    ]
    r1 = 1002.0
    r2 = r1 + 4 * (1 - 1 / (1 + 10 ** ((1000.0 - r1) / 400)))
    got = replay(records, elo=plain)["overall"]
    assert got[1].elo == r2
    assert got[1].twa_elo == pytest.approx((r1 * 10 + r2 * 20) / 30, abs=1e-9)
    # model 3's window starts at its first vote (t=10); its initial 1000 before that does not count
    r3_first = 1000 - 4 * (1 - 1 / (1 + 10 ** ((1000.0 - r1) / 400)))
    assert got[3].twa_elo == pytest.approx(r3_first, abs=1e-9)  # held until t=30, then the log ends
    # a later end extends every window
    later = replay(records, end=50.0, elo=plain)["overall"]
    assert later[1].twa_elo == pytest.approx((r1 * 10 + r2 * 40) / 50, abs=1e-9)


def test_the_average_starts_once_a_model_has_played_its_settling_games():
    # model 1 plays at t=0, 10, 20 (one game each); with 2 settling games its window opens after t=10
    params = EloParams(twa_settle_games=2)
    records = [
        VoteRecord(1, 0.0, "fixed", (1, 2), (0, 1)),
        VoteRecord(2, 10.0, "fixed", (1, 3), (0, 1)),
        VoteRecord(3, 20.0, "fixed", (1, 4), (1, 0)),
        VoteRecord(4, 40.0, "fixed", (2, 3), (0, 1)),
    ]
    e = lambda ra, rb: 1 / (1 + 10 ** ((rb - ra) / 400))  # noqa: E731
    r1 = 1002.0
    r2 = r1 + 4 * (1 - e(r1, 1000.0))
    r3 = r2 + 4 * (0 - e(r2, 1000.0))
    got = replay(records, elo=params)["overall"]
    assert got[1].elo == pytest.approx(r3, abs=1e-12)
    # window from t=10: r2 held 10 s, r3 held 20 s; the climb from 1000 to r1 and r1 itself do not count
    assert got[1].twa_elo == pytest.approx((r2 * 10 + r3 * 20) / 30, abs=1e-9)
    # model 4 played once: not settled, so its average is its current Elo
    assert got[4].twa_elo == got[4].elo


def test_free_for_all_games_count_towards_settling_pairwise():
    # a best-only 4-way poll gives the chosen image 3 games and each other image 1
    params = EloParams(twa_settle_games=3)
    records = [VoteRecord(1, 0.0, "ffa", (1, 2, 3, 4), (0, 1, 1, 1)), VoteRecord(2, 10.0, "ffa", (1, 2, 3, 4), (1, 0, 1, 1)),
               VoteRecord(3, 30.0, "fixed", (3, 4), (0, 1))]
    got = replay(records, elo=params)["overall"]
    first = elo_update({}, records[0].outcome, DEFAULT)
    second = elo_update(first, records[1].outcome, DEFAULT)
    assert got[1].twa_elo == pytest.approx((first[1] * 10 + second[1] * 20) / 30, abs=1e-9)  # 3 games at t=0
    assert got[2].twa_elo == pytest.approx(second[2], abs=1e-9)  # 1 + 3 games: settled at t=10, held to 30


def test_default_settling_is_three_time_constants_of_online_elo():
    # 3 / (k * ln(10) / 400 / 4) games: 521.2 -> 522 at k=4; a larger K settles sooner
    assert EloParams().settle_games() == math.ceil(3 / (4 * math.log(10) / 400 / 4)) == 522
    assert EloParams(k=32.0).settle_games() == 66
    assert EloParams(twa_settle_games=0).settle_games() == 0


def test_time_weighted_average_of_a_model_first_seen_at_the_end_is_its_elo():
    records = [VoteRecord(1, 0.0, "fixed", (1, 2), (0, 1)), VoteRecord(2, 5.0, "fixed", (3, 4), (0, 1))]
    got = replay(records, elo=EloParams(twa_settle_games=0))["overall"]
    assert got[3].twa_elo == got[3].elo == 1002.0


def test_window_end_before_the_last_vote_is_refused():
    with pytest.raises(ValueError):
        replay([VoteRecord(1, 10.0, "fixed", (1, 2), (0, 1))], end=5.0)
