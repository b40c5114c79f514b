"""Many voters at once against PostgreSQL: no lost vote, no vote counted twice, the ratings consumer places votes
in the order they were committed, and the ratings equal a replay."""

import datetime as dt
import random
import threading

import pytest
from django.db import connection, connections, transaction

from arena import services
from arena.errors import ArenaError
from arena.models import Mode, Poll, Rating, Scope, Vote
from arena.services import ratings as ratings_service
from tests.arena.factories import arena_with_images

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions are tested against PostgreSQL")


def _issue(n):
    polls = []
    for i in range(n):
        mode = Mode.FFA if i % 3 == 0 else Mode.FIXED
        voter = f"{i:032x}"
        polls.append((services.poll_create(mode=mode, voter_key=voter, ip_hash="ip", rng=random.Random(i)), voter))
    return polls


def test_many_threads_voting_at_once_lose_nothing_and_count_nothing_twice():
    arena_with_images(n_models=5, n_prompts=2)
    rng = random.Random(3)
    polls = _issue(60)
    # Every poll is voted by two threads at the same moment (a double submit), with different choices, while a
    # consumer keeps applying what has been committed.
    jobs = []
    for poll, voter in polls:
        for _ in range(2):
            kwargs = ({"choice": "best", "best": rng.randrange(4)} if poll.mode == Mode.FFA
                      else {"choice": rng.choice(["left", "right", "tie", "bothbad"])})
            jobs.append((poll, voter, kwargs))
    rng.shuffle(jobs)
    threads_n = 16
    barrier = threading.Barrier(threads_n + 1)
    results, errors, done = [], [], threading.Event()
    lock = threading.Lock()

    def voter_thread(chunk):
        try:
            barrier.wait()
            for poll, voter, kwargs in chunk:
                try:
                    r = services.vote_cast(poll_token=poll.token, voter_key=voter, ip_hash="ip",
                                           now=poll.ticket.issued_at + dt.timedelta(seconds=10), **kwargs)
                    with lock:
                        results.append((poll.token, r.vote.id, r.replayed))
                except ArenaError as exc:  # pragma: no cover - reported below
                    with lock:
                        errors.append(repr(exc))
        finally:
            connections.close_all()

    def consumer_thread():
        try:
            barrier.wait()
            while not done.is_set():
                ratings_service.ratings_apply_pending(batch_size=7)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=voter_thread, args=(jobs[i::threads_n],)) for i in range(threads_n)]
    consumer = threading.Thread(target=consumer_thread)
    for t in [*threads, consumer]:
        t.start()
    for t in threads:
        t.join()
    done.set()
    consumer.join()
    ratings_service.ratings_apply_all()

    assert errors == []
    assert len(results) == 2 * len(polls)
    assert Vote.objects.count() == Poll.objects.count() == len(polls)
    # Both requests of a poll saw the same single vote; exactly one of them stored it.
    by_poll = {}
    for token, vote_id, replayed in results:
        by_poll.setdefault(token, []).append((vote_id, replayed))
    for pairs in by_poll.values():
        assert len({v for v, _ in pairs}) == 1
        assert sorted(r for _, r in pairs) == [False, True]
    assert sorted(Vote.objects.values_list("seq", flat=True)) == list(range(1, len(polls) + 1))
    expected_overall = sum(4 if p.mode == Mode.FFA else 2 for p, _ in polls)
    assert sum(Rating.objects.filter(scope=Scope.OVERALL).values_list("votes", flat=True)) == expected_overall
    report = services.ratings_recompute(write=False)
    assert report.changed == 0 and report.chain_ok and report.pending == 0, report


