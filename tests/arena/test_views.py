import base64
import datetime as dt
import struct
import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image as PILImage

from arena import polltickets
from arena.models import Poll, Rating, Scope, Vote
from arena.services.ratings import ratings_apply_all
from generation.models import Image
from tests.arena.factories import make_variant

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _votes_at_a_human_pace(settings):
    """These tests vote as soon as the page is there; the rule for votes faster than a person can judge has its
    own tests (tests/arena/test_services.py)."""
    settings.MIN_VOTE_SECONDS = 0.0


def _token(html: str) -> str:
    match = re.search(r'data-poll="([A-Za-z0-9_=-]+)"', html)
    assert match, html
    return match.group(1)


def _images(token: str) -> list[Image]:
    """The images of an issued poll in screen order (read from its ticket)."""
    ids = polltickets.decode(token).image_ids
    found = Image.objects.in_bulk(ids)
    return [found[i] for i in ids]


def test_duel_page_is_a_full_page_and_its_htmx_partial_is_not(client, arena):
    full = client.get(reverse("arena:fixed"))
    assert full.status_code == 200
    assert b"<html" in full.content and b'data-key="1"' in full.content
    partial = client.get(reverse("arena:fixed"), **HX)
    assert partial.status_code == 200
    assert b"<html" not in partial.content and b"data-poll=" in partial.content
    assert Poll.objects.count() == 0  # a poll is a ticket in its URLs until the vote


def test_nothing_in_the_poll_page_or_image_names_the_model(client, arena):
    variants, _ = arena
    response = client.get(reverse("arena:fixed"))
    html = response.content.decode()
    token = _token(html)
    for v in variants:
        assert v.name not in html
        assert f"/models/{v.id}/" not in html
    for header, value in response.items():
        assert not any(v.name in value for v in variants), header
    for position, image in enumerate(_images(token)):
        assert image.file.name not in html and image.voter_file.name not in html
        assert f"/poll/{token}/image/{position}" in html
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for i in polltickets.decode(token).image_ids + tuple(v.id for v in variants):
        assert struct.pack(">Q", i) not in raw  # the ticket in the URLs is encrypted, not just signed


def test_poll_images_carry_no_metadata_and_share_one_size(client, arena):
    variants, _ = arena
    html = client.get(reverse("arena:ffa")).content.decode()
    token = _token(html)
    sizes = set()
    for position in range(4):
        response = client.get(reverse("arena:poll_image", args=[token, position]))
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert "Content-Disposition" not in response and "Last-Modified" not in response
        data = response.content
        for v in variants:
            assert v.name.encode() not in data
        img = PILImage.open(io.BytesIO(data))
        assert not img.text and "exif" not in img.info
        assert b"tEXt" not in data and b"iTXt" not in data and b"zTXt" not in data and b"eXIf" not in data
        sizes.add(img.size)
    assert len(sizes) == 1


def test_another_voter_cannot_see_or_vote_on_my_poll(client, arena, django_user_model):
    from django.test import Client

    token = _token(client.get(reverse("arena:fixed")).content.decode())
    other = Client()
    assert other.get(reverse("arena:poll_image", args=[token, 0])).status_code == 403
    response = other.post(reverse("arena:vote", args=[token]), {"choice": "left"}, **HX)
    assert response.status_code == 403 and b"someone else" in response.content
    assert Vote.objects.count() == 0


def test_vote_reveals_the_models_then_their_rating_change(client, arena):
    token = _token(client.get(reverse("arena:fixed"), **HX).content.decode())
    assert client.get(reverse("arena:ratings", args=[token]), **HX).status_code == 404  # no vote yet
    response = client.post(reverse("arena:vote", args=[token]), {"choice": "right"}, **HX)
    assert response.status_code == 200
    html = response.content.decode()
    left, right = [image.variant for image in _images(token)]
    assert left.name in html and right.name in html
    ratings_url = reverse("arena:ratings", args=[token])
    assert html.count("updating the ratings") == 2 and f'hx-get="{ratings_url}"' in html  # the consumer's turn
    assert 'data-key="next"' in html and "<html" not in html
    vote = Vote.objects.get()
    assert vote.choice == "right" and vote.counted and vote.seq is None
    assert not Rating.objects.exists()  # the vote request took no rating row
    # the reveal polls its rating lines: still waiting, the poller again and both lines pending
    waiting = client.get(ratings_url, **HX).content.decode()
    assert f'hx-get="{ratings_url}"' in waiting and waiting.count("updating the ratings") == 2
    assert waiting.count('hx-swap-oob="true"') == 2 and 'id="rating-0"' in waiting and 'id="rating-1"' in waiting
    ratings_apply_all()
    with CaptureQueriesContext(connection) as queries:
        lines = client.get(ratings_url, **HX).content.decode()
    assert len([q for q in queries if "arena_vote" in q["sql"]]) == 1  # one read of the vote, no poll page rebuilt
    assert "hx-get" not in lines and "updating the ratings" not in lines  # applied: the poller stops
    left_line = re.search(r'<span id="rating-0".*?</span>\s*<span class="ts">', lines, re.S).group(0)
    assert "-2.00" in left_line and "+2.00" in lines.replace(left_line, "")  # right won: each line in its place
    assert Client().get(ratings_url, **HX).status_code == 403  # someone else's poll
    reveal = client.get(reverse("arena:reveal", args=[token]), **HX).content.decode()
    assert "+2.00" in reveal and "-2.00" in reveal and "updating the ratings" not in reveal and "hx-get" not in reveal
    assert Rating.objects.get(variant=right, scope=Scope.FIXED).elo == pytest.approx(1002.0)
    assert Poll.objects.get(token=polltickets.decode(token).nonce).status == Poll.Status.VOTED


