import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratings.log import (
    OVERALL, VoteRecord, VoteTable, in_replay_order, records_from_jsonl, records_to_jsonl, vote_log_hash,
)
from ratings.online import EloParams, TrueSkillParams
from ratings.replay import IncrementalRatings, replay

MODES = ("fixed", "free", "ffa")


@st.composite
def vote_logs(draw):
    """Logs as the site writes them: ids increase with time, timestamps may repeat; duels (with ties and
    "both bad") and 4-way polls (best only or full ranking) over a few models, in several modes."""
    n = draw(st.integers(1, 60))
    models = draw(st.lists(st.integers(1, 40), min_size=4, max_size=8, unique=True))
    records, t = [], 1_700_000_000.0
    for i in range(n):
        t += draw(st.sampled_from([0.0, 0.000001, 0.5, 3.0, 60.0]))
        mode = draw(st.sampled_from(MODES))
        if mode == "ffa":
            players = tuple(draw(st.permutations(models))[:4])
            if draw(st.booleans()):
                ranks = tuple(draw(st.permutations(range(4))))
                records.append(VoteRecord(i + 1, t, mode, players, ranks, full_ranking=True))
            else:
                best = draw(st.integers(0, 3))
                records.append(VoteRecord(i + 1, t, mode, players, tuple(0 if j == best else 1 for j in range(4))))
        else:
            players = tuple(draw(st.permutations(models))[:2])
            kind = draw(st.sampled_from(["left", "right", "tie", "bothbad"]))
            ranks = {"left": (0, 1), "right": (1, 0)}.get(kind, (0, 0))
            records.append(VoteRecord(i + 1, t, mode, players, ranks, both_bad=kind == "bothbad"))
    return records


@settings(max_examples=60, deadline=None)
@given(log=vote_logs(), seed=st.integers(0, 1000), k=st.sampled_from([4.0, 10.0, 3.7]), draw_p=st.sampled_from([0.1, 0.3]))
def test_incremental_updates_equal_a_full_replay_bit_for_bit(log, seed, k, draw_p):
    elo, ts = EloParams(k=k), TrueSkillParams(draw_probability=draw_p)
    live = IncrementalRatings(elo, ts)
    for record in log:  # the live path: one vote at a time, as they arrive
        live.apply(record)
    shuffled = list(log)
    random.Random(seed).shuffle(shuffled)
    replayed = replay(shuffled, elo=elo, trueskill=ts)
    assert set(replayed) == {OVERALL, *(r.mode for r in log)}
    for scope, ratings in replayed.items():
        assert set(ratings) == set(live.elo[scope])
        for model, r in ratings.items():
            assert r.elo == live.elo[scope][model]
            assert (r.mu, r.sigma) == live.ts[scope][model]
            assert r.games == live.games[scope][model]
            assert r.wins == live.wins[scope][model]
            assert r.votes == live.votes[scope][model]


def test_replay_order_is_timestamp_then_id():
    a = VoteRecord(2, 5.0, "fixed", (1, 2), (0, 1))
    b = VoteRecord(1, 5.0, "fixed", (1, 2), (1, 0))
    c = VoteRecord(0, 6.0, "fixed", (1, 2), (0, 1))
    assert [r.id for r in in_replay_order([c, a, b])] == [1, 2, 0]
    # Elo is path dependent, so the order shows in the result
    assert replay([c, a, b])["overall"][1].elo == replay([b, a, c])["overall"][1].elo
    live = IncrementalRatings()
    for r in (b, a, c):
        live.apply(r)
    assert replay([a, b, c])["overall"][1].elo == live.elo["overall"][1]


def test_incremental_refuses_a_vote_out_of_order():
    live = IncrementalRatings()
    live.apply(VoteRecord(2, 5.0, "fixed", (1, 2), (0, 1)))
    with pytest.raises(ValueError):
        live.apply(VoteRecord(1, 5.0, "fixed", (1, 2), (0, 1)))


def test_duplicate_vote_ids_are_refused():
    with pytest.raises(ValueError):
        in_replay_order([VoteRecord(1, 1.0, "fixed", (1, 2), (0, 1)), VoteRecord(1, 2.0, "fixed", (1, 2), (0, 1))])


