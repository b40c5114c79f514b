"""Many voters at once against PostgreSQL: no lost vote, no vote counted twice, ratings equal a replay."""

import datetime as dt
import random
import threading

import pytest
from django.db import connection, connections

from arena import services
from arena.errors import ArenaError
from arena.models import Mode, Poll, Rating, Scope, Vote
from tests.arena.factories import arena_with_images

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("row locking under real concurrency is tested against PostgreSQL")


def test_many_threads_voting_at_once_lose_nothing_and_count_nothing_twice():
    arena_with_images(n_models=5, n_prompts=2)
    rng = random.Random(3)
    polls = []
    for i in range(60):
        mode = Mode.FFA if i % 3 == 0 else Mode.FIXED
        voter = f"{i:032x}"
        poll = services.poll_create(mode=mode, voter_key=voter, ip_hash="ip", rng=random.Random(i))
        Poll.objects.filter(id=poll.id).update(shown_at=poll.shown_at - dt.timedelta(seconds=10))
        polls.append((poll, voter))
    # Every poll is voted by two threads at the same moment (a double submit), with different choices.
    jobs = []
    for poll, voter in polls:
        for _ in range(2):
            if poll.mode == Mode.FFA:
                jobs.append((poll, voter, {"choice": "best", "best": rng.randrange(4)}))
            else:
                jobs.append((poll, voter, {"choice": rng.choice(["left", "right", "tie", "bothbad"])}))
    rng.shuffle(jobs)
    threads_n = 16
    barrier = threading.Barrier(threads_n)
    results, errors = [], []
    lock = threading.Lock()

    def worker(chunk):
        try:
            barrier.wait()
            for poll, voter, kwargs in chunk:
                try:
                    r = services.vote_cast(poll_token=str(poll.token), voter_key=voter, ip_hash="ip", **kwargs)
                    with lock:
                        results.append((poll.id, r.vote.id, r.replayed))
                except ArenaError as exc:  # pragma: no cover - reported below
                    with lock:
                        errors.append(repr(exc))
        finally:
            connections.close_all()

    chunks = [jobs[i::threads_n] for i in range(threads_n)]
    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(results) == 2 * len(polls)
    assert Vote.objects.count() == len(polls)
    # Both requests of a poll saw the same single vote; exactly one of them counted it.
    by_poll = {}
    for poll_id, vote_id, replayed in results:
        by_poll.setdefault(poll_id, []).append((vote_id, replayed))
    for pairs in by_poll.values():
        assert len({v for v, _ in pairs}) == 1
        assert sorted(r for _, r in pairs) == [False, True]
    expected_overall = sum(4 if p.mode == Mode.FFA else 2 for p, _ in polls)
    assert sum(Rating.objects.filter(scope=Scope.OVERALL).values_list("votes", flat=True)) == expected_overall
    report = services.ratings_recompute(write=False)
    assert report.changed == 0, report
