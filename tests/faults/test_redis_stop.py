"""Redis (the cache and the rate limits) shut down while 16 voters vote through gunicorn: voting goes on. With
``RATELIMIT_FAIL_OPEN`` (the default) a limit the cache cannot count lets the request through; refusing instead is
a 429 with Retry-After. When Redis comes back (empty) the limits count again."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from django.urls import reverse

from arena.benchmarks import faults
from arena.models import Vote

pytestmark = [pytest.mark.slow]
HX = {"HTTP_HX_REQUEST": "true"}


def test_sixteen_voters_vote_on_while_redis_is_down(drill_cluster):
    line = faults.redis_stop(faults.DrillOptions(clients=16, seconds=9.0, fault_at=2.0, down_seconds=3.0),
                             prepared=drill_cluster)
    print(json.dumps(line))
    assert line["redis_down_s"] >= 3.0
    assert line["acknowledged_while_down"] > 0, line  # voting went on while Redis was away
    assert line["errors"] == {} and line["refusals_503"] == 0 and line["poll_pages_503"] == 0, line
    assert line["lost"] == line["doubled"] == 0
    assert line["acknowledged"] == line["stored"] == line["sent"] and line["abandoned"] == 0
    assert line["ratings_equal_replay"] and line["ratings_consumer_survived"]


def _redis_cache(url: str) -> dict:
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url,
                        "KEY_PREFIX": "faults"}}


@pytest.mark.django_db(transaction=True)
def test_rate_limits_fail_open_while_redis_is_down_and_count_again_when_it_is_back(client, local_redis, settings):
    from tests.arena.factories import arena_with_images
    from tests.arena.test_views import _token

    arena_with_images(n_models=4, n_prompts=6)
    settings.MIN_VOTE_SECONDS = 0.0
    settings.RATELIMIT_ENABLE = True
    settings.RATELIMIT_VOTER = "2/m"  # two polls and two votes a minute
    with override_settings(CACHES=_redis_cache(local_redis.url(0))):
        from django.core.cache import cache

        def vote_once() -> int:
            page = client.get(reverse("arena:fixed"), **HX)
            if page.status_code != 200:
                return page.status_code
            return client.post(reverse("arena:vote", args=[_token(page.content.decode())]), {"choice": "left"},
                               **HX).status_code

        assert vote_once() == 200 and vote_once() == 200
        refused = client.get(reverse("arena:fixed"), **HX)
        assert refused.status_code == 429 and int(refused["Retry-After"]) > 0  # the limit counts in Redis

        local_redis.stop()
        assert [vote_once() for _ in range(3)] == [200, 200, 200]  # fail open: uncounted, not a 500
        assert Vote.objects.count() == 5
        with override_settings(RATELIMIT_FAIL_OPEN=False):
            closed = client.get(reverse("arena:fixed"), **HX)
            assert closed.status_code == 429 and closed["Retry-After"] == "5"
            assert b"try again" in closed.content.lower()

        local_redis.start()  # empty: the window starts again, and counts
        assert vote_once() == 200
        assert client.get(reverse("arena:fixed"), **HX).status_code == 200
        assert client.get(reverse("arena:fixed"), **HX).status_code == 429
        cache.clear()


@pytest.mark.django_db(transaction=True)
def test_a_frozen_redis_slows_a_vote_by_seconds_not_forever(client, local_redis, settings):
    """Redis alive but not answering (SIGSTOP, as a hung host or a dropped network): each cache call gives up after
    REDIS_SOCKET_TIMEOUT and the rate limits fail open, so the voter still gets the poll and the reveal."""
    import os
    import signal
    import time

    from tests.arena.factories import arena_with_images
    from tests.arena.test_views import _token

    arena_with_images(n_models=3, n_prompts=2)
    settings.MIN_VOTE_SECONDS = 0.0
    settings.RATELIMIT_ENABLE = True
    caches = _redis_cache(local_redis.url(0))
    caches["default"]["OPTIONS"] = settings.CACHES["default"].get("OPTIONS") or {
        "socket_connect_timeout": 1.0, "socket_timeout": 1.0}  # the settings' own when REDIS_URL is set
    with override_settings(CACHES=caches):
        from django.core.cache import cache

        assert client.get(reverse("arena:fixed"), **HX).status_code == 200  # connected before it freezes
        os.kill(local_redis.proc.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            page = client.get(reverse("arena:fixed"), **HX)
            assert page.status_code == 200
            vote = client.post(reverse("arena:vote", args=[_token(page.content.decode())]), {"choice": "right"}, **HX)
            assert vote.status_code == 200
            assert time.monotonic() - started < 20
            assert Vote.objects.count() == 1
        finally:
            os.kill(local_redis.proc.pid, signal.SIGCONT)
        cache.clear()
