"""Presenter-ready workshop pages, in a real Chromium: at 800 px and at a projector's 1024x768 the Lab
(after short trainings), Compare runs (three runs) and Exercises cut no text, their chart titles and
legends overlap nothing, and presenter mode ("larger chart text") keeps it so; in presenter mode the
kept runs are an HTML table (a hostile label shown as written), their editable grid folded beneath.

The package's shared server (tests/browser/conftest.py); three 20-step runs are trained once, in one
browser's workspace (its cookie), and every test opens fresh tabs with that cookie. Screenshots: docs/presenter-lab.png and
docs/presenter-compare.png at 1024x768, docs/compare.png at 1280x900 (each under 300 KB).
"""

from __future__ import annotations

import pytest

from tests.support.browser import (
    CHART,
    NARROW,
    PROJECTOR,
    check_fits,
    check_presented,
    diagram,
    inside_viewport,
    live,
    local_only,
    pick_slider,
    presenter_on,
    save_png,
    screenshot_dir,
    select_option,
    train_in_lab,
    wait_for_charts,
    wait_until_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

README = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
LAB = "lab?preset=seed-conv&steps=20"
RUNS = 3
# Each chart's legend entries: past the chart's edge, over the plot area, an axis or chart title, a
# tick label or a panel title, or over each other.
LEGEND_CLASH = """() => {
    const problems = [];
    const hit = (p, q) => p.left < q.right - 1 && q.left < p.right - 1 && p.top < q.bottom - 1 && q.top < p.bottom - 1;
    for (const chart of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
        if (chart.offsetParent === null || !chart.querySelector('svg.main-svg')) continue;
        const name = (chart.querySelector('.gtitle')?.textContent || '?').slice(0, 30);
        const svg = chart.querySelector('svg.main-svg').getBoundingClientRect();
        const items = [...chart.querySelectorAll('.legend .traces')]
            .map(t => [t.textContent.slice(0, 40), t.getBoundingClientRect()]);
        const others = [
            ...[...chart.querySelectorAll('.nsewdrag')].map(e => ['the plot area', e.getBoundingClientRect()]),
            ...[...chart.querySelectorAll('.xtitle, .ytitle, .gtitle, .annotation-text, .xtick text, .ytick text')]
                .filter(e => e.textContent.trim()).map(e => [e.textContent.trim().slice(0, 30), e.getBoundingClientRect()]),
        ];
        for (const [text, r] of items) {
            if (r.right > svg.right + 1 || r.left < svg.left - 1 || r.bottom > svg.bottom + 1)
                problems.push(name + ': legend entry past the edge: ' + text);
            for (const [what, q] of others) if (hit(r, q)) problems.push(name + ': legend entry ' + text + ' over ' + what);
        }
        for (let i = 0; i < items.length; i++)
            for (let j = i + 1; j < items.length; j++)
                if (hit(items[i][1], items[j][1])) problems.push(name + ': legend entries overlap: ' + items[i][0]);
    }
    return problems;
}"""
# Width of the content and of the box of a table's grid, for the visible st.dataframe/st.data_editor
# in `selector`: wider content scrolls sideways, so some columns are out of sight.
GRID_WIDTHS = """selector => [...document.querySelectorAll(selector + ' [data-testid="stDataFrame"] .dvn-scroller')]
    .filter(s => s.offsetParent !== null).map(s => [s.scrollWidth, s.clientWidth])"""
# An element at the top of the window, below Streamlit's header (which would cover its first 60 px).
SCROLL_TO_TOP = """element => {
    element.scrollIntoView({block: 'start'});
    let box = element.parentElement;
    while (box && !(box.scrollHeight > box.clientHeight && getComputedStyle(box).overflowY !== 'visible'))
        box = box.parentElement;
    (box || window).scrollBy(0, -70);
}"""
# The title texts of a chart that its plotly toolbar, where shown, is drawn over.
TOOLBAR_OVER_TITLES = """chart => {
    const bar = chart.querySelector('.modebar');
    if (!bar || getComputedStyle(bar).opacity === '0' || bar.offsetParent === null) return [];
    const b = bar.getBoundingClientRect();
    return [...chart.querySelectorAll('.gtitle, .gtitle-subtitle, .annotation-text')].filter(t => {
        const r = t.getBoundingClientRect();
        return r.width > 0 && r.left < b.right && b.left < r.right && r.top < b.bottom && b.top < r.bottom;
    }).map(t => t.textContent.slice(0, 40));
}"""
TITLE_SIZE = """() => Math.min(...[...document.querySelectorAll('[data-testid="stPlotlyChart"] .gtitle')]
    .map(t => parseFloat(getComputedStyle(t).fontSize)))"""


@pytest.fixture(scope="module")
def workspace(browser, server) -> dict:
    """The storage state (workspace cookie) of a browser that trained three 20-step runs in the Lab:
    seed-conv, then learning rate 0.1, then optimizer sgd."""
    context = browser.new_context(viewport=PROJECTOR)  # module-wide, so not the per-test `new_context`
    context.set_default_timeout(90_000)
    local_only(context, server)
    page = context.new_page()
    open_page(page, server, LAB, "Lab")
    train_in_lab(page)
    pick_slider(page, "Learning rate", "0.1")
    train_in_lab(page)
    select_option(page, '[data-testid="stSelectbox"]:has-text("Optimizer")', "sgd")
    train_in_lab(page)
    state = context.storage_state()
    context.close()
    return state


def tab(new_tab, viewport: dict, workspace: dict):
    """A fresh tab (a new session) in the browser that kept the runs."""
    return new_tab(viewport=viewport, storage_state=workspace)


def open_page(page, server, path: str, title: str) -> None:
    page.goto(f"{server.url}/{path}")
    page.locator("h1", has_text=title).first.wait_for()
    wait_until_idle(page)


def check_all(page, where: str, grids_fit: str | None = None) -> None:
    """Nothing cut, no chart titles or legends overlapping, and the tables in `grids_fit` show every column."""
    check_fits(page, where)
    clashes = page.evaluate(LEGEND_CLASH)
    assert not clashes, f"legends clash on {where}: {clashes}"
    if grids_fit:
        widths = page.evaluate(GRID_WIDTHS, grids_fit)
        assert widths, f"no table in {grids_fit} on {where}"
        assert all(content <= box + 1 for content, box in widths), f"a table on {where} scrolls sideways: {widths}"


def presented(page) -> None:
    """Turns on presenter mode and waits until the charts are drawn with the larger text."""
    presenter_on(page)
    page.wait_for_function(f"() => ({TITLE_SIZE})() > 20")  # 16 px titles become 24 px
    wait_until_idle(page)


def compare_all_runs(page, server) -> None:
    """Opens Compare runs and picks every kept run in its multiselect, as a person would."""
    open_page(page, server, "compare", "Compare runs")
    picker = page.locator('[data-testid="stMultiSelect"] [role="combobox"]').first
    for _ in range(RUNS):
        picker.click()
        options = page.get_by_role("option")
        if options.count() == 0:
            break
        options.first.click()
        wait_until_idle(page)
    page.keyboard.press("Escape")
    wait_until_idle(page)
    wait_for_charts(page, 3)
    names = page.locator(CHART).first.locator(".legend .legendtext").all_text_contents()
    assert len({name.rsplit(" · ", 1)[0] for name in names}) == RUNS, f"the loss overlay shows {names}"


def show_loss_on_log_scale(page, key: str) -> None:
    """For a screenshot: the loss overlay on a log scale (one run's early spike flattens the others on a
    linear one), scrolled to the top of the window with its legend."""
    ticks = f"() => [...document.querySelectorAll('.st-key-{key}-loss .ytick text')].map(t => t.textContent).join(' ')"
    linear = page.evaluate(ticks)
    live(page, f".st-key-{key}-log_y").click()
    wait_until_idle(page)
    page.wait_for_function(f"linear => ({ticks})() && ({ticks})() !== linear", arg=linear)  # redrawn
    wait_for_charts(page, 3)
    live(page, f".st-key-{key}-loss").evaluate(SCROLL_TO_TOP)
    check_all(page, f"{key}, log scale")


@pytest.mark.parametrize("viewport", [NARROW, PROJECTOR], ids=["800px", "1024x768"])
def test_the_lab_with_kept_runs_fits_a_narrow_screen_or_a_projector_also_in_presenter_mode(
    new_tab, server, workspace, viewport
):
    page = tab(new_tab, viewport, workspace)
    open_page(page, server, LAB, "Lab")
    wait_for_charts(page, 3)
    assert diagram(page)["overlaps"] == 0, "diagram labels overlap"
    assert page.locator(f"{CHART} .legend .traces").count() >= 4, "the overlays show two or more runs"
    # On a projector every column of the kept-runs grid is in view.
    check_all(page, "Lab", grids_fit='[class*="st-key-lab-runs-"]' if viewport == PROJECTOR else None)
    presented(page)
    # The kept runs as an HTML table (one row a run), every column in view; the grid folded beneath it.
    check_all(page, "Lab, presenter mode")
    kept_runs = live(page, '[data-testid="stTable"]').filter(has_text="loss tied")
    assert kept_runs.locator("tbody tr").count() == RUNS
    for header in kept_runs.locator("th").all():
        box = header.bounding_box()
        assert box["x"] + box["width"] <= viewport["width"], f"{header.inner_text()!r} is off the screen"
    assert live(page, '[data-testid="stExpander"]').filter(has_text="Edit kept runs").count() == 1
    if viewport == PROJECTOR:
        # One screen: Train and the first chart (its title and plot areas; its legend may run below),
        # without scrolling.
        assert inside_viewport(page, ".st-key-lab-train button"), "Train is off the screen"
        for part in (".gtitle", ".nsewdrag"):
            for n in range(page.locator(f".st-key-lab-view {CHART} >> nth=0 >> {part}").count()):
                assert inside_viewport(page, f".st-key-lab-view {CHART} >> nth=0 >> {part} >> nth={n}"), (
                    f"the first chart's {part} is off the screen"
                )
        save_png(page, "lab")
        check_presented(page, "Lab, presenter mode")
        show_loss_on_log_scale(page, "lab")
    page.context.close()


@pytest.mark.parametrize("viewport", [NARROW, PROJECTOR], ids=["800px", "1024x768"])
def test_compare_with_three_runs_fits_a_narrow_screen_or_a_projector_also_in_presenter_mode(
    new_tab, server, workspace, viewport
):
    page = tab(new_tab, viewport, workspace)
    compare_all_runs(page, server)
    assert page.get_by_role("button", name="Load in the Lab").count() == RUNS
    check_all(page, "Compare")
    presented(page)
    check_all(page, "Compare, presenter mode")
    if viewport == PROJECTOR:
        check_presented(page, "Compare, presenter mode")
        # The figures a class compares are in view beside the run's name: no sideways scrolling.
        headers = page.locator('[data-testid="stTable"] th').filter(has_text="held-out loss")
        assert headers.count() == 2
        for header in headers.all():
            box = header.bounding_box()
            assert box["x"] + box["width"] <= PROJECTOR["width"], f"{header.inner_text()!r} is off the screen"
        show_loss_on_log_scale(page, "compare")
        save_png(page, "compare")
    page.context.close()


def test_on_a_phone_the_chart_toolbar_leaves_titles_free(new_tab, server, workspace):
    page = tab(new_tab, PHONE, workspace)
    open_page(page, server, LAB, "Lab")
    wait_for_charts(page, 3)
    for n in range(page.locator(CHART).count()):
        chart = page.locator(CHART).nth(n)
        chart.scroll_into_view_if_needed()
        chart.hover()  # plotly shows its toolbar while the pointer (or a thumb) is on a chart
        covered = chart.evaluate(TOOLBAR_OVER_TITLES)
        assert not covered, f"the toolbar of chart {n + 1} covers {covered}"
    check_fits(page, "Lab at 390 px")
    page.context.close()


def test_the_compare_view_for_the_readme_fits_at_1280x900(new_tab, server, workspace):
    page = tab(new_tab, README, workspace)
    compare_all_runs(page, server)
    check_all(page, "Compare at 1280x900")
    show_loss_on_log_scale(page, "compare")
    save_png(page, "compare", screenshot_dir() / "compare.png")
    page.context.close()


@pytest.mark.parametrize("viewport", [NARROW, PROJECTOR], ids=["800px", "1024x768"])
def test_the_exercises_fit_a_narrow_screen_or_a_projector(new_tab, server, viewport):
    page = new_tab(viewport=viewport)
    open_page(page, server, "exercises", "Exercises")
    assert page.get_by_role("button", name="Set up").count() == 10
    for expander in page.locator('[data-testid="stExpander"] summary').all():
        expander.click()  # the folded answers too
    check_all(page, "Exercises")
    if viewport == PROJECTOR:
        presenter_on(page)
        check_presented(page, "Exercises, presenter mode")
    page.context.close()


HOSTILE_LABEL = "<img src=x onerror=alert(1)>**b**"


def test_a_run_renamed_in_the_folded_grid_shows_its_label_as_written_in_the_presenter_table(new_tab, server):
    """In presenter mode the kept runs are an HTML table and the editable grid is folded beneath it: a rename
    there still works, and the table shows the new label as written, never as markup."""
    page = new_tab(viewport=PROJECTOR)
    open_page(page, server, "lab?preset=seed-dense&steps=5", "Lab")
    train_in_lab(page)
    presented(page)
    live(page, '[data-testid="stExpander"] summary').filter(has_text="Edit kept runs").click()
    grid = live(page, '[data-testid="stExpander"] [data-testid="stDataFrame"]')
    grid.wait_for()
    wait_until_idle(page)
    box = grid.bounding_box()
    # The one run's label cell (the show column is 64 px, both pinned at their widths): a click selects
    # it, Enter edits it, as a person would.
    grid.click(position={"x": 64 + 40, "y": box["height"] - 25})
    page.keyboard.press("Enter")
    editor = page.locator("textarea.gdg-input, input.gdg-input").first
    editor.wait_for()
    editor.fill(HOSTILE_LABEL)
    editor.press("Enter")
    wait_until_idle(page)
    kept_runs = live(page, '[data-testid="stTable"]').filter(has_text="loss tied")
    kept_runs.filter(has_text=HOSTILE_LABEL).wait_for()
    assert kept_runs.locator("tbody tr td, tbody tr th").first.inner_text() == HOSTILE_LABEL
    assert page.locator('[data-testid="stMain"] img[src="x"], [data-testid="stTable"] strong').count() == 0
    check_presented(page, "Lab, a hostile label")
    page.context.close()
