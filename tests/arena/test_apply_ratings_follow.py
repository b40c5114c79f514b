"""``apply_ratings --follow``: passes on a cadence (a pass starts at most every --interval seconds, so under load
one pass takes what arrived since the last), a backlog drained batch after batch at once, and every vote placed
exactly once."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.core.management import call_command

from arena import services
from arena.models import Mode, Vote
from arena.services.ratings import BATCH
from tests.arena.factories import arena_with_images

COMMAND = "arena.management.commands.apply_ratings"


class _Clock:
    """time.monotonic and time.sleep for the command: sleeping moves the clock; each pass takes 0.01 s."""

    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_passes_start_on_the_interval_and_a_full_batch_is_followed_at_once(monkeypatch):
    clock = _Clock()
    placed = iter([3, 0, BATCH, BATCH, 7, 1])
    starts: list[float] = []

    def one_pass():
        starts.append(round(clock.now, 6))
        clock.now += 0.01  # the pass's own time
        try:
            return next(placed)
        except StopIteration:
            raise KeyboardInterrupt from None

    monkeypatch.setattr(f"{COMMAND}.ratings_apply_all", lambda: 0)
    monkeypatch.setattr(f"{COMMAND}.ratings_apply_pending", one_pass)
    monkeypatch.setattr(f"{COMMAND}.time.monotonic", clock.monotonic)
    monkeypatch.setattr(f"{COMMAND}.time.sleep", clock.sleep)
    call_command("apply_ratings", "--follow", "--interval", "0.25")
    # 3 placed, then nothing, then a backlog (two full batches and the rest at once), then 1: one pass a tick
    # except in the backlog, and each tick's sleep is the interval less the time its passes took.
    assert starts == [100.0, 100.25, 100.5, 100.51, 100.52, 100.75, 101.0]
    assert clock.sleeps == [0.24, 0.24, 0.22, 0.24]


def test_with_votes_always_waiting_passes_still_start_one_interval_apart(monkeypatch):
    """With votes always waiting (each pass placing one), passes are still spaced by the interval, not run
    back to back as before, when a pass that placed anything was followed at once by the next."""
    clock = _Clock()
    starts: list[float] = []

    def one_pass():
        starts.append(round(clock.now, 6))
        clock.now += 0.001
        if len(starts) == 5:
            raise KeyboardInterrupt
        return 1

    monkeypatch.setattr(f"{COMMAND}.ratings_apply_all", lambda: 0)
    monkeypatch.setattr(f"{COMMAND}.ratings_apply_pending", one_pass)
    monkeypatch.setattr(f"{COMMAND}.time.monotonic", clock.monotonic)
    monkeypatch.setattr(f"{COMMAND}.time.sleep", clock.sleep)
    call_command("apply_ratings", "--follow", "--interval", "0.1")
    gaps = [round(b - a, 6) for a, b in zip(starts, starts[1:])]
    assert gaps == [0.1, 0.1, 0.1, 0.1]


@pytest.mark.django_db(transaction=True)
def test_votes_arriving_while_following_are_each_placed_once(monkeypatch):
    arena_with_images(n_models=4, n_prompts=2)
    rng = random.Random(5)

    def vote(i):
        voter = f"{i:032x}"
        poll = services.poll_create(mode=Mode.FFA if i % 2 else Mode.FIXED, voter_key=voter, ip_hash="ip", rng=rng)
        extra = {"choice": "best", "best": 0} if i % 2 else {"choice": "left"}
        services.vote_cast(poll_token=str(poll.token), voter_key=voter, ip_hash="ip",
                           now=poll.ticket.issued_at + dt.timedelta(seconds=5), **extra)

    for i in range(3):
        vote(i)  # waiting before the consumer starts
    ticks = []

    def sleep(seconds):
        ticks.append(seconds)
        if len(ticks) == 1:
            for i in range(3, 7):
                vote(i)  # arriving between two passes
        elif len(ticks) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(f"{COMMAND}.time.sleep", sleep)
    call_command("apply_ratings", "--follow", "--interval", "0.05")
    assert sorted(Vote.objects.values_list("seq", flat=True)) == list(range(1, 8))
    assert services.ratings_recompute(write=False).changed == 0