def test_votes_committed_out_of_order_are_placed_in_commit_order(monkeypatch):
    """Vote A is inserted first (lower id) but commits after vote B: the consumer places B first, A after it,
    and a replay in that order equals the live ratings."""
    monkeypatch.setattr("arena.services.ratings.ratings_kick", lambda: None)  # this test runs the consumer itself
    arena_with_images(n_models=4, n_prompts=2)
    polls = _issue(3)
    (first, voter_a), (second, voter_b) = polls[1], polls[2]
    a_inserted, b_committed = threading.Event(), threading.Event()
    out = {}

    def slow_vote():
        try:
            with transaction.atomic():
                out["a"] = services.vote_cast(poll_token=first.token, voter_key=voter_a, ip_hash="ip", choice="left",
                                              now=first.ticket.issued_at + dt.timedelta(seconds=10)).vote.id
                a_inserted.set()
                b_committed.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_vote)
    thread.start()
    assert a_inserted.wait(10)
    b = services.vote_cast(poll_token=second.token, voter_key=voter_b, ip_hash="ip", choice="right",
                           now=second.ticket.issued_at + dt.timedelta(seconds=10)).vote.id
    assert ratings_service.ratings_apply_pending() == 1  # only B is committed
    b_committed.set()
    thread.join()
    ratings_service.ratings_apply_all()
    assert out["a"] < b
    assert dict(Vote.objects.values_list("id", "seq")) == {b: 1, out["a"]: 2}
    report = services.ratings_recompute(write=False)
    assert report.changed == 0 and report.chain_ok


def test_a_consumer_killed_mid_batch_applies_each_vote_once(monkeypatch):
    monkeypatch.setattr("arena.services.ratings.ratings_kick", lambda: None)  # this test runs the consumer itself
    arena_with_images(n_models=4, n_prompts=2)
    for poll, voter in _issue(12):
        kwargs = {"choice": "best", "best": 1} if poll.mode == Mode.FFA else {"choice": "left"}
        services.vote_cast(poll_token=poll.token, voter_key=voter, ip_hash="ip",
                           now=poll.ticket.issued_at + dt.timedelta(seconds=10), **kwargs)
    real = ratings_service._update_rows

    def dies(model, objs, fields):
        if model is Vote:  # after the ratings were written in this transaction, before the votes' places
            assert Rating.objects.exists()
            raise SystemExit("worker killed")
        real(model, objs, fields)

    monkeypatch.setattr(ratings_service, "_update_rows", dies)
    with pytest.raises(SystemExit):
        ratings_service.ratings_apply_pending(batch_size=5)
    assert not Vote.objects.filter(seq__isnull=False).exists() and not Rating.objects.exists()
    monkeypatch.setattr(ratings_service, "_update_rows", real)
    assert ratings_service.ratings_apply_all() == 12
    assert sorted(Vote.objects.values_list("seq", flat=True)) == list(range(1, 13))
    report = services.ratings_recompute(write=False)
    assert report.changed == 0 and report.chain_ok


def test_an_exception_while_reading_the_log_cannot_hang_the_next_poll():
    """Once, ``vote_records`` read the log through a server-side cursor: a malformed row raised mid-iteration,
    the half-read cursor was closed later by the garbage collector inside the poll index's own read, while that
    thread held the index's lock, and the worker hung. Now the log is read whole (no server-side cursor) and the
    index holds no lock while it queries: after the same exception, a poll is issued at once."""
    import gc
    import inspect

    from arena import pollgroups
    from arena.selectors import votelog
    from tests.arena.votelog import cast

    variants, _ = arena_with_images(n_models=3, n_prompts=2)
    cast(variants[:2], "left")
    Vote.objects.update(ranks=[0, 0, 7])  # malformed: three ranks for two models
    with pytest.raises(ValueError):
        votelog.vote_records("overall")
    gc.collect()
    pollgroups.invalidate()
    finished = []
    thread = threading.Thread(target=lambda: finished.append(
        services.poll_create(mode=Mode.FIXED, voter_key="f" * 32, ip_hash="ip")))
    thread.start()
    thread.join(timeout=20)
    assert finished, "issuing a poll hung after an exception while reading the log"
    for module in (votelog, pollgroups, services.polls, services.votes, services.ratings):
        assert ".iterator(" not in inspect.getsource(module)
