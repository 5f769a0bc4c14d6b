"""The dashboard in a real Chromium: what a person sees when they open, train, share and train side by side.

The package's shared `streamlit run` server (tests/browser/conftest.py), on a free port of
127.0.0.1, driven by pytest-playwright through the system Chromium (skipped on a machine without
one, a failure in CI). Each browser context is a fresh tab, so a separate Streamlit session. Every
request that does not go to the local server is refused, so the tests never touch the network.

Screenshots of each page are taken along the way. They go to a temporary directory, or to the
directory named by SHARECORE_SCREENSHOTS (relative to the repository), which is how the PNGs
in docs/ are made: `SHARECORE_SCREENSHOTS=docs .venv/bin/pytest tests/browser/test_pages.py`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

import sharecore
from tests.support.browser import (
    CHART,
    METRIC,
    PAGE_S,
    TRAIN_S,
    VIEWPORT,
    WARNING,
    assert_no_exception,
    click_nav,
    goto,
    live,
    local_only,
    main_text,
    metric,
    numbers,
    select_option,
    set_number,
    snap,
    wait_for_charts,
    wait_for_page,
    wait_for_results,
    wait_until_idle,
)

pytestmark = pytest.mark.browser


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

    live(page, ".st-key-train-start button").click()
    clicked = time.monotonic()
    wait_for_results(page, server, TRAIN_S)
    server.timings["Train click -> results and loss chart (seed-dense, 20 steps; no warm-up, so with the compile)"] = (
        time.monotonic() - clicked
    )
    assert metric(page, "Steps") == "20 / 20"
    assert_no_exception(page)
    assert metric(page, "Device").startswith("CPU")
    live(page, ".st-key-train-loss").scroll_into_view_if_needed()  # the results and their chart
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
    assert live(other, ".st-key-sidebar-preset input").input_value() == "albert-mlp"
    assert live(other, ".st-key-sidebar-seed input").input_value() == "7"
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
        live(page, ".st-key-train-start button").click()

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
    live(page, ".st-key-build-family-language-model button").click()
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
        live(page, ".st-key-build-download_code button").click()
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
    assert live(page, ".st-key-train-dataset input[type=radio]:checked").count() == 1
    assert "tokens: predict the next token" in live(page, ".st-key-train-dataset").inner_text()
    live(page, ".st-key-train-start button").click()
    wait_for_results(page, server, TRAIN_S)
    assert_no_exception(page)
    legend = live(page, ".st-key-train-loss").inner_text()
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


def test_a_visit_to_every_page_makes_no_request_outside_the_apps_own_origin(new_context, server):
    """A hosted demo sends no visitor's address to a third party, and works offline (a workshop room's wifi)."""
    context = new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_S * 1000)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    local_only(context, server)
    page = context.new_page()
    # Headless Chromium loads no favicon, so the one each page sets is read from the page itself.
    favicon = "() => document.querySelector(\"link[rel='shortcut icon']\").href"
    goto(page, server, "home")
    icons = {"home": page.evaluate(favicon)}
    for name in ("lab", "compare", "exercises", "build", "train", "gradients", "divergence", "pitfalls", "your_model"):
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
