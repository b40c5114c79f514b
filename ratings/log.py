"""The vote log as the ratings engine reads it: records, their stable order, a hash, a columnar table.

A :class:`VoteRecord` is one counted vote: when it was cast, its id, its scope (the poll mode), the models
in screen order with a rank each (see :mod:`ratings.outcomes`), whether the ranking is full, and
whether a tied duel was "both bad" (rated as a tie, kept distinct in the log and the exports). Optionally
the poll it answered (``poll``, an id) and the probability with which the matchmaker drew that poll's
unordered set of models (``propensity``, see :mod:`ratings.design`); both are left out of the canonical
form while unset, so logs written before they existed keep their hashes.

The log's stable order is (timestamp, id): replays, hashes and exports all use it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ratings.outcomes import Outcome

#: The scope that every vote counts in besides its own mode.
OVERALL = "overall"

#: Duel results in a :class:`VoteTable`: left won, right won, tie, both bad.
A_WON, B_WON, TIE, BOTH_BAD = 0, 1, 2, 3
#: Score of the left model for each duel result.
DUEL_SCORE = (1.0, 0.0, 0.5, 0.5)


def _timestamp(value: float | dt.datetime) -> float:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("a vote's datetime must be timezone-aware")
        return value.timestamp()
    return float(value)


@dataclass(frozen=True, slots=True)
class VoteRecord:
    """One counted vote. ``timestamp`` is POSIX seconds (an aware datetime is converted)."""

    id: int
    timestamp: float
    mode: str
    players: tuple[int, ...]
    ranks: tuple[int, ...]
    full_ranking: bool = False
    both_bad: bool = False
    poll: int | None = None
    propensity: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamp", _timestamp(self.timestamp))
        object.__setattr__(self, "players", tuple(int(p) for p in self.players))
        object.__setattr__(self, "ranks", tuple(int(r) for r in self.ranks))
        if self.mode == OVERALL:
            raise ValueError(f"{OVERALL!r} is the scope of all votes, not a mode")
        if self.both_bad and not (len(self.players) == 2 and self.ranks[0] == self.ranks[1]):
            raise ValueError("only a tied duel can be 'both bad'")
        if self.poll is not None:
            object.__setattr__(self, "poll", int(self.poll))
        if self.propensity is not None:
            object.__setattr__(self, "propensity", float(self.propensity))
            if not 0.0 < self.propensity <= 1.0:
                raise ValueError("a propensity is a probability in (0, 1]")
        self.outcome  # validates players and ranks

    @property
    def outcome(self) -> Outcome:
        return Outcome(players=self.players, ranks=self.ranks, full_ranking=self.full_ranking)

    @property
    def is_duel(self) -> bool:
        return len(self.players) == 2

    def sort_key(self) -> tuple[float, int]:
        return (self.timestamp, self.id)

    def as_dict(self) -> dict:
        """The canonical JSON-ready form (also one line of the JSONL export); ``poll`` and ``propensity``
        appear only when set."""
        out = {
            "id": self.id, "timestamp": self.timestamp, "mode": self.mode, "players": list(self.players),
            "ranks": list(self.ranks), "full_ranking": self.full_ranking, "both_bad": self.both_bad,
        }
        if self.poll is not None:
            out["poll"] = self.poll
        if self.propensity is not None:
            out["propensity"] = self.propensity
        return out

    @classmethod
    def from_dict(cls, data: dict) -> VoteRecord:
        return cls(
            id=int(data["id"]), timestamp=float(data["timestamp"]), mode=str(data["mode"]),
            players=tuple(data["players"]), ranks=tuple(data["ranks"]),
            full_ranking=bool(data.get("full_ranking", False)), both_bad=bool(data.get("both_bad", False)),
            poll=data.get("poll"), propensity=data.get("propensity"),
        )


def in_replay_order(records: Iterable[VoteRecord]) -> list[VoteRecord]:
    """The records sorted by (timestamp, id); duplicate ids are an error."""
    ordered = sorted(records, key=VoteRecord.sort_key)
    ids = [r.id for r in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError("two votes share an id")
    return ordered


def vote_log_hash(records: Iterable[VoteRecord]) -> str:
    """SHA-256 (hex) of the log's canonical serialization: one compact JSON object per record (keys sorted,
    floats as Python's shortest round-trip repr), in replay order, newline-terminated. Equal logs give
    equal hashes whatever order the records come in; any change to a rated field changes it."""
    digest = hashlib.sha256()
    for record in in_replay_order(records):
        digest.update(json.dumps(record.as_dict(), sort_keys=True, separators=(",", ":")).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def records_to_jsonl(records: Iterable[VoteRecord]) -> str:
    """The log as JSON lines, in replay order (lossless, unlike the clean-battle format for free-for-all)."""
    return "".join(json.dumps(r.as_dict(), sort_keys=True) + "\n" for r in in_replay_order(records))


def records_from_jsonl(text: str) -> list[VoteRecord]:
    return [VoteRecord.from_dict(json.loads(line)) for line in text.splitlines() if line.strip()]


@dataclass
class VoteTable:
    """A log in replay order as numpy columns, for fast replays of long logs.

    Models are renumbered densely: column ``a``/``b`` hold indices into ``models`` (the sorted model ids).
    Duel rows have ``a``, ``b`` and ``result`` (:data:`A_WON` .. :data:`BOTH_BAD`); free-for-all rows have
    ``a = b = result = -1`` and their outcome (in model ids) in ``polls``. ``propensity`` is NaN and
    ``poll`` is -1 where a record has none.
    """

    ids: np.ndarray  # int64
    timestamps: np.ndarray  # float64
    scope: np.ndarray  # int16 index into ``modes``
    a: np.ndarray  # int32
    b: np.ndarray  # int32
    result: np.ndarray  # int8
    models: np.ndarray  # int64, sorted model ids
    modes: tuple[str, ...]
    polls: dict[int, Outcome] = field(default_factory=dict)
    propensity: np.ndarray | None = None  # float64, NaN where unknown
    poll: np.ndarray | None = None  # int64, -1 where unknown

    def __post_init__(self) -> None:
        if self.propensity is None:
            self.propensity = np.full(len(self.ids), np.nan)
        if self.poll is None:
            self.poll = np.full(len(self.ids), -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_records(cls, records: Iterable[VoteRecord]) -> VoteTable:
        ordered = in_replay_order(records)
        n = len(ordered)
        models = np.array(sorted({p for r in ordered for p in r.players}), dtype=np.int64)
        index = {int(m): i for i, m in enumerate(models)}
        modes = tuple(sorted({r.mode for r in ordered}))
        mode_index = {m: i for i, m in enumerate(modes)}
        a = np.full(n, -1, dtype=np.int32)
        b = np.full(n, -1, dtype=np.int32)
        result = np.full(n, -1, dtype=np.int8)
        polls: dict[int, Outcome] = {}
        for row, r in enumerate(ordered):
            if r.is_duel:
                a[row], b[row] = index[r.players[0]], index[r.players[1]]
                ra, rb = r.ranks
                result[row] = A_WON if ra < rb else B_WON if ra > rb else BOTH_BAD if r.both_bad else TIE
            else:
                polls[row] = r.outcome
        return cls(
            ids=np.array([r.id for r in ordered], dtype=np.int64),
            timestamps=np.array([r.timestamp for r in ordered], dtype=np.float64),
            scope=np.array([mode_index[r.mode] for r in ordered], dtype=np.int16),
            a=a, b=b, result=result, models=models, modes=modes, polls=polls,
            propensity=np.array([np.nan if r.propensity is None else r.propensity for r in ordered], dtype=np.float64),
            poll=np.array([-1 if r.poll is None else r.poll for r in ordered], dtype=np.int64),
        )

    @classmethod
    def from_duels(
        cls, *, ids: np.ndarray, timestamps: np.ndarray, a: np.ndarray, b: np.ndarray, result: np.ndarray,
        models: np.ndarray, mode: str = "duel",
    ) -> VoteTable:
        """A duel-only table straight from columns (already in replay order; checked)."""
        ts = np.asarray(timestamps, dtype=np.float64)
        ids = np.asarray(ids, dtype=np.int64)
        if len(ts) > 1:
            later = (ts[1:] > ts[:-1]) | ((ts[1:] == ts[:-1]) & (ids[1:] > ids[:-1]))
            if not later.all():
                raise ValueError("columns are not in replay order (timestamp, then id)")
        return cls(
            ids=ids, timestamps=ts, scope=np.zeros(len(ts), dtype=np.int16),
            a=np.asarray(a, dtype=np.int32), b=np.asarray(b, dtype=np.int32),
            result=np.asarray(result, dtype=np.int8), models=np.asarray(models, dtype=np.int64), modes=(mode,),
        )

    def to_records(self) -> list[VoteRecord]:
        out = []
        models = self.models.tolist()
        for row, (vid, ts, sc, a, b, res, prop, poll) in enumerate(zip(
            self.ids.tolist(), self.timestamps.tolist(), self.scope.tolist(), self.a.tolist(), self.b.tolist(),
            self.result.tolist(), self.propensity.tolist(), self.poll.tolist(),
        )):
            mode = self.modes[sc]
            extra = {"poll": None if poll < 0 else poll, "propensity": None if prop != prop else prop}
            if a < 0:
                o = self.polls[row]
                out.append(VoteRecord(vid, ts, mode, o.players, o.ranks, o.full_ranking, **extra))
            else:
                ranks = ((0, 1), (1, 0), (0, 0), (0, 0))[res]
                out.append(VoteRecord(vid, ts, mode, (models[a], models[b]), ranks, both_bad=res == BOTH_BAD, **extra))
        return out

    def rows_in(self, scope: str) -> np.ndarray:
        """Row indices counted in ``scope`` (a mode, or :data:`OVERALL` for all rows)."""
        if scope == OVERALL:
            return np.arange(len(self))
        if scope not in self.modes:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.scope == self.modes.index(scope))

    def scopes(self) -> list[str]:
        return [OVERALL, *self.modes]

