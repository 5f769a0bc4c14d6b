"""Presenter-ready, in a real Chromium: at 800 px and at a projector's 1024x768 no text is cut off
and no chart titles overlap, on Home, Build, Train (after a short run), Gradient flow and Divergence;
the model diagram is drawn by Graphviz in the browser, hostile names included.

The package's shared server and tabs (tests/browser/conftest.py); the layout checks (`check_fits`,
`diagram`) are tests/support/browser.py's. Presenter mode is checked on every page at 1024x768 (`check_presented`: sidebar folded, text at
least 18 px, contrast at least 4.5:1 by WCAG's formula, no header cut, no canvas grid in view), the
pages' tables included. Its screenshots are saved as
presenter-<page>.png (each under 300 KB) in SHARECORE_SCREENSHOTS (`SHARECORE_SCREENSHOTS=docs` retakes the README's) or a
temporary folder.
"""

from __future__ import annotations

import re

import pytest

from sharecore.share import urlstate
from tests.support.browser import (
    CHART,
    CHARTS_DRAWN,
    NARROW,
    PAGES,
    PROJECTOR,
    TRAIN_S,
    assert_no_exception,
    check_fits,
    check_presented,
    click_nav,
    diagram,
    goto,
    live,
    presenter_on,
    save_png,
    script_runs,
    set_number,
    wait_for_charts,
    wait_for_rerun,
    wait_for_results,
    wait_until_idle,
)
from tests.support.hostile import HOSTILE

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize("viewport", [NARROW, PROJECTOR], ids=["800px", "1024x768"])
def test_no_text_is_cut_and_no_chart_titles_overlap_on_a_narrow_screen_or_a_projector(new_tab, server, viewport):
    page = new_tab(viewport=viewport)
    goto(page, server, "home", "preset=albert-mlp")
    check_fits(page, "Home")

    for preset in ("partial-share", "seed-conv", "albert-mlp"):
        goto(page, server, "build", f"preset={preset}")
        drawn = diagram(page)
        assert drawn["overlaps"] == 0, f"{preset}: diagram labels overlap"
        check_fits(page, f"Build ({preset})")
        page.get_by_role("tab", name="Shared tensors").click()
        wait_for_charts(page, 1)
        check_fits(page, f"Build, tensor views ({preset})")
        page.get_by_role("tab", name="Diagram").click()

    goto(page, server, "train", "preset=albert-mlp")
    set_number(page, ".st-key-train-steps", 20)
    page.wait_for_url(re.compile(r"[?&]steps=20(&|$)"))
    check_fits(page, "Train")
    live(page, ".st-key-train-start button").click()
    wait_for_results(page, server, TRAIN_S)
    check_fits(page, "Train, results")
    before = script_runs(page)
    live(page, ".st-key-train-log_y").click()  # the log-scale toggle redraws the loss chart
    wait_for_rerun(page, before)
    live(page, ".st-key-train-loss").filter(has_text="log scale").wait_for()  # the axis title says so
    wait_for_charts(page, 1)

    for name in ("gradients", "divergence"):
        click_nav(page, server, name)
        wait_for_charts(page, 2)
        check_fits(page, name)
    page.context.close()


def test_presenter_mode_presents_every_page_on_a_projector(new_tab, server, tmp_path):
    """Each page in a new session, presenter mode turned on there as a facilitator would; the pages'
    tables too (Build's parameter table, Pitfalls' measurements, the shared weights of an uploaded
    model), which are drawn as HTML tables there: no canvas grid at a fixed 14 px is in view."""
    page = new_tab(viewport=PROJECTOR)
    for name in PAGES:
        goto(page, server, name, "preset=albert-mlp")
        presenter_on(page)
        page.wait_for_function(CHARTS_DRAWN, arg=0)
        check_presented(page, name)
        if name in ("home", "build", "train", "gradients", "divergence"):
            save_png(page, name)
        if name == "build":
            page.get_by_role("tab", name="Parameters").click()
            live(page, '[data-testid="stTable"], [data-testid="stDataFrame"]').first.wait_for()  # either: checked next
            check_presented(page, "Build, Parameters")
        if name == "pitfalls":
            assert live(page, '[data-testid="stTable"]').count() >= 3, "a table of measurements per pitfall"
        if name == "your_model":
            upload_a_model_that_calls_a_layer_twice(page, tmp_path)
            assert live(page, '[data-testid="stTable"]').count() == 2, "the shared weights and the gradient split"
            check_presented(page, "Your model, a model uploaded")
    page.context.close()


def upload_a_model_that_calls_a_layer_twice(page, folder) -> None:
    """Chooses a .keras file in the Your model page's file input, as a person would, and waits for its charts."""
    from sharecore.nn.tfimport import keras

    block = keras.layers.Dense(4, name="block")
    inp = keras.Input((4,))
    path = folder / "twice.keras"
    keras.Model(inp, block(block(inp))).save(path)
    page.locator('.st-key-your_model-upload input[type="file"]').set_input_files(str(path))
    page.locator(CHART).first.wait_for()
    wait_for_charts(page, 1)
    wait_until_idle(page)


def test_the_diagram_is_drawn_by_graphviz_in_chromium_with_colored_tensors_and_rules(new_tab, server):
    page = new_tab(viewport=PROJECTOR)
    goto(page, server, "build", "preset=partial-share")
    drawn = diagram(page)
    # input, output, two uses and the one stored tensor; 4 data arrows and 2 dashed tensor arrows.
    assert (drawn["nodes"], drawn["edges"]) == (5, 6)
    for text in ("wide", "narrow", "W", "stored once, read by 2 uses", "as stored", "slice [:, 0:4]"):
        assert text in drawn["text"]
    assert "reads slice [:, 0:4] of W" in drawn["titles"]  # the hover detail, as Graphviz tooltips
    live(page, ".st-key-build-variant button").filter(has_text="untied").click()
    wait_until_idle(page)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stGraphVizChart\"] svg')?.textContent.includes('copy of')"
    )
    drawn = diagram(page)
    assert (drawn["nodes"], drawn["edges"]) == (6, 6) and "init: slice [:, 0:4]" in drawn["text"]
    page.context.close()


def test_a_hostile_name_is_drawn_as_text_in_the_diagram(new_tab, server):
    page = new_tab(viewport=PROJECTOR)
    goto(page, server, "build", f"spec={urlstate.encode_spec(HOSTILE)}")
    drawn = diagram(page)
    assert drawn["images"] == 0  # '![](http://...)' and '<img ...>' stayed text
    assert (drawn["nodes"], drawn["edges"]) == (5, 5)  # seed-dense: nothing injected
    assert f"tied model: {HOSTILE.name}" in drawn["text"]
    assert_no_exception(page)
    page.context.close()
