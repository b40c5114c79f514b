"""Casting a vote: one short transaction that stores what the voter gave and takes no rating-row lock.

A fixed-prompt duel or free-for-all poll exists only as its ticket until now: the vote inserts its poll row
keyed by the ticket's nonce with ``INSERT … ON CONFLICT DO NOTHING``, so a replayed or doubled request finds
the row taken and gets the recorded vote back; nothing is counted twice. A free-prompt duel's row exists (it was
generated live): the vote moves it from ready to voted with a conditional update, which only one request wins.
The ratings are applied after the commit by the ordered consumer (:mod:`arena.services.ratings`).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from arena import matchmaking, pollgroups, polltickets
from arena.errors import InvalidChoice, PollExpired, PollForbidden, PollNotFound, PollNotReady, RateLimited
from arena.models import Mode, Poll, PollEntry, Vote
from generation.models import Image

DUEL_CHOICES = {
    Vote.Choice.LEFT: (0, 1),
    Vote.Choice.RIGHT: (1, 0),
    Vote.Choice.TIE: (0, 0),
    Vote.Choice.BOTH_BAD: (0, 0),
}
_POLL_COLUMNS = ("token", "mode", "voter_key", "ip_hash", "prompt", "settings_key", "status", "error", "created_at",
                 "shown_at", "expires_at", "propensity")


@dataclass(frozen=True)
class VoteResult:
    vote: Vote
    replayed: bool  # True when this request repeated an earlier one: nothing was counted again
    poll: Poll
    entries: list[PollEntry]  # in screen order, with their models and images, for the reveal


def ranks_for(mode: str, n: int, choice: str, best: int | None, ranking: list[int] | None) -> tuple[str, tuple[int, ...], bool]:
    """(choice, ranks in screen order, full ranking?) of a vote; InvalidChoice for one that does not fit."""
    if mode in (Mode.FIXED, Mode.FREE):
        if choice not in DUEL_CHOICES:
            raise InvalidChoice("Choose left, right, tie or both bad.")
        if mode == Mode.FREE and (
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


def _vote_row(poll_id: int, mode: str, entries_variants: tuple[int, ...], decided: tuple, *, voter_key: str,
              ip_hash: str, now: dt.datetime, shown_at: dt.datetime) -> Vote:
    choice, ranks, full = decided
    elapsed = now - shown_at
    elapsed_ms = max(0, int(elapsed.total_seconds() * 1000))
    flagged = elapsed.total_seconds() < settings.MIN_VOTE_SECONDS
    return Vote(
        poll_id=poll_id, mode=mode, choice=choice, variants=list(entries_variants), ranks=list(ranks),
        full_ranking=full, voter_key=voter_key, ip_hash=ip_hash, created_at=now, elapsed_ms=elapsed_ms,
        flagged=flagged, flag_reason=f"voted {elapsed_ms} ms after the images appeared" if flagged else "",
        counted=not flagged or settings.COUNT_FAST_VOTES,
    )


def _cap_key(voter_key: str, now: dt.datetime) -> str:
    return f"arena:votes-today:{voter_key}:{now.astimezone(dt.timezone.utc).date().isoformat()}"


def _cast_today(voter_key: str, now: dt.datetime) -> int:
    try:
        return int(cache.get(_cap_key(voter_key, now)) or 0)
    except Exception:  # noqa: BLE001 - the cache is down: the cap is not enforced until it is back
        return 0


def _check_cap(voter_key: str, now: dt.datetime) -> None:
    cap = settings.VOTER_DAILY_CAP
    if cap and _cast_today(voter_key, now) >= cap:
        utc = now.astimezone(dt.timezone.utc)  # the cap counts UTC days (_cap_key)
        tomorrow = dt.datetime.combine(utc.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
        raise RateLimited(f"You have cast {cap} votes today, the most one voter may; thank you — come back tomorrow.",
                          retry_after=math.ceil((tomorrow - utc).total_seconds()))


def _after_commit(voter_key: str, now: dt.datetime) -> None:
    from arena.services.ratings import ratings_kick

    if settings.VOTER_DAILY_CAP:
        key = _cap_key(voter_key, now)
        try:
            if not cache.add(key, 1, timeout=36 * 3600):
                cache.incr(key)
        except ValueError:
            cache.set(key, 1, timeout=36 * 3600)
        except Exception:  # noqa: BLE001 - the cache is down: this vote is not counted against the cap
            pass
    ratings_kick()


def _replayed(poll_token, voter_key: str) -> VoteResult | None:
    poll = Poll.objects.select_related("prompt").filter(token=poll_token).first()
    if poll is None:
        return None
    if poll.voter_key != voter_key:
        raise PollForbidden("This poll was issued to someone else.")
    vote = Vote.objects.filter(poll=poll).first()
    if vote is None:
        return None
    return VoteResult(vote=vote, replayed=True, poll=poll, entries=_entries(poll))


def _entries(poll: Poll) -> list[PollEntry]:
    return list(poll.entries.select_related("variant", "image").order_by("position"))


@functools.cache
def _insert_statement(model, names: tuple[str, ...] | None, conflict: str | None) -> tuple[str, list]:
    """``INSERT INTO <table> (<fields>) VALUES (...) [ON CONFLICT (<conflict>) DO NOTHING] RETURNING id`` and its
    fields, built once per process (PostgreSQL and SQLite >= 3.35 both speak it). ``names`` None: every concrete
    field but the primary key."""
    opts = model._meta
    fields = [f for f in opts.concrete_fields if f is not opts.pk] if names is None else [opts.get_field(n) for n in names]
    q = connection.ops.quote_name
    sql = (f"INSERT INTO {q(opts.db_table)} ({', '.join(q(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})"
           + (f" ON CONFLICT ({q(opts.get_field(conflict).column)}) DO NOTHING" if conflict else "")
           + f" RETURNING {q(opts.pk.column)}")
    return sql, fields


def _insert_returning_id(sql: str, params: list) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def _insert_poll(values: dict) -> int | None:
    """``INSERT … ON CONFLICT (token) DO NOTHING RETURNING id``: the new poll's id, or None if the token is
    taken."""
    sql, fields = _insert_statement(Poll, _POLL_COLUMNS, "token")
    return _insert_returning_id(sql, [f.get_db_prep_save(values[f.name], connection) for f in fields])


def _insert_vote(vote: Vote) -> None:
    """``INSERT INTO vote (...) VALUES (...) RETURNING id`` for a new vote, what ``save(force_insert=True)``
    sends without building and compiling the ORM's insert query each time (a vote's largest CPU cost in the
    web workers after the database round trips). Values go through each field's ``pre_save`` and
    ``get_db_prep_save``, as the ORM's insert does; no signal handlers listen to votes."""
    sql, fields = _insert_statement(Vote, None, None)
    vote.pk = _insert_returning_id(sql, [f.get_db_prep_save(f.pre_save(vote, True), connection) for f in fields])
    vote._state.adding, vote._state.db = False, connection.alias


