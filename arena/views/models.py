"""Model pages, and the files behind them: thumbnails of the images ``arena.permissions.images_revealed`` lets the
viewer see with their model, and (staff only) the originals and every other media file."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from arena import selectors
from arena.permissions import images_revealed, is_staff, staff_required
from generation.models import Image, ModelVariant


@require_GET
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    variant = get_object_or_404(ModelVariant.objects.select_related("parent"), pk=pk)
    context = {
        "variant": variant,
        "ratings": selectors.model_ratings(pk),
        "record": selectors.model_record(pk),
        "images": selectors.model_images(pk, viewer=request.user),
        "scopes": selectors.scope_choices(),
        "family": selectors.family_tree(variant) if variant.parent_id or variant.children.exists() else None,
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
def image_thumb(request: HttpRequest, image_id: int) -> HttpResponse:
    """``/images/<id>/thumb.webp``: the thumbnail of an image the viewer may see with its model (the model page's
    gallery); anything else is the same 404 as a missing image, so the answer says nothing about polls."""
    image = images_revealed(Image.objects.filter(pk=image_id), viewer=request.user).only("id", "thumb").first()
    if image is None or not image.thumb:
        raise Http404("no such thumbnail")
    try:
        with image.thumb.open("rb") as fh:
            data = fh.read()
    except OSError:
        raise Http404("no such thumbnail") from None
    response = HttpResponse(data, content_type="image/webp")
    # Short and private for staff (they see pool images too); a revealed image stays revealed unless its prompt is
    # taken into a new duel, so public caches keep it only briefly.
    response["Cache-Control"] = "private, max-age=300" if is_staff(request.user) else "public, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response
