"""Who is voting: a random voter id kept in the (signed-cookie) session, and a salted hash of the client
address. Neither is ever shown or exported raw."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.http import HttpRequest

SESSION_KEY = "arena_voter"


def voter_key(request: HttpRequest) -> str:
    key = request.session.get(SESSION_KEY)
    if not isinstance(key, str) or len(key) != 32:
        key = secrets.token_hex(16)
        request.session[SESSION_KEY] = key
    return key


def client_ip(request: HttpRequest) -> str:
    raw = request.META.get(settings.CLIENT_IP_HEADER) or request.META.get("REMOTE_ADDR") or ""
    return raw.split(",")[0].strip()


def salted_hash(value: str) -> str:
    """Keyed hash used wherever a voter id or address must be stored or exported."""
    return hmac.new(settings.VOTER_HASH_SALT.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


def client_ip_hash(request: HttpRequest) -> str:
    return salted_hash("ip:" + client_ip(request))


def voter_hash(voter_key: str) -> str:
    """The only form of a voter id that leaves the database (exports, API, stats)."""
    return salted_hash("voter:" + voter_key)
