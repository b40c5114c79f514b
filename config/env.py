"""Strict readers for environment variables.

Every setting that comes from the environment goes through one of these helpers, so a bad value
(``DEBUG=maybe``, ``POLL_TTL_SECONDS=ten``) stops start-up with a message naming the variable instead of
being silently replaced by a default.
"""

from __future__ import annotations

import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        result = default
    else:
        # ASCII digits only: int() would also take "٣", "1_000" and "+7".
        if not re.fullmatch(r"-?[0-9]{1,18}", value):
            raise ImproperlyConfigured(f"{name}={value!r} is not an integer")
        result = int(value)
    if minimum is not None and result < minimum:
        raise ImproperlyConfigured(f"{name}={result} is below the minimum {minimum}")
    if maximum is not None and result > maximum:
        raise ImproperlyConfigured(f"{name}={result} is above the maximum {maximum}")
    return result


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value == "":
        result = default
    else:
        try:
            result = float(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={value!r} is not a number") from None
        if result != result or result in (float("inf"), float("-inf")):
            raise ImproperlyConfigured(f"{name}={value!r} is not a finite number")
    if minimum is not None and result < minimum:
        raise ImproperlyConfigured(f"{name}={result} is below the minimum {minimum}")
    if maximum is not None and result > maximum:
        raise ImproperlyConfigured(f"{name}={result} is above the maximum {maximum}")
    return result


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None or value == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


_RATE = re.compile(r"[0-9]{1,9}/[0-9]{0,6}[smhd]")


def env_rate(name: str, default: str) -> str:
    """A django-ratelimit rate such as ``60/m`` or ``100/5m``."""
    value = env_str(name, default)
    if not _RATE.fullmatch(value) or int(value.split("/")[0]) == 0:
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate like 60/m (a count over s, m, h or d)")
    return value


def env_header_value(name: str) -> tuple[str, str] | None:
    """``HTTP_HEADER_NAME=value`` → ``("HTTP_HEADER_NAME", "value")`` (Django's ``SECURE_PROXY_SSL_HEADER``); unset or
    empty → None."""
    value = env_str(name, "")
    if not value:
        return None
    header, sep, expected = value.partition("=")
    if not sep or not re.fullmatch(r"HTTP_[A-Z0-9_]+", header) or not expected:
        raise ImproperlyConfigured(f"{name}={value!r} must look like HTTP_X_FORWARDED_PROTO=https (a request.META name, '=', the value)")
    return header, expected
