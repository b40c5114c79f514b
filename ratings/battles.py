"""The vote log in Chatbot Arena's clean-battle format, and back.

A battle is ``{"model_a", "model_b", "winner", "judge", "tstamp", "anony", "question_id", "poll_id",
"weight"}`` with ``winner`` one of ``"model_a"``, ``"model_b"``, ``"tie"``, ``"tie (bothbad)"``; a file is
a JSON list of battles in replay order. Model names replace model ids (a ``names`` mapping), ``tstamp`` is
the vote's POSIX time, ``question_id`` is the vote id as a string.

The format is pairwise: a free-for-all poll is written as its pairwise results (see
:mod:`ratings.outcomes`), each with ``question_id`` ``"<vote id>.<pair number>"``; those do not parse
back into the poll (the JSONL export in :mod:`ratings.log` is the lossless one). Duels round-trip
exactly.

``poll_id`` (the record's poll id, or its vote id when it has none: one vote answers one poll) ties the
battles of one poll together: it is the unit to resample. The 3 (best-only) or 6 (full ranking) battles of
a 4-way poll are not independent, and a bootstrap that resamples battles one by one (FastChat's default)
gives intervals too narrow; resampling poll ids gives the leaderboard's intervals. ``weight`` is the
battle's weight in the leaderboard's Bradley–Terry fit: 1.0, or the poll's inverse-propensity weight with
``weighting="ipw"``. Pass it as the sample weight and every battle counts as it does for us; it is not 1/3
or 1/6 per free-for-all battle, because weights cannot stand in for resampling (the fit does not change
when all weights are scaled) and down-weighting would move the ratings away from ours wherever duels and
free-for-all polls are rated together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import IO

import numpy as np

from ratings.bradley_terry import ipw_weights
from ratings.log import A_WON, B_WON, BOTH_BAD, TIE, VoteRecord, VoteTable, in_replay_order
from ratings.outcomes import pairwise

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")  # indexed by A_WON, B_WON, TIE, BOTH_BAD
DEFAULT_JUDGE = "anonymous"


def _duel_result(record: VoteRecord) -> int:
    ra, rb = record.ranks
    if ra < rb:
        return A_WON
    if ra > rb:
        return B_WON
    return BOTH_BAD if record.both_bad else TIE


def clean_battles(
    records: Iterable[VoteRecord], names: Mapping[int, str], *, judges: Mapping[int, str] | None = None,
    anony: bool = True, weighting: str = "none",
) -> Iterator[dict]:
    """Battles of the log in replay order. ``judges`` maps a vote id to its judge (e.g. a salted voter hash;
    never a raw session key); missing ones are ``"anonymous"``. ``weighting`` is the leaderboard's
    (``"none"`` or ``"ipw"``; see :mod:`ratings.bradley_terry`)."""
    judges = judges or {}
    ordered = in_replay_order(records)
    weights = [1.0] * len(ordered)
    if weighting == "ipw" and ordered:
        table = VoteTable.from_records(ordered)
        weights = ipw_weights(table, np.arange(len(table))).tolist()
    elif weighting != "none":
        raise ValueError("weighting is 'none' or 'ipw'")
    for record, weight in zip(ordered, weights):
        judge = judges.get(record.id, DEFAULT_JUDGE)
        poll_id = record.id if record.poll is None else record.poll
        if record.is_duel:
            a, b = record.players
            yield _battle(names[a], names[b], WINNERS[_duel_result(record)], judge, record.timestamp, anony,
                          str(record.id), poll_id, weight)
            continue
        for n, (a, b, score) in enumerate(pairwise(record.outcome)):
            winner = WINNERS[A_WON if score == 1.0 else B_WON if score == 0.0 else TIE]
            yield _battle(names[a], names[b], winner, judge, record.timestamp, anony, f"{record.id}.{n}", poll_id, weight)


def _battle(model_a, model_b, winner, judge, tstamp, anony, question_id, poll_id, weight) -> dict:
    return {
        "model_a": model_a, "model_b": model_b, "winner": winner, "judge": judge, "tstamp": tstamp,
        "anony": anony, "question_id": question_id, "poll_id": poll_id, "weight": weight,
    }


def write_battles(fp: IO[str], battles: Iterable[dict]) -> int:
    """Stream battles to ``fp`` as one JSON list (one battle per line); returns how many were written."""
    count = 0
    fp.write("[")
    for battle in battles:
        fp.write(",\n" if count else "\n")
        fp.write(json.dumps(battle))
        count += 1
    fp.write("\n]\n" if count else "]\n")
    return count


def write_table_battles(
    fp: IO[str], table: VoteTable, names: Mapping[int, str], *, judge: str = DEFAULT_JUDGE, anony: bool = True,
) -> int:
    """:func:`write_battles` of a duel-only :class:`VoteTable`, formatted without building dicts (fast for
    10^6 votes); the output is the same JSON as ``write_battles(fp, clean_battles(...))``."""
    if len(table.polls):
        raise ValueError("write_table_battles takes duel-only tables; use clean_battles for free-for-all")
    quoted = [json.dumps(names[int(m)]) for m in table.models.tolist()]
    winners = [json.dumps(w) for w in WINNERS]
    tail = f', "judge": {json.dumps(judge)}, "tstamp": '
    anony_s = json.dumps(anony)
    sep, first = ",\n", "\n"
    fp.write("[")
    count = 0
    chunk = []
    for vid, ts, a, b, res, poll in zip(table.ids.tolist(), table.timestamps.tolist(), table.a.tolist(),
                                        table.b.tolist(), table.result.tolist(), table.poll.tolist()):
        chunk.append(
            f'{sep if count else first}{{"model_a": {quoted[a]}, "model_b": {quoted[b]}, "winner": {winners[res]}'
            f'{tail}{ts!r}, "anony": {anony_s}, "question_id": "{vid}", "poll_id": {vid if poll < 0 else poll}, '
            f'"weight": 1.0}}'
        )
        count += 1
        if len(chunk) >= 65536:
            fp.write("".join(chunk))
            chunk.clear()
    fp.write("".join(chunk))
    fp.write("\n]\n" if count else "]\n")
    return count


def parse_clean_battles(
    battles: list[dict] | str, model_ids: Mapping[str, int], *, mode: str = "duel"
) -> list[VoteRecord]:
    """Records from clean battles (a parsed list or the JSON text). Each battle is a duel record of ``mode``;
    names map to ids through ``model_ids`` (an unknown name is an error). Record ids are the question ids
    when every question id is a decimal integer, otherwise the battles' positions in the list (0, 1, ...).
    A ``poll_id`` different from the record id is kept as the record's poll."""
    if isinstance(battles, str):
        battles = json.loads(battles)
    qids = [str(b.get("question_id", "")) for b in battles]
    use_qid = all(q.isdigit() for q in qids)
    records = []
    for position, (battle, qid) in enumerate(zip(battles, qids)):
        try:
            result = WINNERS.index(battle["winner"])
        except ValueError:
            raise ValueError(f"battle {position}: unknown winner {battle['winner']!r}") from None
        a, b = model_ids[battle["model_a"]], model_ids[battle["model_b"]]
        ranks = ((0, 1), (1, 0), (0, 0), (0, 0))[result]
        vid = int(qid) if use_qid else position
        poll = battle.get("poll_id")
        records.append(VoteRecord(
            id=vid, timestamp=float(battle["tstamp"]), mode=mode, players=(a, b),
            ranks=ranks, both_bad=result == BOTH_BAD, poll=None if poll is None or poll == vid else poll,
        ))
    return records


def read_clean_battles(path: str, model_ids: Mapping[str, int], *, mode: str = "duel") -> list[VoteRecord]:
    with open(path, encoding="utf-8") as fp:
        return parse_clean_battles(json.load(fp), model_ids, mode=mode)
