"""Leaderboard plots, drawn on the server with matplotlib's Agg canvas (no pyplot, no global state) as PNG or
SVG, and cached in the Django cache under the hash of the vote log they were drawn from.

Kinds (:data:`PLOTS`):

* ``ratings``: Bradley–Terry ratings with their 95% bootstrap intervals (from the stored leaderboard);
* ``winrate``: the pairwise win-rate matrix (row model's share of wins against the column model, ties half);
* ``battles``: the pairwise battle-count matrix (free-for-all polls expanded to pairs);
* ``elo_over_time``: online Elo after each vote for the top models, replayed with ``ratings.online``;
* ``votes_per_day``: counted votes per UTC day, stacked by mode.

Matrices and the Elo lines show at most :data:`MAX_MODELS` models, best first by the stored leaderboard.

Sizes (:data:`SIZES`): ``desktop`` (about 8 in wide, as before) and ``phone`` (4 in wide, for a 390 px screen:
larger fonts, fewer models and shorter names, fewer date ticks, legends and colour bars below the plot instead
of beside it). Both are drawn on a white card (the page frames it with a rounded border): the same file serves
the page and the downloads, and the colour maps and cell labels are chosen for a light ground.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json

from dataclasses import dataclass

import numpy as np
from django.core.cache import cache

from arena.errors import ReportError
from arena.selectors.votelog import vote_records, votes_per_day
from arena.services.leaderboards import Board, leaderboard_current
from arena.models import Mode, Scope
from arena.rating_settings import elo_params
from ratings.bradley_terry import poll_table
from ratings.log import VoteTable
from ratings.online import elo_update

PLOTS = {
    "ratings": "Bradley–Terry rating with 95% interval",
    "winrate": "Pairwise win rate",
    "battles": "Battle counts",
    "elo_over_time": "Elo over time",
    "votes_per_day": "Votes per day",
}
FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
SIZES = ("desktop", "phone")
MAX_MODELS = 20
MAX_LINES = 10
CACHE_SECONDS = 24 * 3600


def plot_clean(kind: str, fmt: str, size: str = "desktop") -> tuple[str, str, str]:
    if kind not in PLOTS:
        raise ReportError(f"Unknown plot {kind!r}; use one of {', '.join(PLOTS)}.")
    if fmt not in FORMATS:
        raise ReportError(f"Unknown image format {fmt!r}; use png or svg.")
    if size not in SIZES:
        raise ReportError(f"Unknown plot size {size!r}; use {' or '.join(SIZES)}.")
    return kind, fmt, size


def cache_key(kind: str, fmt: str, board: Board, size: str = "desktop") -> str:
    params = hashlib.sha256(json.dumps(board.snapshot.params, sort_keys=True).encode()).hexdigest()[:12]
    return f"arena:plot:v2:{kind}:{fmt}:{size}:{board.scope}:{board.snapshot.vote_log_hash}:{params}"


def plot_bytes(kind: str, fmt: str, *, scope: str, size: str = "desktop") -> tuple[bytes, Board]:
    """The plot as PNG or SVG bytes, from the cache when the vote log is unchanged."""
    kind, fmt, size = plot_clean(kind, fmt, size)
    board = leaderboard_current(scope=scope)
    key = cache_key(kind, fmt, board, size)
    data = cache.get(key)
    if data is None:
        data = render(kind, fmt, board, size)
        cache.set(key, data, timeout=CACHE_SECONDS)
    return data, board


# --- drawing ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """What changes between a desktop and a phone plot."""

    phone: bool
    width: float  # inches
    font: float  # ticks, labels, legend
    title: float
    cell: float  # numbers in matrix cells
    name: int  # longest model name, characters
    models: int  # most models in a matrix
    lines: int  # most Elo lines
    rows: int  # most rating rows
    row_height: float  # inches per rating row


STYLES = {
    "desktop": Style(False, 8, 8, 10, 7, 28, MAX_MODELS, MAX_LINES, 2 * MAX_MODELS, 0.35),
    # 4 in is 384 CSS px in an SVG and 400 px in a PNG; shown about 350 px wide on a 390 px phone, so 11 pt
    # text reads as about 10 pt there
    "phone": Style(True, 4, 11, 12, 10, 16, 8, 6, MAX_MODELS, 0.42),
}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, fmt: str) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    # no date in the metadata: the same log gives the same file
    metadata = {"Date": None} if fmt == "svg" else {}
    fig.savefig(buf, format=fmt, metadata=metadata, facecolor="white")
    return buf.getvalue()


def _short(name: str, n: int = 28) -> str:
    """Cut in the middle: checkpoint names share long prefixes and differ at the end."""
    if len(name) <= n:
        return name
    head = (n - 1) // 2
    return name[:head] + "…" + name[len(name) - (n - 1 - head):]


def _empty(fig, message: str):
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="#555")


def _dates(ax, style: Style, fig) -> None:
    if style.phone:
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator(minticks=2, maxticks=4)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    else:
        fig.autofmt_xdate()


def _legend(ax, style: Style, **desktop) -> None:
    if style.phone:  # below the axes: beside them it would take half of a phone's width
        ax.legend(fontsize=style.font - 1, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    else:
        ax.legend(**desktop)


def render(kind: str, fmt: str, board: Board, size: str = "desktop") -> bytes:
    return _DRAW[kind](board, fmt, STYLES[size])


def _draw_ratings(board: Board, fmt: str, style: Style) -> bytes:
    rows = [r for r in board.rows if r["bt"] is not None][: style.rows]
    fig = _figure(style.width, max(2.5, style.row_height * len(rows) + 1.2))
    head = "Bradley–Terry rating\n95% interval" if style.phone else PLOTS["ratings"]
    title = f"{head} ({Scope(board.scope).label}, {board.snapshot.vote_count} votes)"
    if not rows:
        _empty(fig, "No votes yet")
        return _save(fig, fmt)
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    bt = np.array([r["bt"] for r in rows])
    lo = np.array([r["bt_lo"] if r["bt_lo"] is not None else r["bt"] for r in rows])
    hi = np.array([r["bt_hi"] if r["bt_hi"] is not None else r["bt"] for r in rows])
    err = np.vstack([np.maximum(bt - lo, 0), np.maximum(hi - bt, 0)])
    ax.errorbar(bt, y, xerr=err, fmt="o", color="#3b5bdb", ecolor="#748ffc", capsize=3)
    ax.set_yticks(y, [f"{r['rank']}. {_short(r['model'], style.name)}" for r in rows])
    ax.tick_params(labelsize=style.font)
    ax.set_xlabel("rating (Elo scale)", fontsize=style.font)
    ax.set_title(title, fontsize=style.title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, fmt)


def _pair_matrices(board: Board, style: Style = STYLES["desktop"]) -> tuple[list[str], np.ndarray]:
    """(names, W) for the top models: W[i, j] = wins of i over j, ties counting half."""
    records = vote_records(board.scope)
    if not records:
        return [], np.zeros((0, 0))
    table = VoteTable.from_records(records)
    polls = poll_table(table, table.rows_in(board.scope))
    w = polls.wins_matrix()
    index = {int(m): i for i, m in enumerate(polls.models.tolist())}
    top = [r for r in board.rows if r["model_id"] in index][: style.models]
    order = [index[r["model_id"]] for r in top]
    return [_short(r["model"], min(style.name, 22)) for r in top], w[np.ix_(order, order)]


def _matrix(board: Board, fmt: str, kind: str, style: Style) -> bytes:
    names, w = _pair_matrices(board, style)
    n = len(names)
    if style.phone:
        fig = _figure(style.width, style.width + 1.4)
    else:
        fig = _figure(max(5, 0.45 * n + 3), max(4, 0.45 * n + 2))
    if n < 2:
        _empty(fig, "Not enough models with votes")
        return _save(fig, fmt)
    games = w + w.T
    if kind == "winrate":
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(games > 0, w / games, np.nan)
        cmap, vmin, vmax, label = "RdBu", 0.0, 1.0, "row model's win rate"
    else:
        values = np.where(np.eye(n, dtype=bool), np.nan, games)
        cmap, vmin, vmax, label = "viridis", 0.0, max(float(np.nanmax(values)) if n else 1.0, 1.0), "battles"
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=style.font)
    ax.set_yticks(range(n), names, fontsize=style.font)
    if not style.phone:  # on a phone the names take the width; the colour bar says it is the row model's
        ax.set_xlabel("model B", fontsize=style.font)
        ax.set_ylabel("model A", fontsize=style.font)
    if style.phone:
        bar = fig.colorbar(image, ax=ax, location="bottom", shrink=0.9, pad=0.22, aspect=30)
    else:
        bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label(label, fontsize=style.font)
    bar.ax.tick_params(labelsize=style.font - 1)
    if n <= (6 if style.phone else 15):
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                if np.isfinite(v):
                    text = f"{v:.2f}" if kind == "winrate" else f"{v:g}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=style.cell,
                            color="black" if kind == "winrate" or v > vmax / 2 else "white")
    ax.set_title(f"{PLOTS[kind]} ({Scope(board.scope).label})", fontsize=style.title)
    return _save(fig, fmt)


def _draw_winrate(board: Board, fmt: str, style: Style) -> bytes:
    return _matrix(board, fmt, "winrate", style)


def _draw_battles(board: Board, fmt: str, style: Style) -> bytes:
    return _matrix(board, fmt, "battles", style)


def elo_history(
    board: Board, points: int = 300, lines: int = MAX_LINES
) -> tuple[list[dt.datetime], dict[int, list[float]]]:
    """Online Elo of the top models after each vote of the scope (sampled to about ``points`` steps),
    replayed with ``ratings.online.elo_update``, the function the live vote path uses."""
    records = vote_records(board.scope)
    top = [r["model_id"] for r in board.rows[:lines]]
    params = elo_params()
    ratings: dict[int, float] = {}
    step = max(1, len(records) // points)
    times: list[dt.datetime] = []
    series: dict[int, list[float]] = {m: [] for m in top}
    for i, record in enumerate(records):
        ratings.update(elo_update(ratings, record.outcome, params))
        if i % step == 0 or i == len(records) - 1:
            times.append(dt.datetime.fromtimestamp(record.timestamp, tz=dt.timezone.utc))
            for m in top:
                series[m].append(ratings.get(m, np.nan))
    return times, series


def _draw_elo_over_time(board: Board, fmt: str, style: Style) -> bytes:
    fig = _figure(style.width, 5.2 if style.phone else 4.5)
    times, series = elo_history(board, lines=style.lines)
    if not times:
        _empty(fig, "No votes yet")
        return _save(fig, fmt)
    ax = fig.add_subplot()
    names = {r["model_id"]: r["model"] for r in board.rows}
    for model, values in series.items():
        label = _short(names.get(model, f"#{model}"), style.name)
        ax.plot(times, values, label=label, drawstyle="steps-post", linewidth=1.4)
    ax.axhline(elo_params().initial, color="#999", linewidth=0.8, linestyle=":")
    ax.set_ylabel("online Elo", fontsize=style.font)
    ax.tick_params(labelsize=style.font)
    ax.set_title(f"{PLOTS['elo_over_time']} ({Scope(board.scope).label}, top {len(series)})", fontsize=style.title)
    _legend(ax, style, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    _dates(ax, style, fig)
    return _save(fig, fmt)


def _draw_votes_per_day(board: Board, fmt: str, style: Style) -> bytes:
    fig = _figure(style.width, 4.2 if style.phone else 3.5)
    per_mode = votes_per_day(board.scope)
    days = sorted({d for counts in per_mode.values() for d in counts})
    if not days:
        _empty(fig, "No votes yet")
        return _save(fig, fmt)
    ax = fig.add_subplot()
    bottom = np.zeros(len(days))
    for mode in Mode.values:
        if mode not in per_mode:
            continue
        counts = np.array([per_mode[mode].get(d, 0) for d in days], dtype=float)
        ax.bar(days, counts, bottom=bottom, label=Mode(mode).label, width=0.8)
        bottom += counts
    ax.set_ylabel("counted votes", fontsize=style.font)
    ax.tick_params(labelsize=style.font)
    ax.set_title(f"{PLOTS['votes_per_day']} ({Scope(board.scope).label})", fontsize=style.title)
    _legend(ax, style, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    if style.phone:  # at most four day labels, without the hours a date axis would add
        shown = days[:: max(1, -(-len(days) // 4))]
        ax.set_xticks(shown, [d.strftime("%b %d") for d in shown])
    else:
        fig.autofmt_xdate()
    return _save(fig, fmt)


_DRAW = {
    "ratings": _draw_ratings,
    "winrate": _draw_winrate,
    "battles": _draw_battles,
    "elo_over_time": _draw_elo_over_time,
    "votes_per_day": _draw_votes_per_day,
}
