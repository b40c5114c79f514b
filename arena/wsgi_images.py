"""The poll images' short path: ``GET /poll/<ticket>/image/<n>`` answered in front of Django's request cycle.

Every poll makes two (a free-for-all four) image requests, each through the whole middleware stack, URL
resolver and view: measured 0.83 ms of CPU an image in process, more than a third of a duel's server CPU with
the page and the vote. What an image needs is small: the ticket decrypted, the voter's id read from the session
cookie and compared with the ticket's, the file named by the in-memory image index. That is done here (as
WhiteNoise does for static files), and the response goes through the same security middleware's
``process_response`` as every other page (nosniff, referrer and opener policies, HSTS, X-Frame-Options).

Only the plain success is answered here: anything else -- a live (UUID) poll, a malformed or foreign ticket, a
voter without a session, a host Django would refuse, an HTTP request that must be redirected to HTTPS, a missing
file, a database error while the index refreshes -- goes on to Django, whose view gives the usual answer. So
the two paths cannot disagree on who may see an image, only on how fast it comes.
"""

from __future__ import annotations

import logging
import re
from importlib import import_module

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.files.storage import default_storage
from django.core.handlers.wsgi import WSGIRequest
from django.db import DatabaseError
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware

from arena import pollgroups, polltickets
from arena.errors import ArenaError
from arena.voters import SESSION_KEY

logger = logging.getLogger(__name__)

PATH = re.compile(r"/poll/(?P<token>[A-Za-z0-9_-]{1,%d})/image/(?P<position>[0-9]{1,2})" % polltickets.MAX_TICKET_CHARS)
CACHE_CONTROL = "private, max-age=86400, immutable"


def _unused(request):  # the middlewares below are only asked for their process_request / process_response
    raise AssertionError("not called")


class PollImages:
    """WSGI middleware: the short path for poll images; every other request goes to ``app`` untouched."""

    def __init__(self, app):
        self.app = app
        self.security = SecurityMiddleware(_unused)
        self.frame = XFrameOptionsMiddleware(_unused)
        self.sessions = import_module(settings.SESSION_ENGINE).SessionStore

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            match = PATH.fullmatch(environ.get("PATH_INFO", ""))
            if match is not None and not polltickets.is_uuid(match["token"]):
                response = self.answer(environ, match["token"], int(match["position"]))
                if response is not None:
                    start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
                    return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [response.content]
        return self.app(environ, start_response)

    def answer(self, environ, token: str, position: int) -> HttpResponse | None:
        """The image's response, or None when Django should answer."""
        request = WSGIRequest(environ)
        try:
            request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it
        except DisallowedHost:
            return None
        if self.security.process_request(request) is not None:  # e.g. the redirect to HTTPS
            return None
        session = self.sessions(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
        voter = session.get(SESSION_KEY)
        try:
            ticket = polltickets.decode(token)
            if not isinstance(voter, str) or voter != ticket.voter_key:
                return None
            name = pollgroups.voter_file(ticket.image_ids, position)
            if name is None:
                return None
            if settings.MEDIA_INTERNAL_REDIRECT:
                response = HttpResponse(content_type="image/png")
                response["X-Accel-Redirect"] = settings.MEDIA_INTERNAL_REDIRECT.rstrip("/") + "/" + name
            else:
                with open(default_storage.path(name), "rb") as fh:
                    response = HttpResponse(fh.read(), content_type="image/png")
        except (ArenaError, OSError, NotImplementedError, DatabaseError) as exc:
            # NotImplementedError: a storage without local paths; DatabaseError: the index could not refresh
            logger.debug("poll image %s/%s left to Django: %r", token[:12], position, exc)
            return None
        response["Content-Length"] = str(len(response.content))
        response["Cache-Control"] = CACHE_CONTROL
        response["Vary"] = "Cookie"  # as the session middleware marks a response that read the session
        response = self.security.process_response(request, response)
        return self.frame.process_response(request, response)
