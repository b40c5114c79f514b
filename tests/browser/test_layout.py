"""The voter's screen in Debian's chromium (Playwright, headless): polls fit the viewport at a laptop's, a small
laptop's and a phone's size, for square and portrait images; images open full size; a ranking is checked before
it is sent and a refused one keeps the poll; long actions show progress at once; the leaderboard's tabs say
which scope is shown. Every state is photographed into var/screenshots/ (the README names it)."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from arena.models import Mode, Vote
from tests.arena.factories import arena_with_images
from tests.generation.helpers import fake_pipelines, make_variant  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
CHROMIUM = "/usr/bin/chromium"
SIZES = {"laptop": (1366, 768), "small-laptop": (1280, 720), "phone": (390, 844)}
SHAPES = {"square": (256, 256), "portrait": (832, 1216)}
SCREENSHOTS = Path(os.environ.get("ARENA_SCREENSHOTS_DIR") or django_settings.BASE_DIR / "var" / "screenshots")


@pytest.fixture(scope="module")
def chromium():
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium):
    contexts = []

    def _open(size: str):
        width, height = SIZES[size]
        context = chromium.new_context(viewport={"width": width, "height": height}, has_touch=size == "phone")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        return page

    yield _open
    for context in contexts:
        context.close()


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def _box_inside(box, width: int, height: int) -> bool:
    return box is not None and box["x"] >= -0.5 and box["y"] >= -0.5 and \
        box["x"] + box["width"] <= width + 0.5 and box["y"] + box["height"] <= height + 0.5


def _assert_fits(page, size: str, what: str) -> None:
    width, height = SIZES[size]
    assert page.evaluate("window.scrollY") == 0
    images = page.locator("[data-poll] .slot img")
    buttons = page.locator("[data-poll] button.choice, [data-poll] details.rank-all > summary")
    assert images.count() in (2, 4) and buttons.count() >= 2
    for i in range(images.count()):
        # the image as drawn (object-fit: contain): the element's box, which holds it whole
        box = images.nth(i).bounding_box()
        assert _box_inside(box, width, height), f"{what}: image {i} {box} is not inside {width}×{height}"
        assert box["height"] >= 0.18 * height or box["width"] >= 0.4 * width / (2 if images.count() == 4 else 1), \
            f"{what}: image {i} is too small ({box})"
    for i in range(buttons.count()):
        box = buttons.nth(i).bounding_box()
        assert _box_inside(box, width, height), f"{what}: button {buttons.nth(i).inner_text()!r} {box} is off screen"


@pytest.mark.parametrize("shape", list(SHAPES))
def test_both_images_and_every_vote_button_fit_the_screen(live_server, open_page, settings, shape):
    settings.RATELIMIT_ENABLE = False
    arena_with_images(n_models=4, n_prompts=6, size=SHAPES[shape])
    for size in SIZES:
        page = open_page(size)
        for path, mode in (("/duel/", "duel"), ("/ffa/", "ffa")):
            page.goto(live_server.url + path)
            page.wait_for_function("() => [...document.querySelectorAll('[data-poll] img')].every(i => i.complete && i.naturalWidth > 0)")
            shoot(page, f"{mode}-{shape}-{size}")
            _assert_fits(page, size, f"{mode} {shape} at {size}")
            if mode == "ffa":  # the ranking panel open still leaves the images and its buttons in view
                page.click("details.rank-all summary")
                shoot(page, f"ffa-ranking-{shape}-{size}")
                width, height = SIZES[size]
                for selector in ("[data-submit-ranking]", "[data-poll] .slot img >> nth=3"):
                    assert _box_inside(page.locator(selector).bounding_box(), width, height), f"{selector} at {size}"


def test_an_image_opens_full_size_and_esc_goes_back(live_server, open_page, settings):
    settings.RATELIMIT_ENABLE = False
    arena_with_images(n_models=4, n_prompts=3, size=SHAPES["portrait"])
    page = open_page("phone")
    page.goto(live_server.url + "/duel/")
    page.wait_for_selector("[data-poll] img")
    page.tap("[data-poll] .slot >> nth=1 >> img")
    page.wait_for_selector(".viewer .viewer-stage img")
    big = page.locator(".viewer-stage img").bounding_box()
    assert big["width"] > 300  # larger than in the poll (about 180 px wide there)
    shoot(page, "viewer-phone")
    page.click(".viewer-stage img")  # zoom in
    assert page.locator(".viewer.zoomed").count() == 1
    page.keyboard.press("Escape")
    assert page.locator(".viewer").count() == 0
    assert Vote.objects.count() == 0  # looking is not voting
    page = open_page("laptop")
    page.goto(live_server.url + "/duel/")
    page.wait_for_selector("[data-poll] img")
    assert page.locator(".guide").is_visible()
    page.click("[data-dismiss-guide]")  # the "how to judge" note, once dismissed, stays away on this browser
    assert not page.locator(".guide").is_visible()
    page.goto(live_server.url + "/ffa/")
    page.wait_for_selector("[data-poll] img")
    assert page.locator(".guide").count() == 1 and not page.locator(".guide").is_visible()
    page.goto(live_server.url + "/duel/")
    page.wait_for_selector("[data-poll] img")
    page.keyboard.press("f")
    page.wait_for_selector(".viewer")
    page.keyboard.press("ArrowRight")
    assert "image 2" in page.inner_text(".viewer-title")
    page.keyboard.press("Escape")
    assert page.locator(".viewer").count() == 0


def test_a_ranking_is_picked_by_clicking_and_checked_before_it_is_sent(live_server, open_page, settings):
    settings.RATELIMIT_ENABLE = False
    settings.MIN_VOTE_SECONDS = 0.0
    arena_with_images(n_models=4, n_prompts=2, size=SHAPES["square"])
    page = open_page("laptop")
    page.goto(live_server.url + "/ffa/")
    page.wait_for_selector("[data-poll] img")
    page.click("details.rank-all summary")
    slots = page.locator("[data-poll] .slot img")
    slots.nth(2).click()
    slots.nth(0).click()
    page.click("[data-submit-ranking]")  # two of four: refused here, nothing sent
    page.wait_for_timeout(400)
    assert page.locator("[data-poll] img").count() == 4
    assert "2 of 4 placed" in page.inner_text(".rank-status")
    assert Vote.objects.count() == 0
    assert page.locator(".slot.placed .place-badge").all_inner_texts() == ["2", "1"]
    shoot(page, "ffa-ranking-refused-in-browser")
    page.keyboard.press("4")  # keys give the next place
    slots.nth(1).click()
    page.click("[data-submit-ranking]")
    page.wait_for_selector(".reveal")
    assert Vote.objects.get(mode=Mode.FFA).ranks == [1, 3, 0, 2]
    assert "you placed it 1st" in page.inner_text(".reveal")
    shoot(page, "ffa-reveal-laptop")


def test_a_ranking_the_server_refuses_keeps_the_poll_and_the_picks(live_server, open_page, settings):
    settings.RATELIMIT_ENABLE = False
    settings.MIN_VOTE_SECONDS = 0.0
    arena_with_images(n_models=4, n_prompts=2, size=SHAPES["square"])
    page = open_page("laptop")
    page.goto(live_server.url + "/ffa/")
    page.wait_for_selector("[data-poll] img")
    page.evaluate("window.__samePage = true")
    page.click("details.rank-all summary")
    for position, place in enumerate(["1", "1", "2", "3"]):  # a repeated place, sent past the browser's check
        page.select_option(f"select[name=place_{position}]", place)
    page.evaluate("document.querySelector('form[data-rank-form]').removeAttribute('data-rank-form')")  # no check here
    page.click("[data-submit-ranking]")
    page.wait_for_selector(".vote-error")
    assert page.evaluate("window.__samePage") is True
    assert page.locator("[data-poll] img").count() == 4
    assert [page.input_value(f"select[name=place_{i}]") for i in range(4)] == ["1", "1", "2", "3"]
    shoot(page, "ffa-ranking-refused-by-server")
    page.select_option("select[name=place_1]", "4")
    page.click("[data-submit-ranking]")
    page.wait_for_selector(".reveal")
    assert Vote.objects.get().ranks == [0, 3, 1, 2]


@pytest.fixture
def background_worker(monkeypatch, fake_pipelines):
    """A worker beside the web server: each ``generation.run_tasks`` message runs in its own thread, so the
    request that queued it returns at once as it does with `make run`'s worker. The embedded test database is
    SQLite in shared memory, which refuses a reader while another thread writes ("table is locked") instead of
    waiting; so the web server's requests and the worker take turns on one lock, which the worker leaves while
    it "generates" (the stand-in pipeline's ``seconds_per_image`` sleep)."""
    from django.core.handlers.base import BaseHandler

    from generation import tasks

    turn = threading.RLock()
    threads: list[threading.Thread] = []
    original = BaseHandler.get_response

    def get_response(self, request):
        with turn:
            return original(self, request)

    def generating(spec, requests):
        turn.release()
        try:
            time.sleep(background_worker.seconds_per_image * len(requests))
        finally:
            turn.acquire()

    def apply_async(args=None, kwargs=None, **options):
        def run():
            try:
                with turn:
                    tasks.run_tasks.apply(args=args, kwargs=kwargs)
            finally:
                connection.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)

    background_worker.seconds_per_image = 1.0
    monkeypatch.setattr(BaseHandler, "get_response", get_response)
    monkeypatch.setattr(tasks.run_tasks, "apply_async", apply_async)
    fake_pipelines.before_generate = generating
    yield background_worker
    for thread in threads:
        thread.join(30)


