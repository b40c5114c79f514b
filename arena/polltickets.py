"""Poll tickets: a fixed-prompt duel or free-for-all poll issued to a voter without writing anything.

A ticket holds who the poll is for (the voter's random id), its mode, the images in screen order, when it was
issued, the probability the matchmaker gave the shown set, and a random nonce that becomes the poll's token
when the vote is stored (so a replayed or doubled vote is one ``INSERT … ON CONFLICT DO NOTHING``).

It travels in the poll's URLs, so it is encrypted as well as signed (Fernet: AES-128-CBC with an HMAC-SHA256,
from the ``cryptography`` package): image ids are numbered in the order jobs made them, model by model, and a
readable ticket would let a voter guess a model from its image's id before voting. The key is derived from
``SECRET_KEY``; rotating it voids the tickets of open polls (their voters get a new poll).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
import struct
import uuid
from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken

from arena.errors import PollNotFound

MODES = ("fixed", "ffa")
_HEAD = struct.Struct(">B16s16sdBd")  # version, voter (16 bytes), nonce, issued_at (unix s), mode, propensity
_VERSION = 1
MAX_TICKET_CHARS = 400


@dataclass(frozen=True)
class PollTicket:
    nonce: uuid.UUID
    voter_key: str
    mode: str
    image_ids: tuple[int, ...]
    issued_at: dt.datetime
    propensity: float | None  # probability of the shown set under the matchmaker's distribution


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    key = hashlib.sha256(b"arena poll ticket v1\x00" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _secret() -> str:
    from django.conf import settings

    return settings.SECRET_KEY


def encode(ticket: PollTicket) -> str:
    if ticket.mode not in MODES:
        raise ValueError(f"tickets are for fixed-prompt duels and free-for-all polls, not {ticket.mode!r}")
    voter = bytes.fromhex(ticket.voter_key)
    if len(voter) != 16:
        raise ValueError("a voter key is 32 hex digits")
    propensity = math.nan if ticket.propensity is None else float(ticket.propensity)
    head = _HEAD.pack(_VERSION, voter, ticket.nonce.bytes, ticket.issued_at.timestamp(), MODES.index(ticket.mode),
                      propensity)
    body = struct.pack(f">B{len(ticket.image_ids)}Q", len(ticket.image_ids), *ticket.image_ids)
    return _fernet(_secret()).encrypt(head + body).decode("ascii").rstrip("=")  # padding is restored on decode


def decode(token: str) -> PollTicket:
    """The ticket in ``token``; PollNotFound for anything that is not a ticket this site issued.

    A poll's ticket comes back four to six times (each image, the vote, the rating poll), and each decryption
    (HMAC check and AES) was 4% of a web worker's CPU under load; decoding is a pure function of the token and
    the secret, so a process keeps the last few thousand it decoded, keyed by both (a changed secret decodes
    afresh). Refusals are not kept, so bad tokens cannot push good ones out."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TICKET_CHARS:
        raise PollNotFound("This poll does not exist.")
    return _decode(token, _secret())


@lru_cache(maxsize=4096)
def _decode(token: str, secret: str) -> PollTicket:
    try:
        raw = _fernet(secret).decrypt((token + "=" * (-len(token) % 4)).encode("ascii"))
        version, voter, nonce, issued, mode, propensity = _HEAD.unpack_from(raw)
        (count,) = struct.unpack_from(">B", raw, _HEAD.size)
        ids = struct.unpack_from(f">{count}Q", raw, _HEAD.size + 1)
    except (InvalidToken, UnicodeError, struct.error, ValueError):
        raise PollNotFound("This poll does not exist.") from None
    if version != _VERSION or mode >= len(MODES) or len(raw) != _HEAD.size + 1 + 8 * count:
        raise PollNotFound("This poll does not exist.")
    return PollTicket(
        nonce=uuid.UUID(bytes=nonce), voter_key=voter.hex(), mode=MODES[mode], image_ids=tuple(ids),
        issued_at=dt.datetime.fromtimestamp(issued, tz=dt.timezone.utc),
        propensity=None if math.isnan(propensity) else propensity,
    )


def is_uuid(token: str) -> bool:
    """Free-prompt duels (generated live) keep a database row under a UUID; every other poll is a ticket."""
    try:
        uuid.UUID(str(token))
    except ValueError:
        return False
    return len(str(token)) == 36
