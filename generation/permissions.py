"""Who may see the generation app's staff pages (its own and the scorers'): one check for all of them."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


def is_staff(user) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_staff)


def staff_required(view):
    """Staff only: anonymous visitors are sent to the login page, others (and htmx requests) get 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        if is_staff(request.user):
            return view(request, *args, **kwargs)
        if request.user.is_authenticated or request.htmx:
            raise PermissionDenied("staff only")
        return redirect_to_login(request.get_full_path())

    return wrapped
