"""Pages of the automatic scores: characters (CCIP per model), the aesthetic KDE plot, scorer status."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from generation.models import Character, Image
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
    scorers = selectors.scorer_status()
    images = Image.objects.count()
    states = {"installed": "installed, ready", "missing": "not installed", "broken": "installed but broken"}
    for row in scorers:
        row["state_words"] = states.get(row["state"], row["state"])
        share = f" ({100 * row['scored'] / images:.0f}%)" if images else ""
        row["scored_words"] = f"{row['scored']:,} of {images:,} images{share}"
    return render(request, "scoring/status.html", {
        "scorers": scorers, "images": images, "any_installed": any(r["installed"] for r in scorers),
        "reward": selectors.reward_judge(), "prescreen": selectors.reward_prescreen()})


@staff_required
@require_POST
def scorer_enqueue(request):
    """Queue the scoring of every image on the ``gpu`` queue; the workers compute only the scores missing for the
    current scorer files (what ``score_images --missing-only`` does)."""
    from generation.scoring.services import scores_enqueue_for_images

    if not any(r["installed"] for r in selectors.scorer_status()):
        messages.error(request, "No scorer is installed: put the scorer files in the scorer folder first.")
        return redirect("scoring:status")
    ids = list(Image.objects.values_list("id", flat=True))
    scores_enqueue_for_images(ids)
    messages.success(request, f"Queued {len(ids):,} images for scoring; only missing scores are computed.")
    return redirect("scoring:status")
