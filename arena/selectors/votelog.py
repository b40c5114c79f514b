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


def counted_votes(scope: str = Scope.OVERALL):
    """The votes that ratings count, in ``scope``: cast at a human pace (or counted anyway), not excluded by an
    admin, and already given their place in the log by the ratings consumer."""
    votes = Vote.objects.filter(counted=True, excluded=False, seq__isnull=False)
    return votes if scope == Scope.OVERALL else votes.filter(mode=scope)

RECORD_FIELDS = ("seq", "created_at", "mode", "variants", "ranks", "full_ranking", "choice", "poll_id", "poll__propensity")


def record_from_row(seq, created_at, mode, variants, ranks, full_ranking, choice, poll_id=None, propensity=None, *,
                    not_before: float = 0.0) -> VoteRecord:
    """A vote row (``RECORD_FIELDS``) as the ratings engine reads it. The record's id is the vote's place in the
    log (``seq``) and its timestamp never goes back in that order (``not_before``: the previous record's), so
    the engine's (timestamp, id) order is the log's order."""
    return VoteRecord(
        id=seq, timestamp=max(created_at.timestamp(), not_before), mode=mode, players=tuple(variants),
        ranks=tuple(ranks), full_ranking=full_ranking, both_bad=choice == Vote.Choice.BOTH_BAD, poll=poll_id,
        propensity=propensity if propensity and 0 < propensity <= 1 else None,
    )


def records_from_rows(rows) -> list[VoteRecord]:
    """Rows of ``RECORD_FIELDS`` in ``seq`` order → records (see :func:`record_from_row`)."""
    records: list[VoteRecord] = []
    last = 0.0
    for row in rows:
        record = record_from_row(*row, not_before=last)
        last = record.timestamp
        records.append(record)
    return records


def vote_records(scope: str, *, up_to: int | None = None) -> list[VoteRecord]:
    """The counted votes of ``scope`` as the ratings engine reads them, in the log's order (one query, read whole:
    no server-side cursor is left half-read if a row fails); ``up_to``: only the log's first places."""
    votes = counted_votes(scope)
    if up_to is not None:
        votes = votes.filter(seq__lte=up_to)
    return records_from_rows(list(votes.order_by("seq").values_list(*RECORD_FIELDS)))


def log_head() -> tuple[int, str]:
    """(the last place given in the log, the chain's hash there); (0, "") before the first vote."""
    row = Vote.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", "chain_hash").first()
    return (row[0], row[1]) if row else (0, "")


def _fingerprint(count: int, id_sum: int, id_max: int) -> str:
    return f"{count}:{id_sum}:{id_max}"


def log_fingerprint(scope: str) -> tuple[str, int]:
    """``(fingerprint, counted votes)`` of the scope's log, in one aggregate query."""
    agg = counted_votes(scope).aggregate(n=Count("seq"), s=Sum("seq"), m=Max("seq"))
    n = agg["n"] or 0
    return _fingerprint(n, agg["s"] or 0, agg["m"] or 0), n


def records_fingerprint(records: Iterable[VoteRecord]) -> str:
    ids = [r.id for r in records]
    return _fingerprint(len(ids), sum(ids), max(ids, default=0))


@dataclass
class VoteLog:
    """The counted votes of a scope with what the exports add: model names, hashed voters, the choices, and the
    vote-log chain's head (the hash a reader checks the log they rate from against)."""

    records: list[VoteRecord]
    names: dict[int, str]
    judges: dict[int, str]  # record id (seq) -> voter_hash
    choices: dict[int, str] = field(default_factory=dict)
    head_hash: str = ""
    chain: dict[int, str] = field(default_factory=dict)  # record id (seq) -> the chain hash after that vote


def vote_log(scope: str) -> VoteLog:
    scope = scope_clean(scope)
    rows = list(counted_votes(scope).order_by("seq").values_list(*RECORD_FIELDS, "voter_key", "chain_hash"))
    records = records_from_rows(row[:len(RECORD_FIELDS)] for row in rows)
    judges, choices, chain, hashes = {}, {}, {}, {}
    for record, row in zip(records, rows):
        key = row[-2]
        if key not in hashes:
            hashes[key] = voter_hash(key)
        judges[record.id] = hashes[key]
        choices[record.id] = row[6]
        chain[record.id] = row[-1]
    ids = {p for r in records for p in r.players}
    names = dict(ModelVariant.objects.filter(id__in=ids).values_list("id", "name")) if ids else {}
    for i in ids - names.keys():
        names[i] = f"#{i}"
    return VoteLog(records=records, names=names, judges=judges, choices=choices, head_hash=chain_head(), chain=chain)


def chain_head() -> str:
    """The hash of the last vote the ratings consumer placed in the log (all votes, counted or not)."""
    return log_head()[1]


def votes_per_day(scope: str) -> dict[str, dict[dt.date, int]]:
    """Counted votes per UTC day, per mode (one query)."""
    out: dict[str, dict[dt.date, int]] = defaultdict(Counter)
    for mode, created_at in counted_votes(scope).values_list("mode", "created_at"):
        out[mode][created_at.astimezone(dt.timezone.utc).date()] += 1
    return dict(out)


def vote_counts() -> dict[str, int]:
    agg = Vote.objects.aggregate(
        total=Count("id"), counted=Count("id", filter=Q(counted=True)), flagged=Count("id", filter=Q(flagged=True))
    )
    return agg

