"""The session's training run: start, stop, continue, collect its result, and wait for it on a page.

A run trains in a background thread (`sharecore.runs.runner.BackgroundRun`) and keeps itself in this
browser's workspace when it ends (`ui.kept`), whatever becomes of the page that started it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import streamlit as st

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.core.runcheck import resume_conflicts
from sharecore.core.spec import ModelSpec
from sharecore.runs.keeping import KeepPlan, run_label
from sharecore.runs.runner import BackgroundRun, orphaned_runs, training_runs
from ui.kept import current_run_id, load_kept, result, run_names, run_store, took_in, workspace
from ui.keys import RUN, RUN_ERROR, of
from ui.sitemap import PAGES
from ui.state import config, label_baseline, preset_name, run_problem, spec
from ui.text import plain


def init_session() -> None:
    """On a session's first run: no run and no error yet."""
    ss = st.session_state
    if RUN not in ss:
        ss[RUN] = None
        ss[RUN_ERROR] = None


def start_training() -> None:
    """Train button: starts a run unless one is going (one run per session)."""
    ss = st.session_state
    run: BackgroundRun | None = ss.get(RUN)
    if run is not None and run.running:
        return
    ss[RUN_ERROR] = run_problem()  # most often known already: the settings editor asked on its last draw
    if ss[RUN_ERROR] is None:
        ss[RUN] = _start_run(spec(), config())


def continue_problem() -> str | None:
    """Why the current result cannot be continued with the current settings, or None if it can."""
    res = result()
    if res is None:
        return "Train first: Continue carries a run on."
    if res.state is None:
        if res.stop_reason:  # a non-finite loss or a device failure: its last weights are not worth carrying on
            return f"This run ended early and cannot be continued: {res.stop_reason} Train starts a new run."
        return "This run kept no end state (a run too large to keep whole): train again to continue."
    differ, changed = resume_conflicts(spec(), config(), res)  # the library's own rule (`check_resume`)
    if differ:
        return "The model has changed since this run: Train starts a new run with it."
    if changed:
        return (
            f"{', '.join(changed)} changed since this run, which carries on only with the settings it started "
            "with: Train starts a new run with the new ones, or set them back to carry this run on."
        )
    return None


def continue_training(extra_steps: int) -> None:
    """Continue / Step buttons: trains the current run `extra_steps` more steps, from where it ended
    (weights, optimizer state and batch order carry on; the learning rate, record_every and the device
    are the current ones, as a continued run may change them)."""
    ss = st.session_state
    if active_run() is not None or continue_problem():
        return
    res, now = result(), config()
    new = dataclasses.replace(
        res.config,
        steps=res.steps_done + int(extra_steps),
        learning_rate=now.learning_rate,
        record_every=now.record_every,
        device=now.device,
    )
    ss[RUN_ERROR] = run_problem(res.spec, new)
    if ss[RUN_ERROR] is None:
        ss[RUN] = _start_run(res.spec, new, resume=res, continues=current_run_id())


def _start_run(
    spec_: ModelSpec, config_: TrainConfig, *, resume: sharecore.TrainResult | None = None, continues: str | None = None
) -> BackgroundRun:
    """Starts a run that keeps itself in this browser's workspace when it ends (`sharecore.runs.keeping`),
    whatever becomes of this page: the label says what the run sets otherwise than its preset."""
    continued = None
    if continues is not None:
        with contextlib.suppress(KeyError, ValueError):
            continued = load_kept(continues).label
    baseline, preset = label_baseline(spec_)
    label = run_label(baseline, (spec_, config_), preset=preset, continued=continued)
    plan = KeepPlan(run_store(), workspace(), label, preset_name(), continues if continued is not None else None)
    return BackgroundRun(
        spec_, config_, alive=_browser_connected(), resume=resume, owner=workspace(), on_result=plan
    ).start()


def take_over_orphaned_run() -> None:
    """A new page of this browser watches the run its reloaded or closed page left (`runner.orphaned_runs`):
    a reload mid-run keeps the run going, and its result reaches this page."""
    ss = st.session_state
    if ss.get(RUN) is not None:
        return
    for run in orphaned_runs(workspace()):
        run.reattach(_browser_connected())
        ss[RUN] = run
        return


