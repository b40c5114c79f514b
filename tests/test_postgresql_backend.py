"""config.postgresql: a reused connection is checked by looking at its socket, not by a SELECT 1 each request; a
connection the server closed is still noticed and replaced before the request's first query."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import OperationalError, close_old_connections, connection, connections

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the PostgreSQL backend's health check")


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate(pid: int) -> None:
    """End the backend from a second connection, as a restart or pg_terminate_backend does, and wait until its
    goodbye has reached the first connection's socket."""
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
        for _ in range(100):
            if not other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                break
            time.sleep(0.02)


def _next_request() -> None:
    close_old_connections()  # what request_started does: the next query checks the connection first


def test_the_settings_use_the_backend_with_checks_on():
    assert type(connections['default']).__module__ == "config.postgresql.base"
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True


def test_a_healthy_reused_connection_is_kept_without_a_select_1(monkeypatch):
    pid = _backend_pid()
    calls = []
    monkeypatch.setattr(type(connections['default']), "is_usable", lambda self: calls.append(1) or True)
    for _ in range(3):
        _next_request()
        assert _backend_pid() == pid  # the same connection, kept
    assert calls == []  # and no round trip to ask whether it works


def test_a_connection_the_server_ended_is_replaced_before_the_first_query():
    pid = _backend_pid()
    _terminate(pid)
    _next_request()
    assert _backend_pid() != pid  # the query went through on a new connection, no error


def test_control_without_the_check_the_ended_connection_fails_the_query():
    """The same scenario with the check off: the first query meets the dead connection (so the test above shows the
    check at work, not a driver that reconnects by itself)."""
    pid = _backend_pid()
    _terminate(pid)
    _next_request()
    connection.health_check_enabled = False
    try:
        with pytest.raises(OperationalError):
            _backend_pid()
    finally:
        connection.close()


def test_in_a_transaction_the_check_falls_back_to_select_1(monkeypatch):
    calls = []
    real = type(connections['default']).is_usable
    monkeypatch.setattr(type(connections['default']), "is_usable", lambda self: calls.append(1) or real(self))
    _backend_pid()
    connection.connection.execute("BEGIN")  # left open under Django's feet, as a bug elsewhere might
    try:
        assert connection.idle_socket_open() is True
        assert calls == [1]
    finally:
        connection.connection.execute("ROLLBACK")
