"""Stored leaderboards: a leaderboard computed from the counted votes of one scope by the ratings engine and
stored as a :class:`~arena.models.LeaderboardSnapshot` with the parameters used and the ``vote_log_hash`` of
the records it read.

:func:`leaderboard_compute` returns the latest snapshot when it has that hash and those parameters, otherwise it
stores a new one. :func:`leaderboard_current` is the page-view path: one aggregate query (count, sum and max of
the counted vote ids: the snapshot's ``log_fingerprint``) tells whether the latest snapshot is still the log's;
only when it is not does it read the log (and recompute when the hash differs). A recompute is skipped for
``LEADERBOARD_REFRESH_SECONDS`` after the last one and while another request holds the recompute lock; the stale
snapshot is then served and says how many votes it is behind.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from arena.inputs import scope_clean
from arena.models import LeaderboardSnapshot
from arena.rating_settings import bt_params, elo_params, trueskill_params
from arena.selectors.votelog import log_fingerprint, log_head, records_fingerprint, vote_records
from generation.models import ModelVariant
from ratings.leaderboard import compute_leaderboard, leaderboard_params
from ratings.log import vote_log_hash


def current_params() -> dict:
    """The parameters a leaderboard computed now would use (JSON-ready, as stored on snapshots)."""
    return json.loads(json.dumps(leaderboard_params(elo=elo_params(), trueskill=trueskill_params(), bt=bt_params())))


def leaderboard_latest(scope: str) -> LeaderboardSnapshot | None:
    return LeaderboardSnapshot.objects.filter(scope=scope).order_by("-computed_at", "-id").first()


def _snapshots_prune(scope: str) -> None:
    keep = settings.LEADERBOARD_SNAPSHOTS_KEPT
    old = LeaderboardSnapshot.objects.filter(scope=scope).order_by("-computed_at", "-id").values_list("id", flat=True)[keep:]
    ids = list(old)
    if ids:
        LeaderboardSnapshot.objects.filter(id__in=ids).delete()


def leaderboard_compute(*, scope: str, force: bool = False) -> LeaderboardSnapshot:
    """The leaderboard of the counted votes of ``scope``: the latest snapshot when it was computed from the
    same log (same ``vote_log_hash``) with the same parameters, otherwise a new stored snapshot."""
    scope = scope_clean(scope)
    params = current_params()
    last_seq, head = log_head()
    records = vote_records(scope, up_to=last_seq)
    log_hash = vote_log_hash(records)
    fingerprint = records_fingerprint(records)
    latest = leaderboard_latest(scope)
    if not force and latest is not None and latest.vote_log_hash == log_hash and latest.params == params:
        if latest.log_fingerprint != fingerprint or latest.last_seq != last_seq:
            LeaderboardSnapshot.objects.filter(id=latest.id).update(log_fingerprint=fingerprint, last_seq=last_seq,
                                                                   chain_head=head)
            latest.log_fingerprint, latest.last_seq, latest.chain_head = fingerprint, last_seq, head
        return latest
    started = time.perf_counter()
    rows = compute_leaderboard(
        records, scope=scope, elo=elo_params(), trueskill=trueskill_params(), bt=bt_params()
    ) if records else []
    snapshot = LeaderboardSnapshot.objects.create(
        scope=scope, computed_at=timezone.now(), params=params, vote_log_hash=log_hash, vote_count=len(records),
        log_fingerprint=fingerprint, rows=[_json_row(r.as_dict()) for r in rows],
        compute_seconds=time.perf_counter() - started, last_seq=last_seq, chain_head=head,
    )
    _snapshots_prune(scope)
    return snapshot


def _json_row(row: dict) -> dict:
    """NaN/inf (a model absent from every bootstrap round) become None so the row is valid JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


@dataclass
class Board:
    """A stored leaderboard as the pages and exports show it."""

    snapshot: LeaderboardSnapshot
    rows: list[dict]  # snapshot rows with "model_id", "model" (name) and "kind" added, best first
    stale: bool = False
    votes_behind: int = 0
    unrated: list[dict] = field(default_factory=list)  # enabled models with no counted vote in the scope yet

    @property
    def scope(self) -> str:
        return self.snapshot.scope


def _board(snapshot: LeaderboardSnapshot, *, stale: bool = False, votes_behind: int = 0) -> Board:
    variants = ModelVariant.objects.order_by("name").values_list("id", "name", "kind", "enabled")
    info = {i: (name, kind, enabled) for i, name, kind, enabled in variants}  # one query for rows and unrated
    rows = []
    for row in snapshot.rows:
        name, kind, _enabled = info.get(row["model"], (f"#{row['model']}", "", False))
        rows.append({**row, "model_id": row["model"], "model": name, "kind": kind})
    rated = {row["model_id"] for row in rows}
    unrated = [{"model_id": i, "model": name, "kind": kind} for i, (name, kind, enabled) in info.items()
               if enabled and i not in rated]
    return Board(snapshot=snapshot, rows=rows, stale=stale, votes_behind=max(votes_behind, 0), unrated=unrated)


def leaderboard_fresh(*, scope: str) -> Board:
    """The leaderboard of the log as it is now (computes unless the latest snapshot has the log's hash)."""
    return _board(leaderboard_compute(scope=scope))


def leaderboard_current(*, scope: str) -> Board:
    """The page-view path: the stored leaderboard of ``scope``, recomputed only when the log changed (see the
    module docstring for the refresh interval and the lock). Three queries while the snapshot is fresh."""
    scope = scope_clean(scope)
    params = current_params()
    latest = leaderboard_latest(scope)
    fingerprint, count = log_fingerprint(scope)
    if latest is not None and latest.params == params:
        if latest.log_fingerprint == fingerprint:
            return _board(latest)
        age = (timezone.now() - latest.computed_at).total_seconds()
        if age < settings.LEADERBOARD_REFRESH_SECONDS:
            return _board(latest, stale=True, votes_behind=count - latest.vote_count)
    lock = f"arena:leaderboard:compute:{scope}"
    if not cache.add(lock, 1, timeout=600):
        if latest is not None:
            return _board(latest, stale=True, votes_behind=count - latest.vote_count)
        return _board(leaderboard_compute(scope=scope))
    try:
        return _board(leaderboard_compute(scope=scope))
    finally:
        cache.delete(lock)

