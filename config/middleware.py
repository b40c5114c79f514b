"""Site-wide middleware."""

from __future__ import annotations

import logging

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5


class ServiceUnavailableMiddleware:
    """The database went away mid-request (a restart, a failover): answer 503 with a message a voter reads and
    ``Retry-After``, not a 500. The message does not promise that nothing was stored: a connection lost during
    COMMIT leaves that unknown. It need not: a vote's transaction either committed (and the same vote sent again
    finds it recorded and counts nothing twice) or rolled back (and the vote sent again is stored)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (OperationalError, InterfaceError)) and type(exception) is not DatabaseError:
            return None
        logger.warning("database unavailable during %s %s: %s", request.method, request.path, exception)
        message = ("The arena cannot reach its database for a moment. Please try again: "
                   "a vote sent again is counted once.")
        try:
            body = render_to_string("arena/_error.html" if request.headers.get("HX-Request") else "arena/error_page.html",
                                    {"message": message, "next_url": request.get_full_path()}, request=None)
        except Exception:  # the error page itself must not fail
            body = message
        response = HttpResponse(body, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
