"""A vote log written straight into the database for the report and API tests (the voting views have their own
tests): polls with entries and images, and their votes with chosen voters, times and flags."""

from __future__ import annotations

import datetime as dt
import itertools

from arena.models import Mode, Poll, PollEntry, Vote
from arena.services.ratings import ratings_apply_all
from tests.arena.factories import make_image, make_prompt, make_variant

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
_seq = itertools.count(1)


def ranks_for(choice: str, n: int, best: int | None = None, ranking: list[int] | None = None) -> list[int]:
    if choice == "left":
        return [0, 1]
    if choice == "right":
        return [1, 0]
    if choice in ("tie", "bothbad"):
        return [0, 0]
    if choice == "best":
        return [0 if i == best else 1 for i in range(n)]
    if choice == "ranking":
        return list(ranking)
    raise ValueError(choice)


def cast(
    variants, choice: str, *, mode: str = Mode.FIXED, voter: str = "a" * 32, minutes: float | None = None,
    flagged: bool = False, counted: bool | None = None, best: int | None = None, ranking: list[int] | None = None,
    images: bool = False, elapsed_ms: int = 4000, apply: bool = True,
) -> Vote:
    """One voted poll of ``variants`` in screen order; ``apply``: the ratings consumer places it in the log
    (and applies it) at once, as it does after each commit."""
    n = next(_seq)
    when = T0 + dt.timedelta(minutes=n if minutes is None else minutes)
    prompt = make_prompt(f"1girl, poll {n}")
    poll = Poll.objects.create(
        mode=mode, voter_key=voter, ip_hash="ip-" + voter[:8], prompt=prompt, status=Poll.Status.VOTED,
        expires_at=when + dt.timedelta(minutes=15), shown_at=when,
    )
    for position, variant in enumerate(variants):
        image = make_image(variant, prompt) if images else None
        PollEntry.objects.create(poll=poll, position=position, variant=variant, image=image)
    vote = Vote.objects.create(
        poll=poll, mode=mode, choice=choice, variants=[v.id for v in variants],
        ranks=ranks_for(choice, len(variants), best, ranking), full_ranking=choice == "ranking",
        voter_key=voter, ip_hash="ip-" + voter[:8], created_at=when, elapsed_ms=elapsed_ms, flagged=flagged,
        flag_reason="voted too fast" if flagged else "", counted=(not flagged) if counted is None else counted,
    )
    if apply:
        ratings_apply_all()
        vote.refresh_from_db()
    return vote


def small_log(n_models: int = 4):
    """Four models; model 0 wins most duels; a few ties, a both-bad, a free-prompt duel and two free-for-all polls."""
    m = [make_variant(f"Model {chr(65 + i)}") for i in range(n_models)]
    a, b, c, d = m[:4]
    plan = [
        ((a, b), "left"), ((b, a), "right"), ((a, c), "left"), ((c, a), "right"), ((a, d), "left"),
        ((b, c), "left"), ((c, b), "tie"), ((b, d), "left"), ((d, b), "bothbad"), ((c, d), "left"),
        ((d, c), "right"), ((a, b), "left"),
    ]
    votes = [cast(pair, choice, apply=False) for pair, choice in plan]
    votes.append(cast((b, a), "left", mode=Mode.FREE, apply=False))
    votes.append(cast((d, c, b, a), "best", mode=Mode.FFA, best=3, apply=False))
    votes.append(cast((a, b, c, d), "ranking", mode=Mode.FFA, ranking=[0, 1, 3, 2], apply=False))
    ratings_apply_all()
    for vote in votes:
        vote.refresh_from_db()
    return m, votes
