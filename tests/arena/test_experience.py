"""The voter's and the admin's pages (issue 12) seen from the server: a refused ranking keeps the poll and its
picks, the reveal says which place each image got and greys a zero change, the free duel's progress counts
images and seconds, navigation marks the current page and shows staff their pages, styled error pages, the
favicon, the branded admin, the leaderboard's swapped board region with its tabs and sort arrows, the scorer
page's words and its button, and the job page's ETA counted from when the job last moved."""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from arena.models import Vote
from arena.services.ratings import ratings_apply_all
from tests.arena.factories import arena_with_images, make_prompt

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _quick(settings):
    settings.MIN_VOTE_SECONDS = 0.0
    settings.RATELIMIT_ENABLE = False


def _token(html: str) -> str:
    return re.search(r'data-poll="([A-Za-z0-9_=-]+)"', html).group(1)


def _staff(django_user_model) -> Client:
    user = django_user_model.objects.create_user("staffer", password="pw", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def test_a_refused_ranking_comes_back_as_the_same_poll_with_the_picks_and_the_reason(client):
    arena_with_images(n_models=4, n_prompts=2)
    page = client.get(reverse("arena:ffa"), **HX).content.decode()
    token = _token(page)
    bad = client.post(reverse("arena:vote", args=[token]),
                      {"choice": "ranking", "place_0": "2", "place_1": "2", "place_2": "1", "place_3": ""}, **HX)
    html = bad.content.decode()
    assert bad.status_code == 400
    assert _token(html) == token and html.count('class="slot"') == 4  # the poll, not an error box
    assert "its own place" in html and "Your picks are kept" in html
    selected = re.findall(r'name="place_(\d)".*?(?:<option selected>(\d)</option>|</select>)', html, re.S)
    assert [(p, v) for p, v in selected] == [("0", "2"), ("1", "2"), ("2", "1"), ("3", "")]
    assert Vote.objects.count() == 0
    good = client.post(reverse("arena:vote", args=[token]),
                       {"choice": "ranking", "place_0": "2", "place_1": "4", "place_2": "1", "place_3": "3"}, **HX)
    assert good.status_code == 200 and Vote.objects.get().ranks == [1, 3, 0, 2]
    reveal = good.content.decode()
    assert all(f"you placed it {n}" in reveal for n in ("1st", "2nd", "3rd", "4th"))


def test_a_refused_pick_on_a_poll_already_voted_is_the_plain_error(client):
    arena_with_images(n_models=4, n_prompts=2)
    token = _token(client.get(reverse("arena:ffa"), **HX).content.decode())
    assert client.post(reverse("arena:vote", args=[token]), {"choice": "best", "best": "1"}, **HX).status_code == 200
    again = client.post(reverse("arena:vote", args=[token]), {"choice": "ranking", "place_0": "1"}, **HX)
    assert again.status_code == 400 and 'class="slot"' not in again.content.decode()


def test_the_reveal_marks_the_pick_and_a_zero_change_is_neutral(client):
    arena_with_images(n_models=2, n_prompts=2)
    token = _token(client.get(reverse("arena:fixed"), **HX).content.decode())
    html = client.post(reverse("arena:vote", args=[token]), {"choice": "left"}, **HX).content.decode()
    assert html.count("your pick") == 1
    ratings_apply_all()
    html = client.get(reverse("arena:reveal", args=[token]), **HX).content.decode()
    assert 'class="delta up"' in html and 'class="delta down"' in html
    token = _token(client.get(reverse("arena:fixed"), **HX).content.decode())
    client.post(reverse("arena:vote", args=[token]), {"choice": "tie"}, **HX)
    vote = Vote.objects.order_by("id").last()
    # a tie between two models of equal rating moves neither: grey, not green
    vote.rating_changes = {"fixed": {str(e.variant_id): {"elo": [1000.0, 1000.0], "mu": [25, 25], "sigma": [8, 8]}
                                     for e in vote.poll.entries.all()}}
    vote.save(update_fields=["rating_changes"])
    html = client.get(reverse("arena:reveal", args=[token]), **HX).content.decode()
    assert html.count('class="delta zero"') == 2 and "a tie" in html


def test_navigation_marks_the_page_and_keyboard_hints_stay_on_poll_pages(client, django_user_model):
    arena_with_images(n_models=2, n_prompts=2)
    duel = client.get(reverse("arena:fixed")).content.decode()
    assert re.search(r'href="/duel/" aria-current="page">Duel', duel)
    assert "Keys:" in duel and "how to judge" in duel.lower() and "favicon.svg" in duel
    board = client.get(reverse("arena:leaderboard")).content.decode()
    assert re.search(r'href="/leaderboard/" aria-current="page">Leaderboard', board)
    assert "Keys:" not in board and 'href="/generation/"' not in board  # nothing staff-only for a voter
    staff = _staff(django_user_model).get(reverse("arena:leaderboard")).content.decode()
    for href in ('href="/generation/"', 'href="/scores/status/"', 'href="/training/"', 'href="/admin/"'):
        assert href in staff


@pytest.mark.parametrize("path, status, words", [
    ("/models/999999/", 404, "There is no page at /models/999999/"),
    ("/no/such/page/", 404, "There is no page at"),
])
def test_missing_pages_are_styled_pages_of_the_site(client, settings, path, status, words):
    settings.DEBUG = False
    response = client.get(path)
    html = response.content.decode()
    assert response.status_code == status and words in html
    assert "arena.css" in html and 'class="status-page"' in html


def test_the_500_and_403_pages_render_with_the_site_around_them(rf):
    from django.template.loader import render_to_string

    assert "the arena" in render_to_string("500.html") and "nothing you did caused it" in render_to_string("500.html")
    request = rf.get("/generation/")
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    html = render_to_string("403.html", request=request)
    assert "Log in" in html and "/admin/login/?next=/generation/" in html


def test_favicon_and_admin_branding(client, django_user_model):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")
    staff = _staff(django_user_model)
    admin = staff.get("/admin/").content.decode()
    assert "the arena · administration" in admin and "Django administration" not in admin
    assert "Poll entries" in admin and "Poll entrys" not in admin


def test_the_leaderboard_swaps_its_whole_region_with_the_selected_tab_and_sort_arrows(client):
    from tests.arena.votelog import small_log

    small_log()
    part = client.get(reverse("arena:leaderboard") + "?scope=ffa&sort=-votes", **HX).content.decode()
    assert "<html" not in part
    assert re.search(r'data-scope-tab="ffa" aria-current="page"', part)
    assert not re.search(r'data-scope-tab="overall" aria-current', part)
    assert re.search(r'class="meta vote-count" data-scope="ffa">2 counted votes', part)
    assert re.search(r'th class="col-votes"[^>]*aria-sort="ascending"', part) and "▲" in part
    # the tabs keep the sort; the column's link turns it round
    assert 'href="?scope=overall&amp;sort=-votes"' in part and 'href="?scope=ffa&amp;sort=votes"' in part
    overall = client.get(reverse("arena:leaderboard") + "?scope=overall", **HX).content.decode()
    assert re.search(r'vote-count" data-scope="overall">(\d+) counted', overall).group(1) != "2"


def test_scorer_page_in_words_and_its_button_queues_the_missing_scores(django_user_model, settings, tmp_path,
                                                                       monkeypatch):
    from generation.scoring import services as scoring_services

    settings.SCORERS_DIR = tmp_path / "none"
    staff = _staff(django_user_model)
    page = staff.get(reverse("scoring:status")).content.decode()
    assert "not installed" in page and "0 of 0 images" in page and "Score the images not scored yet" in page
    refused = staff.post(reverse("scoring:enqueue"), follow=True).content.decode()
    assert "No scorer is installed" in refused
    arena_with_images(n_models=2, n_prompts=1)
    queued = []
    monkeypatch.setattr("generation.scoring.selectors.scorer_status",
                        lambda **kw: [{"kind": "aesthetic", "label": "Aesthetic", "state": "installed", "installed": True,
                                       "folder": "x", "message": "", "scored": 0}])
    monkeypatch.setattr(scoring_services, "scores_enqueue_for_images", lambda ids: queued.append(sorted(ids)))
    done = staff.post(reverse("scoring:enqueue"), follow=True).content.decode()
    assert "Queued 2 images for scoring" in done and len(queued) == 1 and len(queued[0]) == 2
    assert "installed, ready" in done and "0 of 2 images (0%)" in done


def test_the_job_eta_is_counted_from_when_the_job_last_moved(django_user_model, monkeypatch):
    from generation import selectors as gen_selectors
    from generation import views
    from generation.models import GenerationJob, GenerationTask
    from generation.sampling import SamplerSettings
    from tests.generation.helpers import make_variant

    variant = make_variant("ETA model")
    job = GenerationJob.objects.create(name="eta", settings={"seeds": [1, 2, 3]})
    prompt = make_prompt("1girl")
    now = timezone.now()
    for seed, status in ((1, GenerationTask.Status.DONE), (2, GenerationTask.Status.RUNNING), (3, GenerationTask.Status.PENDING)):
        cell = SamplerSettings.of(variant, seed=seed, negative_prompt="")
        GenerationTask.objects.create(job=job, variant=variant, prompt=prompt, settings_key=cell.key, **cell.as_dict(),
                                      status=status, started_at=now - dt.timedelta(seconds=20),
                                      finished_at=now - dt.timedelta(seconds=4) if status == "done" else None)
    progress = gen_selectors.job_progress(job=job)
    progress.seconds_per_image = 10.0
    progress.eta_seconds = 20.0  # two images left at 10 s each
    assert views._eta_left(job, progress) == pytest.approx(16.0, abs=1.0)  # 4 s since the last image finished
    progress.eta_seconds = 2.0
    assert views._eta_left(job, progress) == 0.0  # never negative: "any moment"
    staff = _staff(django_user_model)
    html = staff.get(reverse("generation:job", args=[job.pk]), **HX).content.decode()
    assert "ETA —" in html  # no image timed yet: no guess (the browser test watches it count down)
    assert "Settings: seeds 1, 2, 3" in html and "title=\"{&#x27;seeds&#x27;: [1, 2, 3]}\"" in html  # raw in the tooltip


def _settings_module(monkeypatch, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "ARENA_CACHE_DIR", "CELERY_TASK_ALWAYS_EAGER"):
        if name not in env:
            monkeypatch.delenv(name, raising=False)
    spec = importlib.util.spec_from_file_location("settings_probe_ux", ROOT / "config" / "settings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_with_no_broker_run_tasks_eagerly_with_a_local_memory_cache(monkeypatch):
    module = _settings_module(monkeypatch)
    assert module.CELERY_TASK_ALWAYS_EAGER is True
    assert module.CACHES["default"]["BACKEND"].endswith("LocMemCache")


def test_serve_settings_share_a_filesystem_queue_and_a_disk_cache(monkeypatch, tmp_path):
    from arena.management.commands.serve import child_env

    env = child_env({"PATH": "/usr/bin", "ARENA_VAR_DIR": str(tmp_path)})
    assert env["CELERY_BROKER_URL"].startswith("filesystem://") and env["CELERY_TASK_ALWAYS_EAGER"] == "0"
    assert env["TQDM_DISABLE"] == "1" and env["GENERATION_BATCH_SIZE"] == "1"
    module = _settings_module(monkeypatch, **{k: env[k] for k in ("CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER")},
                              ARENA_CACHE_DIR=str(tmp_path / "cache"), ARENA_QUEUE_DIR=str(tmp_path / "queue"))
    assert module.CELERY_TASK_ALWAYS_EAGER is False
    assert module.CACHES["default"]["BACKEND"].endswith("FileBasedCache")
    options = module.CELERY_BROKER_TRANSPORT_OPTIONS
    assert options["data_folder_in"] == options["data_folder_out"] == str(tmp_path / "queue" / "in")
    assert (tmp_path / "queue" / "in").is_dir()
    # a configured broker is left as it is
    assert child_env({"REDIS_URL": "redis://x:6379/0"}).get("CELERY_BROKER_URL") is None
    assert child_env({"ARENA_VERBOSE": "1"}).get("TQDM_DISABLE") is None
