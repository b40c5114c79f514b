"""Who meets in the next poll: the ratings engine's randomised design (:mod:`ratings.design`) fed from this
process's snapshots, with the probability of the shown set stored on the poll.

* The candidates are the enabled, healthy models with their TrueSkill beliefs in the poll's mode
  (``selectors.matchmaking_candidates``, a snapshot of a couple of seconds).
* Fixed-prompt and free-for-all polls may only show models that all have an image of one prompt, seed and
  settings (a "group", :mod:`arena.pollgroups`); the design draws among those sets only. A voter is never shown
  an image whose model was revealed to them: in each group the models whose image they saw are excluded, and the
  draw is renormalised over what remains, so the stored probability is exact for that voter.
* Issued-but-unvoted polls lower their pairs' chances, so repeated page loads spread out. A ticket writes
  nothing, so each web process counts the polls it issued itself (:class:`_Open`, forgotten after a couple of minutes or
  when their vote comes back to this process).

``MATCHMAKING_STRATEGY``: ``info`` (the default: a uniform share mixed with sampling in proportion to the
expected information about the pairs' order, see ratings/design.py) or ``uniform``.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from itertools import combinations
from collections import Counter, deque
from dataclasses import dataclass

from django.conf import settings

from arena import pollgroups, selectors
from arena.errors import NoPollAvailable
from arena.models import Mode
from ratings.design import UNIFORM, DesignParams, FeasibleSets, Matchmaker, NotEnoughModels, Pending


@dataclass(frozen=True)
class Draw:
    models: tuple[int, ...]  # screen order
    group: pollgroups.Group | None  # (prompt id, settings key); None for a free-prompt duel
    probability: float  # P(this set of models | what this voter may be shown)


def _params() -> DesignParams:
    return UNIFORM if settings.MATCHMAKING_STRATEGY == "uniform" else DesignParams()


@dataclass
class _Prepared:
    key: tuple
    groups: list[pollgroups.Group]
    feasible: FeasibleSets


_feasible: dict[int, _Prepared] = {}  # per poll size: the sets of the latest snapshot
_lock = threading.Lock()


def _prepared(index: pollgroups.GroupIndex, ids: tuple[int, ...], k: int) -> _Prepared:
    """The feasible sets of these models over the index's groups, enumerated once per image snapshot and poll
    size. Kept per size: duels and free-for-alls alternate, and one shared slot rebuilt the sets at every
    switch (measured: 134 of 330 polls with a quarter free-for-alls, 0.9 ms each under cProfile)."""
    key = (index.fingerprint, index.built_at, ids, k)
    found = _feasible.get(k)
    if found is None or found.key != key:
        groups = sorted(index.images)
        members = [frozenset(index.images[g]) for g in groups]
        found = _Prepared(key, groups, FeasibleSets(ids, k, members))
        with _lock:
            _feasible[k] = found
    return found


_matchmakers: dict[int, tuple[tuple, Matchmaker]] = {}


def _matchmaker(prepared: _Prepared, candidates: list, k: int) -> Matchmaker:
    """The design for this candidate snapshot and these groups, built once per snapshot (every couple of seconds)
    and per poll size, not per poll: its pair values and the sets' summed values do not depend on the voter. It
    caches what it computes from them only (idempotent), so threads may share it."""
    params = _params()
    key = (prepared.key, tuple(candidates), params)
    found = _matchmakers.get(k)
    if found is not None and found[0] == key:
        return found[1]
    matchmaker = Matchmaker(candidates, k, params=params, feasible=prepared.feasible)
    _matchmakers[k] = (key, matchmaker)
    return matchmaker


def _excluded(prepared: _Prepared, index: pollgroups.GroupIndex, seen: set[int]) -> dict[int, set[int]]:
    if not seen:
        return {}
    position = {g: i for i, g in enumerate(prepared.groups)}
    out: dict[int, set[int]] = {}
    for image_id in seen:
        info = index.info.get(image_id)
        if info is not None and info.group in position:
            out.setdefault(position[info.group], set()).add(info.variant_id)
    return out


def draw_fixed(*, mode: str, voter_key: str, rng: random.Random) -> Draw:
    """The models and group of a fixed-prompt duel or free-for-all poll for this voter."""
    k = 4 if mode == Mode.FFA else 2
    index = pollgroups.index()
    candidates = [c for c in selectors.matchmaking_candidates(scope=mode) if c.id in index.by_variant]
    try:
        prepared = _prepared(index, tuple(c.id for c in candidates), k)
        pick = _matchmaker(prepared, candidates, k).draw(rng, pending_polls(mode),
                               excluded=_excluded(prepared, index, selectors.revealed_images(voter_key=voter_key)))
    except NotEnoughModels:
        raise NoPollAvailable(
            f"No prompt has images of {k} models you have not seen yet; ask an admin to run a generation job."
        ) from None
    return Draw(models=pick.models, group=prepared.groups[pick.group], probability=pick.probability)


def draw_live(*, rng: random.Random) -> Draw:
    """The two models of a free-prompt duel (generated live: every pair of generating models is feasible)."""
    candidates = selectors.matchmaking_candidates(scope=Mode.FREE, generating=True)
    try:
        pick = Matchmaker(candidates, 2, None, _params()).draw(rng, pending_polls(Mode.FREE))
    except NotEnoughModels:
        raise NoPollAvailable(f"Not enough models are ready for a free-prompt duel yet ({len(candidates)} available, 2 needed).") from None
    return Draw(models=pick.models, group=None, probability=pick.probability)


# --- issued-but-unvoted polls, per process --------------------------------------------------------------------

#: How long an issued poll counts as open here: most votes come within a minute or two of the page, and a vote
#: that reaches another process cannot tell this one, so older polls are let go before their expiry.
PENDING_SECONDS = 120.0


class _Open:
    """This process's open polls of one mode, with running counts per model and per pair."""

    def __init__(self) -> None:
        self.order: deque[tuple[float, uuid.UUID]] = deque()  # (until, nonce) in issue order
        self.alive: dict[uuid.UUID, tuple[int, ...]] = {}
        self.models: Counter = Counter()
        self.pairs: Counter = Counter()

    def _count(self, models: tuple[int, ...], sign: int) -> None:
        ids = sorted(set(models))
        for m in ids:
            self.models[m] += sign
        for pair in combinations(ids, 2):
            self.pairs[pair] += sign

    def add(self, nonce: uuid.UUID, models: tuple[int, ...], until: float) -> None:
        self.order.append((until, nonce))
        self.alive[nonce] = models
        self._count(models, 1)

    def prune(self, now: float) -> None:
        while self.order and self.order[0][0] < now:
            self.remove(self.order.popleft()[1])

    def remove(self, nonce: uuid.UUID) -> None:
        models = self.alive.pop(nonce, None)
        if models is not None:
            self._count(models, -1)

    def snapshot(self) -> Pending:
        return Pending({m: c for m, c in self.models.items() if c > 0}, {p: c for p, c in self.pairs.items() if c > 0})


_open: dict[str, _Open] = {}
_open_lock = threading.Lock()


def pending_add(mode: str, nonce: uuid.UUID, models: tuple[int, ...]) -> None:
    until = time.monotonic() + min(PENDING_SECONDS, settings.POLL_TTL_SECONDS)
    with _open_lock:
        _open.setdefault(mode, _Open()).add(nonce, models, until)


def pending_done(mode: str, nonce: uuid.UUID) -> None:
    """A poll of this process was voted: it no longer counts as open."""
    with _open_lock:
        polls = _open.get(mode)
        if polls is not None:
            polls.remove(nonce)


def pending_polls(mode: str) -> Pending:
    with _open_lock:
        polls = _open.get(mode)
        if polls is None:
            return Pending()
        polls.prune(time.monotonic())
        return polls.snapshot()


def pending_forget() -> None:
    with _open_lock:
        _open.clear()
    with _lock:
        _feasible.clear()
        _matchmakers.clear()
