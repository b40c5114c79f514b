"""What every voter-facing view shares: never-cached poll responses, rate limits, the error page."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.vary import vary_on_headers
from django_ratelimit.core import get_usage

from arena.errors import ArenaError, RateLimited
from arena.models import Mode
from arena.voters import client_ip_hash, voter_key


def poll_response(view):
    """A poll is issued to one voter once: its pages are never cached, and caches tell a URL's full page from
    its htmx partial."""
    return never_cache(vary_on_headers("HX-Request")(view))


MODE_URLS = {Mode.FIXED: "arena:fixed", Mode.FREE: "arena:free", Mode.FFA: "arena:ffa"}
CACHE_DOWN_RETRY_SECONDS = 5  # Retry-After of a request refused because the cache cannot count (fail closed)
logger = logging.getLogger(__name__)


def _voter_rate_key(group, request):
    return voter_key(request)


def _ip_rate_key(group, request):
    return client_ip_hash(request)


def _rates(group: str) -> tuple[str, str]:
    """(per-voter rate, per-address rate) of a group. Every limit counts both ways, so a client that drops its cookie
    (a new voter on every request) is still counted, and stopped, by its address."""
    if group == "free":  # live generations on the GPU workers
        return settings.RATELIMIT_FREE_PROMPT, settings.RATELIMIT_FREE_PROMPT_IP
    if group in ("poll", "vote"):  # issuing fixed-prompt duels and free-for-all polls; votes
        return settings.RATELIMIT_VOTER, settings.RATELIMIT_IP
    raise ValueError(f"unknown rate-limit group {group!r}")


def rate_limit(request: HttpRequest, group: str) -> None:
    """Count this request against the voter's and the address's limit of ``group``; over either, RateLimited with the
    seconds until the window that refused it ends (the 429's Retry-After)."""
    if not settings.RATELIMIT_ENABLE:
        return
    voter_rate, ip_rate = _rates(group)
    checks = [(f"{group}:voter", _voter_rate_key, voter_rate), (f"{group}:ip", _ip_rate_key, ip_rate)]
    for name, key, rate in checks:
        try:
            usage = get_usage(request, group=name, key=key, rate=rate, increment=True)
        except Exception as exc:  # noqa: BLE001 - the cache (Redis) is unreachable: django-ratelimit lets it raise
            usage = _cache_down(name, exc)
        if usage is not None and usage["should_limit"]:
            # time_left is -1 when the cache could not count: wait a whole window then.
            retry_after = usage["time_left"] if usage["time_left"] > 0 else _period_seconds(rate)
            raise RateLimited(f"Too many requests; try again in {retry_after} s.", retry_after=retry_after)


def _cache_down(name: str, exc: Exception) -> dict | None:
    """What a limit does while the cache cannot count: with ``RATELIMIT_FAIL_OPEN`` (the default) the request goes
    through uncounted, as django-ratelimit does when its cache answers nothing; otherwise it is refused for a few
    seconds. (django-ratelimit catches only a failed DNS lookup: a refused Redis connection reached the voter as a
    500.)"""
    logger.warning("rate limit %s not counted: the cache is unreachable (%s)", name, exc)
    if settings.RATELIMIT_FAIL_OPEN:
        return None
    return {"should_limit": True, "time_left": CACHE_DOWN_RETRY_SECONDS}



def _period_seconds(rate: str) -> int:
    count, _, period = rate.partition("/")
    multiple, unit = (period[:-1] or "1"), period[-1]
    return int(multiple) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def error_response(request: HttpRequest, exc: ArenaError, mode: str | None = None) -> HttpResponse:
    context = {"message": exc.message, "mode": mode, "next_url": reverse(MODE_URLS[mode]) if mode else None}
    template = "arena/_error.html" if request.htmx else "arena/error_page.html"
    response = render(request, template, context, status=exc.status)
    if isinstance(exc, RateLimited):
        response["Retry-After"] = str(exc.retry_after)
    return response
