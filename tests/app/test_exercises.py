"""Each exercise as a participant meets it: Set up opens the page and tab its first look names, the
exercise stays in view in the Lab, and after a short run every look's element is on its page, with
the panel and the line styles its text names, as the page's chart really draws them."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from sharecore.teach.exercises import EXERCISES, Exercise, Look
from tests.support.apptest import click_and_wait, go, open_app

# 'tied solid', 'untied dashed': how a look's text names a variant's lines (plotly: 'dash' is dashed).
STYLE = re.compile(r"\b(tied|untied) (solid|dashed)\b")
DASH = {"solid": "solid", "dashed": "dash"}


def chart(at, key: str) -> dict:
    """The plotly figure the page drew under `key`, as the browser gets it."""
    found = [el for el in at.get("plotly_chart") if el.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, (
        f"expected one chart with key {key!r}, found {[el.proto.id for el in at.get('plotly_chart')]}"
    )
    return json.loads(found[0].proto.spec)


def panels(fig: dict) -> dict[str, str]:
    """Subplot title -> its x axis ('x', 'x2'): the annotation sits over the middle of the axis's domain."""
    axes = {
        name.replace("axis", ""): axis["domain"] for name, axis in fig["layout"].items() if name.startswith("xaxis")
    }
    out = {}
    for note in fig["layout"].get("annotations", []):
        for axis, (lo, hi) in axes.items():
            if note.get("yref") == "paper" and lo <= note.get("x", -1) <= hi and note.get("y", 0) >= 0.99:
                out[note["text"]] = axis
    return out


def variant(trace: dict) -> str | None:
    """A trace's variant: from its meta, or the ' · tied' the overlays end a name with."""
    meta = trace.get("meta")
    if isinstance(meta, dict) and meta.get("variant"):
        return meta["variant"]
    tail = trace.get("name", "").rsplit(" · ", 1)
    return tail[1] if len(tail) == 2 and tail[1] in ("tied", "untied") else None


def check_look_on_page(at, look: Look, *, opened: bool = False) -> None:
    """`look`'s element is on the page open in `at`, with the tab (open, when Set up `opened` it), panel
    and line styles it names."""
    if look.tab:
        assert look.tab in [t.label for t in at.tabs], f"no tab {look.tab!r} on {look.page}"
        if opened:
            shown = at.session_state[look.element]
            assert shown == look.tab, f"{look.element} shows {shown!r}"
        return
    if look.element.endswith(".train"):
        assert at.button(key=look.element), f"no {look.element} on {look.page}"
        return
    fig = chart(at, look.element)
    titles = panels(fig)
    traces = fig["data"]
    if look.panel:
        assert look.panel in titles, f"{look.element} has panels {list(titles)}, not {look.panel!r}"
        traces = [t for t in traces if t.get("xaxis", "x") == titles[look.panel]]
    for name, style in STYLE.findall(look.what):
        lines = [t for t in traces if variant(t) == name]
        assert lines, f"{look.element} ({look.panel or 'all panels'}) draws no {name} line"
        drawn = {t.get("line", {}).get("dash") or "solid" for t in lines}
        assert drawn == {DASH[style]}, f"{look.element}: the text says {name} {style}, the chart draws {drawn}"


def set_up(ex: Exercise):
    at = open_app("exercises")
    at.button(key=f"exercises.setup.{ex.id}").click().run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.id)
def test_set_up_opens_the_first_look_and_a_short_run_draws_every_element_the_exercise_names(ex):
    at = set_up(ex)
    first = ex.setups[0]
    assert at.session_state["spec"] == first.spec and at.session_state["config"] == first.config
    titles = [t.value for t in at.title]
    assert titles == [{"lab": "Lab", "build": "Build"}[ex.page]], titles  # the page the first look names
    check_look_on_page(at, ex.looks[0], opened=True)
    # The question stays in view where the participant works, and what to expect is a click away.
    assert any(ex.question == m.value for m in at.markdown), "the exercise's question is on the page it opened"
    assert "What you should see" in [e.label for e in at.expander]
    if ex.trains:
        go(at, "lab")  # AppTest's next run is of the page it opened, not the one switched to
        at.select_slider(key="train.steps").set_value(5).run()  # the set-up's own settings, fewer steps
        click_and_wait(at, "lab.train")
        assert not at.session_state["run_error"], at.session_state["run_error"]
        res = at.session_state["result"]
        assert res.steps_done == 5 and res.spec == first.spec
        assert np.isfinite(res.history["loss"]).all()
    for look in ex.looks:
        go(at, look.page)
        assert not at.exception, at.exception
        check_look_on_page(at, look)


def test_the_panel_closes_and_stays_closed():
    ex = EXERCISES[1]
    at = set_up(ex)
    assert at.session_state["exercise.active"] == ex.id
    go(at, "lab")
    assert any(ex.question == m.value for m in at.markdown)
    at.button(key="exercise.close").click().run()
    assert at.session_state["exercise.active"] is None
    assert not any(ex.question == m.value for m in at.markdown)
    go(at, "build")
    assert not any(ex.question == m.value for m in at.markdown)
