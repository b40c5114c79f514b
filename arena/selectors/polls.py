"""Reads about polls: who may be matched, a poll with its entries, the pool of earlier free prompts."""

from __future__ import annotations

import functools
import time

from django.db import connection
from django.db.models import FilteredRelation, Q

from arena.models import Poll, PollEntry, Vote
from arena.permissions import free_prompts_listed
from arena.rating_settings import trueskill_params
from generation.models import ModelVariant, Prompt
from ratings.design import Candidate


#: Seconds a process reuses its snapshot of the candidates (ratings move a little with each vote; the
#: matchmaker's probabilities are computed from the snapshot it used, so they stay exact).
CANDIDATES_TTL = 2.0
_snapshots: dict[tuple[str, bool], tuple[float, list[Candidate]]] = {}


def matchmaking_candidates(*, scope: str, generating: bool = False) -> list[Candidate]:
    """Enabled, healthy models with what the matchmaker weighs: comparisons so far in the scope, TrueSkill,
    the admin's weight. ``generating``: only models with local weights (for live generation). From this
    process's snapshot, read again (one query) when it is older than ``CANDIDATES_TTL``."""
    key = (scope, generating)
    taken = _snapshots.get(key)
    now = time.monotonic()
    if taken is not None and now - taken[0] < CANDIDATES_TTL:
        return list(taken[1])
    candidates = _read_candidates(scope=scope, generating=generating)
    _snapshots[key] = (now, candidates)
    return list(candidates)


def forget_candidates() -> None:
    _snapshots.clear()


def _read_candidates(*, scope: str, generating: bool) -> list[Candidate]:
    ts = trueskill_params()
    variants = ModelVariant.objects.filter(enabled=True, health=ModelVariant.Health.OK)
    if generating:
        variants = variants.exclude(source_type=ModelVariant.SourceType.NONE)
    rows = variants.annotate(r=FilteredRelation("ratings", condition=Q(ratings__scope=scope))).values_list(
        "id", "matchmaking_weight", "r__games", "r__mu", "r__sigma", "r__votes"
    ).order_by("id")
    return [
        Candidate(id=v, games=games or 0, mu=ts.mu if mu is None else mu, sigma=ts.sigma if sigma is None else sigma,
                  weight=weight, enabled=True, polls=votes or 0)
        for v, weight, games, mu, sigma, votes in rows
    ]


def poll_with_entries(token) -> Poll | None:
    return (
        Poll.objects.filter(token=token)
        .select_related("prompt")
        .prefetch_related("entries__variant")
        .first()
    )


def vote_ratings(token) -> dict | None:
    """What the reveal's rating line needs of a poll's vote, in one query (the reveal polls it until the ratings
    consumer has applied the vote): ``{"mode", "variants" (screen order), "seq", "counted", "excluded",
    "rating_changes", "voter_key"}``; None when the poll has no vote."""
    sql, converters = _vote_ratings_statement()
    with connection.cursor() as cursor:
        cursor.execute(sql, [Poll._meta.get_field("token").get_db_prep_value(token, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    return {name: convert(value) for (name, convert), value in zip(converters, row)}


@functools.cache
def _vote_ratings_statement() -> tuple[str, list]:
    """One prepared statement, not an ORM query: the reveal polls this every few hundred ms per voter (the ORM's
    queryset took most of the poll's CPU). With it, each column's conversion to what the ORM returns: the JSON
    fields parsed, booleans as bool (SQLite answers 0 / 1). The tests check it against the ORM's reading."""
    q, vote, poll = connection.ops.quote_name, Vote._meta, Poll._meta
    names = ("mode", "variants", "seq", "counted", "excluded", "rating_changes", "voter_key")
    converters = []
    for name in names:
        field = vote.get_field(name)
        if hasattr(field, "from_db_value"):
            converters.append((name, functools.partial(_from_db, field)))
        elif field.get_internal_type() == "BooleanField":
            converters.append((name, bool))
        else:
            converters.append((name, _same))
    columns = ", ".join(f"v.{q(vote.get_field(name).column)}" for name in names)
    sql = (f"SELECT {columns} FROM {q(vote.db_table)} v JOIN {q(poll.db_table)} p "
           f"ON p.{q(poll.pk.column)} = v.{q(vote.get_field('poll').column)} "
           f"WHERE p.{q(poll.get_field('token').column)} = %s")
    return sql, converters


def _from_db(field, value):
    return field.from_db_value(value, None, connection)


def _same(value):
    return value


def free_prompt_pool(limit: int = 20) -> list[Prompt]:
    """Recent free prompts whose duel was voted or expired (``arena.permissions.free_prompts_listed``), newest
    first, one per text."""
    seen, out = set(), []
    for prompt in free_prompts_listed(Prompt.objects.all()).order_by("-created_at", "-id")[: limit * 3]:
        if prompt.text not in seen:
            seen.add(prompt.text)
            out.append(prompt)
        if len(out) == limit:
            break
    return out


def free_prompt_from_pool(prompt_id: int) -> Prompt | None:
    return free_prompts_listed(Prompt.objects.filter(id=prompt_id)).first()


def revealed_images(*, voter_key: str) -> set[int]:
    """Images this voter has seen with their model's name (every image of the polls they voted on).

    Every poll issue asks this, so it is one prepared statement, not an ORM query: building and compiling the
    queryset took 0.38 ms of CPU a call, the statement 0.02 ms (SQLite, measured). The test suite checks it
    against the ORM's reading of the same question."""
    with connection.cursor() as cursor:
        cursor.execute(_revealed_sql(), [voter_key, Poll.Status.VOTED])
        return {row[0] for row in cursor.fetchall()}


@functools.cache
def _revealed_sql() -> str:
    q, entry, poll = connection.ops.quote_name, PollEntry._meta, Poll._meta
    return (f"SELECT e.{q(entry.get_field('image').column)} FROM {q(entry.db_table)} e "
            f"JOIN {q(poll.db_table)} p ON p.{q(poll.pk.column)} = e.{q(entry.get_field('poll').column)} "
            f"WHERE p.{q(poll.get_field('voter_key').column)} = %s AND p.{q(poll.get_field('status').column)} = %s "
            f"AND e.{q(entry.get_field('image').column)} IS NOT NULL")
