"""The pages/ layout on FRESHLY started servers, in a real Chromium.

Streamlit treats a `pages/` folder beside the entry file as its older multipage layout until a
run in the process calls `st.navigation` (see `ui.routing.frame`). Only the first visitors of a new
server meet that mode, so every case here gets a server that no browser has visited: a deep link
as the very first request, the first sidebar change of the first visitor of `/`, and five visitors
arriving at once, each checking that every icon the tab showed came from the server itself.

What keeps this file short: the servers are started together, when the module begins (`fresh`),
and each case takes one that is already up and stops it when done, so the four start-ups overlap
instead of following each other. The servers skip the warm-up compile (nothing here trains), and
one that is stopped then exits at once instead of waiting for a compile to end.

The deep link is checked once per code path that a fresh server's first request can take, not
once per page: `/` runs the entry file (streamlit_app.py, which calls `st.navigation` itself), and
`/train` runs a page file in the older mode, which hands over to the router through `frame()` (ui/routing.py).
Every page file takes that second path: tests/project/test_boundaries.py checks that each calls
`frame()` before anything else, and that each, opened first in the older mode through AppTest,
shows the whole app. The five visitors at once open five more pages as first requests.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.support.browser import EXCEPTION, PAGES, fill, live, wait_for_page, wait_until_idle
from tests.support.server import (
    NO_WARM_UP,
    Server,
    require_chromium,
    start_server,
    stop_server,
    wait_until_healthy,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAV_LINK = '[data-testid="stSidebarNavLink"]'
NAV_TITLES = [
    "Home",
    "Lab",
    "Compare runs",
    "Exercises",
    "Room",
    "Build",
    "Train",
    "Gradient flow",
    "Divergence",
    "Pitfalls",
    "Your model",
]
SIDEBAR = '[data-testid="stSidebar"]'
DEEP_LINKS = ["home", "train"]  # the entry file's path and a page file's (the module docstring says why)
CASES = len(DEEP_LINKS) + 2  # and the first visitor of /, and five visitors at once


class FreshServers:
    """Servers started together, none visited yet; `take()` hands one out."""

    def __init__(self, folder) -> None:
        self.unused = [start_server(folder / f"server-{i}.log", env=NO_WARM_UP) for i in range(CASES)]

    def take(self) -> Server:
        assert self.unused, f"more fresh servers asked for than the {CASES} started (CASES)"
        server = self.unused.pop(0)
        wait_until_healthy(server)
        return server


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Iterator[FreshServers]:
    require_chromium()
    servers = FreshServers(tmp_path_factory.mktemp("fresh"))
    try:
        yield servers
    finally:
        for server in servers.unused:
            stop_server(server)


@pytest.fixture
def fresh_server(fresh: FreshServers) -> Iterator[Server]:
    """A server that no browser has visited yet; stopped after the test."""
    server = fresh.take()
    try:
        yield server
    finally:
        stop_server(server)


# Headless Chromium loads no favicon, so every address the page gives its icon is recorded instead.
RECORD_FAVICONS = """
window.__favicons = [];
new MutationObserver(() => {
    const link = document.querySelector("link[rel='shortcut icon']");
    if (link && window.__favicons[window.__favicons.length - 1] !== link.href) window.__favicons.push(link.href);
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ["href"]});
"""


def open_tab(tab_on, server: Server):
    """A new browser context (a new Streamlit session) that only reaches `server` and records its favicons."""
    return tab_on(server, init_script=RECORD_FAVICONS)


def check_full_app(page, title: str, preset: str, seed: int) -> None:
    """The page is drawn inside the whole app: its title, the shared sidebar with the link's
    experiment, every navigation link, and no exception."""
    wait_for_page(page, title)
    assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).all_inner_texts()
    links = page.locator(NAV_LINK)
    # A link's text is its icon's ligature name, then its title.
    assert [t.strip().split("\n")[-1] for t in links.all_inner_texts()] == NAV_TITLES
    sidebar = page.locator(SIDEBAR)
    assert sidebar.get_by_role("combobox", name="Preset").input_value() == preset
    assert sidebar.get_by_label("Seed", exact=True).input_value() == str(seed)
    assert f"preset={preset}" in page.url
    # Every icon the tab showed is drawn locally: a Material page icon was fetched from fonts.gstatic.com
    # on a fresh server's first deep link (the page icon briefly became the favicon).
    origin = "/".join(page.url.split("/")[:3])
    icons = page.evaluate("() => window.__favicons")
    assert icons and all(icon.startswith((origin, "data:")) for icon in icons), icons


@pytest.mark.parametrize("name", DEEP_LINKS)
def test_first_request_of_a_fresh_server_as_a_deep_link_shows_the_full_app(tab_on, fresh_server, name):
    path, title = PAGES[name]
    page = open_tab(tab_on, fresh_server)
    # Training settings too: the first deep link of a fresh server once showed Steps 1 and record every 1
    # (the Train page's widgets were set in the run the router then replaced).
    page.goto(f"{fresh_server.url}/{path}?preset=seed-conv&seed=5&steps=3000&every=10")
    for visit in ("first request", "reload"):  # a reload is a new session on a server past the older mode
        if visit == "reload":
            page.reload()
        check_full_app(page, title, "seed-conv", 5)
        if name == "train":
            steps = live(page, ".st-key-train-steps input").input_value()
            every = live(page, ".st-key-train-record_every input").input_value()
            assert (steps, every) == ("3000", "10"), f"{visit}: the link's steps {steps}, record every {every}"
    page.context.close()


def test_first_visitor_of_home_on_a_fresh_server_keeps_their_first_sidebar_change(tab_on, fresh_server):
    page = open_tab(tab_on, fresh_server)
    page.goto(fresh_server.url)
    wait_for_page(page, PAGES["home"][1])
    seed = page.locator(SIDEBAR).get_by_label("Seed", exact=True)
    fill(page, seed, "7")
    page.wait_for_url(re.compile(r"[?&]seed=7\b"))
    wait_until_idle(page)
    assert seed.input_value() == "7"
    # The change outlives a page switch in the same session ...
    page.locator(NAV_LINK, has_text="Train").click()
    check_full_app(page, "Train", "seed-dense", 7)
    # ... and a second visitor starts from the defaults, while a reload of the link keeps it.
    other = open_tab(tab_on, fresh_server)
    other.goto(fresh_server.url)
    check_full_app(other, PAGES["home"][1], "seed-dense", 0)
    page.reload()
    check_full_app(page, "Train", "seed-dense", 7)
    page.context.close()
    other.context.close()


def test_five_visitors_arriving_at_once_on_a_fresh_server_each_see_the_full_app(tab_on, fresh_server):
    visits = [("home", "seed-mixed", 1), ("train", "seed-conv", 2), ("build", "albert-mlp", 3)]
    visits += [("divergence", "partial-share", 4), ("gradients", "tied-autoencoder", 5)]
    pages = []
    started = time.monotonic()
    for name, preset, seed in visits:  # all requests go out before any page is waited for
        page = open_tab(tab_on, fresh_server)
        page.goto(f"{fresh_server.url}/{PAGES[name][0]}?preset={preset}&seed={seed}", wait_until="commit")
        pages.append(page)
    for page, (name, preset, seed) in zip(pages, visits):
        check_full_app(page, PAGES[name][1], preset, seed)
    print(f"browser timing: five visitors at once -> all pages drawn: {time.monotonic() - started:.1f} s")
    for page in pages:
        page.context.close()
