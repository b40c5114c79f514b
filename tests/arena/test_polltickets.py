"""Poll tickets round-trip, refuse what this site did not issue, and the per-process decode cache changes none
of that: a changed secret refuses a token decoded before, and a refusal is never kept."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from arena import polltickets
from arena.errors import PollNotFound
from arena.polltickets import PollTicket


def _ticket(**kw) -> PollTicket:
    values = dict(nonce=uuid.uuid4(), voter_key="ab" * 16, mode="ffa", image_ids=(3, 1, 4, 1_000_000_007),
                  issued_at=dt.datetime(2026, 12, 8, 1, 2, 3, 250000, tzinfo=dt.timezone.utc), propensity=0.125)
    return PollTicket(**{**values, **kw})


def test_a_ticket_round_trips_and_a_second_decode_is_the_same_ticket_from_the_cache():
    ticket = _ticket()
    token = polltickets.encode(ticket)
    assert polltickets.decode(token) == ticket
    hits = polltickets._decode.cache_info().hits
    assert polltickets.decode(token) == ticket
    assert polltickets._decode.cache_info().hits == hits + 1
    none = _ticket(mode="fixed", image_ids=(7, 8), propensity=None)
    assert polltickets.decode(polltickets.encode(none)) == none


def test_a_changed_secret_refuses_a_token_decoded_before(settings):
    token = polltickets.encode(_ticket())
    polltickets.decode(token)
    settings.SECRET_KEY = "another secret entirely, long enough for Django to accept it"
    with pytest.raises(PollNotFound):
        polltickets.decode(token)


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1],  # one character changed: the HMAC fails
    lambda t: t[:40],
    lambda t: "",
    lambda t: "x" * 401,
    lambda t: None,
])
def test_anything_else_is_refused_every_time(mangle):
    bad = mangle(polltickets.encode(_ticket()))
    hits = polltickets._decode.cache_info().hits
    for _ in range(2):
        with pytest.raises(PollNotFound):
            polltickets.decode(bad)
    assert polltickets._decode.cache_info().hits == hits  # the refusal was not kept
