"""Kept runs: this browser's workspace (its cookie), the run store, the session's current result, the
runs the Lab and Compare pages overlay, and share links."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Any

import streamlit as st

import sharecore
from sharecore.runs.keeping import Kept
from sharecore.runs.store import is_key, new_key
from ui import state
from ui.keys import (
    CURRENT_RUN_ID,
    KEEP_NOTES,
    LOADED,
    RESULT,
    SHARED,
    SHOWN,
    STORE_ERROR,
    WORKSPACE,
    WORKSPACE_NEW,
)
from ui.text import plain

# Every finished or stopped run is kept in the run store (sharecore/runs/store.py: SQLite under
# SHARECORE_DATA_DIR, capped and cleaned up there), under the browser's workspace key. The key
# lives in a cookie, not in the URL: the address bar is what people copy to share an experiment,
# and a workspace key in it would hand over every run of the sharer. A run is shared by its own
# link (`/compare?run=<id>`), which shows that one run to whoever has it.
WORKSPACE_COOKIE = "sharecore_workspace"
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

    save = adopt = load = rename = pin = delete = revoke = _refuse


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


def store_open() -> bool:
    """Whether the run store could be opened (else a stand-in keeps nothing, and `store_problem` says why)."""
    return not isinstance(run_store(), _NoStore)


def show_store_problem() -> None:
    """The one message, on every page, of a run store that cannot keep runs."""
    problem = store_problem()
    if problem:
        st.error(plain(problem), icon=":material/database:")


def init_session() -> None:
    """On a session's first run: reads this browser's workspace key from its cookie, or makes a new one
    (written by `remember_workspace`); no current result yet."""
    ss = st.session_state
    if WORKSPACE in ss:
        return
    cookie = st.context.cookies.get(WORKSPACE_COOKIE) if st.context.cookies else None
    if is_key(cookie):  # a cookie of another form (edited, or older) is replaced by a new key
        ss[WORKSPACE], ss[WORKSPACE_NEW] = cookie, False
    else:
        ss[WORKSPACE], ss[WORKSPACE_NEW] = new_key(), True
    ss[RESULT] = None
    ss[CURRENT_RUN_ID] = None
    ss[KEEP_NOTES] = []
    ss[SHOWN] = [info.id for info in kept_runs()[:MAX_SHOWN]]  # a reload shows what a full overlay did
    ss[LOADED] = {}
    shared = st.query_params.get("run")
    ss[SHARED] = shared if shared else None


def remember_workspace() -> None:
    """Writes the workspace key into a cookie (a year; this site only), so a reload or a restarted
    server finds the browser's runs again. The key is URL-safe base64 made here, never user text."""
    ss = st.session_state
    # A place on every run, filled on the first only: an element that is there on the first run and gone
    # on the next moved every element after it up one place, and Streamlit redraws an unkeyed element
    # that moved (the Build page's tabs fell back to Diagram on a fresh session's first rerun).
    slot = st.empty()
    if not ss.get(WORKSPACE_NEW):
        return
    key = ss[WORKSPACE]
    if is_key(key):
        slot.html(
            f"<script>document.cookie = '{WORKSPACE_COOKIE}={key}; path=/; max-age=31536000; SameSite=Lax';</script>",
            unsafe_allow_javascript=True,
        )
    ss[WORKSPACE_NEW] = False


def workspace() -> str:
    return st.session_state[WORKSPACE]


def result() -> sharecore.TrainResult | None:
    """The session's current result: its last run (complete or stopped), or a kept run loaded into the Lab."""
    return st.session_state.get(RESULT)


def current_run_id() -> str | None:
    """The kept id of the current result (what Continue extends); None when it was not kept."""
    return st.session_state[CURRENT_RUN_ID]


def keep_notes() -> list[str]:
    """What the store said about the last run kept (evictions, problems)."""
    return st.session_state[KEEP_NOTES]


