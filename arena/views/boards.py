"""The leaderboard (one ranking: Bradley–Terry with its interval; Elo, TrueSkill and the automatic judges as
columns), its downloads and plots, and the vote-log exports.

Bad input (unknown scope, format or plot) is a 400 with a plain message, never a 500.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET

from arena import exports, plots, selectors
from arena.errors import ReportError
from arena.inputs import scope_clean
from arena.models import Scope
from arena.permissions import vote_log_allowed
from arena.services import leaderboards
from arena.views.common import poll_response

#: Leaderboard columns a reader may sort by (``?sort=KEY`` or ``?sort=-KEY`` reversed): key → row field.
SORTS = {
    "rank": "rank", "name": "model", "bt": "bt", "elo": "elo", "twa_elo": "twa_elo", "ts": "ts_mu",
    "conservative": "conservative", "votes": "votes", "win_rate": "win_rate",
}
_ASCENDING = {"rank", "name"}  # the natural order of these is smallest first; of the others, largest first
#: The sortable columns of the page: (sort key, heading, what it means).
COLUMNS = (
    ("rank", "Rank", "1 + the number of models whose 95% Bradley–Terry interval lies wholly above"),
    ("name", "Model", ""),
    ("bt", "Bradley–Terry (95% interval)", "maximum-likelihood Bradley–Terry rating on the Elo scale, with the "
     "2.5–97.5% range of a bootstrap that resamples whole polls"),
    ("elo", "Elo", "online Elo after the last vote (K-factor updates in vote order)"),
    ("twa_elo", "Avg Elo", "time-weighted average of the online Elo (the Illustrious paper's Figure 5)"),
    ("ts", "TrueSkill μ ± σ", "TrueSkill skill estimate and its uncertainty"),
    ("conservative", "μ − 3σ", "TrueSkill's conservative skill: 99.7% sure the skill is above this"),
    ("votes", "Votes", "counted polls this model was in"),
    ("win_rate", "Win rate", "share of pairwise games won, ties counting half"),
)


def _bad(exc: ReportError) -> HttpResponse:
    return HttpResponse(exc.message + "\n", status=exc.status, content_type="text/plain; charset=utf-8")


def _download(response: HttpResponse, filename: str, request: HttpRequest) -> HttpResponse:
    disposition = "inline" if request.GET.get("inline") == "1" else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response



def sort_clean(value: str | None) -> tuple[str, bool]:
    """``?sort=`` → (key, reversed); an unknown key is the default order (rank)."""
    value = value or "rank"
    reverse = value.startswith("-")
    key = value.lstrip("-")
    return (key, reverse) if key in SORTS else ("rank", False)


def sorted_rows(rows: list[dict], key: str, reverse: bool) -> list[dict]:
    field = SORTS[key]
    missing = [r for r in rows if r.get(field) is None]
    present = [r for r in rows if r.get(field) is not None]
    natural = key not in _ASCENDING
    present.sort(key=lambda r: (r[field].lower() if isinstance(r[field], str) else r[field]), reverse=natural != reverse)
    return present + missing


def reports_context(request: HttpRequest, board: leaderboards.Board) -> dict:
    """What the leaderboard's reports section shows: the board's provenance, downloads and plots."""
    return {
        "board": board,
        "scope": board.scope,
        "scope_label": Scope(board.scope).label,
        "plots": plots.PLOTS,
        "export_formats": (("csv", "CSV"), ("json", "JSON"), ("md", "Markdown")),
        "vote_log_allowed": vote_log_allowed(request),
        "request": request,
    }


@poll_response
@require_GET
def leaderboard(request: HttpRequest) -> HttpResponse:
    try:
        scope = scope_clean(request.GET.get("scope"))
    except ReportError:
        scope = Scope.OVERALL
    sort, reverse = sort_clean(request.GET.get("sort"))
    board = leaderboards.leaderboard_current(scope=scope)
    auto = selectors.automatic_scores()
    rows = [{**row, "auto": auto.get(row["model_id"])} for row in board.rows]
    rows += [{**row, "unrated": True, "auto": auto.get(row["model_id"])} for row in board.unrated]
    context = {
        **reports_context(request, board),
        "rows": sorted_rows(rows, sort, reverse),
        "sort": sort,
        "reverse": reverse,
        "sort_ascending": (sort in _ASCENDING) != reverse,
        "columns": COLUMNS,
        "scopes": selectors.scope_choices(),
    }
    template = "arena/_board.html" if request.htmx else "arena/leaderboard.html"
    return render(request, template, context)


@require_GET
def leaderboard_reports(request: HttpRequest) -> HttpResponse:
    """Bradley–Terry intervals, plots and downloads of one scope: a page, or the leaderboard's section (htmx)."""
    try:
        scope = scope_clean(request.GET.get("scope"))
    except ReportError as exc:
        return _bad(exc)
    context = reports_context(request, leaderboards.leaderboard_current(scope=scope))
    if request.htmx:
        return render(request, "arena/_leaderboard_reports.html", context)
    context["scopes"] = selectors.scope_choices()
    return render(request, "arena/leaderboard_reports.html", context)


