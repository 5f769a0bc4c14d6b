"""The Build page in a real browser: a pasted spec loads, and the tab a person is on stays open."""

from __future__ import annotations

import dataclasses
import json

import sharecore
from tests.support.browser import goto, live, script_runs, wait_for_rerun


def selected_tab(page) -> str:
    return page.get_by_role("tab", selected=True).inner_text().strip()


def test_the_first_paste_on_a_fresh_build_page_keeps_the_spec_json_tab_open(new_tab, server):
    # A fresh browser context has no workspace cookie, so its session is the kind whose tabs fell back
    # to Diagram: see ui.kept.remember_workspace.
    spec = dataclasses.replace(sharecore.preset("seed-dense"), name="pasted", description="pasted by hand")
    page = new_tab()
    assert not [c for c in page.context.cookies() if c["name"] == "sharecore_workspace"]
    goto(page, server, "build")
    before = script_runs(page)
    page.get_by_role("tab", name="Spec JSON").click()  # the server keeps the open tab: a rerun
    wait_for_rerun(page, before)
    live(page, ".st-key-build-paste textarea").fill(spec.to_json())
    before = script_runs(page)
    page.get_by_role("button", name="Load pasted JSON").click()  # the text area commits on the same click
    wait_for_rerun(page, before)
    assert selected_tab(page) == "Spec JSON"
    code = live(page, '[role="tabpanel"]:visible [data-testid="stCode"]')
    assert json.loads(code.inner_text())["name"] == "pasted"
