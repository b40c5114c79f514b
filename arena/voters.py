"""Who is voting: a random voter id kept in the (signed-cookie) session, and a salted hash of the client
address. Neither is ever shown or exported raw."""

from __future__ import annotations

import hashlib
import re
import hmac
import secrets

from django.conf import settings
from django.http import HttpRequest

SESSION_KEY = "arena_voter"
_VOTER_KEY = re.compile(r"[0-9a-f]{32}")


def voter_key(request: HttpRequest) -> str:
    key = request.session.get(SESSION_KEY)
    if not isinstance(key, str) or not _VOTER_KEY.fullmatch(key):
        key = secrets.token_hex(16)
        request.session[SESSION_KEY] = key
    return key


def client_ip(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, or behind proxies the entry of ``CLIENT_IP_HEADER`` that the outermost
    of the site's own ``CLIENT_IP_TRUSTED_PROXIES`` proxies added (counted from the right: a client can put anything
    to the left, and taking the first entry would let it pick a new address, and new rate limits, per request)."""
    remote = request.META.get("REMOTE_ADDR") or ""
    if settings.CLIENT_IP_HEADER == "REMOTE_ADDR":
        return remote
    hops = [hop.strip() for hop in (request.META.get(settings.CLIENT_IP_HEADER) or "").split(",")]
    hops = [hop for hop in hops if hop]
    if len(hops) < settings.CLIENT_IP_TRUSTED_PROXIES:
        return remote  # not through the proxies we expect (a direct request): the socket's peer is the client
    return hops[-settings.CLIENT_IP_TRUSTED_PROXIES]


def salted_hash(value: str) -> str:
    """Keyed hash used wherever a voter id or address must be stored or exported."""
    return hmac.new(settings.VOTER_HASH_SALT.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


def client_ip_hash(request: HttpRequest) -> str:
    return salted_hash("ip:" + client_ip(request))


def voter_hash(voter_key: str) -> str:
    """The only form of a voter id that leaves the database (exports, API, stats)."""
    return salted_hash("voter:" + voter_key)
