"""The dashboard in a real Chromium: what a person sees when they open, train, share and train side by side.

One `streamlit run` server per module, on a free port on 127.0.0.1, driven by Playwright through
the system Chromium (`require_chromium()`: skipped on a machine without one, a failure in CI).
Each browser context is a fresh tab, so a separate Streamlit session. Every request that does
not go to the local server is refused, so the tests never touch the network.

Screenshots of each page are taken along the way. They go to a temporary directory, or to the
directory named by SHARECORE_SCREENSHOTS (relative to the repository), which is how the PNGs
in docs/ are made: `SHARECORE_SCREENSHOTS=docs .venv/bin/pytest tests/browser/test_pages.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

import sharecore
from tests.support.server import require_chromium

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
MAX_SCREENSHOT_BYTES = 300_000
# page -> (url path: st.navigation names it after the page's file, the page's title)
PAGES = {
    "home": ("", "Tied vs untied weights"),  # the default page lives at /
    "build": ("build", "Build"),
    "train": ("train", "Train"),
    "gradients": ("gradients", "Gradient flow"),
    "divergence": ("divergence", "Divergence"),
    "pitfalls": ("pitfalls", "Pitfalls"),
}
# The server is shared with whatever else runs on the machine; these bound every wait.
SERVER_START_S = 90  # TensorFlow's first import dominates
PAGE_S = 60  # a page's first run (may build and compile a model)
# A server's first run of a model traces and compiles its training graph. That takes about a
# second on an idle machine, but has taken over 40 s on a busy 2-core one.
TRAIN_S = 150

CHART = '[data-testid="stPlotlyChart"]'
EXCEPTION = '[data-testid="stException"]'
ERROR = '[data-testid="stAlertContentError"]'  # st.error, e.g. a run that could not train
WARNING = '[data-testid="stAlertContentWarning"]'  # st.warning, e.g. a link that could not be read
METRIC = '[data-testid="stMetric"]'
# True when every visible chart has drawn its SVG and there are at least `n` of them.
CHARTS_DRAWN = """n => {
    const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
        .filter(c => c.offsetParent !== null && !c.closest('[data-stale="true"]'));
    return charts.length >= n && charts.every(c => c.querySelector('svg.main-svg'));
}"""


@dataclass
class Server:
    url: str  # http://127.0.0.1:<port>
    log: Path  # the server's stdout and stderr
    started: float  # time.monotonic() when `streamlit run` was launched
    timings: dict[str, float] = field(default_factory=dict)  # what the report quotes, in seconds

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


# ----------------------------------------------------------------------------- fixtures
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """`streamlit run streamlit_app.py` on a free local port; killed with its process group at the end."""
    require_chromium()  # no browser, no reason to start a server
    with run_server(tmp_path_factory.mktemp("streamlit") / "server.log") as app:
        yield app


@contextlib.contextmanager
def run_server(log: Path, **env_overrides: str) -> Iterator[Server]:
    """A fresh `streamlit run streamlit_app.py` on a free local port, with `env_overrides` set."""
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **env_overrides}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.headless=true",
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        # Other people edit the sources while tests run: a reload mid-test would reset sessions.
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
    ]
    with log.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    app = Server(url=f"http://127.0.0.1:{port}", log=log, started=started)
    try:
        deadline = started + SERVER_START_S
        while not _healthy(app.url):
            if proc.poll() is not None:
                pytest.fail(f"streamlit run exited with code {proc.returncode}:\n{app.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit run was not healthy within {SERVER_START_S} s:\n{app.log_tail()}")
            time.sleep(0.25)
        app.timings["server start -> healthy"] = time.monotonic() - started
        yield app
    finally:
        _kill_group(proc)
        for name, seconds in app.timings.items():
            print(f"browser timing: {name}: {seconds:.1f} s")


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def browser():
    chromium = require_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_tab(browser, server) -> Iterator[Callable[[], object]]:
    """Opens fresh browser contexts (one Streamlit session each) that only reach the local server."""
    contexts = []

    def only_local(route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:  # e.g. the page icon from fonts.gstatic.com
            route.abort()

    def open_tab():
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(PAGE_S * 1000)
        context.route("**/*", only_local)
        contexts.append(context)
        return context.new_page()

    yield open_tab
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    target = os.environ.get("SHARECORE_SCREENSHOTS")
    if target:
        path = ROOT / target
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


# ----------------------------------------------------------------------------- helpers
def goto(page, server: Server, name: str, query: str = "") -> None:
    """Opens page `name` by URL: a new session, whose state comes from `query`."""
    path, title = PAGES[name]
    page.goto(f"{server.url}/{path}{'?' + query if query else ''}")
    wait_for_page(page, title)


def click_nav(page, server: Server, name: str) -> None:
    """Follows the sidebar link to page `name`, staying in the same session."""
    path, title = PAGES[name]
    page.locator(f'[data-testid="stSidebarNavLink"][href="{server.url}/{path}"]').click()
    wait_for_page(page, title)


def wait_for_page(page, title: str) -> None:
    page.locator("h1", has_text=title).first.wait_for()
    wait_until_idle(page)


IDLE = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && app.dataset.testScriptState === 'notRunning'
        && app.dataset.testConnectionState === 'CONNECTED'
        && !document.querySelector(
            '[data-testid="stSkeleton"], [data-testid="stSkeletonElement"], [data-testid="stSpinner"]');
}"""


