"""Starting the server's process: TensorFlow loaded and warmed up in the background, Keras's clean-up kept
away from training, the import-time heap frozen, and the server's settings and limits checked.

Imported once per server process (every page imports it through `ui.routing`); nothing here holds
per-user state.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import threading
from typing import Any

import streamlit as st

import sharecore
from sharecore.core import settings
from sharecore.core.config import TrainConfig
from sharecore.core.limits import SECRETS_SECTION, Limits, set_server_defaults
from sharecore.runs.runner import active_runs
from sharecore.share import urlstate
from ui.keys import CHARTS_WARMED, SCRIPT_RUNS, WARM_UP_CHART
from ui.text import plain


def _keep_keras_session_while_training() -> None:
    """Makes `keras.backend.clear_session()` wait until no sharecore run is training.

    After every script run, fragment reruns included, Streamlit calls
    `keras.backend.clear_session()` (`_clean_problem_modules` in streamlit's script_runner.py).
    That replaces Keras's global state, resets TensorFlow's default graph, clears its kernel
    cache and runs a full garbage collection, under a training thread that is building and
    compiling models: with the Train page polling twice a second, the first steps of a run
    took minutes instead of seconds. While a run is alive the call is skipped; otherwise it
    goes through, so Streamlit's clean-up still happens between runs, without its full garbage
    collection (`free_memory=False`): for the reason `runner.postScriptGC` is off in
    .streamlit/config.toml, it took 0.2 s of a 0.4 s Lab rerun (bench/whatif.py), and Python's
    own collector still runs.
    """
    from sharecore.nn.tfimport import keras
    from sharecore.nn.trainer import warming_up

    clear_session = keras.backend.clear_session
    if getattr(clear_session, "waits_for_training", False):
        return

    def clear_session_unless_training(*args: Any, **kwargs: Any) -> Any:
        # The start-up warm-up compiles in the loader thread: a reset under it broke its trace
        # ("'list' object has no attribute 'ndim'" in Keras's input checks).
        if active_runs() or warming_up():
            return None
        return clear_session(*args, **{"free_memory": False, **kwargs})

    clear_session_unless_training.waits_for_training = True  # type: ignore[attr-defined]
    keras.backend.clear_session = clear_session_unless_training


def _freeze_imported_objects() -> None:
    """Moves the objects the imports created out of the garbage collector's reach.

    Streamlit also runs a full garbage collection after every script run (runner.postScriptGC),
    also twice a second while the Train page polls. With TensorFlow, Keras, pandas and plotly
    loaded that walks about 400,000 objects (0.3 to 0.8 s holding the GIL), which starves the
    training thread. Frozen objects are skipped; everything created later is collected as usual.
    """
    gc.freeze()


_freeze_imported_objects()


def _server_limits_from_secrets() -> str | None:
    """Applies the ``[sharecore]`` section of .streamlit/secrets.toml as this server's limits.

    Called on every run (reading a small mapping), so that an edited secrets file takes effect
    without a restart. Environment variables (SHARECORE_MAX_PARAMS, ...) still win. Returns
    why the section could not be used, for the page to show; the defaults then stay in force.
    """
    try:
        section = st.secrets.get(SECRETS_SECTION, {})
    except Exception:  # no secrets file, or one that is not valid TOML: Streamlit says which
        return None
    try:
        set_server_defaults(Limits.from_mapping(section))
    except ValueError as err:
        return f"Limits in .streamlit/secrets.toml were ignored: {err}"
    return None


def _load_tensorflow_then_warm_up() -> None:
    """After the server's first page, in a background thread: imports TensorFlow, then compiles
    the default trainer.

    Nothing the Home page, the sidebar or the parameter counts show needs TensorFlow, so the
    first visitor sees them at once while TensorFlow (about 2.6 s and 570 MB) loads here; pages
    that need it wait with a status (`wait_for_tensorflow`). The first training in a process
    then spends most of its time tracing the compiled chunk of steps; sharecore pools compiled
    trainers and resets them to each run's own initial weights, so compiling the default
    experiment now (`warm_up`: no training, no place in the queue) makes the first Train click
    as fast as later ones, and a click during the compile waits for it. SHARECORE_WARM_UP=0
    skips the compile (TensorFlow still loads in the background). A visitor who clicked Train
    while TensorFlow was loading is compiling a trainer already; a second compile beside it
    would only slow theirs down, so the warm-up is skipped then.
    """
    sharecore.import_tensorflow()
    _LOADER_IMPORTED.set()
    _keep_keras_session_while_training()
    _freeze_imported_objects()
    if settings.value_or_default("SHARECORE_WARM_UP") and not active_runs():
        from sharecore.nn.trainer import warm_up  # TensorFlow is loaded by now

        # A server whose limits refuse the default experiment skips it; its Train page says why.
        with contextlib.suppress(ValueError):
            warm_up(sharecore.preset(urlstate.DEFAULT_PRESET), TrainConfig())


_LOADER = threading.Thread(target=_load_tensorflow_then_warm_up, name="sharecore-load-tensorflow", daemon=True)
_LOADER_LOCK = threading.Lock()
_LOADER_IMPORTED = threading.Event()  # set by `_LOADER` once TensorFlow is imported
LOADER_EXIT_WAIT_S = 120.0  # the longest the process's exit waits for the warm-up compile


def _wait_for_loader_at_exit() -> None:
    """At interpreter exit, waits for `_LOADER` to finish its warm-up compile.

    The loader is a daemon thread, and one still inside TensorFlow's C++ when Python finalizes is
    unwound there and aborts the process ("FATAL: exception not rethrown", exit code 134): a server
    stopped during its warm-up, or a test session whose last AppTest started the loader. A loader
    still importing TensorFlow is not waited for: the import could not finish now (modules that
    register exit hooks refuse to load once shutdown has begun).
    """
    if _LOADER_IMPORTED.is_set():
        _LOADER.join(LOADER_EXIT_WAIT_S)


atexit.register(_wait_for_loader_at_exit)


def start_loading_tensorflow() -> None:
    """Starts `_load_tensorflow_then_warm_up` once per server process (this module is imported once).

    Called when a page has been drawn, not when this module is imported: importing TensorFlow
    holds the GIL for seconds, and the first page would be drawn that much later.
    """
    with _LOADER_LOCK:
        if _LOADER.ident is None:
            _LOADER.start()


def tensorflow_or_status(what: str) -> bool:
    """True once TensorFlow is loaded; until then shows a short status in place of `what` and
    reruns the page when TensorFlow is up, so the rest of the page never waits for it."""
    if sharecore.tensorflow_ready():
        return True
    start_loading_tensorflow()

    @st.fragment(run_every=1.0)
    def status() -> None:
        if sharecore.tensorflow_ready():
            st.rerun()
        st.info(
            f"Loading TensorFlow for {what}: the server has just started, so this takes a few seconds once.",
            icon=":material/hourglass_top:",
        )

    status()
    return False


# SHARECORE_* settings whose values this server could not use (variable -> why), for every page to say.
IGNORED_SETTINGS: dict[str, str] = {}


def ignore_unusable_settings() -> None:
    """Checks this server's SHARECORE_* settings (`sharecore.core.settings`; a few dozen dictionary reads).

    A value that cannot be used is removed from this process's environment, so that every later read (the
    caps, the run store, the runner) gets its default instead of failing a page, and every page says so.
    """
    for variable, message in settings.problems().items():
        os.environ.pop(variable, None)
        IGNORED_SETTINGS[variable] = f"{message} It is ignored: this server uses the default."


def show_setting_problems() -> None:
    """The server's settings that could not be used, and limits in secrets.toml that were ignored: one message each."""
    for problem in IGNORED_SETTINGS.values():
        st.error(plain(problem), icon=":material/error:")
    limits_error = _server_limits_from_secrets()
    if limits_error:
        st.error(plain(limits_error), icon=":material/error:")


def warm_up_charts() -> None:
    """At the end of a session's second run, draws an empty chart that no one sees, so that the browser sets up
    its chart code (Plotly) before the first chart it shows.

    A browser's first chart costs it about a second beyond drawing (loading Plotly, 4.7 MB of JavaScript, and
    setting it up), and on a fresh server the first chart was Train's result: it came 1.1 s after the server
    had sent it, 0.13 s once a chart had been drawn (2-core machine, bench/RESULTS.md). Not in the first run,
    whose page the browser is still setting itself up to paint (drawn there, the first page came 0.5-1 s
    later), and last in the run, after everything the page shows; in the sidebar, hidden (`ui.presenter`'s
    style), once a session.
    """
    ss = st.session_state
    # SHARECORE_WARM_UP=0 turns it off with the server's own warm-up (the browser tests' servers: many sessions
    # that never show a chart).
    if ss.get(CHARTS_WARMED) or ss.get(SCRIPT_RUNS, 0) < 2 or not settings.value_or_default("SHARECORE_WARM_UP"):
        return
    ss[CHARTS_WARMED] = True
    import plotly.graph_objects as go

    st.sidebar.container(key=WARM_UP_CHART).plotly_chart(go.Figure(), key=f"{WARM_UP_CHART}.chart")
