"""Exports for leaderboard readers: a stored leaderboard as CSV, JSON and Markdown, and the counted vote log in
Chatbot Arena's clean-battle format (via :func:`ratings.battles.clean_battles`) and as JSONL. Voter ids appear
only as ``judge`` (a salted keyed hash); session keys and addresses never leave the database."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from arena.errors import ReportError
from arena.models import Scope
from arena.selectors.votelog import VoteLog
from arena.services.leaderboards import Board
from ratings.battles import clean_battles
from ratings.log import VoteRecord, in_replay_order

EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json", "md": "text/markdown; charset=utf-8"}

#: Columns of the CSV/Markdown exports (the JSON rows carry the same keys).
COLUMNS = (
    "rank", "model_id", "model", "kind", "bt", "bt_lo", "bt_hi", "elo", "twa_elo", "ts_mu", "ts_sigma",
    "conservative", "votes", "games", "wins", "win_rate",
)


def leaderboard_document(board: Board) -> dict:
    """The JSON export (also the API's leaderboard response)."""
    s = board.snapshot
    return {
        "scope": s.scope,
        "computed_at": s.computed_at.isoformat(),
        "vote_log_hash": s.vote_log_hash,
        "vote_log_seq": s.last_seq,
        "vote_log_head": s.chain_head,
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
        f"`{s.vote_log_hash}` · vote-log chain head `{s.chain_head or '–'}` at seq {s.last_seq} · "
        f"{s.params['bt']['rounds']} bootstrap rounds (seed {s.params['bt']['seed']}), "
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
        "seq": record.id,
        "chain": log.chain.get(record.id, ""),
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

