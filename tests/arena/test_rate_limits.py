"""Rate limits (issue 10): every limit counts per voter and per client address, so dropping the cookie does not
reset it; a refusal is a 429 with Retry-After and changes nothing; behind proxies the address is the one the site's
own proxy saw, not one the client wrote."""

from __future__ import annotations

import re

from arena import polltickets
from tests.arena.issued import stored, token_in

import pytest
from django.test import Client
from django.urls import reverse

from arena.models import Poll, Vote
from generation.models import GenerationTask, ModelVariant, Prompt

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def _retry_after(response) -> int:
    assert response.status_code == 429
    value = response["Retry-After"]
    assert re.fullmatch(r"[0-9]+", value), value
    return int(value)


def test_a_429_says_when_to_come_back_and_issues_nothing(client, arena, settings):
    settings.RATELIMIT_VOTER = "2/m"
    assert [client.get(reverse("arena:fixed"), **HX).status_code for _ in range(2)] == [200, 200]
    refused = client.get(reverse("arena:fixed"), **HX)
    assert 1 <= _retry_after(refused) <= 60
    assert b"try again in" in refused.content and b"data-poll=" not in refused.content and Poll.objects.count() == 0
    assert 1 <= _retry_after(client.get(reverse("arena:fixed"))) <= 60  # the full page too


def test_dropping_the_cookie_does_not_reset_the_limit_on_polls(arena, settings):
    settings.RATELIMIT_VOTER = "100/m"
    settings.RATELIMIT_IP = "3/m"
    client = Client()
    codes, voters = [], set()
    for _ in range(5):
        client.cookies.clear()  # a new voter on every request, the same address
        response = client.get(reverse("arena:fixed"), **HX)
        codes.append(response.status_code)
        if response.status_code == 200:
            voters.add(polltickets.decode(token_in(response.content.decode())).voter_key)
    assert codes == [200, 200, 200, 429, 429]
    assert len(voters) == 3  # three different voters, one address


def test_dropping_the_cookie_does_not_reset_the_limit_on_live_generations(settings):
    settings.RATELIMIT_FREE_PROMPT = "100/m"
    settings.RATELIMIT_FREE_PROMPT_IP = "2/m"
    for c in "AB":
        ModelVariant.objects.create(name=f"Live {c}", source_type=ModelVariant.SourceType.DIFFUSERS, source_path=f"/m/{c}",
                                    width=256, height=256)
    client = Client()
    responses = []
    for n in range(3):
        client.cookies.clear()
        responses.append(client.post(reverse("arena:free"), {"prompt": f"1girl, number {n}"}, **HX))
    assert [r.status_code for r in responses] == [200, 200, 429]
    _retry_after(responses[-1])
    assert Poll.objects.count() == 2 and Prompt.objects.count() == 2 and GenerationTask.objects.count() == 4


def test_votes_are_limited_too_and_a_refused_vote_is_not_stored(client, arena, settings):
    import datetime as dt

    settings.MIN_VOTE_SECONDS = 0.0
    token = token_in(client.get(reverse("arena:fixed"), **HX).content.decode())
    settings.RATELIMIT_VOTER = "0/m"  # votes count on their own; none allowed now
    refused = client.post(reverse("arena:vote", args=[token]), {"choice": "left"}, **HX)
    _retry_after(refused)
    assert not Vote.objects.exists() and stored(token) is None


def test_behind_a_proxy_a_forged_forwarded_for_does_not_reset_the_limit(arena, settings):
    settings.CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    settings.CLIENT_IP_TRUSTED_PROXIES = 1
    settings.RATELIMIT_VOTER = "100/m"
    settings.RATELIMIT_IP = "2/m"
    codes = []
    for n in range(4):  # the client writes a new address each time; the proxy appends the one it saw
        codes.append(Client().get(reverse("arena:fixed"), HTTP_X_FORWARDED_FOR=f"10.0.0.{n}, 203.0.113.7", **HX).status_code)
    assert codes == [200, 200, 429, 429]
    other = Client().get(reverse("arena:fixed"), HTTP_X_FORWARDED_FOR="10.0.0.1, 198.51.100.9", **HX)
    assert other.status_code == 200  # another client address has its own limit
