"""What every page shares: the session's experiment, the sidebar, the training run and cached calls.

Lives outside pages/ so that Streamlit never lists it as a page.

All per-user state lives in `st.session_state` (one per browser tab), so two users of one
server never see each other's models or runs. Pure results are cached in one byte-bounded
cache (`_cache`, see "cached pure calls"); nothing is put in `st.cache_resource`, which every
user of a hosted app shares.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import gc
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import streamlit as st

import sharecore
from sharecore.cache import ByIdentity, ByteLRU
from sharecore.core import settings
from sharecore.core.config import DEVICES, LEARNING_RATES, TrainConfig
from sharecore.core.limits import SECRETS_SECTION, Limits, set_server_defaults
from sharecore.core.runcheck import resume_conflicts
from sharecore.core.spec import ModelSpec
from sharecore.runs.keeping import KeepPlan, Kept, run_label
from sharecore.runs.runner import BackgroundRun, active_runs, orphaned_runs, training_runs
from sharecore.runs.store import is_key, new_key
from sharecore.share import codegen, urlstate

if TYPE_CHECKING:
    import pandas as pd

    from sharecore.teach import pitfalls


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


# st.session_state keys
PRESET = "preset"  # name of the preset the spec starts from
SPEC = "spec"  # the current valid ModelSpec: what every page shows
CONFIG = "config"  # the current TrainConfig
DRAFT = "draft"  # the Build page's editor content as spec-like data; may be invalid
DRAFT_VERSION = "draft_version"  # bumped when the editor must reload from DRAFT
RUN = "run"  # the BackgroundRun in progress, or None
RESULT = "result"  # the last TrainResult (complete or stopped), or None
RUN_ERROR = "run_error"  # why the last run could not train, or None
URL_WARNINGS = "url_warnings"  # what the link asked for that could not be used
PRESENTER = "presenter"  # True: every chart in presenter mode (larger text)

PAGES = {
    "home": "pages/home.py",
    "lab": "pages/lab.py",
    "compare": "pages/compare.py",
    "exercises": "pages/exercises.py",
    "build": "pages/build.py",
    "train": "pages/train.py",
    "gradients": "pages/gradients.py",
    "divergence": "pages/divergence.py",
    "pitfalls": "pages/pitfalls.py",
}
# page -> (title in the navigation, icon); the URL of a page is its file's name. Emoji, not
# Material icons: Streamlit makes the open page's icon the tab's favicon, and for a Material icon it
# fetches that icon from fonts.gstatic.com (a request to a third party per visitor, and a broken icon
# offline); an emoji favicon is drawn from an inline SVG.
_NAVIGATION = {
    "home": ("Home", "🏠"),
    "lab": ("Lab", "🧪"),
    "compare": ("Compare runs", "📈"),
    "exercises": ("Exercises", "🎓"),
    "build": ("Build", "🛠️"),
    "train": ("Train", "▶️"),
    "gradients": ("Gradient flow", "🔀"),
    "divergence": ("Divergence", "↔️"),
    "pitfalls": ("Pitfalls", "⚠️"),
}
# Starting points on the Build page: the simplest preset of each family of ops.
FAMILIES = {
    "dense": "seed-dense",
    "conv": "seed-conv",
    "mixed": "seed-mixed",
    "language model": "tied-lm",
    "autoencoder": "conv-autoencoder",
}


# ----------------------------------------------------------------------------- user text
# Every character Streamlit's Markdown parser gives a meaning: emphasis, code, links and
# images (`![](http://...)` made the browser fetch an external image), HTML, tables, math,
# entities, directives (`:red[...]`) and, at the start of a line, headings, lists, quotes
# and rules. CommonMark lets any ASCII punctuation be escaped with a backslash, and the
# reader sees the character itself.
_MARKDOWN_SIGNIFICANT = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:&@=])")
# After parsing, where a backslash no longer counts, Streamlit rewrites the text itself: it
# links `http://...`, `www.` and e-mail addresses, draws `:material/icon:`, `:streamlit:`
# and `:emoji:`, and turns ` -> `, ` -- `, ` <= ` into arrows and dashes (checked in
# Chromium: escaped URLs still became links). A WORD JOINER (U+2060: invisible, never a line
# break) inside each such pattern stops the rewrite and leaves the text as the reader sees it.
_REWRITTEN = re.compile(r"(?<=:)(?=\S)|(?=@)|(?i:(?<=www)(?=\.))|(?<=[-<>=~])(?=[-<>=~])")
WORD_JOINER = "\u2060"


def plain(text: str) -> str:
    """User text (a spec's name or description, an error quoting it) for any element that renders
    Markdown (markdown, caption, subheader, info, warning, error, labels and help): shown as
    written, never as markup, a link or an icon."""
    lines = [
        _MARKDOWN_SIGNIFICANT.sub(r"\\\1", _REWRITTEN.sub(WORD_JOINER, line.strip())) for line in str(text).split("\n")
    ]
    # Leading spaces would make an indented code block; a hard break keeps the user's lines.
    return "  \n".join(lines)


# ----------------------------------------------------------------------------- routing
# Why every page starts with `frame()`, and why the sidebar is drawn there.
#
# The design card puts the pages in a top-level `pages/` folder. Streamlit 1.67 treats a
# `pages/` folder beside the entry file as its older multipage layout: until some run in the
# process has called `st.navigation`, every run is routed by Streamlit itself, which runs the
# requested page file alone (`/train` runs pages/train.py without streamlit_app.py) or, for
# `/`, runs streamlit_app.py as a page of its own. Calling `st.navigation` switches the
# whole process to the router for good (the documented behaviour); AppTest starts every
# run in the older mode again.
#
# * A page file that runs without the router (a fresh server's first deep link) calls
#   `st.navigation` and `st.rerun()`: the rerun repeats the same page and query string
#   through streamlit_app.py, so the visitor sees the full app. `_ROUTED` tells the two
#   cases apart; it is per thread because each session's script runs in its own thread.
# * The sidebar is drawn inside the page's run, not in the router's body. Streamlit makes
#   widget ids from the running page's hash, which is the same in both modes for a page
#   (its URL path), while the router's own body has another hash in each mode. Drawn in the
#   router, a fresh server's first visitor of `/` would lose their first sidebar change.
_ROUTED = threading.local()


def navigation_pages() -> list[st.Page]:
    """The app's pages for `st.navigation`, Home first and default."""
    return [
        st.Page(PAGES[name], title=title, icon=icon, default=name == "home")
        for name, (title, icon) in _NAVIGATION.items()
    ]


def run_page(page: st.Page) -> None:
    """The router's last step: runs the page `st.navigation` picked, marked as routed."""
    _ROUTED.active = True
    try:
        page.run()
    finally:
        _ROUTED.active = False
        _SIDEBAR.note = None  # the slot belongs to this run; a callback of the next one must not draw in it
    start_loading_tensorflow()  # after the first page is drawn; at once on every later run


def frame() -> None:
    """The first call of every page: hands a page that runs alone to the router, then draws
    what every page shares (session state, the sidebar and the link's warnings)."""
    if not getattr(_ROUTED, "active", False):
        st.navigation(navigation_pages())
        st.rerun()
    _ignore_unusable_settings()  # before anything reads them
    init_state()
    remember_workspace()
    sidebar()
    _count_script_run()
    show_url_warnings()
    show_store_problem()


SCRIPT_RUNS = "script_runs"  # how many full runs of the page script this session has had


def _count_script_run() -> None:
    """Writes this session's count of full script runs into the page, invisibly, at the end of the sidebar.

    A browser test knows an input's rerun has ended when the count has moved on and the app is idle:
    Streamlit's own running state still says 'not running' between a click and the server's answer,
    so a check right after an input can pass before its rerun has begun (a shape typed into a field the
    rerun was about to replace). The number is ours, never user text.
    """
    ss = st.session_state
    ss[SCRIPT_RUNS] = ss.get(SCRIPT_RUNS, 0) + 1
    st.sidebar.html(f'<span class="sharecore-script-run" data-run="{int(ss[SCRIPT_RUNS])}" hidden></span>')


# ----------------------------------------------------------------------------- session state
def init_state() -> None:
    """On a session's first run, reads the experiment from the URL; then collects a finished run."""
    ss = st.session_state
    if SPEC not in ss:
        state = urlstate.read_state(st.query_params.to_dict())
        ss[PRESET] = state.preset
        ss[SPEC] = state.spec
        ss[CONFIG] = state.config
        ss[DRAFT] = state.spec.to_dict()
        ss[DRAFT_VERSION] = 0
        ss[RUN] = None
        ss[RESULT] = None
        ss[RUN_ERROR] = None
        ss[URL_WARNINGS] = list(state.warnings)
        ss[CURRENT_RUN_ID] = None
    init_workspace()
    _take_over_orphaned_run()
    collect_run()
    sync_url()


def spec() -> ModelSpec:
    return st.session_state[SPEC]


def config() -> TrainConfig:
    return st.session_state[CONFIG]


def preset_name() -> str:
    return st.session_state[PRESET]


def set_spec(new: ModelSpec, *, reload_editor: bool) -> None:
    """Makes `new` (already validated) the current spec; `reload_editor` resets the Build editor to it."""
    ss = st.session_state
    ss[SPEC] = new
    if reload_editor:
        ss[DRAFT] = new.to_dict()
        ss[DRAFT_VERSION] += 1
    ss[URL_WARNINGS] = []
    sync_url()
    _edited_note()


def set_config(new: TrainConfig) -> None:
    st.session_state[CONFIG] = new
    st.session_state[URL_WARNINGS] = []
    sync_url()


def load_preset(name: str) -> None:
    """Switches to preset `name` (sidebar and Build editor follow).

    A language model comes with its own task: its data set becomes 'tokens'. (A data set that the
    new model cannot train on is changed by the Train page, which says so.)
    """
    st.session_state[PRESET] = name
    st.session_state["sidebar.preset"] = name
    new = sharecore.preset(name)
    set_spec(new, reload_editor=True)
    if urlstate.datasets_for(new)[0] == "tokens" and config().dataset != "tokens":
        set_config(dataclasses.replace(config(), dataset="tokens"))
        st.session_state["train.dataset"] = "tokens"


def load_experiment(spec_: ModelSpec, config_: TrainConfig, preset: str) -> None:
    """Makes (spec_, config_) the session's experiment, started from preset `preset`: the Lab,
    Build editor, Train settings and sidebar all show it on their next run (an exercise's
    one-click setup, a kept run's "load these settings", Reset)."""
    ss = st.session_state
    ss[PRESET] = preset
    ss["sidebar.preset"] = preset
    set_spec(spec_, reload_editor=True)
    set_config(config_)
    for key in [k for k in ss if isinstance(k, str) and k.startswith(("train.", "lab."))]:
        if not key.startswith(("train.dl.", "lab.run.")):  # widgets re-read the experiment
            del ss[key]


def sync_url() -> None:
    """Writes the experiment into the URL, so that copying it shares the experiment."""
    params = urlstate.encode_state(preset_name(), spec(), config())
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)


