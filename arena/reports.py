"""Stored leaderboards, exports of leaderboards and of the vote log, and the health of the evaluation.

Everything here is derived from the append-only vote log (``Vote``, counted votes, in the stable order
(created_at, id)) through :mod:`ratings`; nothing re-implements the rating math.

Stored leaderboards
    :func:`leaderboard_compute` replays the counted votes of a scope with ``compute_leaderboard`` and stores a
    :class:`~arena.models.LeaderboardSnapshot` with the parameters used and ``vote_log_hash`` of the records
    it read. If the latest snapshot already has that hash and those parameters it is returned as is.
    :func:`leaderboard_current` is the page-view path: one aggregate query (count, sum and max of the counted
    vote ids: the snapshot's ``log_fingerprint``) tells whether the latest snapshot is still the log's; only
    when it is not does it read the log (and recompute when the hash differs). A recompute is skipped for
    ``LEADERBOARD_REFRESH_SECONDS`` (default 30) after the last one and while another request holds the
    recompute lock; the stale snapshot is then served and says how many votes it is behind.

Exports
    Leaderboards as CSV, JSON and Markdown; the vote log in Chatbot Arena's clean-battle format (via
    :func:`ratings.battles.clean_battles`) and as JSONL. Voter ids appear only as ``voter_hash`` (a salted
    keyed hash of the voter's random id); session keys and addresses never leave the database.

Health of the evaluation
    Position bias of decisive duel votes with a Wilson interval, tie and both-bad rates, flagged votes, and
    voters whose votes look anomalous (:func:`evaluation_health`).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import math
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from arena.models import LeaderboardSnapshot, Mode, PollEntry, Scope, Vote
from arena.rating_settings import elo_params, trueskill_params
from ratings.battles import clean_battles
from ratings.bradley_terry import BTParams
from ratings.leaderboard import compute_leaderboard, leaderboard_params
from ratings.log import VoteRecord, in_replay_order, vote_log_hash
from arena.voters import salted_hash
from generation.models import ModelVariant

SCOPES: tuple[str, ...] = tuple(Scope.values)
EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json", "md": "text/markdown; charset=utf-8"}
DUEL_MODES = (Mode.FIXED, Mode.FREE)

#: Columns of the CSV/Markdown exports (the JSON rows carry the same keys).
COLUMNS = (
    "rank", "model_id", "model", "kind", "bt", "bt_lo", "bt_hi", "elo", "twa_elo", "ts_mu", "ts_sigma",
    "conservative", "votes", "games", "wins", "win_rate",
)


class ReportError(ValueError):
    """Bad input to a report (unknown scope, format or plot): a 400 with this message."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def scope_clean(value: str | None, default: str = Scope.OVERALL) -> str:
    if value in (None, ""):
        return default
    if value not in SCOPES:
        raise ReportError(f"Unknown scope {value!r}; use one of {', '.join(SCOPES)}.")
    return value


def voter_hash(voter_key: str) -> str:
    """The only form of a voter id that leaves the database (exports, API, stats)."""
    return salted_hash("voter:" + voter_key)


# --- the counted log -----------------------------------------------------------------------------------------


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


# --- stored leaderboards ---------------------------------------------------------------------------------------


def bt_params() -> BTParams:
    return BTParams(
        scale=settings.ELO_SCALE, base=settings.ELO_BASE, initial=settings.ELO_INITIAL,
        rounds=settings.BT_BOOTSTRAP_ROUNDS, seed=settings.BT_BOOTSTRAP_SEED,
    )


def current_params() -> dict:
    """The parameters a leaderboard computed now would use (JSON-ready, as stored on snapshots)."""
    return json.loads(json.dumps(leaderboard_params(elo=elo_params(), trueskill=trueskill_params(), bt=bt_params())))


def leaderboard_latest(scope: str) -> LeaderboardSnapshot | None:
    return LeaderboardSnapshot.objects.filter(scope=scope).order_by("-computed_at", "-id").first()


def _snapshots_prune(scope: str) -> None:
    keep = int(getattr(settings, "LEADERBOARD_SNAPSHOTS_KEPT", 100))
    old = LeaderboardSnapshot.objects.filter(scope=scope).order_by("-computed_at", "-id").values_list("id", flat=True)[keep:]
    ids = list(old)
    if ids:
        LeaderboardSnapshot.objects.filter(id__in=ids).delete()


