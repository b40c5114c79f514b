"""The one staff check of the site (Django's ``is_staff``): the generation app's pages and the scorers', and the
arena's and training's, which import it from here (generation is the lowest app every other one may import)."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


def is_staff(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


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