# SHARECORE_* settings whose values this server could not use (variable -> why), for every page to say.
IGNORED_SETTINGS: dict[str, str] = {}


def _ignore_unusable_settings() -> None:
    """Checks this server's SHARECORE_* settings (`sharecore.core.settings`; a few dozen dictionary reads).

    A value that cannot be used is removed from this process's environment, so that every later read (the
    caps, the run store, the runner) gets its default instead of failing a page, and every page says so.
    """
    for variable, message in settings.problems().items():
        os.environ.pop(variable, None)
        IGNORED_SETTINGS[variable] = f"{message} It is ignored: this server uses the default."


def show_url_warnings() -> None:
    for problem in IGNORED_SETTINGS.values():
        st.error(plain(problem), icon=":material/error:")
    limits_error = _server_limits_from_secrets()
    if limits_error:
        st.error(plain(limits_error), icon=":material/error:")
    for message in st.session_state[URL_WARNINGS]:
        st.warning(plain(message), icon=":material/link_off:")  # they quote the link's text


def check_spec(candidate: ModelSpec, train: TrainConfig | None = None) -> None:
    """The core's validation plus this server's size limits; raises ValueError."""
    urlstate.check_limits(candidate, train)


# ----------------------------------------------------------------------------- sidebar
def _on_preset() -> None:
    load_preset(st.session_state["sidebar.preset"])