@dataclass(frozen=True)
class _Named:
    id: int
    name: str


@dataclass(frozen=True)
class _Size:
    width: int
    height: int


@dataclass(frozen=True)
class RevealEntry:
    """An image slot at the reveal, built from memory (the poll was just stored from the ticket)."""

    position: int
    variant_id: int
    variant: _Named
    image: _Size


@dataclass(frozen=True)
class _Text:
    id: int
    text: str


@dataclass(frozen=True)
class RevealPoll:
    token: object
    mode: str
    prompt: _Text
    status: str = Poll.Status.VOTED


def _ticket_images(ticket) -> list[pollgroups.ImageInfo]:
    """The ticket's images as the in-memory index knows them (it issued them); read from the database when the
    index was rebuilt without one, and PollNotFound when an image is gone."""
    index = pollgroups.index()
    infos = [index.info.get(i) for i in ticket.image_ids]
    if all(infos):
        return infos
    found = {i.id: i for i in Image.objects.filter(id__in=ticket.image_ids)}
    if len(found) != len(ticket.image_ids):
        raise PollNotFound("The images of this poll are gone, so it takes no vote; here is a new one.")
    return [pollgroups.ImageInfo(i.id, i.variant_id, (i.prompt_id, i.settings_key), i.voter_file.name, i.width, i.height)
            for i in (found[x] for x in ticket.image_ids)]


def _insert_entries(poll_id: int, infos: list[pollgroups.ImageInfo]) -> None:
    q = connection.ops.quote_name
    sql = (f"INSERT INTO {q(PollEntry._meta.db_table)} ({q('poll_id')}, {q('position')}, {q('variant_id')}, "
           f"{q('image_id')}) VALUES (%s, %s, %s, %s)")
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(poll_id, i, info.variant_id, info.id) for i, info in enumerate(infos)])


def _store_ticket_vote(ticket, infos, decided, *, voter_key: str, ip_hash: str, now: dt.datetime) -> Vote | None:
    """One transaction: the poll row (ON CONFLICT DO NOTHING on the nonce), its entries, the vote. None when a
    concurrent request stored this poll's vote first."""
    prompt_id, settings_key = infos[0].group
    try:
        with transaction.atomic():
            poll_id = _insert_poll({
                "token": ticket.nonce, "mode": ticket.mode, "voter_key": voter_key, "ip_hash": ip_hash,
                "prompt": prompt_id, "settings_key": settings_key, "status": Poll.Status.VOTED, "error": "",
                "created_at": now, "shown_at": ticket.issued_at,
                "expires_at": ticket.issued_at + dt.timedelta(seconds=settings.POLL_TTL_SECONDS),
                "propensity": ticket.propensity,
            })
            if poll_id is None:
                return None
            _insert_entries(poll_id, infos)
            vote = _vote_row(poll_id, ticket.mode, tuple(i.variant_id for i in infos), decided, voter_key=voter_key,
                             ip_hash=ip_hash, now=now, shown_at=ticket.issued_at)
            _insert_vote(vote)
            transaction.on_commit(lambda: _after_commit(voter_key, now))
    except IntegrityError:  # an image was deleted since the index was read
        raise PollNotFound("The images of this poll are gone, so it takes no vote; here is a new one.") from None
    return vote


