"""Who may see the training pages: staff only (anonymous visitors go to the login page, others get 403)."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied


def is_staff(user) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_staff)


def staff_required(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if is_staff(request.user):
            return view(request, *args, **kwargs)
        if request.user.is_authenticated or request.htmx:
            raise PermissionDenied("staff only")
        return redirect_to_login(request.get_full_path())

    return wrapped