def _on_seed() -> None:
    set_config(dataclasses.replace(config(), seed=int(st.session_state["sidebar.seed"])))


def _on_device() -> None:
    set_config(dataclasses.replace(config(), device=st.session_state["sidebar.device"]))


def _on_presenter() -> None:
    st.session_state[PRESENTER] = bool(st.session_state["sidebar.presenter"])


# The sidebar's "Edited on the Build page" slot of the script run in this thread. The sidebar is
# drawn before the page, and the Build page changes the spec after it: set_spec refills the slot,
# so the note is right on the run of the edit, not one run later.
_SIDEBAR = threading.local()


def _edited_note() -> None:
    slot = getattr(_SIDEBAR, "note", None)
    if slot is None:
        return
    if spec() != sharecore.preset(preset_name()):
        slot.caption(f"Edited on the Build page (started from '{preset_name()}').")
    else:
        slot.empty()


def sidebar() -> None:
    """The controls every page shares: preset, seed and device.

    Each page draws them (see `frame`), so on every page they are new widgets to Streamlit;
    their values are set from the session's experiment on every run, which their callbacks
    have already updated, so they always show the experiment and never a widget default.
    """
    ss = st.session_state
    ss["sidebar.preset"] = preset_name()
    ss["sidebar.seed"] = config().seed
    ss["sidebar.device"] = config().device
    with st.sidebar:
        st.selectbox(
            "Preset",
            sharecore.presets(),
            key="sidebar.preset",
            on_change=_on_preset,
            help="A ready-made model. Change it on the Build page.",
        )
        _SIDEBAR.note = st.empty()  # filled now, and again by set_spec if the page edits the spec
        _edited_note()
        st.number_input(
            "Seed",
            min_value=0,
            max_value=urlstate.MAX_SEED,
            step=1,
            key="sidebar.seed",
            on_change=_on_seed,
            help="Initial weights, teacher network and batch order.",
        )
        st.selectbox(
            "Device",
            DEVICES,
            key="sidebar.device",
            on_change=_on_device,
            help="'auto' trains on a GPU when TensorFlow sees one, else on the CPU.",
        )
        run = active_run()
        if run is not None:  # drawn on full reruns only: the Train page's live panel has the details
            st.caption(f":material/hourglass: {'Waiting for a free trainer' if run.queued else 'Training is running'}.")
        st.caption("The URL holds this experiment: copy it to share.")
        ss["sidebar.presenter"] = presenter_mode()
        st.toggle(
            "Presenter mode: larger chart text",
            key="sidebar.presenter",
            on_change=_on_presenter,
            help="Larger titles, ticks, legends and hover text on every chart, for a projector.",
        )


# ----------------------------------------------------------------------------- training runs
def start_training() -> None:
    """Train button: starts a run unless one is going (one run per session)."""
    ss = st.session_state
    run: BackgroundRun | None = ss.get(RUN)
    if run is not None and run.running:
        return
    ss[RUN_ERROR] = None
    try:
        check_spec(spec(), config())
    except ValueError as err:
        ss[RUN_ERROR] = str(err)
        return
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
        return f"{', '.join(changed)} changed since this run: Train starts a new run with them. Continue keeps them."
    return None


def continue_training(extra_steps: int) -> None:
    """Continue / Step buttons: trains the current run `extra_steps` more steps, from where it ended
    (weights, optimizer state and batch order carry on; the learning rate, record_every and the device
    are the current ones, as a continued run may change them)."""
    ss = st.session_state
    if active_run() is not None or continue_problem():
        return
    res, now = result(), config()
    ss[RUN_ERROR] = None
    new = dataclasses.replace(
        res.config,
        steps=res.steps_done + int(extra_steps),
        learning_rate=now.learning_rate,
        record_every=now.record_every,
        device=now.device,
    )
    try:
        check_spec(res.spec, new)
    except ValueError as err:
        ss[RUN_ERROR] = str(err)
        return
    ss[RUN] = _start_run(res.spec, new, resume=res, continues=ss.get(CURRENT_RUN_ID))


