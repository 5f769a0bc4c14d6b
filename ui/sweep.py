"""Giving memory back when sessions end: a sweep every `EVERY_S` seconds in one thread per server process.

A closed tab's session does not end at once: Streamlit keeps it for `server.disconnectedSessionTTL`
(120 s) so that a reload can resume it, in a TTL cache that drops an expired entry only when
something writes to it or asks its length. After a workshop's tabs close nobody does, and every
result, run read back for Compare and live chart those sessions held stayed in the process (the
issue's 29-run Compare: 430 MB still held 150 s after the tabs had closed). The figures cached for
those runs (`ui.figures`, keyed by the runs themselves) go only when a new figure is kept. And what
Python frees, glibc keeps in its arenas unless asked to return it.

So the sweep: asks Streamlit's session storage its length (which reaps the expired sessions),
drops the cached figures of runs that no longer exist, and, when a session has ended since the
last sweep, runs a full garbage collection and `malloc_trim(0)`. Nothing is done while a run
trains: the full collection would hold the GIL under the training thread (see ui/startup.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
import time

from sharecore.runs.runner import active_runs
from ui.figures import sweep_cache

EVERY_S = 30.0
_LOG = logging.getLogger(__name__)


def _sessions() -> int | None:
    """Sessions the server holds (connected, and disconnected ones not yet expired); None without a server.

    Reading the length of the storage of disconnected sessions is what reaps its expired entries.
    """
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return None
    manager = getattr(Runtime.instance(), "_session_mgr", None)
    storage = getattr(getattr(manager, "_session_storage", None), "_cache", None)
    lock = getattr(manager, "_storage_lock", None)  # the cache is not thread-safe; the manager guards it so
    try:
        if storage is None or lock is None:
            kept = 0
        else:
            with lock:
                kept = len(storage)
        return len(manager.list_active_sessions()) + kept if manager is not None else None
    except Exception:  # Streamlit's internals changed: the sweep still drops figures and trims
        _LOG.debug("could not count Streamlit's sessions", exc_info=True)
        return None


def _trim() -> None:
    """Returns the free memory at the top of glibc's heaps to the system (no-op elsewhere)."""
    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


def sweep_once(sessions_before: int | None) -> int | None:
    """One sweep (see the module docstring); returns the sessions it counted, for the next sweep."""
    sessions = _sessions()
    freed = sweep_cache()
    ended = sessions is not None and sessions_before is not None and sessions < sessions_before
    if (ended or freed) and not active_runs():
        gc.collect()
        _trim()
    return sessions


def _loop() -> None:
    sessions = None
    while True:
        time.sleep(EVERY_S)
        try:
            sessions = sweep_once(sessions)
        except Exception:  # a sweep that fails must not end the sweeping, nor the server
            _LOG.warning("the memory sweep failed", exc_info=True)


_THREAD = threading.Thread(target=_loop, name="sharecore-memory-sweep", daemon=True)
_THREAD_LOCK = threading.Lock()


def start() -> None:
    """Starts the sweep once per server process."""
    with _THREAD_LOCK:
        if _THREAD.ident is None:
            _THREAD.start()
