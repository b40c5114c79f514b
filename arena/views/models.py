"""Model pages, and the files behind them (thumbnails after the fact; originals for staff)."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from arena import selectors
from arena.permissions import staff_required
from generation.models import ModelVariant


@require_GET
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    variant = get_object_or_404(ModelVariant.objects.select_related("parent"), pk=pk)
    context = {
        "variant": variant,
        "ratings": selectors.model_ratings(pk),
        "record": selectors.model_record(pk),
        "images": selectors.model_images(pk),
        "scopes": selectors.scope_choices(),
    }
    return render(request, "arena/model.html", context)


@staff_required
def staff_media(request: HttpRequest, path: str) -> HttpResponse:
    """Originals (with their A1111 parameters) and other non-public media: staff only."""
    if ".." in path.split("/") or not default_storage.exists(path):
        raise Http404("no such file")
    with default_storage.open(path, "rb") as fh:
        data = fh.read()
    content_type = "image/png" if path.endswith(".png") else "image/webp" if path.endswith(".webp") else "application/octet-stream"
    return HttpResponse(data, content_type=content_type)


@require_GET
def public_thumb(request: HttpRequest, path: str) -> HttpResponse:
    """Thumbnails shown on model pages (after the fact, never in a poll)."""
    full = f"t/{path}"
    if ".." in path.split("/") or not default_storage.exists(full):
        raise Http404("no such thumbnail")
    with default_storage.open(full, "rb") as fh:
        data = fh.read()
    response = HttpResponse(data, content_type="image/webp")
    response["Cache-Control"] = "public, max-age=86400"
    return response

