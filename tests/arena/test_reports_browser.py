"""In Debian's chromium: switching the leaderboard's scope tab reloads its intervals, plots and downloads."""

import os
import shutil

import pytest

from tests.arena.votelog import small_log

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
CHROMIUM = "/usr/bin/chromium"


def test_scope_tabs_reload_the_reports_section(live_server, settings):
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    settings.BT_BOOTSTRAP_ROUNDS = 10
    small_log()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(live_server.url + "/leaderboard/")
            page.wait_for_selector("section.reports[data-scope=overall]")
            page.click("nav.tabs >> text=Free-for-all")
            page.wait_for_selector("table.board[data-scope=ffa]")
            page.wait_for_selector("section.reports[data-scope=ffa]")
            assert "scope=ffa" in page.get_attribute("a[href^='/leaderboard/export.csv']", "href")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.reports .plots img')].every(i => i.complete && i.naturalWidth > 0)"
            )
            assert len(page.query_selector_all(".reports .plots img")) == 5
        finally:
            browser.close()