def test_a_free_duel_shows_its_progress_within_a_second(live_server, open_page, settings, fake_pipelines,
                                                        background_worker):
    settings.RATELIMIT_ENABLE = False
    make_variant("Live A")
    make_variant("Live B")
    background_worker.seconds_per_image = 1.5
    page = open_page("phone")
    page.goto(live_server.url + "/free/")
    page.fill("textarea[name=prompt]", "1girl, cherry blossoms")
    started = time.monotonic()
    page.click("text=Generate a duel")
    page.wait_for_selector(".progress.generating", timeout=1000)
    assert time.monotonic() - started < 1.0
    assert "Generating both images" in page.inner_text(".progress")
    shoot(page, "free-generating-phone")
    page.wait_for_timeout(1200)
    assert re.search(r"\b[1-9] s elapsed", page.inner_text(".progress"))
    page.wait_for_selector("[data-poll] img", timeout=20_000)
    assert page.locator("[data-poll] img").count() == 2
    page.wait_for_timeout(1100)
    page.click("text=Left is better")
    page.wait_for_selector(".reveal")
    assert page.locator("button.again").count() == 1
    assert page.locator("button.next:has-text(\"A new prompt\")").count() == 1
    shoot(page, "free-reveal-phone")
    page.click("button.again")
    page.wait_for_selector(".progress.generating, [data-poll] img")
    assert "1girl, cherry blossoms" in page.inner_text("#poll")


