"""Bradley–Terry maximum likelihood on the Elo scale, with bootstrap confidence intervals.

Model: P(i beats j) = 1 / (1 + base ** ((R_j - R_i) / scale)), i.e. a logistic regression on the
log-odds θ = R · ln(base) / scale. Every poll is expanded to pairwise results (see
:mod:`ratings.outcomes`); a tie (or "both bad") counts as half a win for each side, as Chatbot Arena
does. The fit maximises

    Σ_ij W_ij · log σ(θ_i − θ_j) − (l2 / 2) · Σ_i θ_i²

by Newton's method with backtracking; W_ij is the (fractional) number of wins of i over j. The tiny ridge
term (``l2``, default 1e-6, Chatbot Arena's C=1e6) only keeps the maximum finite when a model has never lost
or never won, or the comparison graph is split; it moves well-measured ratings by far less than 0.01 Elo.

Anchoring: the likelihood only fixes differences, so ratings are shifted so that their mean over the
fitted models equals ``initial`` (default 1000), or, with ``anchor=<model id>``, that this model is at
``initial``. Each bootstrap round is anchored the same way.

Bootstrap: a round resamples the N polls of the scope with replacement, so a free-for-all poll stays one
unit. That is a multinomial draw of N over the distinct poll outcomes (with their observed frequencies),
which costs one draw per round whatever N is. The interval is the central ``confidence`` percentile range
of the rounds' ratings (default 95%: the 2.5th and 97.5th percentiles). With ``rounds=0`` the interval is the
point estimate.

Rank by interval: rank = 1 + the number of models whose lower bound is above this model's upper bound.

Inverse-propensity weighting (``weighting="ipw"``): each poll's pairwise results count ``w = (1 / p) /
mean(1 / p)`` times, ``p`` the stored probability with which the matchmaker drew the poll's set of models,
normalised within each mode (a duel's and a 4-way poll's probabilities are not comparable). The fit then
estimates what a uniform design would have estimated when the Bradley–Terry model is not exactly right (e.g.
intransitive preferences); when it is right, both are consistent and the weights only add variance. Under a
uniform design every weight is exactly 1, and the result is bit for bit the unweighted one. A weighted poll
stays one unit of the bootstrap. Every poll of the scope must then carry a propensity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ratings.log import VoteTable
from ratings.outcomes import pairwise


@dataclass(frozen=True, slots=True)
class BTParams:
    scale: float = 400.0
    base: float = 10.0
    initial: float = 1000.0
    anchor: int | None = None  # a model id pinned at ``initial``; None: the mean is ``initial``
    rounds: int = 100
    seed: int = 0
    confidence: float = 0.95
    l2: float = 1e-6
    weighting: str = "none"  # "none", or "ipw": inverse-propensity weights (see the module text)

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ValueError("bootstrap rounds must be >= 0")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError("confidence must be in (0, 1)")
        if self.l2 <= 0.0:
            raise ValueError("l2 must be > 0 (it keeps the maximum finite)")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting is one of {', '.join(WEIGHTINGS)}")


WEIGHTINGS = ("none", "ipw")


@dataclass
class PollTable:
    """Distinct poll outcomes of a scope with how often each occurred, and their pairwise contributions.

    ``entry_*`` list, per distinct outcome, the (winner, loser, weight) wins it adds to W: a win adds 1 to
    W[winner, loser]; a tie adds 0.5 each way. Model indices refer to ``models``."""

    models: np.ndarray
    counts: np.ndarray  # (K,) polls per distinct outcome
    entry_outcome: np.ndarray  # (E,)
    entry_cell: np.ndarray  # (E,) winner * M + loser
    entry_weight: np.ndarray  # (E,)

    @property
    def polls(self) -> int:
        return int(self.counts.sum())

    def wins_matrix(self, counts: np.ndarray | None = None) -> np.ndarray:
        m = len(self.models)
        c = self.counts if counts is None else counts
        w = np.bincount(self.entry_cell, weights=c[self.entry_outcome] * self.entry_weight, minlength=m * m)
        return w.reshape(m, m)


def ipw_weights(table: VoteTable, rows: np.ndarray) -> np.ndarray:
    """Inverse-propensity weights of ``rows``, normalised to mean 1 within each mode (see the module text)."""
    rows = np.asarray(rows, dtype=np.int64)
    p = table.propensity[rows]
    if np.isnan(p).any():
        raise ValueError(f"{int(np.isnan(p).sum())} polls of the scope have no stored propensity; IPW needs all")
    weights = np.empty(len(rows))
    scope = table.scope[rows]
    for mode in np.unique(scope).tolist():
        where = np.flatnonzero(scope == mode)
        inverse = 1.0 / p[where]
        ratio = inverse / inverse[0]  # exactly 1.0 everywhere when every propensity is equal
        weights[where] = ratio / ratio.mean()
    return weights


def poll_table(table: VoteTable, rows: np.ndarray, weights: np.ndarray | None = None) -> PollTable:
    """The distinct outcomes of ``rows`` of a vote table, restricted to the models that appear in them.

    ``weights`` (one per row, default 1) multiplies each poll's pairwise results; polls are grouped by
    outcome and weight, so a poll stays one unit of the bootstrap."""
    m_all = len(table.models)
    rows = np.asarray(rows, dtype=np.int64)
    duel = table.a[rows] >= 0
    weights = None if weights is None else np.asarray(weights, dtype=np.float64)
    keys, duel_counts, duel_weight = _duel_outcomes(table, rows[duel], None if weights is None else weights[duel])
    ffa = _ffa_outcomes(table, rows[~duel], None if weights is None else weights[~duel])
    pair, rest = np.divmod(keys, 3)
    k_lo, k_hi = np.divmod(pair, m_all)
    present = np.zeros(m_all, dtype=bool)
    present[k_lo] = True
    present[k_hi] = True
    for key, _ in ffa:
        for x, y, _ in key:
            present[x] = present[y] = True
    models_idx = np.flatnonzero(present)
    remap = np.full(m_all, -1, dtype=np.int64)
    remap[models_idx] = np.arange(len(models_idx))
    m = len(models_idx)
    k_lo, k_hi = remap[k_lo], remap[k_hi]
    # duel entries: one per decisive outcome, two per tie
    win = rest < 2
    cells_w = np.where(rest == 0, k_lo * m + k_hi, k_hi * m + k_lo)[win]
    out_w = np.flatnonzero(win)
    tie = np.flatnonzero(~win)
    cells = [cells_w, k_lo[tie] * m + k_hi[tie], k_hi[tie] * m + k_lo[tie]]
    outs = [out_w, tie, tie]
    weights_out = [duel_weight[out_w], 0.5 * duel_weight[tie], 0.5 * duel_weight[tie]]
    f_cells, f_outs, f_weights = _ffa_entries(ffa, remap, m, first=len(keys))
    return PollTable(
        models=table.models[models_idx],
        counts=np.concatenate([duel_counts, np.array(list(ffa.values()), dtype=np.int64)]).astype(np.int64),
        entry_outcome=np.concatenate([*outs, f_outs]).astype(np.int64),
        entry_cell=np.concatenate([*cells, f_cells]).astype(np.int64),
        entry_weight=np.concatenate([*weights_out, f_weights]),
    )


def _duel_outcomes(table: VoteTable, rows: np.ndarray, weights: np.ndarray | None):
    """``(keys, counts, weight)`` of the distinct duel outcomes: key = (lo * M + hi) * 3 + r with lo < hi
    model indices and r 0 (lo won), 1 (hi won), 2 (a tie; both bad is a tie here)."""
    m_all = len(table.models)
    a, b, res = table.a[rows].astype(np.int64), table.b[rows].astype(np.int64), table.result[rows]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    r = np.where(res >= 2, 2, res.astype(np.int64))
    r = np.where((a > b) & (r < 2), 1 - r, r)
    codes = (lo * m_all + hi) * 3 + r
    if weights is None:
        keys, counts = np.unique(codes, return_counts=True)
        return keys, counts, np.ones(len(keys))
    grouped, counts = np.unique(np.column_stack([codes.astype(np.float64), weights]), axis=0, return_counts=True)
    return grouped[:, 0].astype(np.int64), counts, grouped[:, 1]


def _ffa_outcomes(table: VoteTable, rows: np.ndarray, weights: np.ndarray | None) -> dict[tuple, int]:
    """Free-for-all polls grouped by their exact pairwise contribution and weight: ``{(key, weight): count}``."""
    index = {int(mid): i for i, mid in enumerate(table.models.tolist())}
    ffa: dict[tuple, int] = {}
    weight_list = [] if weights is None else weights.tolist()
    for n, row in enumerate(rows.tolist()):
        outcome = table.polls[row]
        key = tuple(sorted(_oriented(index[x], index[y], s) for x, y, s in pairwise(outcome)))
        key = (key, 1.0 if weights is None else weight_list[n])
        ffa[key] = ffa.get(key, 0) + 1
    return ffa


def _ffa_entries(ffa: dict[tuple, int], remap: np.ndarray, m: int, first: int):
    """``(cells, outcome numbers, weights)`` of the free-for-all outcomes' wins (numbered from ``first``)."""
    cells, outs, weights = [], [], []
    for j, (key, weight) in enumerate(ffa):
        for x, y, s in key:
            x, y = int(remap[x]), int(remap[y])
            if s == 1.0:
                cells.append(x * m + y)
                weights.append(weight)
                outs.append(first + j)
            else:
                cells += [x * m + y, y * m + x]
                weights += [0.5 * weight, 0.5 * weight]
                outs += [first + j, first + j]
    return np.array(cells, dtype=np.int64), np.array(outs, dtype=np.int64), np.array(weights, dtype=np.float64)