def leaderboard_compute(*, scope: str, force: bool = False) -> LeaderboardSnapshot:
    """The leaderboard of the counted votes of ``scope``: the latest snapshot when it was computed from the
    same log (same ``vote_log_hash``) with the same parameters, otherwise a new stored snapshot."""
    scope = scope_clean(scope)
    params = current_params()
    records = vote_records(scope)
    log_hash = vote_log_hash(records)
    fingerprint = records_fingerprint(records)
    latest = leaderboard_latest(scope)
    if not force and latest is not None and latest.vote_log_hash == log_hash and latest.params == params:
        if latest.log_fingerprint != fingerprint:
            LeaderboardSnapshot.objects.filter(id=latest.id).update(log_fingerprint=fingerprint)
            latest.log_fingerprint = fingerprint
        return latest
    started = time.perf_counter()
    rows = compute_leaderboard(
        records, scope=scope, elo=elo_params(), trueskill=trueskill_params(), bt=bt_params()
    ) if records else []
    snapshot = LeaderboardSnapshot.objects.create(
        scope=scope, computed_at=timezone.now(), params=params, vote_log_hash=log_hash, vote_count=len(records),
        log_fingerprint=fingerprint, rows=[_json_row(r.as_dict()) for r in rows],
        compute_seconds=time.perf_counter() - started,
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

    @property
    def scope(self) -> str:
        return self.snapshot.scope


def _board(snapshot: LeaderboardSnapshot, *, stale: bool = False, votes_behind: int = 0) -> Board:
    ids = [row["model"] for row in snapshot.rows]
    info = {i: (name, kind) for i, name, kind in ModelVariant.objects.filter(id__in=ids).values_list("id", "name", "kind")} if ids else {}
    rows = []
    for row in snapshot.rows:
        name, kind = info.get(row["model"], (f"#{row['model']}", ""))
        rows.append({**row, "model_id": row["model"], "model": name, "kind": kind})
    return Board(snapshot=snapshot, rows=rows, stale=stale, votes_behind=max(votes_behind, 0))


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
        if age < float(getattr(settings, "LEADERBOARD_REFRESH_SECONDS", 30)):
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


# --- leaderboard exports -----------------------------------------------------------------------------------------


def leaderboard_document(board: Board) -> dict:
    """The JSON export (also the API's leaderboard response)."""
    s = board.snapshot
    return {
        "scope": s.scope,
        "computed_at": s.computed_at.isoformat(),
        "vote_log_hash": s.vote_log_hash,
        "vote_count": s.vote_count,
        "params": s.params,
        "stale": board.stale,
        "votes_behind": board.votes_behind,
        "rows": [{c: row.get(c) for c in COLUMNS} for row in board.rows],
    }


def leaderboard_csv(board: Board) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in board.rows:
        writer.writerow(["" if row.get(c) is None else (repr(row[c]) if isinstance(row[c], float) else row[c]) for c in COLUMNS])
    return buf.getvalue()


def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _fmt(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def leaderboard_markdown(board: Board) -> str:
    s = board.snapshot
    lines = [
        f"# Leaderboard ({Scope(s.scope).label})",
        "",
        f"{s.vote_count} counted votes · computed {s.computed_at:%Y-%m-%d %H:%M:%S} UTC · vote log SHA-256 "
        f"`{s.vote_log_hash}` · {s.params['bt']['rounds']} bootstrap rounds (seed {s.params['bt']['seed']}), "
        f"Elo K={s.params['elo']['k']:g}",
        "",
        "| Rank | Model | BT | 95% CI | Elo | Avg Elo | TrueSkill μ ± σ | μ − 3σ | Votes | Games | Win rate |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in board.rows:
        ci = f"{_fmt(r['bt_lo'])} – {_fmt(r['bt_hi'])}"
        lines.append(
            f"| {r['rank']} | {_md_cell(r['model'])} | {_fmt(r['bt'])} | {ci} | {_fmt(r['elo'])} | {_fmt(r['twa_elo'])} "
            f"| {_fmt(r['ts_mu'], 2)} ± {_fmt(r['ts_sigma'], 2)} | {_fmt(r['conservative'], 2)} | {r['votes']} "
            f"| {r['games']} | {_fmt(100 * r['win_rate'])}% |"
        )
    return "\n".join(lines) + "\n"


def leaderboard_export(board: Board, fmt: str) -> str:
    if fmt == "csv":
        return leaderboard_csv(board)
    if fmt == "json":
        return json.dumps(leaderboard_document(board), indent=1, allow_nan=False) + "\n"
    if fmt == "md":
        return leaderboard_markdown(board)
    raise ReportError(f"Unknown format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}.")


# --- vote log exports ---------------------------------------------------------------------------------------------


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


def _json_list(items: Iterable[dict], batch: int = 2000) -> Iterator[str]:
    """Streams the same text as :func:`ratings.battles.write_battles` writes."""
    yield "["
    count = 0
    chunk: list[str] = []
    for item in items:
        chunk.append((",\n" if count else "\n") + json.dumps(item))
        count += 1
        if len(chunk) >= batch:
            yield "".join(chunk)
            chunk.clear()
    if chunk:
        yield "".join(chunk)
    yield "\n]\n" if count else "]\n"


def battles_stream(log: VoteLog) -> Iterator[str]:
    """The log in Chatbot Arena's clean-battle format: a JSON list in replay order; a free-for-all poll
    becomes its pairwise results (``question_id`` ``"<vote id>.<n>"``), as ``ratings.outcomes.pairwise``
    expands it; ``judge`` is the hashed voter id."""
    return _json_list(clean_battles(log.records, log.names, judges=log.judges, anony=True))


def jsonl_line(record: VoteRecord, log: VoteLog) -> dict:
    """One JSONL line: ``VoteRecord.as_dict()`` (so ``ratings.log.records_from_jsonl`` parses the file
    back into the same records) plus the choice, the model names in screen order, ``tstamp`` and the hashed
    voter as ``judge``."""
    return {
        **record.as_dict(),
        "choice": log.choices.get(record.id, ""),
        "models": [log.names[p] for p in record.players],
        "tstamp": record.timestamp,
        "judge": log.judges.get(record.id, "anonymous"),
    }


def jsonl_stream(log: VoteLog, batch: int = 2000) -> Iterator[str]:
    chunk: list[str] = []
    for record in in_replay_order(log.records):
        chunk.append(json.dumps(jsonl_line(record, log), sort_keys=True) + "\n")
        if len(chunk) >= batch:
            yield "".join(chunk)
            chunk.clear()
    if chunk:
        yield "".join(chunk)


def vote_log_public() -> bool:
    return bool(getattr(settings, "ARENA_PUBLIC_VOTE_LOG", False))


# --- plots' data ---------------------------------------------------------------------------------------------------


def votes_per_day(scope: str) -> dict[str, dict[dt.date, int]]:
    """Counted votes per UTC day, per mode (one query)."""
    out: dict[str, dict[dt.date, int]] = defaultdict(Counter)
    for mode, created_at in _counted(scope).values_list("mode", "created_at").iterator(chunk_size=5000):
        out[mode][created_at.astimezone(dt.timezone.utc).date()] += 1
    return dict(out)


# --- health of the evaluation ----------------------------------------------------------------------------------------


def wilson_interval(successes: int, total: int, z: float = 1.959963984540054) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95% by default); None when ``total`` is 0."""
    if total <= 0:
        return None
    p = successes / total
    denom = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_two_sided(k: int, n: int) -> float | None:
    """Two-sided exact binomial test p-value of ``k`` of ``n`` against 1/2."""
    if n <= 0:
        return None
    from scipy.stats import binomtest

    return float(binomtest(k, n, 0.5).pvalue)


@dataclass
class Rate:
    count: int
    total: int

    @property
    def share(self) -> float | None:
        return self.count / self.total if self.total else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.count, self.total)


@dataclass
class DuelHealth:
    mode: str
    label: str
    votes: int = 0
    left: int = 0
    right: int = 0
    tie: int = 0
    both_bad: int = 0

    @property
    def decisive(self) -> int:
        return self.left + self.right

    @property
    def left_rate(self) -> Rate:
        return Rate(self.left, self.decisive)

    @property
    def tie_rate(self) -> Rate:
        return Rate(self.tie, self.votes)

    @property
    def both_bad_rate(self) -> Rate:
        return Rate(self.both_bad, self.votes)

    @property
    def p_value(self) -> float | None:
        return binomial_two_sided(self.left, self.decisive)


@dataclass
class VoterReport:
    judge: str  # voter_hash, never the raw id
    votes: int
    flagged: int
    picks: int  # decisive picks: duel left/right and free-for-all best
    top_position: int | None
    top_share: float | None
    ties: int
    duel_votes: int
    median_ms: float | None
    reasons: list[str]


#: Thresholds of the anomalous-voter rules (shown on the stats page).
ANOMALY_MIN_PICKS = 10
ANOMALY_SAME_POSITION = 0.9
ANOMALY_MIN_FLAGGED = 3
ANOMALY_FLAGGED_SHARE = 0.5
ANOMALY_TIE_SHARE = 0.9


def _winner_position(choice: str, ranks: list[int]) -> int | None:
    if choice == Vote.Choice.LEFT:
        return 0
    if choice == Vote.Choice.RIGHT:
        return 1
    if choice in (Vote.Choice.BEST, Vote.Choice.RANKING) and ranks:
        best = min(ranks)
        if ranks.count(best) == 1:
            return ranks.index(best)
    return None


def _voter_report(key: str, votes: list[tuple]) -> VoterReport:
    positions = Counter()
    ties = duel_votes = flagged = 0
    elapsed = []
    for mode, choice, ranks, is_flagged, ms in votes:
        pos = _winner_position(choice, ranks)
        if pos is not None:
            positions[(mode == Mode.FFA, pos)] += 1
        if mode in DUEL_MODES:
            duel_votes += 1
            ties += choice in (Vote.Choice.TIE, Vote.Choice.BOTH_BAD)
        flagged += bool(is_flagged)
        elapsed.append(ms)
    picks = sum(positions.values())
    top = positions.most_common(1)[0] if positions else None
    # the share is within the kind of poll (duel or free-for-all) the most frequent position belongs to
    kind_total = sum(c for (ffa, _), c in positions.items() if top and ffa == top[0][0]) if top else 0
    top_share = top[1] / kind_total if top else None
    reasons = []
    if top and kind_total >= ANOMALY_MIN_PICKS and top_share >= ANOMALY_SAME_POSITION:
        where = ("left", "right")[top[0][1]] if not top[0][0] else f"position {top[0][1] + 1} of 4"
        reasons.append(f"picked the {where} image in {top[1]} of {kind_total} votes")
    if flagged >= ANOMALY_MIN_FLAGGED and flagged / len(votes) >= ANOMALY_FLAGGED_SHARE:
        reasons.append(f"{flagged} of {len(votes)} votes flagged (too fast)")
    if duel_votes >= ANOMALY_MIN_PICKS and ties / duel_votes >= ANOMALY_TIE_SHARE:
        reasons.append(f"tie or both bad in {ties} of {duel_votes} duels")
    return VoterReport(
        judge=voter_hash(key), votes=len(votes), flagged=flagged, picks=picks,
        top_position=top[0][1] if top else None, top_share=top_share, ties=ties, duel_votes=duel_votes,
        median_ms=statistics.median(elapsed) if elapsed else None, reasons=reasons,
    )


@dataclass
class Health:
    total: int
    counted: int
    flagged: int
    duels: list[DuelHealth]  # fixed, free, and both together
    ffa_positions: list[int]  # free-for-all "best" picks per screen position
    ffa_p_value: float | None  # chi-square test of uniform positions
    anomalous: list[VoterReport]
    voters: int
    median_ms: float | None

    @property
    def flagged_rate(self) -> Rate:
        return Rate(self.flagged, self.total)

    @property
    def ffa_picks(self) -> int:
        return sum(self.ffa_positions)


def _health_key() -> str:
    agg = Vote.objects.aggregate(
        n=Count("id"), m=Max("id"), s=Sum("id"), f=Count("id", filter=Q(flagged=True)), c=Count("id", filter=Q(counted=True)),
    )
    raw = f"{agg['n']}:{agg['m']}:{agg['s']}:{agg['f']}:{agg['c']}:{settings.VOTER_HASH_SALT}"
    return "arena:health:v1:" + hashlib.sha256(raw.encode()).hexdigest()[:32]


def evaluation_health(*, max_voters: int = 50) -> Health:
    """Position bias, tie rates, flagged votes and anomalous voters over the whole log; cached until the log
    changes (one aggregate query on a cache hit)."""
    key = _health_key()
    cached = cache.get(key)
    if cached is not None:
        return cached
    duels = {m: DuelHealth(m, Mode(m).label) for m in DUEL_MODES}
    ffa_positions = [0, 0, 0, 0]
    by_voter: dict[str, list[tuple]] = defaultdict(list)
    total = counted = flagged = 0
    elapsed = []
    rows = Vote.objects.values_list("mode", "choice", "ranks", "flagged", "counted", "elapsed_ms", "voter_key")
    for mode, choice, ranks, is_flagged, is_counted, ms, voter in rows.iterator(chunk_size=5000):
        total += 1
        counted += bool(is_counted)
        flagged += bool(is_flagged)
        elapsed.append(ms)
        by_voter[voter].append((mode, choice, ranks, is_flagged, ms))
        if not is_counted:
            continue
        if mode in duels:
            d = duels[mode]
            d.votes += 1
            d.left += choice == Vote.Choice.LEFT
            d.right += choice == Vote.Choice.RIGHT
            d.tie += choice == Vote.Choice.TIE
            d.both_bad += choice == Vote.Choice.BOTH_BAD
        elif mode == Mode.FFA:
            pos = _winner_position(choice, ranks)
            if pos is not None and pos < 4:
                ffa_positions[pos] += 1
    both = DuelHealth("duels", "all duels")
    for d in duels.values():
        for f in ("votes", "left", "right", "tie", "both_bad"):
            setattr(both, f, getattr(both, f) + getattr(d, f))
    ffa_p = None
    if sum(ffa_positions) >= 4:
        from scipy.stats import chisquare

        ffa_p = float(chisquare(ffa_positions).pvalue)
    reports = [_voter_report(k, v) for k, v in by_voter.items()]
    anomalous = sorted((r for r in reports if r.reasons), key=lambda r: (-len(r.reasons), -r.votes, r.judge))
    health = Health(
        total=total, counted=counted, flagged=flagged, duels=[*duels.values(), both], ffa_positions=ffa_positions,
        ffa_p_value=ffa_p, anomalous=anomalous[:max_voters], voters=len(by_voter),
        median_ms=statistics.median(elapsed) if elapsed else None,
    )
    cache.set(key, health, timeout=3600)
    return health


def judge_duels() -> list[tuple[int, int, str]]:
    """(left image id, right image id, winner) of the counted fixed- and free-prompt duels decided left or
    right whose two images are known (image ids from ``PollEntry.image``); one query."""
    entries = PollEntry.objects.filter(
        poll__vote__counted=True, poll__vote__mode__in=DUEL_MODES,
        poll__vote__choice__in=[Vote.Choice.LEFT, Vote.Choice.RIGHT], position__lte=1,
    ).values_list("poll_id", "position", "image_id", "poll__vote__choice")
    polls: dict[int, dict] = defaultdict(dict)
    for poll_id, position, image_id, choice in entries.iterator(chunk_size=5000):
        polls[poll_id][position] = image_id
        polls[poll_id]["choice"] = choice
    return [
        (p[0], p[1], p["choice"]) for _, p in sorted(polls.items())
        if p.get(0) is not None and p.get(1) is not None
    ]


def judge_agreement() -> dict | None:
    """How often each automatic judge agrees with people (``generation.scoring.selectors.judge_agreement``);
    None where that app does not provide it."""
    try:
        from generation.scoring.selectors import judge_agreement as agreement
    except ImportError:  # pragma: no cover - the scoring app is optional for this page
        return None
    return agreement(judge_duels())


def as_dict(obj) -> dict:
    return dataclasses.asdict(obj)
