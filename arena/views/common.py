"""What every voter-facing view shares: never-cached poll responses, rate limits, the error page."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.vary import vary_on_headers
from django_ratelimit.core import is_ratelimited

from arena.errors import ArenaError, RateLimited
from arena.models import Mode
from arena.voters import client_ip_hash, voter_key


def poll_response(view):
    """A poll is issued to one voter once: its pages are never cached, and caches tell a URL's full page from
    its htmx partial."""
    return never_cache(vary_on_headers("HX-Request")(view))


MODE_URLS = {Mode.FIXED: "arena:fixed", Mode.FREE: "arena:free", Mode.FFA: "arena:ffa"}


def _voter_rate_key(group, request):
    return voter_key(request)


def _ip_rate_key(group, request):
    return client_ip_hash(request)


def rate_limit(request: HttpRequest, group: str, voter_rate: str | None = None) -> None:
    if not settings.RATELIMIT_ENABLE:
        return
    checks = [
        (f"{group}:voter", _voter_rate_key, voter_rate or settings.RATELIMIT_VOTER),
        (f"{group}:ip", _ip_rate_key, settings.RATELIMIT_IP),
    ]
    for name, key, rate in checks:
        if is_ratelimited(request, group=name, key=key, rate=rate, increment=True):
            raise RateLimited("Too many requests; wait a minute and try again.")


def error_response(request: HttpRequest, exc: ArenaError, mode: str | None = None) -> HttpResponse:
    context = {"message": exc.message, "mode": mode, "next_url": reverse(MODE_URLS[mode]) if mode else None}
    template = "arena/_error.html" if request.htmx else "arena/error_page.html"
    return render(request, template, context, status=exc.status)

