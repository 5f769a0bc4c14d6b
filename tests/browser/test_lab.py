"""The workshop what-if loop in a real Chromium, as a newcomer does it from a fresh clone.

lr 0.01 vs 0.1 on seed-conv, then transpose vs reshape on the autoencoder, all on the Lab page;
the runs are still there after a reload and after the server restarts (the browser's workspace
cookie and the run store on disk: the package's shared server trains them, and a server started
afterwards on the same store, which has never held them in memory, shows them); one run is shared
by its link with a browser that has never seen the app. Screenshots of the Lab and the Compare view go to SHARECORE_SCREENSHOTS (docs/).
"""

from __future__ import annotations

import re

import pytest

from tests.support.browser import (
    CHART,
    EXCEPTION,
    PAGE_S,
    VIEWPORT,
    assert_no_exception,
    fill,
    main_text,
    open_lab,
    pick_slider,
    select_option,
    snap,
    train_in_lab,
    wait_for_charts,
    wait_until_idle,
)
from tests.support.server import NO_WARM_UP, run_server

pytestmark = pytest.mark.browser


def legend_names(page) -> list[str]:
    """The legend entries of the loss overlay (the first chart)."""
    return page.locator(CHART).first.locator(".legend .legendtext").all_text_contents()


def test_a_newcomer_compares_two_what_ifs_keeps_them_over_reload_and_restart_and_shares_one(
    new_context, server, tmp_path, screenshots
):
    context = new_context(viewport=VIEWPORT)  # one person's browser: its cookie names their workspace
    context.set_default_timeout(PAGE_S * 1000)
    # The first server: the package's shared one.
    page = context.new_page()
    open_lab(page, server.url)
    select_option(page, '[data-testid="stSelectbox"]:has-text("Load a preset")', "seed-conv")
    train_in_lab(page)
    pick_slider(page, "Learning rate", "0.1")
    train_in_lab(page)
    names = legend_names(page)
    assert any(n.startswith("seed-conv: lr 0.1") for n in names), names
    select_option(page, '[data-testid="stSelectbox"]:has-text("Load a preset")', "tied-autoencoder")
    train_in_lab(page)
    select_option(page, '[data-testid="stSelectbox"]:has-text("decoder reads")', "reshape")
    # W is (10, 5): the decoder reads it as (5, 10) either way
    fill(page, page.locator('[data-testid="stTextInput"]:has-text("to shape") input'), "5, 10")
    train_in_lab(page)
    names = legend_names(page)
    assert any("decoder rule reshape" in n for n in names), names
    snap(page, screenshots, "lab")
    page.reload()
    wait_until_idle(page)
    wait_for_charts(page, 3)
    assert legend_names(page) == names, "a reload keeps the runs and the overlay"
    with run_server(tmp_path / "server-2.log", env=NO_WARM_UP) as server:  # the same run store on disk
        page = context.new_page()
        open_lab(page, server.url)
        wait_for_charts(page, 3)
        kept = main_text(page)
        assert "seed-conv: lr 0.1" in kept and "tied-autoencoder edited: decoder rule reshape" in kept, kept[-2000:]
        page.goto(f"{server.url}/compare")
        page.locator("h1", has_text="Compare runs").wait_for()
        wait_until_idle(page)
        wait_for_charts(page, 3)
        assert_no_exception(page)
        snap(page, screenshots, "compare")
        link = page.locator('[data-testid="stCode"]').first.inner_text().strip()
        assert re.search(r"/compare\?run=[A-Za-z0-9_-]{20,}$", link), link
        stranger = new_context(viewport=VIEWPORT)  # no cookie: another person
        other = stranger.new_page()
        other.goto(link)
        other.locator("h1", has_text="Compare runs").wait_for(timeout=PAGE_S * 1000)
        wait_until_idle(other)
        wait_for_charts(other, 1)
        assert other.locator(EXCEPTION).count() == 0
        assert "Opened the shared run" in main_text(other)
        assert "run=" in other.url and "preset=" not in other.url, f"the address names the shared run: {other.url}"
        other.goto(f"{server.url}/lab")
        wait_until_idle(other)
        theirs = main_text(other)
        assert "seed-conv: lr 0.1" not in theirs, "a shared link shows one run, not the sharer's list"
        stranger.close()
        page.get_by_role("button", name="Load in the Lab").first.click()  # opens the Lab with that run
        page.locator("h1", has_text="Lab").wait_for()
        assert "/lab" in page.url, page.url
    context.close()