def _start_run(
    spec_: ModelSpec, config_: TrainConfig, *, resume: sharecore.TrainResult | None = None, continues: str | None = None
) -> BackgroundRun:
    """Starts a run that keeps itself in this browser's workspace when it ends (`sharecore.runs.keeping`),
    whatever becomes of this page: the label says what changed from the run kept before it."""
    continued = None
    if continues is not None:
        with contextlib.suppress(KeyError, ValueError):
            continued = load_kept(continues).label
    label = run_label(st.session_state[LAST_SETTINGS], (spec_, config_), preset=preset_name(), continued=continued)
    plan = KeepPlan(run_store(), workspace(), label, preset_name(), continues if continued is not None else None)
    return BackgroundRun(
        spec_, config_, alive=_browser_connected(), resume=resume, owner=workspace(), on_result=plan
    ).start()


def _take_over_orphaned_run() -> None:
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
        ss[RESULT] = run.result
        _took_in(run.result, run.kept)
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
            st.caption(f":material/hourglass: {waiting}")
        step = run.progress.step if run.progress else 0
        st.progress(run.fraction, text=f"Training: step {step} of {run.config.steps}")

    poll()


def active_run() -> BackgroundRun | None:
    run = st.session_state.get(RUN)
    return run if run is not None and run.running else None


def result() -> sharecore.TrainResult | None:
    return st.session_state.get(RESULT)


def need_result() -> sharecore.TrainResult | None:
    """The last result; without one, tells the user to train first."""
    res = result()
    if res is None:
        if active_run() is not None:
            st.info("Training is running; the charts appear here when it ends.", icon=":material/hourglass:")
            wait_for_run()
        else:
            st.info("No results yet: train the tied and untied models first.", icon=":material/info:")
        st.page_link(PAGES["train"], label="Go to Train", icon=":material/play_arrow:")
        return None
    if active_run() is not None:
        st.caption(":material/hourglass: A new run is training; these charts show the last one until it ends.")
        wait_for_run()
    elif res.spec != spec():
        st.caption(
            f"These results are for the model trained last ('{plain(res.spec.name)}'); the model has changed "
            "since. Train again to see the current one."
        )
    return res


def tensor_picker(spec_: ModelSpec, key: str, min_uses: int = 1) -> str | None:
    """A selector over the shared tensors read by at least `min_uses` uses; None if there are none."""
    counts = {t.name: sum(u.tensor == t.name for u in spec_.uses) for t in spec_.tensors}
    names = [name for name, n in counts.items() if n >= min_uses]
    if not names:
        return None
    if len(names) == 1:
        return names[0]
    return st.selectbox(
        "Shared tensor",
        names,
        key=key,
        format_func=lambda n: f"{n} ({counts[n]} uses)",
    )


def uses_of(spec_: ModelSpec, tensor: str) -> int:
    return sum(u.tensor == tensor for u in spec_.uses)


# ----------------------------------------------------------------------------- cached pure calls
# One cache for the process, bounded by bytes (sharecore/cache.py): entry counts said nothing
# about memory, since one figure can be 5 kB or 0.5 MB. Keys hold everything a result depends
# on: frozen specs and reports by value, a finished run's frames and weights by identity (they
# never change, and hashing millions of rows on every rerun would cost more than drawing). A key
# holds nothing that one user could reach with another user's inputs. Values are shared, not
# copied: pages only hand them to `chart` (st.plotly_chart copies a figure via to_dict()) or
# read them, never modify them.
CACHE_MB = 64
_cache = ByteLRU(CACHE_MB * 2**20)


def _plots():
    """The plot builders, imported on first use: Home and the sidebar need neither them nor pandas."""
    from sharecore.viz import plots

    return plots


def param_report(spec_: ModelSpec) -> sharecore.ParamReport:
    return _cache.get_or_compute(("param_report", spec_), lambda: sharecore.param_report(spec_))


def model_dot(spec_: ModelSpec, tied: bool) -> str:
    """The model diagram as Graphviz DOT (`sharecore.viz.diagram.model_dot`), for `st.graphviz_chart`."""
    return _cache.get_or_compute(("model_dot", spec_, tied), lambda: _plots().model_dot(spec_, tied=tied))


def tensor_views(spec_: ModelSpec, tensor: str, seed: int):
    """The tensor views of `tensor` at the seed's initial values (a deterministic function of spec and seed)."""
    return _cache.get_or_compute(
        ("tensor_views", spec_, tensor, seed),
        lambda: _plots().tensor_views(spec_, tensor, sharecore.initial_values(spec_, seed)[tensor]),
    )


def param_bars(report: sharecore.ParamReport):
    return _cache.get_or_compute(("param_bars", report), lambda: _plots().param_bars(report))


def keras_code(spec_: ModelSpec, tied: bool) -> str:
    return _cache.get_or_compute(("keras_code", spec_, tied), lambda: codegen.keras_code(spec_, tied=tied))