def test_vote_without_javascript_renders_the_full_reveal_page(client, arena):
    token = _token(client.get(reverse("arena:fixed")).content.decode())
    response = client.post(reverse("arena:vote", args=[token]), {"choice": "tie"})
    assert response.status_code == 200 and b"<html" in response.content
    assert Vote.objects.get().choice == "tie"


def test_double_submit_returns_the_recorded_result(client, arena):
    token = _token(client.get(reverse("arena:fixed"), **HX).content.decode())
    first = client.post(reverse("arena:vote", args=[token]), {"choice": "left"}, **HX)
    second = client.post(reverse("arena:vote", args=[token]), {"choice": "right"}, **HX)
    assert first.status_code == second.status_code == 200
    assert b"already recorded" in second.content
    assert Vote.objects.count() == 1 and Vote.objects.get().choice == "left" and Poll.objects.count() == 1
    ratings_apply_all()
    assert Rating.objects.filter(scope=Scope.OVERALL, votes=1).count() == 2


@pytest.mark.parametrize("data", [{}, {"choice": "sideways"}, {"choice": "left", "extra": "<b>"}])
def test_malformed_votes_get_a_clear_400(client, arena, data):
    token = _token(client.get(reverse("arena:fixed"), **HX).content.decode())
    response = client.post(reverse("arena:vote", args=[token]), data, **HX)
    if data.get("choice") == "left":
        assert response.status_code == 200  # unknown extra fields are ignored
        return
    assert response.status_code == 400 and b"Choose left, right" in response.content
    assert Vote.objects.count() == 0


def test_unknown_poll_is_a_404(client, arena):
    response = client.post(reverse("arena:vote", args=["00000000-0000-0000-0000-000000000000"]), {"choice": "left"}, **HX)
    assert response.status_code == 404 and Vote.objects.count() == 0


def test_expired_poll_is_a_410(client, arena, settings, monkeypatch):
    from django.utils import timezone

    token = _token(client.get(reverse("arena:fixed"), **HX).content.decode())
    later = timezone.now() + dt.timedelta(seconds=settings.POLL_TTL_SECONDS + 1)
    monkeypatch.setattr("arena.services.votes.timezone.now", lambda: later)
    response = client.post(reverse("arena:vote", args=[token]), {"choice": "left"}, **HX)
    assert response.status_code == 410 and b"expired" in response.content
    assert Vote.objects.count() == 0


def test_csrf_is_enforced_on_votes(arena):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    token = _token(strict.get(reverse("arena:fixed")).content.decode())
    assert strict.post(reverse("arena:vote", args=[token]), {"choice": "left"}).status_code == 403
    csrf = strict.cookies["csrftoken"].value
    ok = strict.post(reverse("arena:vote", args=[token]), {"choice": "left"}, HTTP_X_CSRFTOKEN=csrf, **HX)
    assert ok.status_code == 200 and Vote.objects.count() == 1


def test_ffa_best_pick_and_ranking_through_the_form(arena):
    from django.test import Client

    client = Client()  # each of these voters sees one of the arena's two prompts (never an image revealed to them)
    token = _token(client.get(reverse("arena:ffa"), **HX).content.decode())
    assert client.post(reverse("arena:vote", args=[token]), {"choice": "best", "best": "3"}, **HX).status_code == 200
    assert Vote.objects.get().ranks == [1, 1, 1, 0]
    token = _token(client.get(reverse("arena:ffa"), **HX).content.decode())
    places = {"place_0": "2", "place_1": "4", "place_2": "1", "place_3": "3"}
    assert client.post(reverse("arena:vote", args=[token]), {"choice": "ranking", **places}, **HX).status_code == 200
    assert Vote.objects.order_by("id").last().ranks == [1, 3, 0, 2]
    client = Client()
    token = _token(client.get(reverse("arena:ffa"), **HX).content.decode())
    bad = client.post(reverse("arena:vote", args=[token]), {"choice": "ranking", "place_0": "1", "place_1": "1"}, **HX)
    assert bad.status_code == 400 and Vote.objects.count() == 2

