"""The workshop what-if loop in a real Chromium, as a newcomer does it from a fresh clone.

lr 0.01 vs 0.1 on seed-conv, then transpose vs reshape on the autoencoder, all on the Lab page;
the runs are still there after a reload and after the server restarts (the browser's workspace
cookie and the run store on disk); one run is shared by its link with a browser that has never
seen the app. Screenshots of the Lab and the Compare view go to SHARECORE_SCREENSHOTS (docs/).
"""

from __future__ import annotations

import contextlib
import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser import test_pages as test_browser
from tests.browser.test_pages import (
    CHART,
    ERROR,
    EXCEPTION,
    PAGE_S,
    TRAIN_S,
    VIEWPORT,
    assert_no_exception,
    fill,
    main_text,
    run_server,
    script_runs,
    select_option,
    snap,
    wait_for_charts,
    wait_for_rerun,
    wait_until_idle,
)
from tests.support.server import require_chromium

pytestmark = pytest.mark.browser
browser = test_browser.browser  # the module-wide Chromium fixture
screenshots = test_browser.screenshots

LEGEND = ".legend .traces"


def open_lab(page, url: str, query: str = "") -> None:
    page.goto(f"{url}/lab{'?' + query if query else ''}")
    page.locator("h1, h2, h3", has_text="Lab").first.wait_for(timeout=PAGE_S * 1000)
    wait_until_idle(page)


RUNNING = "() => document.body.innerText.includes('Training tied and untied')"


def train(page, button: str = "Train") -> None:
    """Clicks a Lab button that trains and waits until the run has ended and the charts are back."""
    page.get_by_role("button", name=button).click()
    with contextlib.suppress(PlaywrightTimeout):  # a short run may end before a poll sees it
        page.wait_for_function(RUNNING, timeout=20_000, polling=100)
    page.wait_for_function(f"() => !({RUNNING})()", timeout=TRAIN_S * 1000, polling=300)
    wait_until_idle(page, TRAIN_S)
    errors = page.locator(ERROR)
    assert errors.count() == 0, "\n".join(errors.all_inner_texts())
    wait_for_charts(page, 3)


def legend_names(page) -> list[str]:
    """The legend entries of the loss overlay (the first chart)."""
    return page.locator(CHART).first.locator(".legend .legendtext").all_text_contents()


def pick_slider(page, label: str, value: str) -> None:
    """Moves an st.select_slider to `value` with the keyboard, as a person would."""
    slider = page.locator('[data-testid="stSlider"]', has_text=label).get_by_role("slider")
    wait_until_idle(page)
    before = script_runs(page)
    slider.focus()
    for _ in range(40):
        now = slider.get_attribute("aria-valuetext") or ""
        if now == value:
            break
        slider.press("ArrowRight" if float(now or 0) < float(value) else "ArrowLeft")  # lower is left
    else:
        pytest.fail(f"could not set {label} to {value}")
    slider.blur()
    wait_for_rerun(page, before)


def test_a_newcomer_compares_two_what_ifs_keeps_them_over_reload_and_restart_and_shares_one(
    browser, tmp_path, screenshots
):
    require_chromium()
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_S * 1000)
    with run_server(tmp_path / "server-1.log") as server:
        page = context.new_page()
        open_lab(page, server.url)
        select_option(page, '[data-testid="stSelectbox"]:has-text("Load a preset")', "seed-conv")
        train(page)
        pick_slider(page, "Learning rate", "0.1")
        train(page)
        names = legend_names(page)
        assert any(n.startswith("lr 0.1 (was 0.01)") for n in names), names
        select_option(page, '[data-testid="stSelectbox"]:has-text("Load a preset")', "tied-autoencoder")
        train(page)
        select_option(page, '[data-testid="stSelectbox"]:has-text("decoder reads")', "reshape")
        # W is (10, 5): the decoder reads it as (5, 10) either way
        fill(page, page.locator('[data-testid="stTextInput"]:has-text("to shape") input'), "5, 10")
        train(page)
        names = legend_names(page)
        assert any("decoder rule reshape" in n for n in names), names
        snap(page, screenshots, "lab")
        page.reload()
        wait_until_idle(page)
        wait_for_charts(page, 3)
        assert legend_names(page) == names, "a reload keeps the runs and the overlay"
    with run_server(tmp_path / "server-2.log") as server:  # the same run store on disk
        page = context.new_page()
        open_lab(page, server.url)
        wait_for_charts(page, 3)
        kept = main_text(page)
        assert "lr 0.1 (was 0.01)" in kept and "decoder rule reshape" in kept, kept[-2000:]
        page.goto(f"{server.url}/compare")
        page.locator("h1", has_text="Compare runs").wait_for()
        wait_until_idle(page)
        wait_for_charts(page, 3)
        assert_no_exception(page)
        snap(page, screenshots, "compare")
        link = page.locator('[data-testid="stCode"]').first.inner_text().strip()
        assert re.search(r"/compare\?run=[A-Za-z0-9_-]{20,}$", link), link
        stranger = browser.new_context(viewport=VIEWPORT)  # no cookie: another person
        other = stranger.new_page()
        other.goto(link)
        other.locator("h1", has_text="Compare runs").wait_for(timeout=PAGE_S * 1000)
        wait_until_idle(other)
        wait_for_charts(other, 1)
        assert other.locator(EXCEPTION).count() == 0
        assert "Opened the shared run" in main_text(other)
        other.goto(f"{server.url}/lab")
        wait_until_idle(other)
        theirs = main_text(other)
        assert "lr 0.1 (was 0.01)" not in theirs, "a shared link shows one run, not the sharer's list"
        stranger.close()
    context.close()
