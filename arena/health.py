"""The health of the evaluation: position bias of decisive duel votes with a Wilson interval, tie and both-bad
rates, flagged votes, voters whose votes look anomalous, and the automatic judges' agreement with people."""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q, Sum

from arena.models import Mode, PollEntry, Vote
from arena.voters import voter_hash
from generation.scoring.selectors import judge_agreement as scorer_agreement
from ratings.intervals import binomial_two_sided, wilson_interval

DUEL_MODES = (Mode.FIXED, Mode.FREE)


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
    for mode, choice, ranks, is_flagged, is_counted, ms, voter in list(rows):
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
        poll__vote__counted=True, poll__vote__excluded=False, poll__vote__mode__in=DUEL_MODES,
        poll__vote__choice__in=[Vote.Choice.LEFT, Vote.Choice.RIGHT], position__lte=1,
    ).values_list("poll_id", "position", "image_id", "poll__vote__choice")
    polls: dict[int, dict] = defaultdict(dict)
    for poll_id, position, image_id, choice in list(entries):
        polls[poll_id][position] = image_id
        polls[poll_id]["choice"] = choice
    return [
        (p[0], p[1], p["choice"]) for _, p in sorted(polls.items())
        if p.get(0) is not None and p.get(1) is not None
    ]


def judge_agreement() -> dict:
    """How often each automatic judge agrees with people (``generation.scoring.selectors.judge_agreement``)."""
    return scorer_agreement(judge_duels())
