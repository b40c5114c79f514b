"""Pages of the automatic scores: characters (CCIP per model), the aesthetic KDE plot, scorer status."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from generation.models import Character
from generation.permissions import staff_required
from generation.scoring import selectors
from generation.scoring.files import CCIP, scorer_state


@require_GET
def character_list(request):
    return render(request, "scoring/character_list.html", {
        "characters": selectors.characters_with_references(),
        "ccip": scorer_state(CCIP),
    })


@require_GET
def character_detail(request, character_id: int):
    character = get_object_or_404(Character, pk=character_id)
    rows = sorted(selectors.character_scores(character_id=character.id).values(),
                  key=lambda r: (r["ccip_mean"] is None, r["ccip_mean"] or 0.0, r["variant_name"]))
    context = {
        "character": character,
        "rows": rows,
        "references": selectors.character_reference_count(character.id),
        "ccip": scorer_state(CCIP),
    }
    template = "scoring/_character_table.html" if request.htmx else "scoring/character_detail.html"
    return render(request, template, context)


@require_GET
def aesthetic_kde(request):
    from generation.scoring.plots import aesthetic_kde_png

    png = aesthetic_kde_png(selectors.aesthetic_values_by_model())
    if png is None:
        raise Http404("no aesthetic scores yet")
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "max-age=300"
    return response


@staff_required
@require_GET
def scorer_status_page(request):
    return render(request, "scoring/status.html", {"scorers": selectors.scorer_status(),
                                                   "reward": selectors.reward_judge(),
                                                   "prescreen": selectors.reward_prescreen()})
