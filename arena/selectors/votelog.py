"""Reads of the vote log: the counted votes of a scope as the ratings engine reads them, cheap fingerprints of
the log, the log with what exports add (model names, hashed voters), and counts."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Count, Max, Q, Sum

from arena.inputs import scope_clean
from arena.models import Scope, Vote
from arena.voters import voter_hash
from generation.models import ModelVariant
from ratings.log import VoteRecord


def _counted(scope: str):
    votes = Vote.objects.filter(counted=True)
    return votes if scope == Scope.OVERALL else votes.filter(mode=scope)


def record_from_row(vid, created_at, mode, variants, ranks, full_ranking, choice) -> VoteRecord:
    """A vote row (id, created_at, mode, variants, ranks, full_ranking, choice) as the ratings engine reads it."""
    return VoteRecord(
        id=vid, timestamp=created_at, mode=mode, players=tuple(variants), ranks=tuple(ranks),
        full_ranking=full_ranking, both_bad=choice == Vote.Choice.BOTH_BAD,
    )


def vote_records(scope: str) -> list[VoteRecord]:
    """The counted votes of ``scope`` as the ratings engine reads them, in replay order (one query)."""
    rows = _counted(scope).order_by("created_at", "id").values_list(
        "id", "created_at", "mode", "variants", "ranks", "full_ranking", "choice"
    )
    return [record_from_row(*row) for row in rows.iterator(chunk_size=5000)]


def _fingerprint(count: int, id_sum: int, id_max: int) -> str:
    return f"{count}:{id_sum}:{id_max}"


def log_fingerprint(scope: str) -> tuple[str, int]:
    """``(fingerprint, counted votes)`` of the scope's log, in one aggregate query."""
    agg = _counted(scope).aggregate(n=Count("id"), s=Sum("id"), m=Max("id"))
    n = agg["n"] or 0
    return _fingerprint(n, agg["s"] or 0, agg["m"] or 0), n


def records_fingerprint(records: Iterable[VoteRecord]) -> str:
    ids = [r.id for r in records]
    return _fingerprint(len(ids), sum(ids), max(ids, default=0))


@dataclass
class VoteLog:
    """The counted votes of a scope with what the exports add: model names, hashed voters, the choices."""

    records: list[VoteRecord]
    names: dict[int, str]
    judges: dict[int, str]  # vote id -> voter_hash
    choices: dict[int, str] = field(default_factory=dict)


def vote_log(scope: str) -> VoteLog:
    scope = scope_clean(scope)
    rows = _counted(scope).order_by("created_at", "id").values_list(
        "id", "created_at", "mode", "variants", "ranks", "full_ranking", "choice", "voter_key"
    )
    records, judges, choices, hashes = [], {}, {}, {}
    for vid, created_at, mode, variants, ranks, full, choice, key in rows.iterator(chunk_size=5000):
        records.append(record_from_row(vid, created_at, mode, variants, ranks, full, choice))
        if key not in hashes:
            hashes[key] = voter_hash(key)
        judges[vid] = hashes[key]
        choices[vid] = choice
    ids = {p for r in records for p in r.players}
    names = dict(ModelVariant.objects.filter(id__in=ids).values_list("id", "name")) if ids else {}
    for i in ids - names.keys():
        names[i] = f"#{i}"
    return VoteLog(records=records, names=names, judges=judges, choices=choices)


def votes_per_day(scope: str) -> dict[str, dict[dt.date, int]]:
    """Counted votes per UTC day, per mode (one query)."""
    out: dict[str, dict[dt.date, int]] = defaultdict(Counter)
    for mode, created_at in _counted(scope).values_list("mode", "created_at").iterator(chunk_size=5000):
        out[mode][created_at.astimezone(dt.timezone.utc).date()] += 1
    return dict(out)



def vote_counts() -> dict[str, int]:
    agg = Vote.objects.aggregate(
        total=Count("id"), counted=Count("id", filter=Q(counted=True)), flagged=Count("id", filter=Q(flagged=True))
    )
    return agg

