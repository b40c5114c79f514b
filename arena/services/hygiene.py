"""Vote hygiene an admin acts on: leaving a voter's votes out of the ratings, and bringing them back.

An exclusion is itself logged (:class:`~arena.models.VoterExclusion`: who, why, when, how many votes), marks the
voter's votes ``excluded`` (the votes themselves stay in the log and in its hash chain, which does not cover
whether a vote counts), and asks the ratings consumer to rebuild the ratings from the log — so a replay gives
exactly what the live ratings show, before and after.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from arena.errors import ArenaError
from arena.models import Vote, VoterExclusion
from arena.services.ratings import ratings_kick, ratings_request_rebuild
from arena.voters import voter_hash


class HygieneError(ArenaError):
    status = 400


def voter_key_for(*, judge: str) -> str:
    """The voter id behind a ``judge`` hash (as pages and exports show voters); HygieneError if none voted."""
    judge = (judge or "").strip().lower()
    if not judge:
        raise HygieneError("Give the voter's hash (the 'judge' shown on the stats page and in the exports).")
    for key in Vote.objects.values_list("voter_key", flat=True).distinct():
        if voter_hash(key) == judge:
            return key
    raise HygieneError(f"No voter with the hash {judge!r} has voted.")


def voter_exclude(*, judge: str, reason: str, by=None) -> VoterExclusion:
    """Leave every vote of this voter (past and future) out of the ratings; logged and replayable."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise HygieneError("Say why this voter's votes are left out (it is kept with the exclusion).")
    key = voter_key_for(judge=judge)
    with transaction.atomic():
        if VoterExclusion.objects.select_for_update().filter(voter_key=key, lifted_at__isnull=True).exists():
            raise HygieneError("This voter's votes are left out already.")
        affected = Vote.objects.filter(voter_key=key, excluded=False).update(excluded=True)
        exclusion = VoterExclusion.objects.create(voter_key=key, reason=reason[:500], votes_affected=affected,
                                                  created_by=by if getattr(by, "pk", None) else None)
        ratings_request_rebuild()
        transaction.on_commit(ratings_kick)
    return exclusion


def voter_include(*, exclusion: VoterExclusion) -> VoterExclusion:
    """Lift an exclusion: the voter's votes count again (logged: the exclusion keeps its history)."""
    with transaction.atomic():
        exclusion = VoterExclusion.objects.select_for_update().get(pk=exclusion.pk)
        if exclusion.lifted_at is not None:
            raise HygieneError("This exclusion was lifted already.")
        Vote.objects.filter(voter_key=exclusion.voter_key, excluded=True).update(excluded=False)
        exclusion.lifted_at = timezone.now()
        exclusion.save(update_fields=["lifted_at"])
        ratings_request_rebuild()
        transaction.on_commit(ratings_kick)
    return exclusion


def is_excluded(voter_key: str) -> bool:
    return VoterExclusion.objects.filter(voter_key=voter_key, lifted_at__isnull=True).exists()
