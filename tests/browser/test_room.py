"""A workshop room end to end in Chromium, on the package's shared server: a facilitator opens a room from an
exercise; three participants (three browser contexts, three workspaces) join with its code, train in the Lab
and hand in (from Compare, or from the Lab's kept-runs table), and one withdraws; the facilitator's board lists the right rows, sorts, and overlays
every hand-in. A participant sees no one else's runs until the board is projected and never the facilitator's
link, and a hostile display name stays text in the table, the legend and the download.

Screenshot: docs/presenter-room.png, the board in presenter mode at 1024x768 (SHARECORE_SCREENSHOTS=docs).
"""

from __future__ import annotations

import csv
import io
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.support.browser import (
    CHART,
    PROJECTOR,
    SCRIPT_RUNS,
    check_presented,
    fill,
    live,
    main_text,
    metric,
    pick_slider,
    save_png,
    script_runs,
    select_option,
    train_in_lab,
    wait_for_charts,
    wait_for_page,
    wait_for_rerun,
    wait_until_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOSTILE = "<img src=x onerror=alert(1)>**bold**"
NAMES = ["Ann", "Ben", HOSTILE]
LIVE_S = 30  # the board and a participant's page ask the store every few seconds


def click(page, selector: str) -> None:
    """Clicks the visible button in keyed element `selector` and waits for its rerun."""
    wait_until_idle(page)
    before = script_runs(page)
    live(page, f"{selector} button:visible").first.click()
    wait_for_rerun(page, before)


def toggle(page, selector: str) -> None:
    """Flips the st.toggle keyed `selector` and waits for its rerun."""
    wait_until_idle(page)
    before = script_runs(page)
    live(page, f"{selector} label").first.click()
    wait_for_rerun(page, before)


def nav(page, server, path: str, title: str) -> None:
    """Follows the sidebar link to a page, in the same session."""
    page.locator(f'[data-testid="stSidebarNavLink"][href="{server.url}/{path}"]').click()
    wait_for_page(page, title)


def hand_in_from_the_lab(page) -> None:
    """Ticks "hand in" of the newest run (the first row) in the Lab's kept-runs table, with the keyboard: the
    table is drawn on a canvas whose columns stretch, so a cell is reached from the row's left edge (the
    "show" cell, not its box) and two steps right (show, label, hand in)."""
    grid = live(page, '[class*="st-key-lab-runs-"] [data-testid="stDataFrameResizable"]').first
    for _ in range(3):  # a click that lands while the table is still being laid out selects nothing
        if "Handed in to room" in main_text(page):  # a slow rerun of the try before did it: ticking again would undo it
            return
        grid.scroll_into_view_if_needed()
        wait_until_idle(page)
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 6, box["y"] + 35 + 17)  # header 35 px, then the first row
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        before = script_runs(page)
        page.keyboard.press("Space")
        try:
            page.wait_for_function(f"before => ({SCRIPT_RUNS})() > before", arg=before, timeout=15_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        wait_for_rerun(page, before)
        return
    pytest.fail("ticking 'hand in' in the Lab's kept-runs table started no rerun")


def wait_for_text(page, text: str, *, present: bool = True) -> None:
    page.wait_for_function(
        "([text, present]) => document.querySelector('[data-testid=\"stMain\"]').innerText.includes(text) === present",
        arg=[text, present],
        timeout=LIVE_S * 1000,
    )
    wait_until_idle(page)


def board_csv(page) -> list[dict]:
    """The board as its download holds it."""
    with page.expect_download() as download:
        live(page, ".st-key-room-csv button:visible").first.click()
    return list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))