def loss_chart(
    history: pd.DataFrame, total_steps: int | None, heldout: pd.DataFrame | None = None, log_y: bool = False
):
    # Keyed by the frame itself: a run hands out a new history frame once per chunk of steps, so
    # the live panel, which polls twice a second in every tab that watches, draws it once per chunk.
    return _cache.get_or_compute(
        ("loss_chart", ByIdentity(history), total_steps, None if heldout is None else ByIdentity(heldout), log_y),
        lambda: _plots().loss_chart(history, total_steps=total_steps, heldout=heldout, log_y=log_y),
    )


def gradient_figures(gradients: pd.DataFrame, tensor: str) -> tuple[Any, Any]:
    return _cache.get_or_compute(
        ("gradient_figures", ByIdentity(gradients), tensor),
        lambda: (_plots().gradient_flow(gradients, tensor), _plots().gradient_cosine(gradients, tensor)),
    )


def divergence_chart(divergence: pd.DataFrame, tensor: str, spec_: ModelSpec):
    return _cache.get_or_compute(
        ("divergence_chart", ByIdentity(divergence), tensor, spec_),
        lambda: _plots().divergence_chart(divergence, tensor, spec=spec_),
    )


def divergence_heatmap(divergence: pd.DataFrame, tensor: str, step: int, spec_: ModelSpec):
    return _cache.get_or_compute(
        ("divergence_heatmap", ByIdentity(divergence), tensor, step, spec_),
        lambda: _plots().divergence_heatmap(divergence, tensor, step, variant="untied", spec=spec_),
    )


def weight_histograms(res: sharecore.TrainResult, name: str | None):
    # Keyed by the run: its weights never change once it has finished.
    return _cache.get_or_compute(
        ("weight_histograms", ByIdentity(res), name),
        lambda: _plots().weight_histograms(res.weights, name=name, spec=res.spec),
    )


@st.cache_data(max_entries=8, show_spinner="Running the demonstrations on tiny models…")
def all_pitfalls(seed: int) -> list[pitfalls.PitfallResult]:
    from sharecore.teach import pitfalls  # TensorFlow

    return pitfalls.all_pitfalls(seed=seed)


def stack_columns_when_narrow(first: str, below_px: int = 1200) -> None:
    """Below `below_px` of window, the row of columns holding the container keyed `first` stacks,
    that container on top (CSS; `first` is a key of ours, never user text)."""
    row = f'[data-testid="stHorizontalBlock"]:has(.st-key-{first})'
    st.html(
        f"""<style>
    @media (max-width: {below_px - 0.02}px) {{
      {row} {{ flex-direction: column; }}
      {row} > [data-testid="stColumn"] {{ width: 100% !important; flex: 1 1 auto !important; }}
      {row} > [data-testid="stColumn"]:has(.st-key-{first}) {{ order: -1; }}
    }}
    </style>"""
    )


def chart(fig, key: str | None = None) -> None:
    """Draws a figure (larger text in presenter mode) with its one line on how to read it beneath."""
    from sharecore.viz import style as plotstyle

    if presenter_mode():
        fig = plotstyle.apply_presenter(fig)  # a copy: `fig` may be a cached, shared figure
    st.plotly_chart(fig, key=key, width="stretch")
    reading = plotstyle.how_to_read(fig)
    if reading:
        st.caption(reading)


def presenter_mode() -> bool:
    """Whether the sidebar's presenter toggle is on in this session."""
    return bool(st.session_state.get(PRESENTER, False))


def learning_rate_picker(
    key: str, value: float, *, disabled: bool = False, on_change: Callable[..., None] | None = None, args: tuple = ()
) -> float:
    """The log-scale learning-rate picker of every page: `LEARNING_RATES` (1-2-5 steps over the range the
    app trains with, `sharecore.core.config`); returns the rate picked.

    A value between the steps (from a link) is kept as an option of its own, so opening a link
    never changes its rate.
    """
    options = sorted({*LEARNING_RATES, float(value)})
    if st.session_state.get(key) not in options:
        st.session_state[key] = float(value)
    return float(
        st.select_slider(
            "Learning rate",
            options,
            key=key,
            format_func=lambda lr: f"{lr:g}",
            disabled=disabled,
            on_change=on_change,
            args=args,
            help="Log scale: each step multiplies the rate by 2 or 2.5. Too high and the loss jumps or "
            "grows; too low and it hardly moves.",
        )
    )


@st.cache_data(show_spinner=False)
def device_name(device: str) -> str:
    """The TensorFlow device 'auto' | 'cpu' | 'gpu' resolves to; raises ValueError for a missing GPU."""
    return sharecore.resolve_device(device).split("device:")[-1]


# ----------------------------------------------------------------------------- kept runs
# Every finished or stopped run is kept in the run store (sharecore/runs/store.py: SQLite under
# SHARECORE_DATA_DIR, capped and cleaned up there), under the browser's workspace key. The key
# lives in a cookie, not in the URL: the address bar is what people copy to share an experiment,
# and a workspace key in it would hand over every run of the sharer. A run is shared by its own
# link (`/compare?run=<id>`), which shows that one run to whoever has it.
WORKSPACE = "workspace"  # this browser's workspace key (from its cookie, or new)
WORKSPACE_COOKIE = "sharecore_workspace"
WORKSPACE_NEW = "workspace_new"  # True until the cookie has been written into the browser
LAST_SETTINGS = "last_settings"  # (spec, config) of the last kept run: what the next label compares with
KEEP_NOTES = "keep_notes"  # what the store said about the last run kept (evictions, problems)
SHOWN = "shown_runs"  # ids of the kept runs the Lab and Compare pages overlay, in order
SHARED = "shared_run"  # the run id a share link asked for, until the Compare page has shown it
CURRENT_RUN_ID = "current_run_id"  # the kept id of the session's current result (what Continue extends)
_LOADED = "loaded_runs"  # run id -> StoredRun read back this session (a run never changes once kept)
STORE_ERROR = "store_error"  # why the run store could not be read on the last try, or None
MAX_SHOWN = 4  # a new run joins the overlay; beyond this many, the oldest shown ones leave it
_STORE = None
_STORE_LOCK = threading.Lock()
_STORE_PROBLEM: str | None = None  # why the run store could not be opened on the last try, or None
_STORE_TRIED = 0.0  # time.monotonic() of that try
_RETRY_OPEN_SECONDS = 30.0  # a store that could not be opened is tried again this often (someone may fix it)
_NOT_KEPT = "The run store could not be opened, so nothing is kept on this server now (see the message above)."


