"""Casting a vote: one vote per poll, checked against the poll, with the live rating update in the same
transaction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from arena.errors import InvalidChoice, PollExpired, PollForbidden, PollNotFound, PollNotReady
from arena.models import Mode, Poll, PollEntry, Vote
from arena.services.ratings import ratings_apply
from ratings.outcomes import Outcome

DUEL_CHOICES = {
    Vote.Choice.LEFT: (0, 1),
    Vote.Choice.RIGHT: (1, 0),
    Vote.Choice.TIE: (0, 0),
    Vote.Choice.BOTH_BAD: (0, 0),
}


@dataclass(frozen=True)
class VoteResult:
    vote: Vote
    replayed: bool  # True when this request repeated an earlier one: nothing was counted again
    poll: Poll
    entries: list[PollEntry]  # in screen order, with their models and images, for the reveal


def _ranks_for(poll: Poll, n: int, choice: str, best: int | None, ranking: list[int] | None) -> tuple[str, tuple[int, ...], bool]:
    if poll.mode in (Mode.FIXED, Mode.FREE):
        if choice not in DUEL_CHOICES:
            raise InvalidChoice("Choose left, right, tie or both bad.")
        if poll.mode == Mode.FREE and (
            (choice == Vote.Choice.TIE and not settings.FREE_DUEL_ALLOW_TIE)
            or (choice == Vote.Choice.BOTH_BAD and not settings.FREE_DUEL_ALLOW_BOTH_BAD)
        ):
            raise InvalidChoice("This duel takes left or right only.")
        return choice, DUEL_CHOICES[choice], False
    if choice == Vote.Choice.BEST:
        if best is None or not 0 <= best < n:
            raise InvalidChoice(f"Pick one of the {n} images.")
        return choice, tuple(0 if i == best else 1 for i in range(n)), False
    if choice == Vote.Choice.RANKING:
        if ranking is None or sorted(ranking) != list(range(n)):
            raise InvalidChoice(f"A ranking lists each of the {n} images once, best first.")
        ranks = [0] * n
        for place, position in enumerate(ranking):
            ranks[position] = place
        return choice, tuple(ranks), True
    raise InvalidChoice("Pick the best image, or rank all four.")


def vote_cast(
    *, poll_token: str, voter_key: str, ip_hash: str, choice: str, best: int | None = None,
    ranking: list[int] | None = None, now: dt.datetime | None = None,
) -> VoteResult:
    """Record one voter's vote on their poll and, unless it is flagged, update the ratings in the same
    transaction. A repeated request returns the recorded vote and counts nothing twice."""
    with transaction.atomic():
        # Locking the poll row serialises every request about this poll: only the first one writes.
        poll = Poll.objects.select_for_update(of=("self",)).select_related("prompt").filter(token=poll_token).first()
        if poll is None:
            raise PollNotFound("This poll does not exist.")
        if poll.voter_key != voter_key:
            raise PollForbidden("This poll was issued to someone else.")
        entries = list(poll.entries.select_related("variant", "image").order_by("position"))
        if poll.status == Poll.Status.VOTED:
            return VoteResult(vote=Vote.objects.get(poll=poll), replayed=True, poll=poll, entries=entries)
        now = now or timezone.now()
        if poll.status != Poll.Status.READY:
            raise PollNotReady(poll.error or "This poll's images are not ready yet.")
        if now > poll.expires_at:
            raise PollExpired("This poll has expired; here is a new one.")
        players = tuple(e.variant_id for e in entries)
        choice, ranks, full = _ranks_for(poll, len(players), choice, best, ranking)
        elapsed = now - (poll.shown_at or poll.created_at)
        elapsed_ms = max(0, int(elapsed.total_seconds() * 1000))
        flagged = elapsed.total_seconds() < settings.MIN_VOTE_SECONDS
        counted = not flagged or settings.COUNT_FAST_VOTES
        outcome = Outcome(players=players, ranks=ranks, full_ranking=full)
        created_at, changes = (ratings_apply(outcome, poll.mode, now) if counted else (now, {}))
        vote = Vote.objects.create(
            poll=poll, mode=poll.mode, choice=choice, variants=list(players), ranks=list(ranks), full_ranking=full,
            voter_key=voter_key, ip_hash=ip_hash, created_at=created_at, elapsed_ms=elapsed_ms, flagged=flagged,
            flag_reason=f"voted {elapsed_ms} ms after the images appeared" if flagged else "", counted=counted,
            rating_changes=changes,
        )
        Poll.objects.filter(id=poll.id).update(status=Poll.Status.VOTED)
        poll.status = Poll.Status.VOTED
    return VoteResult(vote=vote, replayed=False, poll=poll, entries=entries)