def _browser_connected() -> Callable[[], bool] | None:
    """A thread-safe check that this session's browser tab is still connected; None outside a server.

    A run whose tab has gone ends within seconds (`BackgroundRun(alive=...)`), so a closed tab
    frees its trainer for the next person. Why the server's own connection state rather than a
    heartbeat from the page: closing a tab closes its websocket, and Streamlit drops the session
    from its active ones at once; a hidden tab keeps its websocket open, because the server's
    pings are answered by the browser itself, not by page scripts. A heartbeat sent by a polling
    fragment depends on page timers, which Chrome throttles in hidden tabs to once a second and,
    after five minutes hidden, to once a minute: a participant reading their slides would lose
    their run, or the timeout would have to be minutes long. A reload or a short network drop
    reconnects to the same session well within the runner's grace (OWNER_GONE_AFTER_S). Without
    a server to ask (AppTest, a bare `python` run) only the wall-clock cap bounds a run.
    """
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():
        return None
    runtime, session_id = Runtime.instance(), ctx.session_id
    # AppTest's stand-in runtime answers with a mock, which counts as connected.
    return lambda: bool(runtime.is_active_session(session_id))


def queue_text(run: BackgroundRun) -> str | None:
    """The run's place in the queue for a trainer, in words; None when it is not waiting."""
    place = run.queue_place
    if place is None:
        return None
    training = training_runs()
    return (
        f"Waiting for a free trainer: you are number {place} in the queue "
        f"({training} run{'' if training == 1 else 's'} training)."
    )


def stop_training() -> None:
    """Stop button: ends the run after its current chunk of steps.

    Waits a few seconds for the thread, so a stop usually shows its result at once; a run still
    compiling its first chunk ends a little later, and the Train page keeps polling until it has.
    """
    run: BackgroundRun | None = st.session_state.get(RUN)
    if run is not None:
        run.stop(timeout=5.0)
    collect_run()


def collect_run() -> None:
    """Moves a finished run's result (or error) into the session."""
    ss = st.session_state
    run: BackgroundRun | None = ss.get(RUN)
    if run is None or not run.done:
        return
    if run.result is not None:
        took_in(run.result, run.kept)
    ss[RUN_ERROR] = run.error
    ss[RUN] = None


def wait_for_run(every: float = 1.0) -> None:
    """Shows the session's run progress on a page that waits for it; reruns the app when it ends."""
    run = active_run()
    if run is None:
        return

    @st.fragment(run_every=every)
    def poll() -> None:
        # The fragment must draw something: an empty fragment is not re-run by the browser.
        if not run.running:
            st.rerun()
        waiting = queue_text(run)
        if waiting:
            st.caption(f":material/hourglass: {waiting}")  # the queue state alone: no step counter yet
            return
        step = run.progress.step if run.progress else 0
        st.progress(run.fraction, text=f"Training: step {step} of {run.config.steps}")

    poll()


def active_run() -> BackgroundRun | None:
    run = st.session_state.get(RUN)
    return run if run is not None and run.running else None


def run_error() -> str | None:
    """Why the last run could not train, or None."""
    return st.session_state[RUN_ERROR]


_NOT_KEPT = ""  # the picker's option for a current run the store could not keep


def pick_result(key: str) -> sharecore.TrainResult | None:
    """A picker over this browser's kept runs (the current run first chosen), and the run picked; without
    any run, tells the user to train first.

    The kept runs are the store's, so a reload (which starts a new session with no current run) still
    offers them. A new current run (trained, or loaded in the Lab) is picked again by default.

    Args:
        key: the picker's key prefix; the widget's key adds the current run's id.
    """
    res, current = result(), current_run_id()
    names = run_names()
    if res is not None and current is None:  # a run the store could not keep is still shown
        names = {_NOT_KEPT: "this run (not kept)", **names}
    if not names:
        if active_run() is not None:
            st.info("Training is running; the charts appear here when it ends.", icon=":material/hourglass:")
            wait_for_run()
        else:
            st.info("No results yet: train the tied and untied models first.", icon=":material/info:")
        st.page_link(PAGES["train"], label="Go to Train", icon=":material/play_arrow:")
        return None
    options = list(names)
    first = current if current in names else options[0]  # else the unkept run, or the newest kept one
    picked = st.selectbox(
        "Run",
        options,
        index=options.index(first),
        key=of(key, current or "none"),
        format_func=lambda run_id: names[run_id],
        help="Any of this browser's kept runs; the current run is picked first.",
    )
    if active_run() is not None:
        st.caption(":material/hourglass: A new run is training; it joins the kept runs when it ends.")
        wait_for_run()
    if picked == _NOT_KEPT:
        return res
    try:
        stored = load_kept(picked)
    except (KeyError, ValueError) as err:
        st.error(plain(str(err)), icon=":material/error:")
        return None
    if picked == current and stored.result.spec != spec():
        st.caption(
            f"This run trained the model '{plain(stored.result.spec.name)}'; the model has changed since. "
            "Train again to see the current one."
        )
    return stored.result


def training_warnings(res: sharecore.TrainResult) -> None:
    """Shows what looks wrong with a run (flat, collapsed, rising, diverged), each with a fix to try."""
    from sharecore.runs.diagnose import training_warnings as find

    for w in find(res):
        st.warning(plain(w.message), icon=":material/troubleshoot:")
