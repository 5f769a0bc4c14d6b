"""Presenter-ready, in a real Chromium: at 800 px and at a projector's 1024x768 no text is cut off
and no chart titles overlap, on Home, Build, Train (after a short run), Gradient flow and Divergence;
the model diagram is drawn by Graphviz in the browser, hostile names included.

One server for the module (test_browser.py's `server`, `browser` and `new_tab` fixtures). The
1024x768 screenshots are saved as presenter-<page>.png (each under 300 KB) in SHARECORE_SCREENSHOTS
(`SHARECORE_SCREENSHOTS=docs` retakes the README's) or a temporary folder.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path

import pytest

from sharecore.share import urlstate
from tests.app.test_user_text import HOSTILE
from tests.browser import test_pages as test_browser
from tests.browser.test_pages import (
    ROOT,
    TRAIN_S,
    assert_no_exception,
    click_nav,
    goto,
    set_number,
    wait_for_charts,
    wait_for_results,
    wait_until_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
browser = test_browser.browser
server = test_browser.server

PROJECTOR = {"width": 1024, "height": 768}
NARROW = {"width": 800, "height": 900}
# Screenshots go where SHARECORE_SCREENSHOTS says (`SHARECORE_SCREENSHOTS=docs` retakes the README's),
# else to a temporary folder: a test run never rewrites tracked files.
DOCS = ROOT / os.environ["SHARECORE_SCREENSHOTS"] if os.environ.get("SHARECORE_SCREENSHOTS") else None
MAX_BYTES = 300_000
GRAPHVIZ = '[data-testid="stGraphVizChart"]'

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


def open_tab(browser, server, viewport):
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(90_000)
    context.route(
        "**/*", lambda route: route.continue_() if route.request.url.startswith(server.url) else route.abort()
    )
    return context.new_page()


def check_fits(page, where: str) -> None:
    wait_until_idle(page)
    assert_no_exception(page)
    cut = page.evaluate(CUT_TEXT)
    assert not cut, f"text cut off on {where}: {cut}"
    clashes = page.evaluate(TITLE_CLASH)
    assert not clashes, f"chart titles clash on {where}: {clashes}"


def screenshot_dir() -> Path:
    """SHARECORE_SCREENSHOTS (relative to the repository), or one temporary folder for the test session."""
    global DOCS
    if DOCS is None:
        DOCS = Path(tempfile.mkdtemp(prefix="sharecore-screenshots-"))
    DOCS.mkdir(parents=True, exist_ok=True)
    return DOCS


def save_png(page, name: str, path: Path | None = None) -> Path:
    """A viewport screenshot in docs/ (presenter-<name>.png, or `path`), re-encoded with Pillow's optimiser
    (and fewer colors if needed) to stay under 300 KB."""
    from PIL import Image

    page.mouse.move(5, PROJECTOR["height"] - 5)
    wait_until_idle(page)
    image = Image.open(io.BytesIO(page.screenshot(scale="css", animations="disabled", caret="hide")))
    path = path or screenshot_dir() / f"presenter-{name}.png"
    image.save(path, optimize=True)
    if path.stat().st_size >= MAX_BYTES:
        image.convert("RGB").quantize(colors=256).save(path, optimize=True)
    assert path.stat().st_size < MAX_BYTES, f"{path} is {path.stat().st_size:,} bytes"
    return path


def diagram(page) -> dict:
    page.locator(f"{GRAPHVIZ} svg g.node").first.wait_for()
    return page.evaluate(DIAGRAM)


@pytest.mark.parametrize("viewport", [NARROW, PROJECTOR], ids=["800px", "1024x768"])
def test_no_text_is_cut_and_no_chart_titles_overlap_on_a_narrow_screen_or_a_projector(browser, server, viewport):
    page = open_tab(browser, server, viewport)
    shots = viewport == PROJECTOR
    goto(page, server, "home", "preset=albert-mlp")
    check_fits(page, "Home")
    if shots:
        save_png(page, "home")

    for preset in ("partial-share", "seed-conv", "albert-mlp"):
        goto(page, server, "build", f"preset={preset}")
        drawn = diagram(page)
        assert drawn["overlaps"] == 0, f"{preset}: diagram labels overlap"
        check_fits(page, f"Build ({preset})")
        page.get_by_role("tab", name="Shared tensors").click()
        wait_for_charts(page, 1)
        check_fits(page, f"Build, tensor views ({preset})")
        page.get_by_role("tab", name="Diagram").click()
    if shots:
        save_png(page, "build")

    goto(page, server, "train", "preset=albert-mlp")
    set_number(page, ".st-key-train-steps", 20)
    page.wait_for_url(re.compile(r"[?&]steps=20(&|$)"))
    check_fits(page, "Train")
    page.locator(".st-key-train-start button").click()
    wait_for_results(page, server, TRAIN_S)
    check_fits(page, "Train, results")
    page.locator(".st-key-train-log_y").click()  # the log-scale toggle redraws the loss chart
    page.locator(".st-key-train-loss", has_text="log scale").wait_for()  # the axis title says so
    wait_for_charts(page, 1)
    if shots:
        page.locator(".st-key-train-loss").scroll_into_view_if_needed()
        save_png(page, "train")

    for name in ("gradients", "divergence"):
        click_nav(page, server, name)
        wait_for_charts(page, 2)
        check_fits(page, name)
        if shots:
            save_png(page, name)
    page.context.close()


def test_the_diagram_is_drawn_by_graphviz_in_chromium_with_colored_tensors_and_rules(browser, server):
    page = open_tab(browser, server, PROJECTOR)
    goto(page, server, "build", "preset=partial-share")
    drawn = diagram(page)
    # input, output, two uses and the one stored tensor; 4 data arrows and 2 dashed tensor arrows.
    assert (drawn["nodes"], drawn["edges"]) == (5, 6)
    for text in ("wide", "narrow", "W", "stored once, read by 2 uses", "as stored", "slice [:, 0:4]"):
        assert text in drawn["text"]
    assert "reads slice [:, 0:4] of W" in drawn["titles"]  # the hover detail, as Graphviz tooltips
    page.locator(".st-key-build-variant button", has_text="untied").click()
    wait_until_idle(page)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stGraphVizChart\"] svg')?.textContent.includes('copy of')"
    )
    drawn = diagram(page)
    assert (drawn["nodes"], drawn["edges"]) == (6, 6) and "init: slice [:, 0:4]" in drawn["text"]
    page.context.close()


def test_a_hostile_name_is_drawn_as_text_in_the_diagram(browser, server):
    page = open_tab(browser, server, PROJECTOR)
    goto(page, server, "build", f"spec={urlstate.encode_spec(HOSTILE)}")
    drawn = diagram(page)
    assert drawn["images"] == 0  # '![](http://...)' and '<img ...>' stayed text
    assert (drawn["nodes"], drawn["edges"]) == (5, 5)  # seed-dense: nothing injected
    assert f"tied model: {HOSTILE.name}" in drawn["text"]
    assert_no_exception(page)
    page.context.close()