def wait_until_idle(page, timeout_s: float = PAGE_S) -> None:
    """Waits for the script run to finish and every element to be drawn (no placeholder, no spinner).

    The pages that poll a training run go idle between polls.
    """
    page.wait_for_function(IDLE, timeout=timeout_s * 1000)


# The count of full script runs the app writes into the sidebar (`ui._count_script_run`).
SCRIPT_RUNS = "() => Number(document.querySelector('.sharecore-script-run')?.dataset.run ?? 0)"


def script_runs(page) -> int:
    """How many full script runs this tab's session has had, as the page shows it now."""
    return page.evaluate(SCRIPT_RUNS)


def wait_for_rerun(page, before: int, timeout_s: float = PAGE_S) -> None:
    """Waits for the rerun an input asked for: the script has run again since `before` (`script_runs`),
    the app is idle, and no further run (an `st.rerun()` it asked for) starts within half a second.

    Streamlit shows 'not running' between an input and the server's answer, so waiting for an idle
    app alone can pass before the input's rerun has begun."""
    deadline = time.monotonic() + timeout_s
    page.wait_for_function(f"before => ({SCRIPT_RUNS})() > before", arg=before, timeout=timeout_s * 1000)
    while True:
        wait_until_idle(page, max(1.0, deadline - time.monotonic()))
        seen = script_runs(page)
        page.wait_for_timeout(500)
        if script_runs(page) == seen and page.evaluate(IDLE):
            return
        assert time.monotonic() < deadline, f"the app on {page.url} kept rerunning for {timeout_s:.0f} s"


def wait_for_charts(page, at_least: int, timeout_s: float = PAGE_S) -> None:
    """Waits until at least `at_least` charts are on screen and each has drawn its SVG."""
    try:
        page.wait_for_function(CHARTS_DRAWN, arg=at_least, timeout=timeout_s * 1000)
    except PlaywrightTimeout:
        charts = page.locator(CHART)
        drawn = page.locator(f"{CHART} svg.main-svg").count()
        pytest.fail(
            f"expected {at_least} drawn chart(s) on {page.url} within {timeout_s:.0f} s; found "
            f"{charts.count()} chart element(s), {drawn} SVG(s). Exceptions: {page.locator(EXCEPTION).all_inner_texts()}"
            f"\nThe page shows:\n{main_text(page)[-1500:]}"
        )


def assert_no_exception(page) -> None:
    boxes = page.locator(EXCEPTION)
    assert boxes.count() == 0, f"exception on {page.url}:\n" + "\n".join(boxes.all_inner_texts())


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def metric(page, label: str) -> str:
    """The value shown by the metric called `label`."""
    exact = re.compile(rf"^\s*{re.escape(label)}\s*$")
    box = page.locator(METRIC).filter(has=page.locator('[data-testid="stMetricLabel"]', has_text=exact))
    return box.first.locator('[data-testid="stMetricValue"]').inner_text().strip()


