"""``arena.views.links.link`` is ``reverse()``: for every URL the voter's pages link to, for tickets, UUIDs
and ids, under a script prefix, and (through ``reverse()`` itself) for arguments it cannot take as they stand."""

from __future__ import annotations

import random
import string
import uuid

import pytest
from django.urls import NoReverseMatch, reverse, set_script_prefix

from arena.views.links import link

PLAIN = string.ascii_letters + string.digits + "_-"


def _token(rng: random.Random) -> str:
    return "".join(rng.choice(PLAIN) for _ in range(rng.randint(1, 400)))


@pytest.fixture
def prefix():
    yield set_script_prefix
    set_script_prefix("/")


@pytest.mark.parametrize("script_prefix", ["/", "/arena/"])
def test_link_equals_reverse_for_the_voters_urls(prefix, script_prefix):
    prefix(script_prefix)
    rng = random.Random(7)
    for _ in range(200):
        token = rng.choice([_token(rng), str(uuid.UUID(int=rng.getrandbits(128)))])
        for name in ("arena:poll", "arena:vote", "arena:reveal", "arena:ratings"):
            assert link(name, token) == reverse(name, args=[token])
        position = rng.randrange(100)
        assert link("arena:poll_image", token, position) == reverse("arena:poll_image", args=[token, position])
        pk = rng.randrange(10**9)
        assert link("arena:model", pk) == reverse("arena:model", args=[pk])
    for name in ("arena:home", "arena:fixed", "arena:free", "arena:ffa", "arena:leaderboard"):
        assert link(name) == reverse(name)
    assert link("arena:poll", "a").startswith(script_prefix)


@pytest.mark.parametrize("name, args", [
    ("arena:poll_image", ("tok", "x")),      # a string where the URL wants an int
    ("arena:poll_image", ("tok", -1)),       # the int converter takes no sign
    ("arena:poll", ("a" * 401,)),            # longer than a ticket can be
    ("arena:poll", ("a/b",)),                # not a token
    ("arena:poll", ()),                      # an argument missing
    ("arena:no-such-page", ()),
])
def test_link_refuses_what_reverse_refuses(name, args):
    with pytest.raises(NoReverseMatch):
        reverse(name, args=args)
    with pytest.raises(NoReverseMatch):
        link(name, *args)


def test_arguments_that_need_quoting_are_reverse_s_answer():
    # the leaderboard's plot URL takes any str: one that needs quoting is not taken as it stands
    for kind, fmt in [("elo", "png"), ("a b", "p%g"), ("bt", "ü")]:
        try:
            expected = reverse("arena:leaderboard_plot", args=[kind, fmt])
        except NoReverseMatch:
            with pytest.raises(NoReverseMatch):
                link("arena:leaderboard_plot", kind, fmt)
            continue
        assert link("arena:leaderboard_plot", kind, fmt) == expected
