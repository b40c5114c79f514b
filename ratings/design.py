"""Randomised matchmaking with stored propensities: every poll is drawn from an explicit distribution.

The distribution over the *feasible* unordered sets of ``k`` models (k = 2 for duels, 4 for free-for-all):

    P(S) = exploration * a(S) / sum_F a  +  (1 - exploration) * a(S) q(S) / sum_F a q

* F, the feasible sets: for fixed-prompt polls the shown models must all have an image in one common
  prompt+settings "group", so F is every k-set of eligible models that some group contains; with
  ``groups=None`` (free-prompt duels, generated live) every k-set is feasible. Draws are made from F
  directly, so nothing is retried or narrowed and P is exact under the restriction.
* a(S) = product of the members' admin weights (1 for everyone by default: then the first term is uniform
  over F). A disabled or zero-weight candidate is not eligible at all.
* q(S), the information score: ``(sum over the pairs of S of value_ij * r_ij * pending_pair ** n_ij
  * pending_model ** (sum over members of n_i) * balance_S) ** sharpness``. ``value_ij`` is
  :func:`ratings.information.pair_values` of the candidates' beliefs (default: the expected information
  about the pair's order). ``r_ij`` is how likely the poll is to answer for the pair: 1 for duels and full
  rankings; for best-only polls (``outcome="best"``) only the winner's pairs are answered, so ``r_ij = P(i
  or j is chosen)``, from a Plackett–Luce reading of the beliefs (strength ``exp(1.702 mu / (sqrt(2)
  beta))``, the logistic matched to the probit). The sum is multiplied, before the power, by the exposure
  balance ``prod_{i in S} ((1 + mean polls) / (1 + polls_i)) ** (balance / k)``, ``polls_i`` the polls model
  i has been in (``Candidate.polls``, or its games when not given). ``n_ij`` and ``n_i`` count
  issued-but-unvoted polls that hold the pair / the model (:class:`Pending`), so repeated page loads between
  votes spread out instead of handing out the same pair. If every q is 0 the draw is exploration only.

The exploration share is a floor: every feasible set has P(S) >= exploration * a(S) / sum_F a, which keeps
every pair compared (the Bradley–Terry intervals stay honest, see ``simulate_arena``) and bounds
inverse-propensity weights from above. A new model has wide beliefs, so its pairs carry the most
information and it is drawn often until it has caught up.

Why the balance: an adaptive design's estimates of the extreme models come out too extreme. A model that
happens to look more extreme than it is looks settled, is shown less, and keeps its error (seen: +44 Elo
for the true best of 20, -33 for the worst, against about 0 under uniform polls, and interval coverage
falling). Balancing exposure by poll counts, which do not depend on the estimates, takes most of that
feedback away while the information score still picks close companions; it also shows a new model more.

The 4-way defaults (exploration 0.3, sharpness 10, order value, best-only weighting, balance 3) were chosen with
``simulate_arena`` on seeds 100-159 (reported runs use other seeds): 20 models with Normal(1000, 150)
skills, best-only 4-way polls, 1,000 votes, paired with uniform polls on the same skills. Sharpness 2 was
no better than uniform; sharpness 16 lost coverage (0.875 on 20 seeds). Over 60 seeds: uniform tau 0.877,
coverage 0.940; these defaults tau +0.016 (95% interval +0.003 to +0.029), coverage 0.915 (0.895 to 0.935);
without the balance +0.011 (-0.002 to +0.025), 0.919; with exploration 0.4, +0.009 and 0.907. The gain is
modest and costs a little coverage: best-only 4-way polls of close models carry at most ~2 bits. On fresh
seeds the gain at 1,000 votes is not there: seeds 1000-1029 give tau -0.004 (-0.024 to +0.015), coverage
0.912 against 0.932, while at 3,000 votes tau is +0.017 (+0.002 to +0.031) and the median votes to tau 0.9
fall from 2,595 to 2,025 (two uniform runs on other streams differ by -0.020, -0.043 to +0.003, at 1,000).
Duels (k=2) lose coverage faster: with sharpness 2-10 at exploration 0.3 their coverage was 0.83-0.875
against uniform's 0.92 (seeds 100-129); exploration 0.7, sharpness 2 gave tau +0.011 (-0.012 to +0.034)
at coverage 0.912, hence their defaults.

:class:`Matchmaker` is the prepared object (built once from a snapshot of the candidates and groups; the
set enumeration, :class:`FeasibleSets`, may be shared across snapshots with the same eligible models and
groups); :meth:`Matchmaker.draw` then costs ~0.1 ms for 20 models and 4-way polls (``python -m
ratings.bench_matchmaking``). Enumeration grows as C(n, k): 4,845 sets for 20 models, 230,300 for 50.

:func:`draw` returns a :class:`Pick`: the models in random screen order, the group (an index into
``groups``, drawn uniformly among the groups that hold every model of the set; None without groups), the
probability of the unordered set (store it with the poll), and the group's conditional probability.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations

import numpy as np

from ratings.information import TRUESKILL_BETA, VALUES, pair_values

#: The most k-sets a :class:`FeasibleSets` enumerates (about 16 MB of indices for k = 4).
MAX_SETS = 1_000_000


@dataclass(frozen=True)
class Candidate:
    id: int
    games: int  # pairwise comparisons this model has had
    mu: float  # skill estimate (TrueSkill mean by default; see DesignParams.beta for other scales)
    sigma: float  # its uncertainty (standard deviation, same units)
    weight: float = 1.0
    enabled: bool = True
    polls: int | None = None  # polls it has been shown in (votes cast on them); None: use ``games``


class NotEnoughModels(ValueError):
    """Fewer eligible models (or no feasible set) than the poll needs."""


def eligible(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Enabled candidates with a positive finite weight, each id once (its first entry). An id with any
    disabled or zero-weight entry is left out altogether."""
    barred = {c.id for c in candidates if not (c.enabled and c.weight > 0 and math.isfinite(c.weight))}
    seen: set[int] = set()
    out = []
    for c in candidates:
        if c.id not in barred and c.id not in seen:
            seen.add(c.id)
            out.append(c)
    return out


