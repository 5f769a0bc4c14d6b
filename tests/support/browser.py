"""Driving the app in a real Chromium: its pages, waiting for reruns and charts, reading what it shows,
and screenshots. Every function takes a Playwright page (one tab, one Streamlit session); the
fixtures that open them are in tests/browser/conftest.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import time
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.support import ROOT
from tests.support.contrast import contrast_ratio
from tests.support.server import Server

VIEWPORT = {"width": 1280, "height": 900}
PROJECTOR = {"width": 1024, "height": 768}
NARROW = {"width": 800, "height": 900}
MAX_SCREENSHOT_BYTES = 300_000
# page -> (url path: st.navigation names it after the page's file, the page's title)
PAGES = {
    "home": ("", "Tied vs untied weights"),  # the default page lives at /
    "build": ("build", "Build"),
    "train": ("train", "Train"),
    "gradients": ("gradients", "Gradient flow"),
    "divergence": ("divergence", "Divergence"),
    "pitfalls": ("pitfalls", "Pitfalls"),
    "your_model": ("your_model", "Your model"),
}
PAGE_S = 60  # a page's first run (may build and compile a model)
# A server's first run of a model traces and compiles its training graph. That takes about a
# second on an idle machine, but has taken over 40 s on a busy 2-core one.
TRAIN_S = 150

# A chart the page shows: not the hidden one a session's second run ends with (`ui.startup.warm_up_charts`).
CHART = '[data-testid="stPlotlyChart"]:not(.st-key-startup-warm-up-chart *)'
EXCEPTION = '[data-testid="stException"]'
ERROR = '[data-testid="stAlertContentError"]'  # st.error, e.g. a run that could not train
WARNING = '[data-testid="stAlertContentWarning"]'  # st.warning, e.g. a link that could not be read
METRIC = '[data-testid="stMetric"]'
GRAPHVIZ = '[data-testid="stGraphVizChart"]'
# True when every visible chart has drawn its SVG and there are at least `n` of them.
CHARTS_DRAWN = """n => {
    const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
        .filter(c => c.offsetParent !== null && !c.closest('[data-stale="true"]'));
    return charts.length >= n && charts.every(c => c.querySelector('svg.main-svg'));
}"""


# ----------------------------------------------------------------------------- tabs
def local_only(context, server: Server) -> None:
    """Refuses every request of `context` that does not go to `server` (e.g. the page icon from
    fonts.gstatic.com), so the tests never touch the network."""
    context.route(
        "**/*", lambda route: route.continue_() if route.request.url.startswith(server.url) else route.abort()
    )


# ----------------------------------------------------------------------------- pages and reruns
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


# The count of full script runs the app writes into the sidebar (`ui.routing._count_script_run`).
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


def live(page, selector: str):
    """`selector` (a keyed element, then optionally what to find inside it: ".st-key-train-steps input")
    as the current script run drew it. While a rerun is under way Streamlit keeps the previous run's
    element beside the new one, marked `data-stale="true"`, so a plain locator can match both and
    Playwright's strict mode refuses to act on either."""
    if not selector.startswith(".st-key-"):
        return page.locator(selector)  # e.g. a widget found by its label: it carries no key to mark
    keyed, _, inside = selector.partition(" ")
    return page.locator(f'{keyed}:not([data-stale="true"]) {inside}'.strip())


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


# ----------------------------------------------------------------------------- inputs
def select_option(page, container: str, option: str) -> None:
    """Picks `option` (another than the one shown) in the st.selectbox inside `container`, and waits for its rerun."""
    wait_until_idle(page)
    before = script_runs(page)
    box = live(page, f"{container} [role='combobox']")
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
    fill(page, live(page, f"{container} input"), str(value))


def fill(page, field, text: str) -> None:
    """Types `text` (another than the one shown) into a text field, presses Enter and waits for its rerun."""
    wait_until_idle(page)
    before = script_runs(page)
    field.fill(text)
    field.press("Enter")
    wait_for_rerun(page, before)


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


# ----------------------------------------------------------------------------- training
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


LAB_RUNNING = "() => document.body.innerText.includes('Training tied and untied')"


def open_lab(page, url: str, query: str = "") -> None:
    page.goto(f"{url}/lab{'?' + query if query else ''}")
    page.locator("h1, h2, h3", has_text="Lab").first.wait_for(timeout=PAGE_S * 1000)
    wait_until_idle(page)


