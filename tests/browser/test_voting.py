"""A voter in Debian's chromium (Playwright, headless) votes through all three modes and watches the
leaderboard change. The free-prompt duel is generated live by the tiny local models."""

import os
import re
import shutil

import pytest

from arena.models import Mode, Rating, Scope, Vote
from tests.arena.factories import arena_with_images

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser_page():
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        context.close()
        browser.close()


@pytest.fixture
def demo_arena(settings, tiny_models):
    from generation.services import variant_register

    settings.MIN_VOTE_SECONDS = 0.2
    settings.RATELIMIT_ENABLE = False
    variants, _ = arena_with_images(n_models=4, n_prompts=4)  # fresh images for every poll: none is shown twice
    defaults = {"width": 256, "height": 256, "steps": 2, "sampler": "Euler a"}
    live = [
        variant_register(path=tiny_models.eps_dir, name="Tiny eps", defaults=defaults),
        variant_register(path=tiny_models.v_file, name="Tiny vpred", config_path=tiny_models.config_dir, defaults=defaults),
    ]
    return variants, live


def _names(variants):
    return [v.name for v in variants]


def test_a_voter_votes_in_all_three_modes_and_sees_the_leaderboard(live_server, browser_page, demo_arena):
    page = browser_page
    fixed_models, live_models = demo_arena
    all_names = _names(fixed_models) + _names(live_models)

    # Fixed-prompt duel: nothing names a model before the vote; key 1 votes left.
    page.goto(live_server.url + "/duel/")
    page.wait_for_selector("[data-poll] img")
    page.evaluate("window.__sameDocument = true")
    html = page.content()
    assert not any(name in html for name in all_names)
    page.wait_for_timeout(300)
    page.keyboard.press("1")
    page.wait_for_selector(".reveal")
    # the names at once; the rating change as soon as the ratings consumer has applied the vote
    page.wait_for_selector(".reveal .delta.up", timeout=10_000)
    revealed = page.inner_text(".reveal")
    assert sum(name in revealed for name in _names(fixed_models)) == 2
    assert re.search(r"Elo [\d.]+ \(\+2\.00\)", revealed)
    vote = Vote.objects.get()
    assert vote.mode == Mode.FIXED and vote.choice == "left" and vote.counted
    # Space loads the next poll without a full page reload.
    page.keyboard.press("Space")
    page.wait_for_selector("[data-poll]")
    assert page.evaluate("window.__sameDocument") is True
    assert Vote.objects.count() == 1

    # Free-for-all: key 3 picks the third image as the best.
    page.goto(live_server.url + "/ffa/")
    page.wait_for_selector("[data-poll] img")
    assert page.locator("[data-poll] img").count() == 4
    page.wait_for_timeout(300)
    page.keyboard.press("3")
    page.wait_for_selector(".reveal")
    ffa_vote = Vote.objects.get(mode=Mode.FFA)
    assert ffa_vote.ranks == [1, 1, 0, 1]
    assert page.locator(".reveal .slot.winner").count() == 1
    # ...and the next one is ranked in full.
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-poll] img")
    page.click("details.rank-all summary")
    for position, place in enumerate(["4", "1", "3", "2"]):
        page.select_option(f"select[name=place_{position}]", place)
    page.wait_for_timeout(300)
    page.click("text=Submit ranking")
    page.wait_for_selector(".reveal")
    assert Vote.objects.filter(mode=Mode.FFA, full_ranking=True).get().ranks == [3, 0, 2, 1]

    # Free-prompt duel: the voter's prompt is generated live by two tiny models, then shown together.
    page.goto(live_server.url + "/free/")
    page.fill("textarea[name=prompt]", "1girl, <3, cherry blossoms")
    page.click("text=Generate a duel")
    page.wait_for_selector("[data-poll] img", timeout=120_000)
    assert page.locator("[data-poll] img").count() == 2
    assert "1girl, &lt;3, cherry blossoms" in page.content()
    assert not any(name in page.content() for name in _names(live_models))
    page.wait_for_timeout(300)
    page.click("text=Right is better")
    page.wait_for_selector(".reveal")
    assert sum(name in page.inner_text(".reveal") for name in _names(live_models)) == 2
    free_vote = Vote.objects.get(mode=Mode.FREE)
    assert free_vote.choice == "right" and free_vote.counted

    # The leaderboard shows the change.
    page.goto(live_server.url + "/leaderboard/")
    table = page.inner_text("table.board")
    winner = Rating.objects.filter(scope=Scope.OVERALL).order_by("-elo").first()
    assert winner.variant.name in table and winner.elo > 1000
    page.click("nav.tabs >> text=Free-for-all")
    page.wait_for_selector("table.board[data-scope=ffa]")
    assert "2 counted votes in this scope" in page.inner_text("#board")  # the tab's own count (2 free-for-all votes)
    page.wait_for_load_state("networkidle")
    page.goto("about:blank")  # no request may reach the server after the test's database is gone


def test_the_reveal_fills_in_the_rating_change_when_the_consumer_applies_the_vote(live_server, browser_page,
                                                                                  demo_arena, settings):
    """The consumer as at scale (its own process; here: the test, when it chooses): the reveal says the ratings are
    updating, polls its rating lines, and swaps each into its place once the vote is applied, then stops polling."""
    from arena.services.ratings import ratings_apply_all

    settings.RATINGS_CONSUMER = "external"
    page = browser_page
    polled = []
    page.on("request", lambda r: polled.append(r.url) if "/ratings/" in r.url else None)
    page.goto(live_server.url + "/duel/")
    page.wait_for_selector("[data-poll] img")
    page.wait_for_timeout(300)
    page.keyboard.press("2")  # right
    page.wait_for_selector(".reveal .delta.pending")
    assert page.locator(".reveal .delta.pending").count() == 2
    page.wait_for_timeout(1000)
    assert len(polled) >= 2 and Vote.objects.get().seq is None  # still waiting: the reveal keeps asking
    assert ratings_apply_all() == 1
    page.wait_for_selector(".reveal .delta.up", timeout=10_000)
    assert page.locator(".reveal .delta.pending").count() == 0
    left, right = page.locator(".reveal figcaption").all_inner_texts()
    assert "(-2.00)" in left and "(+2.00)" in right  # each model's line in its own place
    asked = len(polled)
    page.wait_for_timeout(1000)
    assert len(polled) == asked  # applied: the poller is gone