def _oriented(x: int, y: int, s: float) -> tuple[int, int, float]:
    """A pairwise result as (winner, loser, 1.0), or (lower index, higher index, 0.5) for a tie."""
    if s == 1.0:
        return (x, y, 1.0)
    if s == 0.0:
        return (y, x, 1.0)
    return (min(x, y), max(x, y), 0.5)


def _objective(theta: np.ndarray, w: np.ndarray, l2: float) -> float:
    d = theta[:, None] - theta[None, :]
    # log sigmoid(d) = -log1p(exp(-d)), computed stably
    return float(-(w * np.logaddexp(0.0, -d)).sum() - 0.5 * l2 * theta @ theta)


def fit_log_odds(w: np.ndarray, *, l2: float = 1e-6, theta0: np.ndarray | None = None, tol: float = 1e-9,
                 max_iter: int = 100) -> np.ndarray:
    """Maximise the penalised Bradley–Terry log-likelihood of the wins matrix ``w`` (natural log-odds).

    The penalty is symmetric, so the maximum has mean(θ) = 0: the iterates are kept centred and each Newton
    step is solved in that subspace, where the system is well conditioned. Stops when a step moves no
    log-odds by more than ``tol`` (1e-9, about 2e-7 Elo) or steps stop shrinking at rounding level."""
    m = w.shape[0]
    n = w + w.T
    theta = np.zeros(m) if theta0 is None else np.array(theta0, dtype=np.float64)
    theta -= theta.mean()
    value = _objective(theta, w, l2)
    previous = np.inf
    for _ in range(max_iter):
        d = theta[:, None] - theta[None, :]
        p = 0.5 * (1.0 + np.tanh(0.5 * d))  # sigmoid, stable
        grad = (w - n * p).sum(axis=1) - l2 * theta
        grad -= grad.mean()  # exactly zero in exact arithmetic for centred theta
        h = n * p * (1.0 - p)
        neg_hess = -h
        diagonal = h.sum(axis=1) + l2
        neg_hess[np.diag_indices(m)] = diagonal
        neg_hess += diagonal.mean() / m  # acts only along the constant direction, which the step lacks
        step = np.linalg.solve(neg_hess, grad)
        step -= step.mean()
        # Backtrack only on a real decrease: near the optimum the change is below rounding noise.
        t = 1.0
        noise = 1e-10 * (1.0 + abs(value))
        while True:
            candidate = theta + t * step
            new_value = _objective(candidate, w, l2)
            if new_value >= value - noise or t < 1e-8:
                break
            t *= 0.5
        theta, value = candidate, new_value
        size = float(np.max(np.abs(t * step))) if m else 0.0
        if size < tol or (size < 1e-6 and size >= previous):
            break
        previous = size
    return theta