def numbers(text: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", text)]


def select_option(page, container: str, option: str) -> None:
    """Picks `option` (another than the one shown) in the st.selectbox inside `container`, and waits for its rerun."""
    wait_until_idle(page)
    before = script_runs(page)
    box = page.locator(f"{container} [role='combobox']")
    for _ in range(3):  # a rerun that lands while the list opens closes it again
        box.click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=5000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    else:
        pytest.fail(f"could not pick {option!r} in {container} on {page.url}")
    wait_for_rerun(page, before)


def set_number(page, container: str, value: int) -> None:
    """Types `value` (another than the one shown) into the number or text input inside `container`, and waits
    for its rerun."""
    fill(page, page.locator(f"{container} input"), str(value))


def fill(page, field, text: str) -> None:
    """Types `text` (another than the one shown) into a text field, presses Enter and waits for its rerun."""
    wait_until_idle(page)
    before = script_runs(page)
    field.fill(text)
    field.press("Enter")
    wait_for_rerun(page, before)


def snap(page, screenshots: Path, name: str) -> Path:
    """A PNG of what is on screen now (the viewport, CSS pixels)."""
    page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] - 5)  # no tooltip or hover outline
    wait_until_idle(page)
    path = screenshots / f"{name}.png"
    page.screenshot(path=str(path), scale="css", animations="disabled", caret="hide")
    assert path.stat().st_size < MAX_SCREENSHOT_BYTES, f"{path} is {path.stat().st_size:,} bytes"
    return path


def wait_for_results(page, server: Server, timeout_s: float) -> None:
    """Waits for the Train page's results panel and its loss chart; fails with what the page and server show."""
    done_or_failed = page.locator(f'{METRIC}:has-text("Final loss"), {ERROR}').first
    try:
        done_or_failed.wait_for(timeout=timeout_s * 1000)
    except PlaywrightTimeout:
        pytest.fail(
            f"no training results within {timeout_s:.0f} s on {page.url}. The page shows:\n"
            f"{main_text(page)[-1500:]}\nServer log:\n{server.log_tail(1500)}"
        )
    errors = page.locator(ERROR)
    assert errors.count() == 0, f"training on {page.url} failed:\n" + "\n".join(errors.all_inner_texts())
    wait_for_charts(page, 1)


# ----------------------------------------------------------------------------- tests
def test_every_page_renders_without_an_exception_and_build_draws_its_charts(new_tab, server, screenshots):
    page = new_tab()
    report = sharecore.param_report(sharecore.preset("seed-dense"))

    goto(page, server, "home")
    assert_no_exception(page)
    assert metric(page, "Tied parameters") == f"{report.tied_total:,}"
    assert metric(page, "Untied parameters") == f"{report.untied_total:,}"
    snap(page, screenshots, "home")

    goto(page, server, "build")
    page.locator('[data-testid="stGraphVizChart"] svg g.node').first.wait_for()  # the diagram, on the first tab
    server.timings.setdefault("server start -> first chart (Build diagram)", time.monotonic() - server.started)
    assert_no_exception(page)
    snap(page, screenshots, "build")
    for tab in ("Shared tensors", "Parameters"):  # charts on hidden tabs draw when shown
        page.get_by_role("tab", name=tab).click()
        wait_for_charts(page, 1)
        assert_no_exception(page)

    # No results yet in this session: each training page says what to do.
    for name, hint in (("train", "Press Train"), ("gradients", "No results yet"), ("divergence", "No results yet")):
        goto(page, server, name)
        assert_no_exception(page)
        assert hint in main_text(page)

    goto(page, server, "pitfalls")
    page.locator("h3", has_text="3.").first.wait_for()  # all three demonstrations computed
    wait_until_idle(page)
    assert_no_exception(page)
    assert page.locator("h3").count() == 3
    assert main_text(page).count("Broken recipe") == 3
    assert page.locator(METRIC).count() >= 6  # at least one measurement per side and pitfall
    snap(page, screenshots, "pitfalls")


def test_a_short_training_draws_the_loss_gradient_and_divergence_charts(new_tab, server, screenshots):
    page = new_tab()
    goto(page, server, "train")
    assert "Press Train" in main_text(page)
    set_number(page, ".st-key-train-steps", 20)
    page.wait_for_url(re.compile(r"[?&]steps=20(&|$)"))  # the setting reached the session and the URL

    page.locator(".st-key-train-start button").click()
    clicked = time.monotonic()
    wait_for_results(page, server, TRAIN_S)
    server.timings["Train click -> results and loss chart (seed-dense, 20 steps)"] = time.monotonic() - clicked
    assert metric(page, "Steps") == "20 / 20"
    assert_no_exception(page)
    assert metric(page, "Device").startswith("CPU")
    page.locator(".st-key-train-loss").scroll_into_view_if_needed()  # the results and their chart
    snap(page, screenshots, "train")

    click_nav(page, server, "gradients")  # sidebar navigation keeps the session and its results
    wait_for_charts(page, 2)  # per-use contributions and the cosine between uses
    assert_no_exception(page)
    snap(page, screenshots, "gradients")

    click_nav(page, server, "divergence")
    wait_for_charts(page, 2)  # drift of the untied copies and the weight histograms
    assert_no_exception(page)
    snap(page, screenshots, "divergence")


