"""The stats page: the health of the evaluation."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from arena import health


@require_GET
def stats(request: HttpRequest) -> HttpResponse:
    """The health of the evaluation: position bias, tie and both-bad rates, flagged votes, anomalous voters,
    and the automatic judges' agreement with people."""
    context = {
        "health": health.evaluation_health(),
        "agreement": health.judge_agreement(),
        "thresholds": {
            "min_picks": health.ANOMALY_MIN_PICKS, "same_position": health.ANOMALY_SAME_POSITION,
            "min_flagged": health.ANOMALY_MIN_FLAGGED, "flagged_share": health.ANOMALY_FLAGGED_SHARE,
            "tie_share": health.ANOMALY_TIE_SHARE,
        },
    }
    template = "arena/_stats.html" if request.htmx else "arena/stats.html"
    return render(request, template, context)