def test_rate_limit_per_voter(client, arena, settings):
    settings.RATELIMIT_VOTER = "3/m"
    responses = [client.get(reverse("arena:fixed"), **HX) for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert [b"data-poll=" in r.content for r in responses] == [True, True, True, False, False]


def test_rate_limit_per_address_across_voters(arena, settings):
    from django.test import Client

    settings.RATELIMIT_IP = "2/m"
    codes = [Client().get(reverse("arena:fixed"), **HX).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]


def test_leaderboard_lists_models_sorted_and_links_their_pages(client, arena):
    variants, _ = arena
    token = _token(client.get(reverse("arena:fixed"), **HX).content.decode())
    client.post(reverse("arena:vote", args=[token]), {"choice": "left"}, **HX)
    ratings_apply_all()
    page = client.get(reverse("arena:leaderboard"))
    html = page.content.decode()
    assert page.status_code == 200 and "<html" in html
    for v in variants:
        assert f'/models/{v.id}/' in html
    winner = Vote.objects.get().variants[0]
    names = re.findall(r'<a href="/models/(\d+)/">', html)
    assert int(names[0]) == winner
    by_name = client.get(reverse("arena:leaderboard") + "?sort=name&scope=fixed", **HX).content.decode()
    assert "<html" not in by_name
    ordered = re.findall(r'<a href="/models/\d+/">([^<]+)</a>', by_name)
    assert ordered == sorted(ordered, key=str.lower)


def test_model_page_shows_ratings_and_record(client, arena):
    token = _token(client.get(reverse("arena:fixed"), **HX).content.decode())
    client.post(reverse("arena:vote", args=[token]), {"choice": "left"}, **HX)
    ratings_apply_all()
    vote = Vote.objects.get()
    winner, loser = vote.variants
    html = client.get(reverse("arena:model", args=[winner])).content.decode()
    assert "Record against each opponent" in html
    row = re.search(rf'/models/{loser}/">[^<]+</a></td><td class="num">(\d+)</td><td class="num">(\d+)</td>', html)
    assert row and row.groups() == ("1", "0")
    assert client.get(reverse("arena:model", args=[99999])).status_code == 404


def test_prompts_are_escaped_when_shown(client, db):
    from tests.arena.factories import make_image, make_prompt

    prompt = make_prompt('1girl, "quoted" & <i>not html</i>')
    for _ in range(2):
        make_image(make_variant(), prompt)
    html = client.get(reverse("arena:fixed")).content.decode()
    assert "<i>not html</i>" not in html and "&lt;i&gt;not html&lt;/i&gt;" in html


def test_voters_cannot_reach_staff_pages(client, arena):
    for url in ["/admin/", "/admin/arena/vote/", "/admin/generation/modelvariant/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    image = arena[0][0].images.first()
    response = client.get(f"/media/{image.file.name}")
    assert response.status_code == 302


def test_staff_can_reach_admin_and_originals(client, arena):
    user = get_user_model().objects.create_user("boss", password="pw-123456789", is_staff=True, is_superuser=True)
    client.force_login(user)
    assert client.get("/admin/arena/vote/").status_code == 200
    image = arena[0][0].images.first()
    response = client.get(f"/media/{image.file.name}")
    assert response.status_code == 200 and b"parameters" in response.content


def test_votes_cannot_be_changed_or_deleted_in_admin(client, arena):
    user = get_user_model().objects.create_user("boss", password="pw-123456789", is_staff=True, is_superuser=True)
    token = _token(client.get(reverse("arena:fixed"), **HX).content.decode())
    client.post(reverse("arena:vote", args=[token]), {"choice": "left"}, **HX)
    client.force_login(user)
    vote = Vote.objects.get()
    assert client.post(f"/admin/arena/vote/{vote.id}/delete/", {"post": "yes"}).status_code == 403
    assert Vote.objects.filter(id=vote.id, choice="left").exists()


def test_poll_view_query_count(client, arena, django_assert_max_num_queries, no_rate_limits):
    client.get(reverse("arena:fixed"), **HX)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("arena:fixed"), **HX).status_code == 200


def test_vote_view_query_count(client, arena, django_assert_max_num_queries, no_rate_limits):
    token = _token(client.get(reverse("arena:fixed"), **HX).content.decode())
    with django_assert_max_num_queries(14):
        assert client.post(reverse("arena:vote", args=[token]), {"choice": "left"}, **HX).status_code == 200


def test_leaderboard_query_count(client, arena, django_assert_max_num_queries):
    for _ in range(3):
        make_variant()
    client.get(reverse("arena:leaderboard"), **HX)  # the automatic scores are cached after the first view
    # snapshot, log fingerprint, model names; the scoring app's model list and two freshness checks. (The table
    # and its reports section were two requests of 5 + 3 queries; they are one of 6 now.)
    with django_assert_max_num_queries(6):
        assert client.get(reverse("arena:leaderboard"), **HX).status_code == 200


def test_css_and_htmx_are_served_without_debug(client):
    for path in ["/static/css/arena.css", "/static/js/arena.js", "/static/django_htmx/htmx-2.min.js"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"".join(response.streaming_content if response.streaming else [response.content])
