"""The live rating rows (Elo and TrueSkill per model and scope), updated by each counted vote, and their exact
rebuild from the vote log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction

from arena.models import Rating, Scope, Vote
from arena.rating_settings import elo_params, trueskill_params
from generation.models import ModelVariant
from ratings.online import elo_update, trueskill_update
from ratings.outcomes import Outcome, pairwise

ONE_MICROSECOND = dt.timedelta(microseconds=1)


def ratings_ensure(variant_ids: list[int]) -> None:
    """Create the initial rating rows of these models in every scope (a no-op for rows that exist)."""
    elo, ts = elo_params(), trueskill_params()
    Rating.objects.bulk_create(
        [Rating(variant_id=v, scope=s, elo=elo.initial, mu=ts.mu, sigma=ts.sigma) for v in variant_ids for s in Scope.values],
        ignore_conflicts=True,
    )


def ratings_apply(outcome: Outcome, mode: str, now: dt.datetime) -> tuple[dt.datetime, dict]:
    """Lock the rating rows of the outcome's models (mode and overall, in id order so concurrent votes cannot
    deadlock), stamp the vote after the last vote that touched any of them, and update them.

    Two votes that share a model are thus applied in the order of their (created_at, id), which is the replay
    order, so a full replay gives exactly the live ratings."""
    scopes = (mode, Scope.OVERALL)
    players = outcome.players
    rows = list(Rating.objects.select_for_update().filter(variant_id__in=players, scope__in=scopes).order_by("id"))
    if len(rows) != len(players) * len(scopes):
        ratings_ensure(list(players))
        rows = list(Rating.objects.select_for_update().filter(variant_id__in=players, scope__in=scopes).order_by("id"))
    latest = max((r.last_vote_at for r in rows if r.last_vote_at), default=None)
    created_at = now if latest is None or now > latest else latest + ONE_MICROSECOND
    changes: dict[str, dict] = {}
    for scope in scopes:
        scoped = {r.variant_id: r for r in rows if r.scope == scope}
        new_elo, new_ts, counts = _updated(scoped, outcome)
        changes[scope] = {}
        for variant_id, row in scoped.items():
            changes[scope][str(variant_id)] = {
                "elo": [row.elo, new_elo[variant_id]],
                "mu": [row.mu, new_ts[variant_id][0]],
                "sigma": [row.sigma, new_ts[variant_id][1]],
            }
            row.elo = new_elo[variant_id]
            row.mu, row.sigma = new_ts[variant_id]
            row.votes += 1
            row.games += counts[variant_id][0]
            row.wins += counts[variant_id][1]
            row.last_vote_at = created_at
    _ratings_write(rows)
    return created_at, changes


_RATING_UPDATE = None


def _ratings_write(rows: list[Rating]) -> None:
    """One parameterised UPDATE per row in a single round of executemany: the vote path's hottest write."""
    from django.db import connection

    global _RATING_UPDATE
    if _RATING_UPDATE is None:
        q = connection.ops.quote_name
        table = q(Rating._meta.db_table)
        cols = ", ".join(f"{q(c)} = %s" for c in ("elo", "mu", "sigma", "votes", "games", "wins", "last_vote_at"))
        _RATING_UPDATE = f"UPDATE {table} SET {cols} WHERE {q('id')} = %s"
    field = Rating._meta.get_field("last_vote_at")
    params = [
        (r.elo, r.mu, r.sigma, r.votes, r.games, r.wins, field.get_db_prep_value(r.last_vote_at, connection), r.id)
        for r in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_RATING_UPDATE, params)


def _updated(scoped: dict[int, Rating], outcome: Outcome):
    elo = elo_update({v: r.elo for v, r in scoped.items()}, outcome, elo_params())
    ts = trueskill_update({v: (r.mu, r.sigma) for v, r in scoped.items()}, outcome, trueskill_params())
    return elo, ts, _pair_counts(outcome)


def _pair_counts(outcome: Outcome) -> dict[int, tuple[int, float]]:
    counts = {p: [0, 0.0] for p in outcome.players}
    for a, b, score in pairwise(outcome):
        counts[a][0] += 1
        counts[b][0] += 1
        counts[a][1] += score
        counts[b][1] += 1.0 - score
    return {p: (g, w) for p, (g, w) in counts.items()}


@dataclass
class _State:
    elo: float
    mu: float
    sigma: float
    votes: int = 0
    games: int = 0
    wins: float = 0.0
    last_vote_at: dt.datetime | None = None


def ratings_replay() -> dict[tuple[int, str], _State]:
    """Every rating, recomputed by the ratings engine from the counted votes of the log in its stable order
    (created_at, id), with the same online functions the live vote path calls."""
    from arena.selectors.votelog import record_from_row
    from ratings.replay import replay

    # One pass over the log gives both the engine's records and each rating's last vote time.
    records = []
    last: dict[tuple[int, str], dt.datetime] = {}
    rows = Vote.objects.filter(counted=True).order_by("created_at", "id").values_list(
        "id", "created_at", "mode", "variants", "ranks", "full_ranking", "choice"
    )
    for row in rows.iterator(chunk_size=5000):
        records.append(record_from_row(*row))
        _vid, vote_at, mode, variants = row[:4]
        for v in variants:
            last[(v, mode)] = last[(v, Scope.OVERALL)] = vote_at
    state: dict[tuple[int, str], _State] = {}
    for scope, ratings in replay(records, elo=elo_params(), trueskill=trueskill_params()).items():
        for variant_id, r in ratings.items():
            state[(variant_id, scope)] = _State(
                elo=float(r.elo), mu=float(r.mu), sigma=float(r.sigma), votes=int(r.votes), games=int(r.games),
                wins=float(r.wins),
                last_vote_at=last.get((variant_id, scope)),
            )
    return state


@dataclass(frozen=True)
class RecomputeReport:
    ratings: int
    changed: int
    max_elo_difference: float
    max_mu_difference: float


def ratings_recompute(*, write: bool = True) -> RecomputeReport:
    """Rebuild every rating from the log; report how far the stored (live) ratings were from the replay."""
    elo_p, ts_p = elo_params(), trueskill_params()
    with transaction.atomic():
        ratings_ensure(list(ModelVariant.objects.values_list("id", flat=True)))
        rows = list(Rating.objects.select_for_update().order_by("id"))
        replay = ratings_replay()
        changed, max_elo, max_mu = 0, 0.0, 0.0
        for row in rows:
            s = replay.get((row.variant_id, row.scope)) or _State(elo_p.initial, ts_p.mu, ts_p.sigma)
            new = (s.elo, s.mu, s.sigma, s.votes, s.games, s.wins, s.last_vote_at)
            old = (row.elo, row.mu, row.sigma, row.votes, row.games, row.wins, row.last_vote_at)
            if new != old:
                changed += 1
                max_elo = max(max_elo, abs(row.elo - s.elo))
                max_mu = max(max_mu, abs(row.mu - s.mu))
                row.elo, row.mu, row.sigma, row.votes, row.games, row.wins, row.last_vote_at = new
        if write and changed:
            Rating.objects.bulk_update(rows, ["elo", "mu", "sigma", "votes", "games", "wins", "last_vote_at"], batch_size=500)
    return RecomputeReport(ratings=len(rows), changed=changed, max_elo_difference=max_elo, max_mu_difference=max_mu)