def test_a_copied_url_opens_the_same_experiment_in_a_new_session(new_tab, server):
    page = new_tab()
    goto(page, server, "home")
    select_option(page, ".st-key-sidebar-preset", "albert-mlp")
    page.locator("h3", has_text="Current model: albert-mlp").wait_for()
    set_number(page, ".st-key-sidebar-seed", 7)
    page.wait_for_url(re.compile(r"[?&]seed=7(&|$)"))
    click_nav(page, server, "build")
    select_option(page, '[class*="-use-0-activation"]', "gelu")  # block1_up: relu -> gelu
    page.wait_for_url(re.compile(r"[?&]spec="))  # an edited spec travels in the link itself
    wait_until_idle(page)
    shared_url = page.url
    spec_shown = spec_json(page)
    assert spec_shown["uses"][0]["activation"] == "gelu"

    other = new_tab()  # a colleague opening the link
    other.goto(shared_url)
    wait_for_page(other, "Build")
    assert_no_exception(other)
    assert other.locator(WARNING).count() == 0, other.locator(WARNING).all_inner_texts()  # the link was read
    assert spec_json(other) == spec_shown
    assert other.locator(".st-key-sidebar-preset input").input_value() == "albert-mlp"
    assert other.locator(".st-key-sidebar-seed input").input_value() == "7"
    other.get_by_text("Edited on the Build page (started from 'albert-mlp')").wait_for()
    report = sharecore.param_report(sharecore.ModelSpec.from_dict(spec_shown))
    click_nav(other, server, "home")
    assert metric(other, "Tied parameters") == f"{report.tied_total:,}"
    assert metric(other, "Untied parameters") == f"{report.untied_total:,}"


def spec_json(page) -> dict:
    """The spec the Build page shows on its 'Spec JSON' tab."""
    page.get_by_role("tab", name="Spec JSON").click()
    code = page.locator('[role="tabpanel"]:visible [data-testid="stCode"]').first
    return json.loads(code.inner_text())


def test_three_tabs_train_at_once_and_each_sees_only_its_own_results(new_tab, server):
    # Distinct parameter counts, so a tab showing another tab's run would be caught.
    runs = [("seed-dense", 1), ("tied-autoencoder", 2), ("partial-share", 3)]
    steps = 10
    tabs = []
    for preset, seed in runs:
        page = new_tab()
        goto(page, server, "train", f"preset={preset}&seed={seed}&steps={steps}")
        assert f"Model '{preset}'" in main_text(page) and f"(seed {seed})" in main_text(page)
        tabs.append(page)

    # Back to back: with at most two runs training at once per server, the third one queues.
    started = time.monotonic()
    for page in tabs:
        page.locator(".st-key-train-start button").click()

    for page, (preset, seed) in zip(tabs, runs):
        wait_for_results(page, server, max(5.0, TRAIN_S + 30 - (time.monotonic() - started)))
        assert_no_exception(page)
        text = main_text(page)
        assert f"Model '{preset}'" in text and f"(seed {seed})" in text
        assert metric(page, "Steps") == f"{steps} / {steps}"
        report = sharecore.param_report(sharecore.preset(preset))
        parameters = next(line for line in text.splitlines() if "Parameters" in line)
        assert sorted(numbers(parameters.split("Parameters", 1)[1])) == sorted(
            [report.tied_total, report.untied_total]
        ), f"{preset} shows {parameters!r}"
    server.timings["three tabs: first click -> all three results (10 steps each)"] = time.monotonic() - started


def test_a_newcomer_builds_tied_lm_trains_it_on_tokens_and_gets_keras_code_that_runs(new_tab, server, tmp_path):
    """Issue 11's walk: the language model family, its counts, the token task with a held-out loss, the code."""
    page = new_tab()
    goto(page, server, "build")
    page.locator(".st-key-build-family-language-model button").click()
    # The click's rerun may not have started yet: wait for its counts, not only for an idle page.
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stMetricValue"]')].some(e => e.innerText.trim() === '768')""",
        timeout=PAGE_S * 1000,
    )
    wait_until_idle(page)
    assert_no_exception(page)
    assert (metric(page, "Tied"), metric(page, "Untied")) == ("768", "1,280")
    page.get_by_role("tab", name="Keras code").click()
    with page.expect_download() as download:
        page.locator(".st-key-build-download_code button").click()
    script = tmp_path / "tied_lm.py"
    download.value.save_as(script)
    ran = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "count_params: 768" in ran.stdout and "output shape: (4, 8, 32)" in ran.stdout

    click_nav(page, server, "train")
    assert page.locator(".st-key-train-dataset input[type=radio]:checked").count() == 1
    assert "tokens: predict the next token" in page.locator(".st-key-train-dataset").inner_text()
    page.locator(".st-key-train-start button").click()
    wait_for_results(page, server, TRAIN_S)
    assert_no_exception(page)
    legend = page.locator(".st-key-train-loss").inner_text()
    assert "tied held-out loss" in legend and "untied held-out loss" in legend
    assert "Markov chain over 32 tokens" in main_text(page)


