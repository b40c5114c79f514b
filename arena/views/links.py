"""The voter pages' links, worked out without a ``reverse()`` per link.

A voter's cycle renders about a dozen links (the vote form, each image, the reveal's model pages, the
ratings poller). Through ``{% url %}`` each was a full ``reverse()``: namespace lookup, candidate patterns,
converters, quoting -- measured 0.1 ms apiece under cProfile, about a seventh of a poll page's CPU. Here
``reverse()`` runs once per (script prefix, URL name, kinds of argument) with marker arguments, and its answer is
kept as the literal pieces between the arguments; a link is then those pieces joined with the arguments.

The pieces are kept per kind of argument: an int slot is split with an int marker, a string slot with a
string marker, so a string where the URL wants an int (which ``reverse()`` refuses) has no pieces and goes to
``reverse()``, which raises as before. The shortcut takes only arguments that need no quoting: ints >= 0 and
strings of ``[A-Za-z0-9_-]`` no longer than the poll-token converter allows (tickets, UUIDs); anything else
goes to ``reverse()`` itself. So a link is always what ``reverse()`` gives; ``tests/arena/test_links.py``
checks it against ``reverse()``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from django.urls import NoReverseMatch, get_script_prefix, reverse

from arena.polltickets import MAX_TICKET_CHARS

_PLAIN = re.compile(r"[A-Za-z0-9_-]{1,%d}" % MAX_TICKET_CHARS)
#: Marker arguments by kind (int, str), unlikely to occur in a URL prefix.
_MARKERS = {int: (97531864201, 97531864202, 97531864203), str: ("Zq7531864201", "Zq7531864202", "Zq7531864203")}


@lru_cache(maxsize=256)
def _pieces(prefix: str, name: str, kinds: tuple[type, ...]) -> tuple[str, ...] | None:
    """The literal pieces of ``name``'s URL around arguments of ``kinds``, or None when it cannot be split
    (``reverse()`` refuses the markers, or they do not come back intact)."""
    if len(kinds) > 3:
        return None
    markers = [_MARKERS[kind][i] for i, kind in enumerate(kinds)]
    try:
        url = reverse(name, args=markers)
    except NoReverseMatch:
        return None
    pieces = []
    for marker in map(str, markers):
        if url.count(marker) != 1:
            return None
        head, url = url.split(marker)
        pieces.append(head)
    return (*pieces, url)


def _kind(arg) -> type | None:
    if type(arg) is int:
        return int if arg >= 0 else None
    if type(arg) is str and _PLAIN.fullmatch(arg):
        return str
    return None


def link(name: str, *args: int | str) -> str:
    """``reverse(name, args=args)``, cheaply for the plain arguments the voter's pages use."""
    kinds = tuple(_kind(a) for a in args)
    pieces = None if None in kinds else _pieces(get_script_prefix(), name, kinds)
    if pieces is None:
        return reverse(name, args=args)
    out = [pieces[0]]
    for arg, piece in zip(args, pieces[1:]):
        out += (str(arg), piece)
    return "".join(out)
