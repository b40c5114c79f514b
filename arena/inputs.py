"""Strict parsing of what a request, the API or a command hands the arena: bad input raises an ArenaError with
a message a person reads (a 400), never a 500."""

from __future__ import annotations

from arena.errors import ReportError
from arena.models import Scope

SCOPES: tuple[str, ...] = tuple(Scope.values)


def scope_clean(value: str | None, default: str = Scope.OVERALL) -> str:
    if value in (None, ""):
        return default
    if value not in SCOPES:
        raise ReportError(f"Unknown scope {value!r}; use one of {', '.join(SCOPES)}.")
    return value
