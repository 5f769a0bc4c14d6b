"""Two app processes on one PostgreSQL database (SHARECORE_DATABASE_URL), in a real Chromium.

A participant trains on the first server while the database is away: the run is drawn and the page
says, in words, why it was not kept. With the database back, the next run is kept, and its share
link, opened on the second server by a browser that has never seen either, shows it. The database
is the test process's throwaway cluster (tests/support/postgres.py); the two servers start together.
"""

from __future__ import annotations

import re

import pytest

from tests.support import postgres
from tests.support.browser import (
    CHART,
    EXCEPTION,
    PAGE_S,
    TRAIN_S,
    VIEWPORT,
    main_text,
    open_lab,
    train_in_lab,
    wait_for_charts,
    wait_until_idle,
)
from tests.support.server import NO_WARM_UP, require_chromium, start_server, stop_server, wait_until_healthy

pytestmark = pytest.mark.browser


def test_a_run_kept_through_one_server_opens_by_its_link_on_another_and_a_database_away_keeps_the_run_drawn(
    new_context, tmp_path
):
    require_chromium()
    database = postgres.cluster()
    env = {**NO_WARM_UP, "SHARECORE_DATABASE_URL": database.new_url()}
    servers = [start_server(tmp_path / f"server-{n}.log", env=env) for n in (1, 2)]
    try:
        for server in servers:
            wait_until_healthy(server)
        first, second = servers
        context = new_context(viewport=VIEWPORT)
        context.set_default_timeout(PAGE_S * 1000)
        page = context.new_page()
        open_lab(page, first.url)
        database.stop()
        try:
            page.get_by_role("button", name="Train").click()
            page.get_by_text("This run could not be kept").first.wait_for(timeout=TRAIN_S * 1000)
            wait_until_idle(page, TRAIN_S)
            wait_for_charts(page, 3)
            legend = page.locator(CHART).first.locator(".legend .legendtext").all_text_contents()
            shown = main_text(page)
        finally:
            database.start()
        assert any(name.startswith("this run (not kept)") for name in legend), legend
        assert "cannot be reached" in shown and "Runs kept so far stay in the database" in shown, shown[-2000:]
        assert page.locator(EXCEPTION).count() == 0
        train_in_lab(page)  # the database is back: this run is kept (and no error is left on the page)
        page.goto(f"{first.url}/compare")
        page.locator("h1", has_text="Compare runs").wait_for()
        wait_until_idle(page)
        link = page.locator('[data-testid="stCode"]').first.inner_text().strip()
        assert re.search(r"/compare\?run=[A-Za-z0-9_-]{20,}$", link), link
        assert link.startswith(first.url), link
        stranger = new_context(viewport=VIEWPORT)  # no cookie, another process: only the database is shared
        other = stranger.new_page()
        other.goto(second.url + link.removeprefix(first.url))
        other.locator("h1", has_text="Compare runs").wait_for(timeout=PAGE_S * 1000)
        wait_until_idle(other)
        wait_for_charts(other, 1)
        assert other.locator(EXCEPTION).count() == 0
        assert "Opened the shared run" in main_text(other), main_text(other)[-2000:]
    finally:
        for server in servers:
            stop_server(server)