def _cast_on_ticket(token: str, *, voter_key: str, ip_hash: str, choice: str, best, ranking, now) -> VoteResult:
    ticket = polltickets.decode(token)
    if ticket.voter_key != voter_key:
        raise PollForbidden("This poll was issued to someone else.")
    if now > ticket.issued_at + dt.timedelta(seconds=settings.POLL_TTL_SECONDS):
        replay = _replayed(ticket.nonce, voter_key)
        if replay is None:
            raise PollExpired("This poll has expired; here is a new one.")
        return replay
    decided = ranks_for(ticket.mode, len(ticket.image_ids), choice, best, ranking)
    _check_cap(voter_key, now)
    infos = _ticket_images(ticket)
    vote = _store_ticket_vote(ticket, infos, decided, voter_key=voter_key, ip_hash=ip_hash, now=now)
    if vote is None:  # the row was taken: this request repeats one that was stored
        replay = _replayed(ticket.nonce, voter_key)
        if replay is None:
            raise PollNotReady("This vote is being recorded; reload the page in a moment.")
        return replay
    matchmaking.pending_done(ticket.mode, ticket.nonce)
    if settings.CELERY_TASK_ALWAYS_EAGER and settings.RATINGS_CONSUMER == "task":
        vote.refresh_from_db(fields=["seq", "rating_changes"])  # the consumer ran in this process on commit
    index = pollgroups.index()
    entries = [RevealEntry(position=i, variant_id=info.variant_id,
                           variant=_Named(info.variant_id, index.names.get(info.variant_id, f"#{info.variant_id}")),
                           image=_Size(info.width, info.height)) for i, info in enumerate(infos)]
    prompt_id = infos[0].group[0]
    poll = RevealPoll(token=ticket.nonce, mode=ticket.mode, prompt=_Text(prompt_id, index.prompts.get(prompt_id, "")))
    return VoteResult(vote=vote, replayed=False, poll=poll, entries=entries)


def _cast_on_live_poll(token: str, *, voter_key: str, ip_hash: str, choice: str, best, ranking, now) -> VoteResult:
    poll = Poll.objects.select_related("prompt").filter(token=token).first()
    if poll is None:
        raise PollNotFound("This poll does not exist.")
    if poll.voter_key != voter_key:
        raise PollForbidden("This poll was issued to someone else.")
    entries = _entries(poll)
    if poll.status == Poll.Status.VOTED:
        return VoteResult(vote=Vote.objects.get(poll=poll), replayed=True, poll=poll, entries=entries)
    if poll.status != Poll.Status.READY:
        raise PollNotReady(poll.error or "This poll's images are not ready yet.")
    if now > poll.expires_at:
        raise PollExpired("This poll has expired; here is a new one.")
    decided = ranks_for(poll.mode, len(entries), choice, best, ranking)
    _check_cap(voter_key, now)
    try:
        with transaction.atomic():
            won = Poll.objects.filter(id=poll.id, status=Poll.Status.READY).update(status=Poll.Status.VOTED)
            if won:
                vote = _vote_row(poll.id, poll.mode, tuple(e.variant_id for e in entries), decided, voter_key=voter_key,
                                 ip_hash=ip_hash, now=now, shown_at=poll.shown_at or poll.created_at)
                vote.save(force_insert=True)
                transaction.on_commit(lambda: _after_commit(voter_key, now))
    except IntegrityError:  # the one-vote-per-poll constraint caught a race the update let through
        won = 0
    if not won:
        return VoteResult(vote=Vote.objects.get(poll=poll), replayed=True, poll=poll, entries=entries)
    poll.status = Poll.Status.VOTED
    if settings.CELERY_TASK_ALWAYS_EAGER and settings.RATINGS_CONSUMER == "task":
        vote.refresh_from_db(fields=["seq", "rating_changes"])  # the consumer ran in this process on commit
    return VoteResult(vote=vote, replayed=False, poll=poll, entries=entries)


def vote_cast(
    *, poll_token: str, voter_key: str, ip_hash: str, choice: str, best: int | None = None,
    ranking: list[int] | None = None, now: dt.datetime | None = None,
) -> VoteResult:
    """Record one voter's vote on their poll. A repeated request returns the recorded vote and counts nothing
    twice; the ratings are applied after the commit, by the ordered consumer."""
    now = now or timezone.now()
    cast = _cast_on_live_poll if polltickets.is_uuid(str(poll_token)) else _cast_on_ticket
    return cast(str(poll_token), voter_key=voter_key, ip_hash=ip_hash, choice=choice, best=best, ranking=ranking,
                now=now)
