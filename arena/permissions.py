"""Who may see what: the one place the arena's views, API and exports ask.

* staff: Django's ``is_staff`` (the admin's notion), checked the same way by pages (:func:`staff_required`),
  the API (:class:`IsStaffOrToken`) and the vote-log downloads (:func:`vote_log_allowed`);
* the vote log: public when ``ARENA_PUBLIC_VOTE_LOG`` is on (voters appear only as salted hashes), otherwise
  staff and API-token holders only.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework import permissions as drf_permissions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

#: Decorator for staff-only pages (redirects others to the admin login).
staff_required = staff_member_required


def is_staff(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def vote_log_public() -> bool:
    return settings.ARENA_PUBLIC_VOTE_LOG


def has_api_token(request: HttpRequest) -> bool:
    try:
        return TokenAuthentication().authenticate(request) is not None
    except exceptions.AuthenticationFailed:
        return False


def vote_log_allowed(request: HttpRequest) -> bool:
    """Vote logs go to staff and API-token holders (or to anyone with ``ARENA_PUBLIC_VOTE_LOG``)."""
    return vote_log_public() or is_staff(getattr(request, "user", None)) or has_api_token(request)


class IsStaffOrToken(drf_permissions.BasePermission):
    """API access for staff (session) or any API token."""

    message = "The vote log is for staff and API token holders."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Token) or is_staff(request.user)
