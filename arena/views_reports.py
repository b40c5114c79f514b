"""Leaderboard reports (intervals, plots, exports), vote-log downloads and the stats page.

Bad input (unknown scope, format or plot) is a 400 with a plain message, never a 500.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from arena import plots, reports, selectors
from arena.models import Scope


def _bad(exc: reports.ReportError) -> HttpResponse:
    return HttpResponse(exc.message + "\n", status=exc.status, content_type="text/plain; charset=utf-8")


def _download(response: HttpResponse, filename: str, request: HttpRequest) -> HttpResponse:
    disposition = "inline" if request.GET.get("inline") == "1" else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def reports_context(request: HttpRequest, scope: str) -> dict:
    """What the leaderboard's reports section shows (also used by the ``leaderboard_reports`` template tag)."""
    board = reports.leaderboard_current(scope=scope)
    return {
        "board": board,
        "scope": scope,
        "scope_label": Scope(scope).label,
        "plots": plots.PLOTS,
        "export_formats": (("csv", "CSV"), ("json", "JSON"), ("md", "Markdown")),
        "vote_log_allowed": vote_log_allowed(request),
        "request": request,
    }


@require_GET
def leaderboard_reports(request: HttpRequest) -> HttpResponse:
    """Bradley–Terry intervals, plots and downloads of one scope: a page, or the leaderboard's section (htmx)."""
    try:
        scope = reports.scope_clean(request.GET.get("scope"))
    except reports.ReportError as exc:
        return _bad(exc)
    context = reports_context(request, scope)
    if request.htmx:
        return render(request, "arena/_leaderboard_reports.html", context)
    context["scopes"] = selectors.scope_choices()
    return render(request, "arena/leaderboard_reports.html", context)


@require_GET
def leaderboard_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """``/leaderboard/export.<csv|json|md>?scope=<scope>``: the stored leaderboard as a file."""
    try:
        scope = reports.scope_clean(request.GET.get("scope"))
        if fmt not in reports.EXPORT_FORMATS:
            raise reports.ReportError(f"Unknown format {fmt!r}; use one of {', '.join(reports.EXPORT_FORMATS)}.")
    except reports.ReportError as exc:
        return _bad(exc)
    board = reports.leaderboard_current(scope=scope)
    response = HttpResponse(reports.leaderboard_export(board, fmt), content_type=reports.EXPORT_FORMATS[fmt])
    response["X-Vote-Log-Hash"] = board.snapshot.vote_log_hash
    return _download(response, f"leaderboard-{scope}.{fmt}", request)


def vote_log_allowed(request: HttpRequest) -> bool:
    """Vote logs go to staff and API-token holders (or to anyone with ``ARENA_PUBLIC_VOTE_LOG``)."""
    if reports.vote_log_public():
        return True
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    try:
        return TokenAuthentication().authenticate(request) is not None
    except exceptions.AuthenticationFailed:
        return False


def _vote_log_response(request: HttpRequest, kind: str) -> HttpResponse:
    try:
        scope = reports.scope_clean(request.GET.get("scope"))
    except reports.ReportError as exc:
        return _bad(exc)
    if not vote_log_allowed(request):
        response = HttpResponse(
            "The vote log is for staff and API token holders (Authorization: Token <key>).\n", status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = "Token"
        return response
    log = reports.vote_log(scope)
    if kind == "battles":
        response = StreamingHttpResponse(reports.battles_stream(log), content_type="application/json")
        name = f"battles-{scope}.json"
    else:
        response = StreamingHttpResponse(reports.jsonl_stream(log), content_type="application/x-ndjson")
        name = f"votes-{scope}.jsonl"
    response["Cache-Control"] = "private, no-store"
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
    """``/leaderboard/plots/<kind>.<png|svg>?scope=``; ``download=1`` makes it an attachment."""
    try:
        scope = reports.scope_clean(request.GET.get("scope"))
        plots.plot_clean(kind, fmt)
    except reports.ReportError as exc:
        return _bad(exc)
    data, board = plots.plot_bytes(kind, fmt, scope=scope)
    response = HttpResponse(data, content_type=plots.FORMATS[fmt])
    response["ETag"] = f'"{board.snapshot.vote_log_hash[:20]}-{kind}-{fmt}"'
    patch_cache_control(response, public=True, max_age=60)
    if request.GET.get("download") == "1":
        response["Content-Disposition"] = f'attachment; filename="{kind}-{scope}.{fmt}"'
    return response


@require_GET
def stats(request: HttpRequest) -> HttpResponse:
    """The health of the evaluation: position bias, tie and both-bad rates, flagged votes, anomalous voters,
    and the automatic judges' agreement with people."""
    context = {
        "health": reports.evaluation_health(),
        "agreement": reports.judge_agreement(),
        "thresholds": {
            "min_picks": reports.ANOMALY_MIN_PICKS, "same_position": reports.ANOMALY_SAME_POSITION,
            "min_flagged": reports.ANOMALY_MIN_FLAGGED, "flagged_share": reports.ANOMALY_FLAGGED_SHARE,
            "tie_share": reports.ANOMALY_TIE_SHARE,
        },
    }
    template = "arena/_stats.html" if request.htmx else "arena/stats.html"
    return render(request, template, context)