def store_error() -> str | None:
    """Why the run store could not be read on the last try, or None."""
    return st.session_state.get(STORE_ERROR)


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


def run_names(runs: list | None = None) -> dict[str, str]:
    """Each kept run's name as the kept-runs table, the legends and Compare's chips all show it, id -> name,
    newest first.

    A run's name is its label, numbered where this list holds two runs with one label (renamed alike, or
    shared from another browser): the older keeps the label, the newer is 'label (2)'. Labels of runs
    trained here are numbered when they are kept (`sharecore.runs.keeping.numbered`).

    Args:
        runs: `kept_runs()`, when the caller has read it already.
    """
    from sharecore.runs.compare import unique_labels

    newest_first = kept_runs() if runs is None else runs
    names = unique_labels([info.label for info in reversed(newest_first)])
    return dict(zip((info.id for info in newest_first), reversed(names)))  # newest first, as the list


def load_kept(run_id: str):
    """A kept run (`StoredRun`), read once per session; raises KeyError/ValueError with a message."""
    loaded = st.session_state[LOADED]
    if run_id not in loaded:
        loaded[run_id] = run_store().load(run_id, workspace())
    return loaded[run_id]


def took_in(res: sharecore.TrainResult, kept: Kept | None) -> None:
    """Makes a finished run, kept by its runner (`ui.training`), the current result, shown in this session's
    overlay and notes.

    A continued run takes the place in the overlay of the run it continued: it is the same run, now longer.
    """
    ss = st.session_state
    ss[RESULT] = res
    if kept is None or kept.run_id is None:
        # Not kept: the Lab draws it as the current run, and Continue must not replace the run kept before it.
        ss[KEEP_NOTES] = list(kept.notes) if kept is not None else []
        ss[CURRENT_RUN_ID] = None
        return
    if kept.continues is not None:
        ss[LOADED].pop(kept.continues, None)
        shown = [kept.run_id if i == kept.continues else i for i in ss[SHOWN]]
        if kept.run_id not in shown:
            shown.insert(0, kept.run_id)
    else:
        shown = [kept.run_id, *ss[SHOWN]][:MAX_SHOWN]
    ss[SHOWN] = shown
    ss[KEEP_NOTES] = list(kept.notes)
    ss[CURRENT_RUN_ID] = kept.run_id


def shown_runs() -> tuple[list, list[str]]:
    """The kept runs to overlay (`LabelledRun`s, named as `run_names` names them) and messages for ids that
    could not be read."""
    from sharecore.runs.compare import LabelledRun, unique_labels

    ss = st.session_state
    names = run_names()
    runs, problems = [], []
    for run_id in list(ss[SHOWN]):
        try:
            stored = load_kept(run_id)
        except (KeyError, ValueError) as err:
            problems.append(str(err))
            ss[SHOWN].remove(run_id)
            continue
        runs.append((names.get(run_id), stored.label, stored.result, run_id))
        if stored.problem:  # it opens, without the state it cannot be continued from
            problems.append(stored.problem)
    # A shown run this list does not hold (a share link it could not add) gets a number no listed run has.
    others = iter(unique_labels([label for name, label, _, _ in runs if name is None], taken=names.values()))
    return [
        LabelledRun(name if name is not None else next(others), res, run_id) for name, _, res, run_id in runs
    ], problems


def shown_ids() -> list[str]:
    """The ids of the kept runs the Lab and Compare pages overlay, in order."""
    return list(st.session_state[SHOWN])


def set_shown(run_ids: Iterable[str]) -> None:
    """The kept runs to overlay, in order (the Compare page's pick)."""
    st.session_state[SHOWN] = list(run_ids)