def test_the_job_page_moves_image_by_image_and_its_eta_counts_down(live_server, open_page, settings, fake_pipelines,
                                                                   background_worker, monkeypatch, django_user_model):
    from generation import services, views
    from generation.models import GenerationJob

    settings.GENERATION_BATCH_SIZE = 1  # what `manage.py serve` sets for its local worker
    monkeypatch.setattr(views, "POLL_SECONDS", 1)
    admin = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-for-the-test")
    variant = make_variant("Job model")
    background_worker.seconds_per_image = 1.5
    page = open_page("laptop")
    page.goto(live_server.url + "/admin/login/?next=/generation/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "pw-for-the-test")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/generation/$"))
    job = services.job_create(variants=[variant], seeds=[1, 2, 3, 4, 5], prompt_text="1girl, smile", created_by=admin)
    page.goto(live_server.url + f"/generation/jobs/{job.pk}/")
    seen, etas = set(), []
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        text = page.inner_text("#job")
        match = re.search(r"(\d+)/5 images done", text)
        if match:
            seen.add(int(match.group(1)))
        eta = page.locator("#job .eta")
        if eta.count():
            etas.append(eta.first.inner_text())
        if match and match.group(1) == "2":
            shoot(page, "job-progress-laptop")
        if match and match.group(1) == "5":
            break
        page.wait_for_timeout(250)
    assert GenerationJob.objects.get(pk=job.pk).status == GenerationJob.Status.DONE
    between = seen & {1, 2, 3, 4}
    assert len(between) >= 3, f"progress jumped: saw {sorted(seen)}"
    seconds = [int(m.group(1)) for t in etas if (m := re.fullmatch(r"(\d+) s", t))]
    assert any(b < a for a, b in zip(seconds, seconds[1:])), f"the ETA never counted down: {etas}"


def test_the_leaderboard_tabs_show_the_scope_and_change_every_number(live_server, open_page, settings):
    from tests.arena.votelog import small_log

    settings.BT_BOOTSTRAP_ROUNDS = 10
    small_log()
    for size in ("laptop", "phone"):
        page = open_page(size)
        page.goto(live_server.url + "/leaderboard/")
        page.wait_for_selector("table.board[data-scope=overall]")
        assert page.get_attribute("[data-scope-tab=overall]", "aria-current") == "page"
        overall_count = page.inner_text(".vote-count")
        page.click("[data-scope-tab=ffa]")
        page.wait_for_selector("table.board[data-scope=ffa]")
        assert page.get_attribute("[data-scope-tab=ffa]", "aria-current") == "page"
        assert page.get_attribute("[data-scope-tab=overall]", "aria-current") is None
        assert page.inner_text(".vote-count") != overall_count
        assert "scope=ffa" in page.url
        page.click("th.col-votes a")
        page.wait_for_selector("th.col-votes[aria-sort]")
        assert "sort=votes" in page.url and "scope=ffa" in page.url
        first = page.get_attribute("th.col-votes", "aria-sort")
        page.click("th.col-votes a")
        page.wait_for_function(f"() => document.querySelector('th.col-votes').getAttribute('aria-sort') !== '{first}'")
        assert "sort=-votes" in page.url
        shoot(page, f"leaderboard-{size}")
        if size == "phone":
            width, _ = SIZES[size]
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert not page.locator("th.col-elo").is_visible()
            for column in ("rank", "name", "bt", "votes"):  # the phone's four columns are in view
                assert _box_inside(page.locator(f"th.col-{column}").bounding_box(), *SIZES[size]), column
            page.click("table.board details.more summary >> nth=0")
            assert "Win rate" in page.inner_text("table.board details.more >> nth=0")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.reports .plots img')].every(i => i.complete)")
        # the <picture> gives a phone the narrow drawing and a laptop the desktop one
        sources = page.eval_on_selector_all(".reports .plots img", "els => els.map(e => e.currentSrc)")
        assert sources and all(("size=phone" in src) == (size == "phone") for src in sources), sources