def train_in_lab(page, button: str = "Train") -> None:
    """Clicks a Lab button that trains and waits until the run has ended and the charts are back."""
    page.get_by_role("button", name=button).click()
    with contextlib.suppress(PlaywrightTimeout):  # a short run may end before a poll sees it
        page.wait_for_function(LAB_RUNNING, timeout=20_000, polling=100)
    page.wait_for_function(f"() => !({LAB_RUNNING})()", timeout=TRAIN_S * 1000, polling=300)
    wait_until_idle(page, TRAIN_S)
    errors = page.locator(ERROR)
    assert errors.count() == 0, "\n".join(errors.all_inner_texts())
    wait_for_charts(page, 3)


# ----------------------------------------------------------------------------- layout
# Text that does not fit its box: buttons, metric labels and values, select values, headings.
# A box is cut when its content is wider than the box (scrollWidth > clientWidth).
CUT_TEXT = """() => {
    const selectors = ['button', '[data-testid="stMetricLabel"]', '[data-testid="stMetricValue"]',
        '[data-baseweb="select"] [value]', '[data-baseweb="select"] div[title]', 'h1', 'h2', 'h3',
        '[data-testid="stWidgetLabel"]', '[role="tab"]'];
    const cut = [];
    for (const el of document.querySelectorAll(selectors.join(','))) {
        if (el.offsetParent === null || el.closest('[data-testid="stSidebar"]')) continue;
        for (const box of [el, ...el.querySelectorAll('*')]) {
            const style = getComputedStyle(box);
            if (box.scrollWidth > box.clientWidth + 1 && style.overflow !== 'visible' && box.clientWidth > 2) {
                cut.push((el.innerText || el.getAttribute('value') || el.tagName).trim().slice(0, 60)
                    + ' (' + box.scrollWidth + ' > ' + box.clientWidth + ')');
                break;
            }
        }
    }
    return cut;
}"""
# The text boxes of each chart's title and panel titles: pairs that overlap, and titles past the chart's edge.
TITLE_CLASH = """() => {
    const problems = [];
    for (const chart of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
        if (chart.offsetParent === null) continue;
        const svg = chart.querySelector('svg.main-svg').getBoundingClientRect();
        const boxes = [...chart.querySelectorAll('.gtitle, .annotation-text')]
            .filter(t => t.textContent.trim())
            .map(t => [t.textContent.trim().slice(0, 40), t.getBoundingClientRect()]);
        for (const [text, r] of boxes)
            if (r.right > svg.right + 1 || r.left < svg.left - 1) problems.push('past the edge: ' + text);
        for (let i = 0; i < boxes.length; i++)
            for (let j = i + 1; j < boxes.length; j++) {
                const [a, p] = boxes[i], [b, q] = boxes[j];
                if (p.left < q.right - 1 && q.left < p.right - 1 && p.top < q.bottom - 1 && q.top < p.bottom - 1)
                    problems.push('overlap: ' + a + ' / ' + b);
            }
    }
    return problems;
}"""
# The diagram's SVG, drawn by Graphviz in the browser: its node and edge groups and text.
DIAGRAM = """() => {
    const svg = document.querySelector('[data-testid="stGraphVizChart"] svg');
    if (!svg) return null;
    // Text of two different nodes or edges (lines of one label may touch each other).
    const labels = [...svg.querySelectorAll('g.node text, g.edge text')]
        .map(t => [t.closest('g.node, g.edge'), t.getBoundingClientRect()]);
    let overlaps = 0;
    for (let i = 0; i < labels.length; i++)
        for (let j = i + 1; j < labels.length; j++) {
            if (labels[i][0] === labels[j][0]) continue;
            const p = labels[i][1], q = labels[j][1];
            if (p.left < q.right - 1 && q.left < p.right - 1 && p.top < q.bottom - 1 && q.top < p.bottom - 1) overlaps++;
        }
    return {nodes: svg.querySelectorAll('g.node').length, edges: svg.querySelectorAll('g.edge').length,
            text: svg.textContent, titles: [...svg.querySelectorAll('title, a')].map(
                a => a.getAttribute('xlink:title') || a.getAttribute('title') || '').join('\\n'),
            images: svg.querySelectorAll('image, img, foreignObject').length, overlaps};
}"""


