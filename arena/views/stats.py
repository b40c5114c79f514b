"""The stats page: the health of the evaluation."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from django.conf import settings

from arena import health
from arena.models import VoterExclusion
from arena.permissions import is_staff, staff_required
from arena.services import hygiene


@require_GET
def stats(request: HttpRequest) -> HttpResponse:
    """The health of the evaluation: position bias, tie and both-bad rates, flagged votes, anomalous voters,
    and the automatic judges' agreement with people."""
    context = {
        "health": health.evaluation_health(),
        "agreement": health.judge_agreement(),
        "hygiene": {"fdr": settings.HYGIENE_FDR, "min_votes": settings.HYGIENE_MIN_VOTES,
                    "fast_min": health.FAST_MIN_VOTES, "fast_share": health.FAST_SHARE},
        "can_exclude": is_staff(request.user),
    }
    template = "arena/_stats.html" if request.htmx else "arena/stats.html"
    return render(request, template, context)



@staff_required
@require_POST
def voter_exclusion(request: HttpRequest) -> HttpResponse:
    """Staff: leave a flagged voter's votes out of the ratings (or bring them back), from the stats page."""
    judge = request.POST.get("judge", "")
    try:
        if request.POST.get("action") == "include":
            exclusion = VoterExclusion.objects.filter(voter_key=hygiene.voter_key_for(judge=judge), lifted_at__isnull=True).first()
            if exclusion is None:
                raise hygiene.HygieneError("This voter's votes are not left out.")
            hygiene.voter_include(exclusion=exclusion)
            messages.success(request, "The voter's votes count again; the ratings are being rebuilt.")
        else:
            hygiene.voter_exclude(judge=judge, reason=request.POST.get("reason", ""), by=request.user)
            messages.success(request, "The voter's votes are left out; the ratings are being rebuilt.")
    except hygiene.HygieneError as exc:
        messages.error(request, exc.message)
    return redirect("arena:stats")