def overlay_runs(*, with_unkept_result: bool = False) -> tuple[list, list[str]]:
    """`shown_runs()`, with the current result first when it could not be kept and `with_unkept_result`
    (the Lab: a run the store could not keep, all runs pinned or the store failing, is still drawn)."""
    from sharecore.runs.compare import LabelledRun, unique_labels

    runs, problems = shown_runs()
    res = result()
    if with_unkept_result and res is not None and current_run_id() is None:
        # Named around the kept runs, whose names stay as the table shows them.
        [label] = unique_labels(["this run (not kept)"], taken=(r.label for r in runs))
        runs = [LabelledRun(label, res), *runs]
    return runs, problems


def run_choices() -> dict[str, str]:
    """The runs a comparison can pick, id -> name (`run_names`; a shown run this list does not hold is numbered
    around them, as in `shown_runs`): the shown ones first, then every other kept run."""
    from sharecore.runs.compare import unique_labels

    kept = run_names()
    labels = {run_id: kept.get(run_id) for run_id in dict.fromkeys([*st.session_state[SHOWN], *kept])}
    others: dict[str, str] = {}
    for run_id, label in labels.items():
        if label is None:
            try:
                others[run_id] = load_kept(run_id).label
            except (KeyError, ValueError):
                others[run_id] = "(no longer kept)"
    labels.update(zip(others, unique_labels(list(others.values()), taken=kept.values())))
    return labels


def edit_runs(changes: Iterable[tuple[str, dict[str, Any]]]) -> list[str]:
    """Applies the kept-runs table's edits, (run id, {'show' | 'label' | 'pinned' | 'delete': value}) each;
    returns what could not be done, one message per run."""
    ss = st.session_state
    store, ws = run_store(), workspace()
    problems = []
    for run_id, change in changes:
        try:
            if "label" in change:
                store.rename(ws, run_id, change["label"])
                ss[LOADED].pop(run_id, None)
            if "pinned" in change:
                store.pin(ws, run_id, bool(change["pinned"]))
                ss[LOADED].pop(run_id, None)
            if change.get("delete"):
                store.delete(ws, run_id)
                ss[LOADED].pop(run_id, None)
                if run_id in ss[SHOWN]:
                    ss[SHOWN].remove(run_id)
            if "show" in change:
                if change["show"] and run_id not in ss[SHOWN]:
                    ss[SHOWN].append(run_id)
                elif not change["show"] and run_id in ss[SHOWN]:
                    ss[SHOWN].remove(run_id)
        except (KeyError, ValueError) as err:
            problems.append(str(err))
    return problems


def revoke_link(run_id: str) -> str:
    """Withdraws a run's share link (`RunStore.revoke`): the run stays in this list under a new id, and leaves the
    lists of those who opened the link. Returns the new id; raises KeyError/ValueError with a message."""
    new_id = run_store().revoke(workspace(), run_id)
    ss = st.session_state
    ss[LOADED].pop(run_id, None)
    ss[SHOWN] = [new_id if i == run_id else i for i in ss[SHOWN]]
    if ss[CURRENT_RUN_ID] == run_id:
        ss[CURRENT_RUN_ID] = new_id
    return new_id


def load_into_lab(run_id: str) -> None:
    """Makes a kept run's model and settings the experiment, and the run itself the current result: Continue
    carries it on (not the session's last run)."""
    stored = load_kept(run_id)
    state.load_experiment(stored.result.spec, stored.result.config, stored.preset or state.preset_name())
    ss = st.session_state
    ss[RESULT], ss[CURRENT_RUN_ID] = stored.result, run_id


def share_path(run_id: str) -> str:
    """The path of a run's share link, relative to the app's root."""
    return f"compare?run={run_id}"


def take_shared_link() -> str | None:
    """The run id a share link asked for, once: None after the first call and when there was none."""
    run_id, st.session_state[SHARED] = st.session_state[SHARED], None
    return run_id


def show_first(run_id: str) -> None:
    """Puts a run at the front of the overlay, unless it is shown already."""
    if run_id not in st.session_state[SHOWN]:
        st.session_state[SHOWN].insert(0, run_id)


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
        st.session_state[LOADED].pop(run_id, None)  # read again, as this list now has it
    return None