def test_log_hash_ignores_input_order_and_sees_every_rated_field():
    log = [
        VoteRecord(1, 1.5, "fixed", (1, 2), (0, 1)),
        VoteRecord(2, 2.5, "ffa", (1, 2, 3, 4), (1, 0, 1, 1)),
        VoteRecord(3, 3.5, "free", (3, 4), (0, 0), both_bad=True),
    ]
    h = vote_log_hash(log)
    assert len(h) == 64 and h == vote_log_hash(list(reversed(log)))
    variants = [
        [VoteRecord(1, 1.5, "fixed", (1, 2), (1, 0)), *log[1:]],
        [VoteRecord(1, 1.6, "fixed", (1, 2), (0, 1)), *log[1:]],
        [VoteRecord(1, 1.5, "free", (1, 2), (0, 1)), *log[1:]],
        [*log[:2], VoteRecord(3, 3.5, "free", (3, 4), (0, 0))],
        [log[0], VoteRecord(2, 2.5, "ffa", (1, 2, 3, 4), (1, 0, 2, 3), full_ranking=True), log[2]],
        log[:2],
    ]
    assert len({h, *(vote_log_hash(v) for v in variants)}) == len(variants) + 1


def test_aware_datetimes_become_posix_timestamps():
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)
    record = VoteRecord(1, when, "fixed", (1, 2), (0, 1))
    assert record.timestamp == when.timestamp()
    with pytest.raises(ValueError):
        VoteRecord(1, when.replace(tzinfo=None), "fixed", (1, 2), (0, 1))


def test_jsonl_round_trip_keeps_every_vote_whole():
    log = [
        VoteRecord(7, 1.25, "ffa", (4, 3, 2, 1), (2, 0, 3, 1), full_ranking=True),
        VoteRecord(3, 0.5, "free", (3, 4), (0, 0), both_bad=True),
    ]
    assert records_from_jsonl(records_to_jsonl(log)) == in_replay_order(log)


def test_table_round_trip_keeps_every_vote():
    log = [
        VoteRecord(7, 1.25, "ffa", (4, 3, 2, 1), (1, 0, 1, 1)),
        VoteRecord(3, 0.5, "free", (3, 4), (0, 0), both_bad=True),
        VoteRecord(4, 0.5, "fixed", (4, 1), (1, 0)),
    ]
    assert VoteTable.from_records(log).to_records() == in_replay_order(log)


def test_a_mode_scope_counts_only_its_votes_and_overall_counts_all():
    log = [VoteRecord(1, 1.0, "fixed", (1, 2), (0, 1)), VoteRecord(2, 2.0, "free", (1, 3), (0, 1))]
    got = replay(log)
    assert set(got["fixed"]) == {1, 2} and set(got["free"]) == {1, 3}
    assert got["overall"][1].votes == 2 and got["fixed"][1].votes == 1
    assert got["fixed"][1].elo == 1002.0
    assert got["overall"][1].elo == pytest.approx(1002.0 + 4 * (1 - 1 / (1 + 10 ** (-2 / 400))), abs=1e-12)


def test_poll_and_propensity_travel_with_a_vote_and_leave_old_hashes_alone():
    old = VoteRecord(1, 1.5, "fixed", (1, 2), (0, 1))
    new = VoteRecord(1, 1.5, "fixed", (1, 2), (0, 1), poll=77, propensity=0.125)
    assert "poll" not in old.as_dict() and "propensity" not in old.as_dict()
    assert vote_log_hash([old]) != vote_log_hash([new])
    assert vote_log_hash([VoteRecord(1, 1.5, "fixed", (1, 2), (0, 1), poll=77, propensity=0.25)]) != vote_log_hash([new])
    assert records_from_jsonl(records_to_jsonl([new, old.__class__(2, 2.0, "ffa", (1, 2, 3, 4), (0, 1, 1, 1))])) == [
        new, VoteRecord(2, 2.0, "ffa", (1, 2, 3, 4), (0, 1, 1, 1))]
    table = VoteTable.from_records([new, VoteRecord(2, 2.0, "ffa", (1, 2, 3, 4), (0, 1, 1, 1), poll=5, propensity=1e-3)])
    assert table.to_records()[0] == new and table.to_records()[1].propensity == 1e-3
    with pytest.raises(ValueError):
        VoteRecord(3, 1.0, "fixed", (1, 2), (0, 1), propensity=0.0)
