"""The health of the evaluation: position bias of decisive duel votes with a Wilson interval, tie and both-bad
rates, flagged votes, voters whose votes look anomalous, and the automatic judges' agreement with people."""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q, Sum

from arena.models import Mode, PollEntry, Vote, VoterExclusion
from arena.selectors.votelog import RECORD_FIELDS, records_from_rows
from arena.voters import voter_hash
from generation.scoring.selectors import judge_agreement as scorer_agreement
from ratings.hygiene import ModeBias, VoterTest, flagged_voters, position_bias, voter_tests
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


TEST_LABELS = {
    "position": "left/right position in decisive duels",
    "ties": "share of ties and “both bad” in duels",
    "ffa_position": "position picked as best in free-for-all",
    "consensus": "agreement with the crowd's consensus",
}
#: A voter with at least this many fast (flagged) votes, making up at least this share of theirs, is listed too
#: (a fact about their votes, not a statistical test: those votes are left out of the ratings already).
FAST_MIN_VOTES = 3
FAST_SHARE = 0.5


@dataclass
class VoterReport:
    """A voter the tests flag (or who votes too fast): by salted hash only."""

    judge: str  # voter_hash, never the raw id
    votes: int
    flagged: int  # fast votes
    reasons: list[str]
    excluded: bool = False


def _reason(test: VoterTest) -> str:
    if test.test == "position":
        what = f"picked the left image in {test.observed:.0%} of {test.n} decisive duels (the crowd: {test.expected:.0%})"
    elif test.test == "ties":
        what = f"answered tie or both bad in {test.observed:.0%} of {test.n} duels (the crowd: {test.expected:.0%})"
    elif test.test == "ffa_position":
        what = f"chose one position in {test.observed:.0%} of {test.n} free-for-all polls (the crowd: {test.expected:.0%})"
    else:
        what = f"chose the crowd's favourite in {test.observed:.0%} of {test.n} polls (expected {test.expected:.0%})"
    return f"{what}; q = {test.q_value:.3g} ({TEST_LABELS[test.test]})"


def _hygiene(by_voter: dict[str, list[tuple]]) -> tuple[list[VoterReport], list[ModeBias], list[VoterTest]]:
    """The FDR-corrected per-voter tests on the counted log, the voters they flag, and the per-mode position
    bias with those voters left out (ratings.hygiene)."""
    rows = list(Vote.objects.filter(counted=True, seq__isnull=False).order_by("seq")
                .values_list(*RECORD_FIELDS, "voter_key"))
    records = records_from_rows(row[:len(RECORD_FIELDS)] for row in rows)
    hashes: dict[str, str] = {}
    judges = {r.id: hashes.setdefault(row[-1], voter_hash(row[-1])) for r, row in zip(records, rows)}
    tests = voter_tests(records, judges, fdr=settings.HYGIENE_FDR, min_votes=settings.HYGIENE_MIN_VOTES)
    flagged = flagged_voters(tests)
    bias = position_bias(records, voters=judges, exclude=flagged)
    excluded = {voter_hash(k) for k in VoterExclusion.objects.filter(lifted_at__isnull=True).values_list("voter_key", flat=True)}
    reports: dict[str, VoterReport] = {}
    for key, votes in by_voter.items():
        judge = hashes.get(key) or voter_hash(key)
        fast = sum(1 for v in votes if v[3])
        reasons = [_reason(t) for t in tests if t.flagged and t.voter == judge]
        if fast >= FAST_MIN_VOTES and fast / len(votes) >= FAST_SHARE:
            reasons.append(f"{fast} of {len(votes)} votes flagged (too fast; left out of the ratings)")
        if reasons:
            reports[judge] = VoterReport(judge=judge, votes=len(votes), flagged=fast, reasons=reasons,
                                         excluded=judge in excluded)
    return sorted(reports.values(), key=lambda r: (-len(r.reasons), -r.votes, r.judge)), bias, tests


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
    position_bias: list[ModeBias] = field(default_factory=list)  # per mode, Holm-corrected, flagged voters left out
    tests_run: int = 0

    @property
    def flagged_rate(self) -> Rate:
        return Rate(self.flagged, self.total)

    @property
    def ffa_picks(self) -> int:
        return sum(self.ffa_positions)


def _health_key() -> str:
    agg = Vote.objects.aggregate(
        n=Count("id"), m=Max("id"), s=Sum("id"), f=Count("id", filter=Q(flagged=True)), c=Count("id", filter=Q(counted=True)),
        e=Count("id", filter=Q(excluded=True)),
    )
    raw = (f"{agg['n']}:{agg['m']}:{agg['s']}:{agg['f']}:{agg['c']}:{agg['e']}:"
           f"{settings.VOTER_HASH_SALT}:{settings.HYGIENE_FDR}:{settings.HYGIENE_MIN_VOTES}")
    return "arena:health:v2:" + hashlib.sha256(raw.encode()).hexdigest()[:32]


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
    anomalous, bias, tests = _hygiene(by_voter)
    health = Health(
        total=total, counted=counted, flagged=flagged, duels=[*duels.values(), both], ffa_positions=ffa_positions,
        ffa_p_value=ffa_p, anomalous=anomalous[:max_voters], voters=len(by_voter),
        median_ms=statistics.median(elapsed) if elapsed else None, position_bias=bias, tests_run=len(tests),
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