#: Defaults of ``(exploration, sharpness)`` by poll size: a duel's score is one pair's value, far more
#: peaked than a 4-way set's sum over six pairs, so duels explore more and sharpen less (see the module text).
DEFAULTS = {2: (0.7, 2.0), 4: (0.3, 10.0)}


@dataclass(frozen=True)
class DesignParams:
    exploration: float | None = None  # the uniform share (over feasible sets, weighted by admin weights)
    sharpness: float | None = None  # power on a set's summed pair values; None: DEFAULTS by poll size
    value: str = "order"  # ratings.information.VALUES
    outcome: str = "best"  # "best": best-only free-for-all (only the winner's pairs answered); "ranking"
    beta: float = TRUESKILL_BETA  # performance noise in the candidates' units
    pending_pair: float = 0.5  # factor on a pair's value per issued-but-unvoted poll holding the pair
    pending_model: float = 0.9  # factor on a set's summed value per pending poll of each member
    balance: float = 3.0  # exposure balancing: value times prod_i ((1 + mean polls) / (1 + polls_i))^(balance / k)

    def __post_init__(self) -> None:
        if self.exploration is not None and not 0.0 <= self.exploration <= 1.0:
            raise ValueError("exploration is a share in [0, 1]")
        if (self.sharpness is not None and self.sharpness <= 0) or self.beta <= 0:
            raise ValueError("sharpness and beta must be positive")
        if not (0.0 <= self.pending_pair <= 1.0 and 0.0 <= self.pending_model <= 1.0):
            raise ValueError("pending factors are in [0, 1]")
        if self.outcome not in ("best", "ranking"):
            raise ValueError("outcome is 'best' (best-only polls) or 'ranking' (full rankings)")
        if self.value not in VALUES:
            raise ValueError(f"unknown pair value {self.value!r}; one of {', '.join(VALUES)}")


    def for_poll(self, k: int) -> DesignParams:
        """These parameters with the poll size's defaults filled in (4-way defaults for k > 2)."""
        exploration, sharpness = DEFAULTS[2 if k == 2 else 4]
        return replace(self, exploration=exploration if self.exploration is None else self.exploration,
                       sharpness=sharpness if self.sharpness is None else self.sharpness)


#: The exploration-only design: every feasible set equally likely (with equal admin weights).
UNIFORM = DesignParams(exploration=1.0)


@dataclass(frozen=True)
class Pending:
    """Issued-but-unvoted polls: how many hold each model and each unordered pair (keys ``(low, high)``)."""

    models: Mapping[int, int] = field(default_factory=dict)
    pairs: Mapping[tuple[int, int], int] = field(default_factory=dict)

    @classmethod
    def of(cls, polls: Iterable[Iterable[int]]) -> Pending:
        """From the model ids of each open poll."""
        models: Counter = Counter()
        pairs: Counter = Counter()
        for poll in polls:
            ids = sorted(set(int(m) for m in poll))
            models.update(ids)
            pairs.update(combinations(ids, 2))
        return cls(dict(models), dict(pairs))

    def __bool__(self) -> bool:
        return bool(self.models) or bool(self.pairs)


