"""The per-character page, the aesthetic KDE plot and the scorer status pages."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from generation.scoring.models import ImageScore

from .conftest import solid

def test_character_page_shows_ccip_per_model_and_not_computed(world, no_scorers):
    char = world.character("Cirno", references=[solid((0, 0, 255))])
    v = world.variant("Illustrious v2.0")
    img = world.image(v, world.prompt("cirno", char), solid((0, 0, 250)))
    client = Client()
    page = client.get(f"/scores/characters/{char.id}/")
    assert page.status_code == 200
    assert b"not computed" in page.content
    ImageScore.objects.create(image=img, kind="ccip", value=0.1234, same_ratio=1.0, references=1, scorer_hash="h",
                              computed_at=timezone.now())
    page = client.get(f"/scores/characters/{char.id}/")
    assert b"Illustrious v2.0" in page.content and b"0.1234" in page.content and b"100.0%" in page.content
    partial = client.get(f"/scores/characters/{char.id}/", HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content and b"0.1234" in partial.content
    listing = client.get("/scores/characters/")
    assert b"Cirno" in listing.content
    assert client.get("/scores/characters/999999/").status_code == 404


def test_aesthetic_kde_is_a_png_once_there_are_scores(world):
    client = Client()
    assert client.get("/scores/aesthetic-kde.png").status_code == 404
    p = world.prompt("x")
    for name, values in (("base", [4.0, 4.5, 5.0, 5.2]), ("aesthetic", [5.5, 6.0, 6.4]), ("single", [5.0])):
        v = world.variant(name)
        for n, value in enumerate(values):
            img = world.image(v, p, solid((n, 1, 2)), settings_key=f"k{n}")
            ImageScore.objects.create(image=img, kind="aesthetic", value=value, scorer_hash="h", computed_at=timezone.now())
    response = client.get("/scores/aesthetic-kde.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_status_page_is_for_staff_and_lists_scorers(db, scorers):
    client = Client()
    assert client.get("/scores/status/").status_code == 302
    staff = get_user_model().objects.create_user("admin", password="pw", is_staff=True)
    client.force_login(staff)
    page = client.get("/scores/status/")
    assert page.status_code == 200 and b"installed" in page.content and b"CCIP" in page.content


def test_admin_score_list_shows_scorer_status(db, no_scorers):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/scoring/imagescore/")
    assert page.status_code == 200
    assert b"CCIP is not installed" in page.content
