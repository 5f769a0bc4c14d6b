"""Fixtures of the browser tests: the system Chromium through pytest-playwright, one Streamlit server
(`server`, with the `SHARED` settings) for every module that needs no server of its own, and tabs
that reach only their server.

pytest-playwright (requirements-dev.txt) gives the `browser`, `new_context`, `context` and `page`
fixtures and its options (`--headed`, `--slowmo`, `--tracing`, `--video`, `--screenshot`). Its
browser is the system Chromium (`apt-get install chromium`) with tests/support/server.py's flags;
`playwright install` is never run. A machine without Chromium skips these tests; CI (CI=true) fails.

Playwright, Chromium and the shared server last for this package (`scope="package"`), not for the
whole session: a running Playwright keeps an asyncio loop marked as running in its thread, and the
non-browser tests that the same pytest-xdist worker runs afterwards (asyncio.run, AppTest) must not
meet it. tests/conftest.py orders each worker's browser files first, so each is set up once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserType, Playwright, sync_playwright

from tests.support.browser import VIEWPORT, goto, local_only, screenshot_dir
from tests.support.server import CHROMIUM_ARGS, NO_WARM_UP, Server, require_chromium, run_server

# What a tab waits for an element at most, unless told otherwise (a busy 2-core machine is slow).
TAB_TIMEOUT_S = 90


# ----------------------------------------------------------------------------- pytest-playwright, system Chromium
@pytest.fixture(scope="session")
def browser_type_launch_args(pytestconfig: pytest.Config) -> dict:
    """The system Chromium with the flags of tests/support/server.py (`--headed` shows its window)."""
    headed = pytestconfig.getoption("--headed", default=False)
    args = [arg for arg in CHROMIUM_ARGS if not (headed and arg == "--headless")]
    slow_mo = pytestconfig.getoption("--slowmo", default=0)
    return {"executable_path": require_chromium(), "args": args, "headless": not headed, "slow_mo": slow_mo}


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright for this package's tests only (see the module docstring)."""
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    return getattr(playwright, browser_name)


@pytest.fixture(scope="package")
def launch_browser(browser_type_launch_args: dict, browser_type: BrowserType) -> Callable[..., Browser]:
    def launch(**kwargs) -> Browser:
        return browser_type.launch(**{**browser_type_launch_args, **kwargs})

    return launch


@pytest.fixture(scope="package")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    browser = launch_browser()
    yield browser
    browser.close()


@pytest.fixture(scope="package")
def browser_context_args(pytestconfig: pytest.Config, _pw_artifacts_folder) -> dict:
    """pytest-playwright's `--video` (each tab sets its own viewport)."""
    args: dict = {}
    if pytestconfig.getoption("--video", default="off") != "off":
        args["record_video_dir"] = _pw_artifacts_folder.name
    return args


# ----------------------------------------------------------------------------- servers and tabs
# The shared server's settings: the defaults (two trainers), no warm-up compile, and runs of up to
# 100,000 steps, so that the workshop smoke can close a tab whose run is still training.
SHARED = {**NO_WARM_UP, "SHARECORE_MAX_STEPS": "100000"}


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Server]:
    """`streamlit run streamlit_app.py` with the SHARED settings, shared by every module of this package
    on this worker; killed with its process group at the end.

    One tab opens Home first, so that every test meets a server in use, whichever file runs first:
    a fresh server's first visitor meets Streamlit's older multipage mode, which
    tests/browser/test_fresh_server.py tests on servers of its own.
    """
    require_chromium()  # no browser, no reason to start a server
    with run_server(tmp_path_factory.mktemp("streamlit") / "server.log", env=SHARED) as app:
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(TAB_TIMEOUT_S * 1000)
        local_only(context, app)
        goto(context.new_page(), app, "home")
        context.close()
        yield app


@pytest.fixture
def tab_on(new_context) -> Callable[..., object]:
    """`tab_on(server, viewport=..., **context_args)`: a new tab in a fresh browser context (a Streamlit
    session of its own) that only reaches `server`; pytest-playwright closes the contexts after the test."""

    def open_tab(server: Server, viewport: dict | None = None, init_script: str | None = None, **context_args):
        context = new_context(viewport=viewport or VIEWPORT, **context_args)
        context.set_default_timeout(TAB_TIMEOUT_S * 1000)
        if init_script:
            context.add_init_script(init_script)
        local_only(context, server)
        return context.new_page()

    return open_tab


@pytest.fixture
def new_tab(tab_on, server: Server) -> Callable[..., object]:
    """`new_tab(viewport=..., **context_args)`: a new tab (a new session) on the shared `server`."""
    return lambda **kwargs: tab_on(server, **kwargs)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where screenshots go: SHARECORE_SCREENSHOTS (`SHARECORE_SCREENSHOTS=docs` retakes the README's),
    else a temporary folder."""
    return screenshot_dir()