@dataclass(frozen=True)
class Pick:
    models: tuple[int, ...]  # screen order (random)
    group: int | None  # index into the groups given, None without groups
    probability: float  # P(this unordered set of models) under the design
    group_probability: float = 1.0  # P(this group | this set)


def _masks(rows: np.ndarray, n: int) -> np.ndarray:
    """(len(rows), words) uint64 bit masks of index rows."""
    words = (n + 63) // 64
    out = np.zeros((len(rows), words), dtype=np.uint64)
    for col in range(rows.shape[1]):
        idx = rows[:, col]
        np.bitwise_or.at(out, (np.arange(len(rows)), idx // 64), np.left_shift(np.uint64(1), (idx % 64).astype(np.uint64)))
    return out


def _member_masks(groups: Sequence[frozenset[int]], index: Mapping[int, int], n: int) -> np.ndarray:
    words = (n + 63) // 64
    full = (1 << 64) - 1
    bits = []
    for members in groups:
        mask = 0
        for m in members:
            i = index.get(int(m))
            if i is not None:
                mask |= 1 << i
        bits.append([(mask >> (64 * w)) & full for w in range(words)])
    return np.array(bits, dtype=np.uint64).reshape(len(groups), words)


def _contains(big: np.ndarray, small: np.ndarray) -> np.ndarray:
    """(len(big), len(small)) bool: big row holds every bit of small row."""
    return ((big[:, None, :] & small[None, :, :]) == small[None, :, :]).all(axis=-1)


def _set_sum(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``values[columns].sum(axis=0)`` for a (few, many) index array, as contiguous gathers (much faster)."""
    out = values[columns[0]]
    for col in columns[1:]:
        out = out + values[col]
    return out


def _popcount(masks: np.ndarray) -> np.ndarray:
    return np.unpackbits(masks.view(np.uint8), axis=1).sum(axis=1)


class FeasibleSets:
    """Every k-set of ``ids`` that some group contains (all k-sets with ``groups=None``), as index rows."""

    def __init__(self, ids: Sequence[int], k: int, groups: Sequence[frozenset[int]] | None = None,
                 max_sets: int = MAX_SETS) -> None:
        self.ids = tuple(int(i) for i in ids)
        self.k = k
        n = len(self.ids)
        if k < 2 or n < k:
            raise NotEnoughModels(f"{n} eligible models, {k} needed")
        if math.comb(n, k) > max_sets:
            raise ValueError(f"C({n}, {k}) = {math.comb(n, k)} sets is more than max_sets={max_sets}")
        self.index = {m: i for i, m in enumerate(self.ids)}
        rows = np.array(list(combinations(range(n), k)), dtype=np.int32).reshape(-1, k)
        self.group_masks = None if groups is None else _member_masks(list(groups), self.index, n)
        if self.group_masks is not None:
            rows = rows[self._feasible(rows, n)]
        if not len(rows):
            raise NotEnoughModels(f"no group holds images of {k} eligible models")
        self.members = rows.astype(np.intp)
        first, second = np.triu_indices(k, 1)
        self.pairs = self.members[:, first] * n + self.members[:, second]  # flat (i, j) cells, i < j
        # column-major copies: a sum over a set's members (or pairs) is k (or k(k-1)/2) contiguous gathers
        self.members_t = np.ascontiguousarray(self.members.T)
        self.pairs_t = np.ascontiguousarray(self.pairs.T)

    def _feasible(self, rows: np.ndarray, n: int) -> np.ndarray:
        masks = self.group_masks[_popcount(self.group_masks) >= self.k]
        masks = np.unique(masks, axis=0)
        # keep only maximal groups: a group inside another adds no set
        keep = np.ones(len(masks), dtype=bool)
        for start in range(0, len(masks), 256):
            inside = _contains(masks, masks[start:start + 256])  # (U, chunk): column's group inside row's
            np.fill_diagonal(inside[start:start + 256], False)
            keep[start:start + 256] &= ~inside.any(axis=0)
        masks = masks[keep]
        set_masks = _masks(rows, n)
        ok = np.zeros(len(rows), dtype=bool)
        for start in range(0, len(masks), 64):
            ok |= _contains(masks[start:start + 64], set_masks).any(axis=0)
        return ok

    def __len__(self) -> int:
        return len(self.members)

    def sets(self) -> list[tuple[int, ...]]:
        """The feasible sets as sorted model-id tuples, in the order of :meth:`Matchmaker.probabilities`."""
        ids = self.ids
        return [tuple(ids[i] for i in row) for row in self.members.tolist()]

    def allowed(self, excluded: Mapping[int, Iterable[int]]) -> np.ndarray | None:
        """Which sets stay feasible when, in group ``g``, the models ``excluded[g]`` may not be shown (e.g. a
        voter has seen those images with their model's name): a set is allowed iff some group holds all of it
        with none of its members excluded there. None when nothing is excluded (every set is allowed)."""
        if self.group_masks is None or not excluded:
            return None
        effective = self.group_masks.copy()
        for g, models in excluded.items():
            for m in models:
                i = self.index.get(int(m))
                if i is not None:
                    effective[g, i // 64] &= ~(np.uint64(1) << np.uint64(i % 64))
        masks = effective[_popcount(effective) >= self.k]
        if not len(masks):
            return np.zeros(len(self), dtype=bool)
        masks = np.unique(masks, axis=0)
        set_masks = _masks(self.members, len(self.ids))
        ok = np.zeros(len(self), dtype=bool)
        for start in range(0, len(masks), 64):
            ok |= _contains(masks[start:start + 64], set_masks).any(axis=0)
        return ok

    def groups_for(self, models: Iterable[int], excluded: Mapping[int, Iterable[int]] | None = None) -> list[int]:
        """Indices of the groups holding every one of ``models`` (empty without groups), less those where one of
        them is ``excluded``."""
        if self.group_masks is None:
            return []
        mask = np.zeros(self.group_masks.shape[1], dtype=np.uint64)
        for m in models:
            i = self.index[int(m)]
            mask[i // 64] |= np.uint64(1) << np.uint64(i % 64)
        holding = np.flatnonzero(((self.group_masks & mask) == mask).all(axis=1)).tolist()
        if excluded:
            chosen = {int(m) for m in models}
            holding = [g for g in holding if not chosen & {int(m) for m in excluded.get(g, ())}]
        return holding


class Matchmaker:
    """The design for one snapshot of candidates (their beliefs, weights) and groups; see the module text."""

    def __init__(self, candidates: Sequence[Candidate], k: int, groups: Sequence[frozenset[int]] | None = None,
                 params: DesignParams = DesignParams(), feasible: FeasibleSets | None = None) -> None:
        pool = eligible(candidates)
        ids = tuple(c.id for c in pool)
        if feasible is None:
            feasible = FeasibleSets(ids, k, groups)
        elif feasible.ids != ids or feasible.k != k:
            raise ValueError("the FeasibleSets were built for other models or another k")
        params = params.for_poll(k)
        self.feasible, self.params, self.k = feasible, params, k
        weights = np.array([c.weight for c in pool], dtype=np.float64)
        if (weights == 1.0).all():
            self._admin = np.ones(len(feasible))
        else:
            self._admin = np.exp(_set_sum(np.log(weights), feasible.members_t))
        self._admin_uniform = self._admin / self._admin.sum()
        self._set_norm: np.ndarray | float = 1.0
        if params.exploration < 1.0:
            mu = np.array([c.mu for c in pool], dtype=np.float64)
            sigma = np.array([c.sigma for c in pool], dtype=np.float64)
            self.values = pair_values(mu, sigma, params.beta, params.value)
            if params.outcome == "best" and k > 2:
                # sum_pairs v_ij P(i or j wins) = sum_pairs v_ij (e_i + e_j) / sum_S e
                strength = np.exp(1.702 / (math.sqrt(2.0) * params.beta) * (mu - mu.max()))
                self.values = self.values * (strength[:, None] + strength[None, :])
                self._set_norm = _set_sum(strength, feasible.members_t)
            if params.balance:
                polls = np.array([c.games if c.polls is None else c.polls for c in pool], dtype=np.float64) + 1.0
                log_factor = params.balance / k * (np.log(polls.mean()) - np.log(polls))
                exposure = np.exp(_set_sum(log_factor, feasible.members_t))
                self._set_norm = self._set_norm / exposure
        else:
            self.values = np.zeros((len(ids), len(ids)))
        self._base: np.ndarray | None = None
        self._base_cdf: np.ndarray | None = None
        self._pair_sum: np.ndarray | None = None

    def probabilities(self, pending: Pending | None = None) -> np.ndarray:
        """P(S) for every feasible set, aligned with ``self.feasible.sets()``; sums to 1."""
        if not pending and self._base is not None:
            return self._base
        p = self.params
        out = self._admin_uniform
        if p.exploration < 1.0:
            score = self._scores(pending) * self._admin
            total = score.sum()
            if total > 0 and math.isfinite(total):
                out = p.exploration * self._admin_uniform + (1.0 - p.exploration) * (score / total)
        if not pending:
            self._base = out
        return out

    def _scores(self, pending: Pending | None) -> np.ndarray:
        p, feasible = self.params, self.feasible
        if self._pair_sum is None:
            self._pair_sum = _set_sum(self.values.ravel(), feasible.pairs_t) / self._set_norm
        summed = self._pair_sum
        index = feasible.index
        if pending and pending.pairs and p.pending_pair < 1.0:
            n = len(feasible.ids)
            found = [(index.get(a), index.get(b), c) for (a, b), c in pending.pairs.items() if c > 0]
            found = [(min(i, j), max(i, j), c) for i, j, c in found if i is not None and j is not None]
            if found:
                rows = np.array(found, dtype=np.intp)
                cells = rows[:, 0] * n + rows[:, 1]
                cut = np.zeros(n * n)
                cut[cells] = self.values.ravel()[cells] * (1.0 - p.pending_pair ** rows[:, 2].astype(np.float64))
                summed = np.maximum(summed - _set_sum(cut, feasible.pairs_t) / self._set_norm, 0.0)
        if pending and pending.models and p.pending_model < 1.0:
            found = [(index.get(m), c) for m, c in pending.models.items() if c > 0]
            found = [(i, c) for i, c in found if i is not None]
            if found:
                rows = np.array(found, dtype=np.intp)
                counts = np.zeros(len(feasible.ids))
                counts[rows[:, 0]] = rows[:, 1]
                summed = summed * p.pending_model ** _set_sum(counts, feasible.members_t)
        return summed ** p.sharpness

    def probability(self, models: Iterable[int], pending: Pending | None = None) -> float:
        """P(this unordered set); 0.0 for a set that is not feasible."""
        index = self.feasible.index
        try:
            row = sorted(index[int(m)] for m in models)
        except KeyError:
            return 0.0
        hit = np.flatnonzero((self.feasible.members == np.array(row)).all(axis=1))
        return float(self.probabilities(pending)[hit[0]]) if len(hit) else 0.0

    def draw(self, rng: random.Random, pending: Pending | None = None,
             excluded: Mapping[int, Iterable[int]] | None = None) -> Pick:
        """One poll: the set by inverse CDF of :meth:`probabilities`, then a group, then the screen order.

        ``excluded`` (group index → models that may not be shown in it, see :meth:`FeasibleSets.allowed`)
        restricts the draw to the sets still feasible and renormalises: the probability returned is then
        P(set | the allowed sets), exact, and the group is drawn among the groups allowed for the set."""
        probs = self.probabilities(pending)
        allowed = self.feasible.allowed(excluded or {})
        if allowed is not None:
            probs = np.where(allowed, probs, 0.0)
            total = probs.sum()
            if not total > 0:
                raise NotEnoughModels("every feasible set holds an image that may not be shown")
            probs = probs / total
            cdf = np.cumsum(probs)
        elif pending:
            cdf = np.cumsum(probs)
        else:
            if self._base_cdf is None:
                self._base_cdf = np.cumsum(probs)
            cdf = self._base_cdf
        i = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(probs) - 1)
        ids = self.feasible.ids
        models = [ids[j] for j in self.feasible.members[i].tolist()]
        group, group_p = None, 1.0
        if self.feasible.group_masks is not None:
            holding = self.feasible.groups_for(models, excluded)
            group, group_p = holding[int(rng.random() * len(holding))], 1.0 / len(holding)
        rng.shuffle(models)
        return Pick(models=tuple(models), group=group, probability=float(probs[i]), group_probability=group_p)


def draw(candidates: Sequence[Candidate], k: int, rng: random.Random, *, groups: Sequence[frozenset[int]] | None = None,
         pending: Pending | None = None, params: DesignParams = DesignParams()) -> Pick:
    """One-off :meth:`Matchmaker.draw` (build a :class:`Matchmaker` to reuse across requests)."""
    return Matchmaker(candidates, k, groups, params).draw(rng, pending)
