"""A database that goes away mid-request is a 503 with a message and Retry-After, never a 500."""

import pytest
from django.db import OperationalError
from django.urls import reverse


@pytest.mark.django_db
def test_a_database_error_is_a_503_with_a_message(client, monkeypatch):
    def down(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("arena.services.leaderboards.leaderboard_current", down)
    response = client.get(reverse("arena:leaderboard"))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert b"cannot reach its database" in response.content and b"Traceback" not in response.content


@pytest.mark.django_db
def test_other_errors_are_not_hidden(client, monkeypatch):
    def bug(**kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("arena.services.leaderboards.leaderboard_current", bug)
    client.raise_request_exception = True
    with pytest.raises(ZeroDivisionError):
        client.get(reverse("arena:leaderboard"))