class _NoStore:
    """Stands in for a run store that could not be opened: lists nothing, and every other call says so in a few
    words (the page's top message, `store_problem`, says why and how to fix it)."""

    problem = None
    read_only = None
    max_runs_per_workspace = None

    def runs(self, workspace: str) -> list:
        return []

    def total_bytes(self) -> int:
        return 0

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        from sharecore.runs.store import StoreUnavailable

        raise StoreUnavailable(_NOT_KEPT)

    save = adopt = load = rename = pin = delete = _refuse


def run_store():
    """The process's run store (one handle; every call opens its own SQLite connection).

    While the store cannot be opened (a folder or file this server may not use), a stand-in that keeps
    nothing, and `store_problem` says why; opening is tried again every `_RETRY_OPEN_SECONDS`.
    """
    global _STORE, _STORE_PROBLEM, _STORE_TRIED
    with _STORE_LOCK:
        retry = isinstance(_STORE, _NoStore) and time.monotonic() - _STORE_TRIED > _RETRY_OPEN_SECONDS
        if _STORE is None or retry:
            from sharecore.runs.store import RunStore

            try:
                _STORE, _STORE_PROBLEM = RunStore.from_env(), None
            # StoreUnavailable and a bad cap are ValueErrors; OSError and sqlite3.Error: whatever else the disk says.
            except (ValueError, OSError, sqlite3.Error) as err:
                _STORE, _STORE_PROBLEM, _STORE_TRIED = _NoStore(), str(err), time.monotonic()
        return _STORE


def store_problem() -> str | None:
    """Why runs are not kept on this server now (the store cannot be opened, or only read), or None."""
    store = run_store()
    if _STORE_PROBLEM is not None:
        return f"{_STORE_PROBLEM} Until then, runs are trained and drawn but not kept."
    return store.problem if getattr(store, "read_only", None) else None


def show_store_problem() -> None:
    """The one message, on every page, of a run store that cannot keep runs."""
    problem = store_problem()
    if problem:
        st.error(plain(problem), icon=":material/database:")


def init_workspace() -> None:
    """Reads this browser's workspace key from its cookie, or makes a new one (written by `frame`)."""
    ss = st.session_state
    if WORKSPACE in ss:
        return
    cookie = st.context.cookies.get(WORKSPACE_COOKIE) if st.context.cookies else None
    if is_key(cookie):  # a cookie of another form (edited, or older) is replaced by a new key
        ss[WORKSPACE], ss[WORKSPACE_NEW] = cookie, False
    else:
        ss[WORKSPACE], ss[WORKSPACE_NEW] = new_key(), True
    ss[LAST_SETTINGS] = None
    ss[KEEP_NOTES] = []
    ss[SHOWN] = [info.id for info in kept_runs()[:MAX_SHOWN]]  # a reload shows what a full overlay did
    ss[_LOADED] = {}
    shared = st.query_params.get("run")
    ss[SHARED] = shared if shared else None


def remember_workspace() -> None:
    """Writes the workspace key into a cookie (a year; this site only), so a reload or a restarted
    server finds the browser's runs again. The key is URL-safe base64 made here, never user text."""
    ss = st.session_state
    if not ss.get(WORKSPACE_NEW):
        return
    key = ss[WORKSPACE]
    if is_key(key):
        st.html(
            f"<script>document.cookie = '{WORKSPACE_COOKIE}={key}; path=/; max-age=31536000; SameSite=Lax';</script>",
            unsafe_allow_javascript=True,
        )
    ss[WORKSPACE_NEW] = False


def workspace() -> str:
    return st.session_state[WORKSPACE]


def kept_runs() -> list:
    """This workspace's kept runs, newest first (`RunInfo`s: no frames are read); none while the store
    cannot be read (`STORE_ERROR` says why, and the kept-runs table shows it)."""
    try:
        runs = run_store().runs(workspace())
    except ValueError as err:  # runstore.StoreUnavailable: locked, read-only, ...
        st.session_state[STORE_ERROR] = str(err)
        return []
    st.session_state[STORE_ERROR] = None
    return runs


def load_kept(run_id: str):
    """A kept run (`StoredRun`), read once per session; raises KeyError/ValueError with a message."""
    loaded = st.session_state[_LOADED]
    if run_id not in loaded:
        loaded[run_id] = run_store().load(run_id, workspace())
    return loaded[run_id]