def test_a_room_from_an_exercise_gathers_three_participants_runs_on_one_board(new_tab, server):
    host = new_tab(viewport=PROJECTOR)
    host.goto(f"{server.url}/exercises")
    wait_for_page(host, "Exercises")
    click(host, ".st-key-exercises-room-untied-drift")
    wait_for_page(host, "Room")
    code = metric(host, "Room code")
    token = parse_qs(urlparse(host.url).query)["board"][0]
    assert "No hand-ins on the board yet" in main_text(host)

    guests = []
    for name in NAMES:
        guest = new_tab()
        guest.goto(f"{server.url}/room?room={code}")  # the link the board shows
        wait_for_page(guest, "Room")
        assert live(guest, ".st-key-room-join-code input").input_value() == code
        fill(guest, live(guest, ".st-key-room-join-name input"), name)
        click(guest, ".st-key-room-join")
        assert f"You are in room {code}" in main_text(guest)
        guests.append(guest)
    for guest, name in zip(guests, NAMES):
        nav(guest, server, "lab", "Lab")
        if name == "Ben":
            pick_slider(guest, "Learning rate", "0.1")
        train_in_lab(guest)
        if name == HOSTILE:  # in one click from the Lab's kept runs
            hand_in_from_the_lab(guest)
        else:  # or from Compare
            nav(guest, server, "compare", "Compare runs")
            click(guest, '[class*="st-key-room-hand_in-"]')
        assert "Handed in to room" in main_text(guest)
    wait_for_text(host, "3 hand-in(s) on the board")  # the board is live
    ann = guests[0]
    nav(ann, server, "room", "Room")
    click(ann, '[class*="st-key-room-withdraw-"]')
    assert "Withdrawn" in main_text(ann)

    # Two rows (Ann withdrew), in the order they came in, with what each changed.
    wait_for_text(host, "2 hand-in(s) on the board")
    rows = board_csv(host)
    assert [r["name"] for r in rows] == ["Ben", HOSTILE], "the name is written as typed, not as markup"
    assert [r["differs from the start"] for r in rows] == ["lr 0.1", "nothing"]
    assert rows[1]["shows the claim"] == "yes"
    assert all(float(r["loss tied"]) > 0 for r in rows)

    # Sorted by the tied loss: the lower comes first (the table and its download alike).
    select_option(host, ".st-key-room-sort", "loss tied")
    losses = {r["name"]: float(r["loss tied"]) for r in rows}
    assert [r["name"] for r in board_csv(host)] == sorted(losses, key=losses.get)

    # Overlay all: every hand-in in the legend, under its name as typed; the markup never runs.
    toggle(host, ".st-key-room-all")
    wait_for_charts(host, 3)
    legend = set(host.locator(CHART).first.locator(".legend .legendtext").all_text_contents())
    assert any(text.startswith(f"{HOSTILE}: ") for text in legend), legend
    assert any(text.startswith("Ben: ") for text in legend), legend
    assert host.locator('img[src="x"]').count() == 0

    # Participants: their own hand-ins only, never the facilitator's link; the board once it is projected.
    ben = guests[1]
    nav(ben, server, "room", "Room")
    for guest in (ann, ben):
        assert token not in guest.content() and token not in guest.url
    assert HOSTILE not in main_text(ben) and "The room's board" not in main_text(ben)
    toggle(host, ".st-key-room-project")
    wait_for_text(ben, "The room's board")
    assert token not in ben.content()
    ben.goto(f"{server.url}/room?board={code}")  # the code is no facilitator link
    wait_for_page(ben, "Room")
    assert "This facilitator link opens no room" in main_text(ben)

    # The board in presenter mode at 1024x768, for docs/.
    toggle(host, ".st-key-sidebar-presenter")
    wait_for_charts(host, 3)
    check_presented(host, "the Room's board")  # an HTML table there, every text sized and readable
    # The board's heading at the top of the window, below Streamlit's header: the table and the loss overlay in view.
    host.get_by_role("heading", name="Board").evaluate(
        "h => { h.scrollIntoView({block: 'start'}); document.querySelector('[data-testid=\"stMain\"]').scrollBy(0, -70); }"
    )
    save_png(host, "room")