def rank_by_interval(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """1 + the number of models whose lower bound is above this model's upper bound."""
    lower, upper = np.asarray(lower), np.asarray(upper)
    return 1 + (lower[None, :] > upper[:, None]).sum(axis=1)


@dataclass
class BTResult:
    models: np.ndarray  # model ids
    rating: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    rank: np.ndarray
    params: BTParams

    def as_dict(self) -> dict[int, dict[str, float]]:
        return {
            int(m): {"bt": float(r), "bt_lo": float(lo), "bt_hi": float(hi), "rank": int(k)}
            for m, r, lo, hi, k in zip(self.models, self.rating, self.lower, self.upper, self.rank)
        }


def _to_elo(theta: np.ndarray, models: np.ndarray, params: BTParams, present: np.ndarray | None = None) -> np.ndarray:
    """Ratings on the Elo scale, anchored; models not ``present`` (absent from a bootstrap round) are NaN."""
    factor = params.scale / math.log(params.base)
    if present is None:
        present = np.ones(len(models), dtype=bool)
    if params.anchor is None:
        shift = theta[present].mean()
    else:
        where = np.flatnonzero((models == params.anchor) & present)
        if not len(where):
            if not (models == params.anchor).any():
                raise ValueError(f"anchor model {params.anchor} has no votes in this scope")
            return np.full(len(models), np.nan)
        shift = theta[where[0]]
    return np.where(present, params.initial + factor * (theta - shift), np.nan)


def bradley_terry(polls: PollTable, params: BTParams = BTParams()) -> BTResult:
    """MLE ratings of the scope's models with bootstrap intervals and rank by interval."""
    theta, rating = point_estimate(polls, params)
    return with_interval(polls, params, theta, rating)


def point_estimate(polls: PollTable, params: BTParams = BTParams()) -> tuple[np.ndarray, np.ndarray]:
    """``(log-odds, anchored Elo-scale ratings)`` of the MLE."""
    if len(polls.models) == 0:
        return np.zeros(0), np.zeros(0)
    theta = fit_log_odds(polls.wins_matrix(), l2=params.l2)
    return theta, _to_elo(theta, polls.models, params)


def with_interval(polls: PollTable, params: BTParams, theta: np.ndarray, rating: np.ndarray) -> BTResult:
    """The result with its bootstrap interval (warm-started from the MLE ``theta``) and rank."""
    if params.rounds == 0 or len(polls.models) == 0:
        lower, upper = rating.copy(), rating.copy()
    else:
        lower, upper = interval(bootstrap_ratings(polls, params, theta), params.confidence)
    return BTResult(polls.models, rating, lower, upper, rank_by_interval(lower, upper), params)


def bootstrap_ratings(polls: PollTable, params: BTParams, theta0: np.ndarray | None = None) -> np.ndarray:
    """(rounds, models) anchored ratings, one row per bootstrap round; the same for the same seed.

    Round i draws its poll counts with ``numpy.random.default_rng(seed).multinomial`` (the i-th draw). A model
    that no resampled poll contains has no rating in that round (NaN), and is left out of the mean anchor."""
    rng = np.random.default_rng(params.seed)
    n = polls.polls
    p = polls.counts / n
    m = len(polls.models)
    out = np.empty((params.rounds, m))
    for i in range(params.rounds):
        counts = rng.multinomial(n, p)
        w = polls.wins_matrix(counts)
        present = (w.sum(axis=0) + w.sum(axis=1)) > 0
        theta = fit_log_odds(w, l2=params.l2, theta0=theta0)
        out[i] = _to_elo(theta, polls.models, params, present)
    return out


def interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The central ``confidence`` percentile range of each column, ignoring NaN rounds."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    return np.nanpercentile(samples, tail, axis=0), np.nanpercentile(samples, 100.0 - tail, axis=0)


def scope_poll_table(table: VoteTable, scope: str, params: BTParams = BTParams()) -> PollTable:
    """The scope's poll table, weighted as ``params.weighting`` says."""
    rows = table.rows_in(scope)
    return poll_table(table, rows, ipw_weights(table, rows) if params.weighting == "ipw" else None)


def bradley_terry_scope(table: VoteTable, scope: str, params: BTParams = BTParams()) -> BTResult:
    return bradley_terry(scope_poll_table(table, scope, params), params)


__all__ = [
    "BTParams", "BTResult", "PollTable", "bootstrap_ratings", "bradley_terry", "bradley_terry_scope",
    "fit_log_odds", "interval", "ipw_weights", "point_estimate", "poll_table", "rank_by_interval",
    "scope_poll_table", "with_interval",
]