def _took_in(res: sharecore.TrainResult, kept: Kept | None) -> None:
    """Shows a finished run, kept by its runner (`_start_run`), in this session's overlay and notes.

    A continued run takes the place in the overlay of the run it continued: it is the same run, now longer.
    """
    ss = st.session_state
    if kept is None or kept.run_id is None:
        # Not kept: the Lab draws it as the current run, and Continue must not replace the run kept before it.
        ss[KEEP_NOTES] = list(kept.notes) if kept is not None else []
        ss[CURRENT_RUN_ID] = None
        return
    if kept.continues is not None:
        ss[_LOADED].pop(kept.continues, None)
        shown = [kept.run_id if i == kept.continues else i for i in ss[SHOWN]]
        if kept.run_id not in shown:
            shown.insert(0, kept.run_id)
    else:
        shown = [kept.run_id, *ss[SHOWN]][:MAX_SHOWN]
    ss[SHOWN] = shown
    ss[LAST_SETTINGS] = (res.spec, res.config)
    ss[KEEP_NOTES] = list(kept.notes)
    ss[CURRENT_RUN_ID] = kept.run_id


def training_warnings(res: sharecore.TrainResult) -> None:
    """Shows what looks wrong with a run (flat, collapsed, rising, diverged), each with a fix to try."""
    from sharecore.runs.diagnose import training_warnings as find

    for w in find(res):
        st.warning(plain(w.message), icon=":material/troubleshoot:")


def shown_runs() -> tuple[list, list[str]]:
    """The kept runs to overlay (`LabelledRun`s, labels unique) and messages for ids that could not be read."""
    from sharecore.runs.compare import LabelledRun, unique_labels

    ss = st.session_state
    runs, problems = [], []
    for run_id in list(ss[SHOWN]):
        try:
            stored = load_kept(run_id)
        except (KeyError, ValueError) as err:
            problems.append(str(err))
            ss[SHOWN].remove(run_id)
            continue
        runs.append((stored.label, stored.result, run_id))
    labels = unique_labels([label for label, _, _ in runs])
    return [LabelledRun(label, res, run_id) for label, (_, res, run_id) in zip(labels, runs)], problems


def share_path(run_id: str) -> str:
    """The path of a run's share link, relative to the app's root."""
    return f"compare?run={run_id}"


def reset_to_preset(name: str) -> None:
    """Reset / picking a preset in the Lab: the preset as published, with its default settings (the
    seed and device stay); kept runs stay too."""
    new = sharecore.preset(name)
    base = urlstate.default_config(new)
    load_experiment(new, dataclasses.replace(base, seed=config().seed, device=config().device), name)


def compare_curves(runs: list, tensor: str | None = None) -> pd.DataFrame:
    """The kept runs' curves (`compare.curves`), computed once for the same runs, labels and tensor.

    Each run's part is cached too: a new run joining the overlay computes only its own curves.
    """
    import pandas as pd

    from sharecore.runs import compare

    def of_run(run) -> pd.DataFrame:
        return _cache.get_or_compute(
            ("run_curves", run.label, ByIdentity(run.result), tensor), lambda: compare.curves([run], tensor)
        )

    def together() -> pd.DataFrame:
        parts = [part for part in map(of_run, runs) if not part.empty]
        return pd.concat(parts, ignore_index=True) if parts else compare.curves([], tensor)

    return _cache.get_or_compute(("curves", tuple((r.label, ByIdentity(r.result)) for r in runs), tensor), together)


def overlay_figure(build: Callable[..., Any], curves: pd.DataFrame, labels: list[str], *args: Any, **kwargs: Any):
    """`build(curves, labels, *args, **kwargs)` (a `comparecharts` builder), drawn once per curves frame.

    Keyed by the frame `compare_curves` returned (by identity): a rerun with the same runs shown
    reuses the figures instead of building ten runs' traces again (seconds with plotly's checks).
    """
    return _cache.get_or_compute(
        ("overlay", build.__name__, ByIdentity(curves), tuple(labels), args, tuple(sorted(kwargs.items()))),
        lambda: build(curves, labels, *args, **kwargs),
    )


def of_runs(compute: Callable[[list], Any], runs: list) -> Any:
    """`compute(runs)` (a `sharecore.runs.compare` table of kept runs), computed once for the same runs and labels."""
    return _cache.get_or_compute(
        (compute.__name__, tuple((r.label, ByIdentity(r.result)) for r in runs)), lambda: compute(runs)
    )


def compare_charts(runs: list, *, key: str, tensor: str | None = None) -> None:
    """The overlays of kept runs: loss (training and held-out), divergence and gradient cosine."""
    from sharecore.viz import overlays as comparecharts

    labels = [r.label for r in runs]
    curves = compare_curves(runs, tensor)
    log_y = st.toggle("Log scale for loss", key=f"{key}.log_y", help="Shows small losses and slow drift.")
    chart(overlay_figure(comparecharts.loss_overlay, curves, labels, log_y=log_y), key=f"{key}.loss")
    # Drift and cosine side by side only where each gets 450 px: narrower (a projector, the Lab's
    # chart column), their titles and run names did not fit, so they stack. A container query
    # measures the charts' own room, not the window's.
    box = f"st-key-{key}-overlays"
    st.html(
        f"""<style>
        .{box} {{ container-type: inline-size; }}
        @container (max-width: 899.98px) {{
          .{box} [data-testid="stHorizontalBlock"] {{ flex-direction: column; }}
          .{box} [data-testid="stHorizontalBlock"] > [data-testid="stColumn"] {{
            width: 100% !important; flex: 1 1 auto !important; }}
        }}
        </style>"""
    )
    left, right = st.container(key=f"{key}-overlays").columns(2)
    with left:
        chart(overlay_figure(comparecharts.divergence_overlay, curves, labels, log_y=log_y), key=f"{key}.divergence")
    with right:
        chart(overlay_figure(comparecharts.cosine_overlay, curves, labels), key=f"{key}.cosine")