def lab_progress(page) -> int:
    """The step the Lab's live panel shows, or -1 when no run is training."""
    found = re.search(r"Training tied and untied: step (\d+) of", main_text(page))
    return int(found.group(1)) if found else -1


def kept_in_store(page) -> list:
    """The kept runs of the browser's workspace, read from the run store the server writes (its cookie names it)."""
    from sharecore.runs.store import RunStore

    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return RunStore.from_env().runs(cookies["sharecore_workspace"])


def test_a_run_whose_tab_reloads_goes_on_and_is_kept_and_one_whose_tab_closes_is_kept_as_stopped(new_tab, server):
    page = new_tab()
    page.goto(f"{server.url}/lab?preset=seed-conv&steps=1000")
    page.locator("h1", has_text="Lab").wait_for()
    wait_until_idle(page)
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_function(
        "() => /Training tied and untied: step [1-9]/.test(document.body.innerText)", timeout=TRAIN_S * 1000
    )
    page.reload()  # a new session: the run must neither be lost nor stop
    page.locator("h1", has_text="Lab").wait_for()
    page.wait_for_function(
        "() => /Training tied and untied: step [1-9]/.test(document.body.innerText)", timeout=PAGE_S * 1000
    )
    page.wait_for_function(
        "() => !document.body.innerText.includes('Training tied and untied')", timeout=TRAIN_S * 1000, polling=500
    )
    wait_for_charts(page, 3)
    assert_no_exception(page)
    (kept,) = kept_in_store(page)
    assert kept.steps_done == 1000, "the reloaded page's run went on to its last step"
    assert any(
        kept.label in name for name in page.locator(CHART).first.locator(".legend .legendtext").all_text_contents()
    )

    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_function(
        "() => /Training tied and untied: step [1-9]/.test(document.body.innerText)", timeout=TRAIN_S * 1000
    )
    context = page.context
    page.close()  # the tab is closed mid-run: the run stops within seconds and is kept as a stopped run
    deadline = time.monotonic() + TRAIN_S
    while len(runs := kept_in_store(context.pages[0] if context.pages else context.new_page())) < 2:
        assert time.monotonic() < deadline, "the closed tab's run was not kept"
        time.sleep(0.5)
    stopped = runs[0]
    assert 0 < stopped.steps_done < 1000 and stopped.can_continue
    assert stopped.label.endswith(f"(stopped at {stopped.steps_done})")


def test_a_visit_to_every_page_makes_no_request_outside_the_apps_own_origin(browser, server):
    """A hosted demo sends no visitor's address to a third party, and works offline (a workshop room's wifi)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_S * 1000)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    context.route(
        "**/*", lambda route: route.continue_() if route.request.url.startswith(server.url) else route.abort()
    )
    page = context.new_page()
    # Headless Chromium loads no favicon, so the one each page sets is read from the page itself.
    favicon = "() => document.querySelector(\"link[rel='shortcut icon']\").href"
    goto(page, server, "home")
    icons = {"home": page.evaluate(favicon)}
    for name in ("lab", "compare", "exercises", "build", "train", "gradients", "divergence", "pitfalls"):
        page.locator(f'[data-testid="stSidebarNavLink"][href="{server.url}/{name}"]').click()
        page.wait_for_url(re.compile(rf"/{name}(\?|$)"))
        wait_until_idle(page)
        icons[name] = page.evaluate(favicon)
    page.wait_for_timeout(1000)  # a font asked for after the last run
    context.close()
    assert len(requests) > 20, requests  # the pages' own scripts, styles, fonts and websocket
    local = (server.url, "data:", "blob:")
    outside = sorted({url for url in [*requests, *icons.values()] if not url.startswith(local)})
    assert outside == [], f"requests that would leave the app's origin: {outside}"