@require_GET
def leaderboard_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """``/leaderboard/export.<csv|json|md>?scope=<scope>``: the stored leaderboard as a file."""
    try:
        scope = scope_clean(request.GET.get("scope"))
        if fmt not in exports.EXPORT_FORMATS:
            raise ReportError(f"Unknown format {fmt!r}; use one of {', '.join(exports.EXPORT_FORMATS)}.")
    except ReportError as exc:
        return _bad(exc)
    board = leaderboards.leaderboard_current(scope=scope)
    response = HttpResponse(exports.leaderboard_export(board, fmt), content_type=exports.EXPORT_FORMATS[fmt])
    response["X-Vote-Log-Hash"] = board.snapshot.vote_log_hash
    response["X-Vote-Log-Head"] = board.snapshot.chain_head  # the hash chain's head where this board read the log
    response["X-Vote-Log-Seq"] = str(board.snapshot.last_seq)
    return _download(response, f"leaderboard-{scope}.{fmt}", request)


def _vote_log_response(request: HttpRequest, kind: str) -> HttpResponse:
    try:
        scope = scope_clean(request.GET.get("scope"))
    except ReportError as exc:
        return _bad(exc)
    if not vote_log_allowed(request):
        response = HttpResponse(
            "The vote log is for staff and API token holders (Authorization: Token <key>).\n", status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = "Token"
        return response
    log = selectors.vote_log(scope)
    if kind == "battles":
        response = StreamingHttpResponse(exports.battles_stream(log), content_type="application/json")
        name = f"battles-{scope}.json"
    else:
        response = StreamingHttpResponse(exports.jsonl_stream(log), content_type="application/x-ndjson")
        name = f"votes-{scope}.jsonl"
    response["Cache-Control"] = "private, no-store"
    response["X-Vote-Log-Head"] = log.head_hash
    return _download(response, name, request)


@require_GET
def vote_battles(request: HttpRequest) -> HttpResponse:
    """``/leaderboard/battles.json?scope=``: the counted votes in Chatbot Arena's clean-battle format."""
    return _vote_log_response(request, "battles")


@require_GET
def vote_jsonl(request: HttpRequest) -> HttpResponse:
    """``/leaderboard/votes.jsonl?scope=``: the counted votes, one JSON object per line."""
    return _vote_log_response(request, "jsonl")


@require_GET
def leaderboard_plot(request: HttpRequest, kind: str, fmt: str) -> HttpResponse:
    """``/leaderboard/plots/<kind>.<png|svg>?scope=&size=desktop|phone``; ``download=1`` makes it an attachment."""
    size = request.GET.get("size") or "desktop"
    try:
        scope = scope_clean(request.GET.get("scope"))
        plots.plot_clean(kind, fmt, size)
    except ReportError as exc:
        return _bad(exc)
    data, board = plots.plot_bytes(kind, fmt, scope=scope, size=size)
    response = HttpResponse(data, content_type=plots.FORMATS[fmt])
    response["ETag"] = f'"{board.snapshot.vote_log_hash[:20]}-{kind}-{fmt}-{size}"'
    patch_cache_control(response, public=True, max_age=60)
    if request.GET.get("download") == "1":
        response["Content-Disposition"] = f'attachment; filename="{kind}-{scope}.{fmt}"'
    return response

