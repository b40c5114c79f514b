"""Polls as the voter's browser sees them: a fixed-prompt duel or free-for-all is an encrypted ticket in its URLs
(nothing stored until the vote); a free-prompt duel is a database row. These helpers read either."""

from __future__ import annotations

import re

from arena import polltickets
from arena.models import Poll

TOKEN = re.compile(r'data-poll="([A-Za-z0-9_-]+)"')


def token_in(html: str) -> str:
    match = TOKEN.search(html)
    assert match, html
    return match.group(1)


def stored(token: str) -> Poll | None:
    """The poll's row: a free duel's at once, an issued poll's once its vote stored it."""
    if polltickets.is_uuid(token):
        return Poll.objects.filter(token=token).first()
    return Poll.objects.filter(token=polltickets.decode(token).nonce).first()


def voted(token: str) -> bool:
    poll = stored(token)
    return poll is not None and poll.status == Poll.Status.VOTED