def check_fits(page, where: str) -> None:
    """No exception, no text cut off, no chart titles overlapping on what `page` shows now."""
    wait_until_idle(page)
    assert_no_exception(page)
    cut = page.evaluate(CUT_TEXT)
    assert not cut, f"text cut off on {where}: {cut}"
    clashes = page.evaluate(TITLE_CLASH)
    assert not clashes, f"chart titles clash on {where}: {clashes}"


def diagram(page) -> dict:
    """What the Graphviz diagram on the page draws (`DIAGRAM`), once its first node is there."""
    page.locator(f"{GRAPHVIZ} svg g.node").first.wait_for()
    return page.evaluate(DIAGRAM)


# ----------------------------------------------------------------------------- screenshots
_SCREENSHOTS: Path | None = None


def screenshot_dir() -> Path:
    """SHARECORE_SCREENSHOTS (relative to the repository: `SHARECORE_SCREENSHOTS=docs` retakes the
    README's), else one temporary folder for the test process: a test run never rewrites tracked files."""
    global _SCREENSHOTS
    if _SCREENSHOTS is None:
        target = os.environ.get("SHARECORE_SCREENSHOTS")
        _SCREENSHOTS = ROOT / target if target else Path(tempfile.mkdtemp(prefix="sharecore-screenshots-"))
    _SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return _SCREENSHOTS


def snap(page, screenshots: Path, name: str) -> Path:
    """A PNG of what is on screen now (the viewport, CSS pixels)."""
    page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] - 5)  # no tooltip or hover outline
    wait_until_idle(page)
    path = screenshots / f"{name}.png"
    page.screenshot(path=str(path), scale="css", animations="disabled", caret="hide")
    assert path.stat().st_size < MAX_SCREENSHOT_BYTES, f"{path} is {path.stat().st_size:,} bytes"
    return path


def save_png(page, name: str, path: Path | None = None) -> Path:
    """A viewport screenshot (presenter-<name>.png in `screenshot_dir()`, or `path`), re-encoded with
    Pillow's optimiser (and fewer colors if needed) to stay under 300 KB."""
    from PIL import Image

    page.mouse.move(5, PROJECTOR["height"] - 5)
    wait_until_idle(page)
    image = Image.open(io.BytesIO(page.screenshot(scale="css", animations="disabled", caret="hide")))
    path = path or screenshot_dir() / f"presenter-{name}.png"
    image.save(path, optimize=True)
    if path.stat().st_size >= MAX_SCREENSHOT_BYTES:
        image.convert("RGB").quantize(colors=256).save(path, optimize=True)
    assert path.stat().st_size < MAX_SCREENSHOT_BYTES, f"{path} is {path.stat().st_size:,} bytes"
    return path


# ----------------------------------------------------------------------------- presenter mode
# The smallest text presenter mode may draw (CSS px, as rendered: an SVG's own scaling and CSS zoom
# included), outside the canvas of a grid (st.dataframe, st.data_editor), which the DOM cannot measure.
PRESENTER_MIN_PX = 18
# WCAG 2's least contrast for normal text.
MIN_CONTRAST = 4.5
# Every visible text of the main area: its rendered size, its colour with the opacity of its
# ancestors, and the background it is drawn on (its ancestors' backgrounds blended down to an opaque
# one or the white page; white for chart and diagram text, which sits on a white chart or node). Disabled controls are left
# out (WCAG exempts inactive components), as are hidden accessibility copies of grids and text drawn
# fully transparent.
TEXTS = """() => {
    const rgba = s => { const p = (s.match(/[\\d.]+/g) || []).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
    const out = [];
    const seen = new Set();
    const walker = document.createTreeWalker(document.querySelector('[data-testid="stMain"]'), NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const el = walker.currentNode.parentElement;
        if (!walker.currentNode.textContent.trim() || seen.has(el)) continue;
        seen.add(el);
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0 || el.closest('table[role="grid"], [hidden], title, style, script')) continue;
        if (el.closest('button:disabled, [aria-disabled="true"], [disabled]')) continue;
        const cs = getComputedStyle(el);
        if (cs.visibility === 'hidden') continue;
        let size = parseFloat(cs.fontSize);
        const svg = el instanceof SVGGraphicsElement;
        if (svg) {
            const b = el.getBBox();
            if (b.width > 0 && b.height > 0) size *= Math.sqrt((r.width * r.height) / (b.width * b.height));
        }
        let opacity = 1, opaque = false;
        const cx = (r.left + r.right) / 2, cy = (r.top + r.bottom) / 2;
        const layers = [];  // the backgrounds under the text, top first, down to an opaque one
        for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
            const s = getComputedStyle(e);
            opacity *= parseFloat(s.opacity);
            const b = rgba(s.backgroundColor), box = e.getBoundingClientRect();
            const under = box.left <= cx && cx <= box.right && box.top <= cy && cy <= box.bottom;  // not a label set beside its box
            if (!svg && !opaque && b[3] > 0 && under) { layers.push(b); opaque = b[3] >= 1; }
        }
        let bg = [255, 255, 255];  // the page
        for (const b of layers.reverse()) bg = bg.map((c, i) => b[3] * b[i] + (1 - b[3]) * c);
        const color = rgba(svg ? cs.fill : cs.color);
        color[3] *= opacity * (svg ? parseFloat(cs.fillOpacity) : 1);
        if (color[3] === 0) continue;  // not shown (a slider's range shows on hover)
        out.push({text: walker.currentNode.textContent.trim().slice(0, 40), size, color, background: bg});
    }
    return out;
}"""
# Grids drawn on a canvas (st.dataframe, st.data_editor) in view, outside an expander: their text is a
# fixed 14 px, which TEXTS cannot measure (it is pixels, not text). An expander may fold one away (the
# Lab's editable kept-runs grid, beneath its HTML table), for a person who opens it to edit.
CANVAS_GRIDS = """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stDataFrame"]')]
    .filter(g => g.getBoundingClientRect().height > 0 && !g.closest('[data-testid="stExpander"]'))
    .map(g => (g.closest('[class*="st-key-"]')?.className.match(/st-key-\\S+/) || ['a grid'])[0])"""
