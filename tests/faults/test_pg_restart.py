"""PostgreSQL restarted (cut off as in a crash, then started again) while 16 voters vote through gunicorn: every
vote is either counted once or refused with a message the voter sees (503, Retry-After) and then counted once when
sent again; none is lost after a 2xx, none is doubled, and the live ratings equal a replay of the log."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError
from django.urls import reverse

from arena.benchmarks import faults
from arena.models import Vote

pytestmark = [pytest.mark.slow]
HX = {"HTTP_HX_REQUEST": "true"}


def test_sixteen_voters_through_a_postgres_restart_lose_nothing_and_double_nothing(drill_cluster):
    line = faults.pg_restart(faults.DrillOptions(clients=16, seconds=8.0, fault_at=2.5, down_seconds=1.0),
                             prepared=drill_cluster)
    print(json.dumps(line))
    assert line["pg_down_s"] >= 1.0
    assert line["sent"] >= 30, line
    # The restart was felt: some requests met the database away, and were told so.
    assert line["refusals_503"] + line["poll_pages_503"] > 0, line
    assert line["refusals_without_message"] == 0
    assert all("try again" in m.lower() for m in line["messages"]), line["messages"]
    assert line["errors"] == {}, line  # no 500, no other answer
    assert line["lost"] == line["doubled"] == 0
    assert line["acknowledged"] == line["stored"] == line["sent"] and line["abandoned"] == 0
    assert line["stored_not_sent"] == 0
    assert line["ratings_equal_replay"]
    assert line["ratings_consumer_survived"], "apply_ratings --follow died with the database"


@pytest.mark.django_db(transaction=True)
def test_a_vote_whose_connection_broke_after_commit_is_counted_once_when_sent_again(client, monkeypatch):
    """The hard case of a restart: the vote committed, then the connection broke before the answer. The voter gets
    the 503 message (which promises nothing about what was stored), sends the same vote again, and gets the
    recorded vote back: one row."""
    from tests.arena.factories import arena_with_images
    from tests.arena.test_views import _token

    arena_with_images()
    monkeypatch.setattr("django.conf.settings.MIN_VOTE_SECONDS", 0.0)
    token = _token(client.get(reverse("arena:fixed"), **HX).content.decode())

    def broke(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("arena.services.votes._after_commit", broke)
    first = client.post(reverse("arena:vote", args=[token]), {"choice": "left"}, **HX)
    assert first.status_code == 503 and first["Retry-After"]
    assert b"Please try again" in first.content and b"nothing was recorded" not in first.content
    assert Vote.objects.count() == 1  # it was stored all the same
    monkeypatch.undo()
    again = client.post(reverse("arena:vote", args=[token]), {"choice": "left"}, **HX)
    assert again.status_code == 200
    assert Vote.objects.count() == 1


def test_the_external_ratings_consumer_waits_out_a_database_restart(monkeypatch):
    """``apply_ratings --follow`` (RATINGS_CONSUMER=external) once died on the first OperationalError, leaving every
    later vote unapplied until someone restarted it; now it drops the connection and looks again."""
    from django.core.management import call_command

    calls = []

    def apply_all():
        calls.append(1)
        if len(calls) == 1:
            return 0  # the first pass, before following
        if len(calls) <= 3:
            raise OperationalError("terminating connection due to administrator command")
        raise KeyboardInterrupt  # the operator stops it

    monkeypatch.setattr("arena.management.commands.apply_ratings.ratings_apply_all", apply_all)
    monkeypatch.setattr("arena.management.commands.apply_ratings.ratings_apply_pending", apply_all)  # following
    monkeypatch.setattr("arena.management.commands.apply_ratings.time.sleep", lambda seconds: None)
    call_command("apply_ratings", "--follow")
    assert len(calls) == 4  # it went on after both failures
