"""Vote hygiene: which voters vote unlike the crowd, and does the crowd favour a screen position?

Per voter (:func:`voter_tests`), each test only for a voter with at least ``min_votes`` votes of its kind:

* ``position``: in decisive duels, how often the voter picked the left image, against the crowd's left
  share (all other voters' decisive duels): an exact two-sided binomial test. An always-left voter fails it.
* ``ties``: in duels, how often the voter answered tie or both bad, against the other voters' tie share:
  exact two-sided binomial.
* ``ffa_position``: in free-for-all polls, which screen position the voter chose, against the other voters'
  position shares: chi-square goodness of fit.
* ``consensus``: how often the voter chose the image the crowd's consensus prefers, Chatbot Arena's
  anomalous-user idea (compare each of a user's votes with what everyone else said about the same models
  and combine the evidence over the user's votes; FastChat combines per-vote p-values against the pair's
  history with Fisher's method). Here the consensus is the Bradley–Terry fit of every *other* voter's votes
  (the voter's own pairwise results are taken out of the wins matrix), so it speaks for pairs the others
  rarely met. For each vote: did the voter choose the consensus favourite (the higher-rated model of a duel,
  the highest of a free-for-all), and with what probability q would the consensus choose it (BT for a
  duel, Plackett–Luce for a free-for-all)? Agreements are a sum of independent Bernoulli(q) under the null
  "votes like the crowd"; the p-value is the exact one-sided Poisson-binomial P(S <= observed). A voter who
  always picks the weaker model fails it; so, less strongly, does a voter who ignores the images.

The p-values of every test run on every voter are corrected together with the Benjamini–Hochberg procedure
(:func:`benjamini_hochberg`); a test is flagged when its q-value is at most ``fdr`` (default 0.05): among
flagged tests, the expected share of honest voters is at most ``fdr``. Discrete tests are conservative, so
for honest voters the share is lower still.

Per mode (:func:`position_bias`): does the crowd favour a position? Duels: binomial of left picks against
1/2; free-for-all: chi-square of chosen positions against uniform. Screen order is random, so any bias is
the voters'. The modes' p-values are Holm-corrected (family-wise, as there are only a few), and voters can
be left out (e.g. the flagged ones: a single always-left voter can make the crowd look biased).

Inputs are :class:`ratings.log.VoteRecord`\\ s (players in screen order) and ``voters``, a mapping from vote
id to a voter key (a salted hash; never shown).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ratings.bradley_terry import fit_log_odds
from ratings.log import VoteRecord
from ratings.outcomes import pairwise

TESTS = ("position", "ties", "ffa_position", "consensus")


@dataclass(frozen=True)
class VoterTest:
    voter: str
    test: str  # one of TESTS
    n: int  # votes the test used
    observed: float  # the voter's rate (for ffa_position: share at the most chosen position)
    expected: float  # the rate under the null (the crowd's)
    p_value: float
    q_value: float = 1.0  # Benjamini–Hochberg over every test of every voter
    flagged: bool = False


@dataclass(frozen=True)
class ModeBias:
    mode: str
    n: int
    shares: tuple[float, ...]  # share of choices per screen position
    p_value: float
    p_holm: float  # Holm-corrected over the modes tested
    biased: bool


def benjamini_hochberg(p_values: Iterable[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), in input order."""
    p = np.asarray(list(p_values), dtype=np.float64)
    n = len(p)
    if not n:
        return p
    order = np.argsort(p)
    scaled = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def holm(p_values: Iterable[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in input order."""
    p = np.asarray(list(p_values), dtype=np.float64)
    n = len(p)
    order = np.argsort(p)
    scaled = np.maximum.accumulate(p[order] * (n - np.arange(n)))
    out = np.empty(n)
    out[order] = np.minimum(scaled, 1.0)
    return out


def poisson_binomial_cdf(q: np.ndarray, s: int) -> float:
    """P(sum of independent Bernoulli(q_i) <= s), exactly (dynamic programming over the votes)."""
    dist = np.zeros(len(q) + 1)
    dist[0] = 1.0
    for n, qi in enumerate(np.asarray(q, dtype=np.float64), start=1):
        dist[1:n + 1] = dist[1:n + 1] * (1.0 - qi) + dist[:n] * qi
        dist[0] *= 1.0 - qi
    return float(min(1.0, dist[:s + 1].sum()))


@dataclass
class _Counts:
    decisive: int = 0
    left: int = 0
    duels: int = 0
    ties: int = 0
    positions: np.ndarray | None = None


def _counts(records: list[VoteRecord], voters: Mapping[int, str]) -> dict[str, _Counts]:
    out: dict[str, _Counts] = defaultdict(_Counts)
    for r in records:
        c = out[voters.get(r.id, "")]
        if r.is_duel:
            c.duels += 1
            ra, rb = r.ranks
            if ra == rb:
                c.ties += 1
            else:
                c.decisive += 1
                c.left += ra < rb
        elif not r.outcome.is_draw:
            if c.positions is None:
                c.positions = np.zeros(len(r.players))
            if len(c.positions) == len(r.players):
                c.positions[r.ranks.index(min(r.ranks))] += 1
    return out


def _binomial(voter, test, hits, n, rate) -> VoterTest:
    rate = min(max(rate, 1e-12), 1 - 1e-12)
    p = stats.binomtest(int(hits), int(n), rate).pvalue
    return VoterTest(voter, test, int(n), hits / n, float(rate), float(p))


def _rate_tests(counts: dict[str, _Counts], min_votes: int) -> list[VoterTest]:
    total = _Counts(positions=None)
    for c in counts.values():
        total.decisive += c.decisive
        total.left += c.left
        total.duels += c.duels
        total.ties += c.ties
    ffa_total = sum((c.positions for c in counts.values() if c.positions is not None and len(c.positions) == 4),
                    np.zeros(4))
    out = []
    for voter, c in counts.items():
        others_decisive = total.decisive - c.decisive
        if c.decisive >= min_votes and others_decisive > 0:
            out.append(_binomial(voter, "position", c.left, c.decisive, (total.left - c.left) / others_decisive))
        others_duels = total.duels - c.duels
        if c.duels >= min_votes and others_duels > 0:
            out.append(_binomial(voter, "ties", c.ties, c.duels, (total.ties - c.ties) / others_duels))
        if c.positions is not None and len(c.positions) == 4 and c.positions.sum() >= min_votes:
            others = ffa_total - c.positions
            if others.sum() > 0 and (others > 0).all():
                n = c.positions.sum()
                expected = others / others.sum()
                p = stats.chisquare(c.positions, expected * n).pvalue
                top = int(np.argmax(c.positions))
                out.append(VoterTest(voter, "ffa_position", int(n), float(c.positions[top] / n), float(expected[top]),
                                     float(p)))
    return out


def _chosen(record: VoteRecord) -> int | None:
    """Screen index of the single chosen (best) image, None for a tie or several bests."""
    best = min(record.ranks)
    where = [i for i, r in enumerate(record.ranks) if r == best]
    return where[0] if len(where) == 1 else None


def _wins(records: Iterable[VoteRecord], index: Mapping[int, int], m: int) -> np.ndarray:
    w = np.zeros((m, m))
    for r in records:
        for a, b, score in pairwise(r.outcome):
            w[index[a], index[b]] += score
            w[index[b], index[a]] += 1.0 - score
    return w


def consensus_tests(records: list[VoteRecord], voters: Mapping[int, str], min_votes: int = 20) -> list[VoterTest]:
    """The ``consensus`` test of every voter with at least ``min_votes`` votes with a single choice."""
    models = sorted({p for r in records for p in r.players})
    index = {p: i for i, p in enumerate(models)}
    by_voter: dict[str, list[VoteRecord]] = defaultdict(list)
    for r in records:
        if _chosen(r) is not None:
            by_voter[voters.get(r.id, "")].append(r)
    total = _wins(records, index, len(models))
    everyone = fit_log_odds(total)
    out = []
    for voter, votes in by_voter.items():
        if len(votes) < min_votes:
            continue
        mine = [r for r in records if voters.get(r.id, "") == voter]
        theta = fit_log_odds(total - _wins(mine, index, len(models)), theta0=everyone)
        q, agree = np.empty(len(votes)), 0
        for n, r in enumerate(votes):
            t = theta[[index[p] for p in r.players]]
            favourite = int(np.argmax(t))
            e = np.exp(t - t.max())
            q[n] = e[favourite] / e.sum()
            agree += _chosen(r) == favourite
        out.append(VoterTest(voter, "consensus", len(votes), agree / len(votes), float(q.mean()),
                             poisson_binomial_cdf(q, agree)))
    return out


def voter_tests(records: Iterable[VoteRecord], voters: Mapping[int, str], *, fdr: float = 0.05,
                min_votes: int = 20) -> list[VoterTest]:
    """Every test of every voter with enough votes, Benjamini–Hochberg corrected together; flagged where
    the q-value is at most ``fdr``. Sorted by q-value."""
    records = list(records)
    tests = _rate_tests(_counts(records, voters), min_votes) + consensus_tests(records, voters, min_votes)
    q = benjamini_hochberg([t.p_value for t in tests])
    out = [VoterTest(t.voter, t.test, t.n, t.observed, t.expected, t.p_value, float(qi), bool(qi <= fdr))
           for t, qi in zip(tests, q)]
    return sorted(out, key=lambda t: (t.q_value, t.voter, t.test))


def flagged_voters(tests: Iterable[VoterTest]) -> set[str]:
    return {t.voter for t in tests if t.flagged}


def position_bias(records: Iterable[VoteRecord], *, voters: Mapping[int, str] | None = None,
                  exclude: Iterable[str] = (), alpha: float = 0.05) -> list[ModeBias]:
    """Per mode, is one screen position chosen more than chance? Holm-corrected over the modes."""
    leave_out = set(exclude)
    by_mode: dict[str, np.ndarray] = {}
    for r in records:
        if voters is not None and voters.get(r.id, "") in leave_out:
            continue
        chosen = _chosen(r)
        if chosen is None:
            continue
        counts = by_mode.setdefault(r.mode, np.zeros(len(r.players)))
        if len(counts) == len(r.players):
            counts[chosen] += 1
    modes = sorted(by_mode)
    p_values = []
    for mode in modes:
        counts = by_mode[mode]
        n = int(counts.sum())
        if len(counts) == 2:
            p_values.append(float(stats.binomtest(int(counts[0]), n, 0.5).pvalue))
        else:
            p_values.append(float(stats.chisquare(counts).pvalue))
    adjusted = holm(p_values) if p_values else np.zeros(0)
    return [
        ModeBias(mode, int(by_mode[mode].sum()), tuple(float(x) for x in by_mode[mode] / by_mode[mode].sum()), p,
                 float(h), bool(h <= alpha))
        for mode, p, h in zip(modes, p_values, adjusted)
    ]