# Header cells of HTML tables (st.table) whose text is wider than the cell: cut.
CUT_HEADERS = """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stTable"] th')]
    .filter(th => th.offsetParent !== null && th.scrollWidth > th.clientWidth + 1)
    .map(th => th.textContent.trim() + ' (' + th.scrollWidth + ' > ' + th.clientWidth + ')')"""


def presenter_on(page) -> None:
    """Turns on the sidebar's presenter mode, as a person would, and waits until the sidebar has folded."""
    page.get_by_text("Presenter mode", exact=True).click()
    wait_until_idle(page)
    page.wait_for_function(SIDEBAR_FOLDED)
    wait_until_idle(page)


SIDEBAR_FOLDED = """() => { const s = document.querySelector('[data-testid="stSidebar"]');
    return !s || s.getBoundingClientRect().right <= 0 || s.getBoundingClientRect().width === 0; }"""


def inside_viewport(page, selector: str) -> bool:
    """Whether the first visible element matching `selector` lies wholly inside the window, as scrolled now."""
    box = live(page, selector).first.bounding_box()
    size = page.viewport_size
    return (
        box is not None
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= size["width"] + 1
        and (box["y"] + box["height"] <= size["height"] + 1)
    )


def check_presented(page, where: str) -> None:
    """What presenter mode promises, on what `page` shows now: the sidebar folded with its opener in
    view, nothing cut (`check_fits`, and no header of an HTML table), no canvas grid in view
    outside an expander (`CANVAS_GRIDS`), every text at least
    `PRESENTER_MIN_PX` and at a contrast of at least `MIN_CONTRAST` on its background."""
    check_fits(page, where)
    assert page.evaluate(SIDEBAR_FOLDED), f"the sidebar is open on {where}"
    assert inside_viewport(page, '[data-testid="stExpandSidebarButton"]'), f"no control to open the sidebar on {where}"
    assert not page.evaluate(CUT_HEADERS), f"table headers cut on {where}: {page.evaluate(CUT_HEADERS)}"
    grids = page.evaluate(CANVAS_GRIDS)
    assert not grids, f"grids drawn at a fixed 14 px on {where}: {grids}"
    texts = page.evaluate(TEXTS)
    assert texts, f"no text found on {where}"
    small = [(t["text"], round(t["size"], 1)) for t in texts if t["size"] < PRESENTER_MIN_PX - 0.05]
    assert not small, f"text under {PRESENTER_MIN_PX} px on {where}: {small[:10]}"
    faint = [
        (t["text"], round(contrast_ratio(t["color"], t["background"]), 2))
        for t in texts
        if contrast_ratio(t["color"], t["background"]) < MIN_CONTRAST
    ]
    assert not faint, f"text under {MIN_CONTRAST}:1 contrast on {where}: {faint[:10]}"