def _apply_run_edits(key: str, rows: list) -> None:
    """The kept-runs table's callback: show/hide, rename, pin, delete."""
    ss = st.session_state
    edits = ss[f"{key}.runs.{ss.get(f'{key}.runs.version', 0)}"]["edited_rows"]
    store, ws = run_store(), workspace()
    problems = []
    for index, change in edits.items():
        info = rows[int(index)]
        try:
            if "label" in change:
                store.rename(ws, info.id, change["label"])
                ss[_LOADED].pop(info.id, None)
            if "pinned" in change:
                store.pin(ws, info.id, bool(change["pinned"]))
                ss[_LOADED].pop(info.id, None)
            if change.get("delete"):
                store.delete(ws, info.id)
                ss[_LOADED].pop(info.id, None)
                if info.id in ss[SHOWN]:
                    ss[SHOWN].remove(info.id)
            if "show" in change:
                if change["show"] and info.id not in ss[SHOWN]:
                    ss[SHOWN].append(info.id)
                elif not change["show"] and info.id in ss[SHOWN]:
                    ss[SHOWN].remove(info.id)
        except (KeyError, ValueError) as err:
            problems.append(str(err))
    ss[f"{key}.runs.problems"] = problems
    ss[f"{key}.runs.version"] = ss.get(f"{key}.runs.version", 0) + 1  # a fresh table shows the store


def kept_runs_editor(*, key: str) -> None:
    """This workspace's kept runs as an editable table: show (overlay), label, pin, delete, share link."""
    import pandas as pd

    ss = st.session_state
    rows = kept_runs()
    store = run_store()
    if getattr(store, "problem", None) and not getattr(store, "read_only", None):  # read-only: the page's top message
        st.warning(plain(store.problem), icon=":material/warning:")
    if ss.get(STORE_ERROR):
        st.error(
            plain(f"{ss[STORE_ERROR]} Runs cannot be kept or listed until it works again."), icon=":material/error:"
        )
    for problem in ss.get(f"{key}.runs.problems", []):
        st.error(plain(problem), icon=":material/error:")
    if not rows:
        if isinstance(store, _NoStore):
            st.caption("No runs are kept while the run store cannot be opened (see the message above).")
        else:
            st.caption("No kept runs yet. Every finished or stopped run is kept here, in this browser's workspace.")
        return
    table = pd.DataFrame(
        {
            "show": [info.id in ss[SHOWN] for info in rows],
            "label": [info.label for info in rows],
            "pinned": [info.pinned for info in rows],
            "steps": [info.steps_done for info in rows],
            "loss tied": [info.final_loss.get("tied") for info in rows],
            "loss untied": [info.final_loss.get("untied") for info in rows],
            "link": [share_path(info.id) for info in rows],
            "delete": [False] * len(rows),
        }
    )
    st.data_editor(
        table,
        key=f"{key}.runs.{ss.get(f'{key}.runs.version', 0)}",
        on_change=_apply_run_edits,
        args=(key, rows),
        hide_index=True,
        width="stretch",
        disabled=["steps", "loss tied", "loss untied", "link"],
        # Widths in px so that all eight fit a projector's page (1024 px with the sidebar); what a
        # class reads (name and losses) comes first, and the name stays in view on a narrower page.
        column_order=["show", "label", "loss tied", "loss untied", "steps", "pinned", "link", "delete"],
        column_config={
            "show": st.column_config.CheckboxColumn(
                "show", width=64, pinned=True, help="Overlay this run on the charts."
            ),
            "label": st.column_config.TextColumn(
                "label", width=116, pinned=True, max_chars=80, help="What changed; click to rename."
            ),
            "pinned": st.column_config.CheckboxColumn(
                "pin", width=52, help="A pinned run is never removed to make room."
            ),
            "steps": st.column_config.NumberColumn("steps", width=50),
            "loss tied": st.column_config.NumberColumn(width=70, format="%.4g"),
            "loss untied": st.column_config.NumberColumn(width=84, format="%.4g"),
            "link": st.column_config.LinkColumn(
                "share", width=52, display_text="link", help="Whoever has this link sees the run."
            ),
            "delete": st.column_config.CheckboxColumn("delete", width=70, help="Removes the run from this workspace."),
        },
    )
    limit = getattr(store, "max_runs_per_workspace", None)
    if limit:
        st.caption(f"Up to {limit} runs are kept per browser; beyond that the oldest unpinned run goes.")


def adopt_shared(run_id: str) -> str | None:
    """Adds a run opened from a share link to this workspace's kept runs (a reference, not a copy).

    Call it before reading the run (`load_kept`): read afterwards, the run carries the label this list
    keeps for it, never the one its owner gives it now.

    Returns:
        None once this workspace lists the run; else why it could not be added (an unknown id, a list
        whose runs are all pinned, a store that cannot be written).
    """
    try:
        run_store().adopt(workspace(), run_id)
    except (KeyError, ValueError) as err:  # UnknownRun, StoreUnavailable and a full list say what happened
        return str(err)
    finally:
        st.session_state[_LOADED].pop(run_id, None)  # read again, as this list now has it
    return None
