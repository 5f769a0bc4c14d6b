"""A training run in a worker thread that an interactive front end can watch and stop.

A dashboard cannot block while it trains: its Stop button must stay clickable. A
`BackgroundRun` trains in its own thread, keeps the latest progress for the front end to
poll, and stops after the current chunk of steps when asked, keeping what it recorded.

A server shared by a workshop stays responsive because at most `MAX_CONCURRENT_RUNS` runs
train at once; the others wait in a first-come, first-served queue, and each knows its place
in it (`queue_place`). A run also ends when the one who started it has gone: the front end
hands in an `alive` check (the dashboard asks Streamlit whether the browser tab is still
connected), and a run whose owner has been gone for `gone_after` seconds stops, so a closed
tab frees its trainer for the next person within seconds. The wall-clock cap
(`Limits.max_run_seconds`, enforced by `train` itself) bounds every run in any case.

What happens to a run's result is the run's own business, not its page's: `on_result` (the
dashboard keeps the run in the run store with it) is called by the worker thread as soon as
training ends, also when the page that started it has been reloaded, has navigated away or was
closed. A run names its `owner` (the dashboard's workspace key): a new page of the same owner
finds a run whose page has gone with `orphaned_runs` and takes it over with `reattach`, so a
reload mid-run keeps watching the same run instead of losing it.
"""

from __future__ import annotations

import atexit
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from sharecore.core import settings
from sharecore.core.config import TrainConfig
from sharecore.core.spec import ModelSpec

if TYPE_CHECKING:  # the worker imports TensorFlow when it starts, not the module
    from sharecore.core.results import TrainProgress, TrainResult

# Runs that may train at once in this process; the rest wait. Each run uses all cores.
# SHARECORE_MAX_CONCURRENT_RUNS (default 2). Each run uses all cores.
MAX_CONCURRENT_RUNS = int(settings.value_or_default("SHARECORE_MAX_CONCURRENT_RUNS"))
# How long a run's owner may be gone before the run ends. Long enough to ride out a page
# reload or a short network blip (the browser reconnects to the same session within a second
# or two), short enough that a closed tab frees its trainer within seconds.
OWNER_GONE_AFTER_S = 5.0
WATCH_EVERY_S = 0.25  # how often the owner checks run
HISTORY_PARTS = 32  # a run's history is kept in at most this many frames, joined into one beyond it

_QUEUE = threading.Condition()  # guards _WAITING, _TRAINING and _watcher
_WAITING: list[BackgroundRun] = []  # runs waiting for a trainer, first come first
_TRAINING: list[BackgroundRun] = []  # runs holding one of the MAX_CONCURRENT_RUNS trainers
_LIVE: list[BackgroundRun] = []  # runs whose worker has not ended: waiting, training or handing on its result
_watcher: threading.Thread | None = None


def active_runs() -> int:
    """How many runs of this process are waiting or training."""
    with _QUEUE:
        return len(_WAITING) + len(_TRAINING)


def training_runs() -> int:
    """How many runs of this process hold a trainer now."""
    with _QUEUE:
        return len(_TRAINING)


class BackgroundRun:
    """One side-by-side training of the tied and untied models, in a daemon thread.

    Args:
        spec: the model spec.
        config: the training settings.
        alive: tells whether whoever started the run is still there, e.g. whether their
            browser tab is still connected. Called from a watcher thread a few times a
            second, so it must be quick and thread-safe. `None`: the run never ends for
            this reason.
        gone_after: seconds `alive` must keep answering False before the run ends.
        resume: an earlier result to continue (`config.steps` is then the new total); see
            `sharecore.nn.training.train`. A resumed run waits in the same queue as any other.
        owner: who the run belongs to beyond the page that started it (the dashboard's workspace
            key); `orphaned_runs(owner)` finds the run once `alive` says its page has gone.
        on_result: called by the worker with the result as soon as training ends, whoever is still
            watching; what it returns is kept as `kept`. It runs before `done` turns True.

    The attributes `progress`, `result`, `kept` and `error` are written by the worker thread and
    read by the front end; each is replaced whole, so a reader never sees half an update. The history
    so far (`history`) is kept as the reports' new rows, in at most `HISTORY_PARTS` frames, joined when read.
    """

    def __init__(
        self,
        spec: ModelSpec,
        config: TrainConfig,
        *,
        alive: Callable[[], bool] | None = None,
        gone_after: float = OWNER_GONE_AFTER_S,
        resume: TrainResult | None = None,
        owner: str | None = None,
        on_result: Callable[[TrainResult], Any] | None = None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.resume = resume
        self.owner = owner
        self.on_result = on_result
        self.alive = alive
        self.gone_after = gone_after
        self.stop_event = threading.Event()
        self.progress: TrainProgress | None = None  # the latest progress report
        # The reports' new history rows, in parts; the worker replaces the list whole (never changes one in
        # place), so a reader's list stays as it read it.
        self._history: list[pd.DataFrame] = []
        self._history_seen: tuple[list[pd.DataFrame], pd.DataFrame | None] = ([], None)  # parts, joined
        self.result: TrainResult | None = None  # set when training ends, also after a stop
        self.error: str | None = None  # set instead of `result` when training could not run
        self.kept: Any = None  # what `on_result` returned
        self.queued = True  # waiting for a free trainer
        self.abandoned = False  # ended because its owner had gone
        self.started_at: float | None = None
        self._gone_since: float | None = None
        self._thread = threading.Thread(target=self._work, name="sharecore-train", daemon=True)

    # -- control
    def start(self) -> BackgroundRun:
        """Joins the end of the queue and starts the worker thread; returns self."""
        global _watcher
        self.started_at = time.perf_counter()
        with _QUEUE:
            _WAITING.append(self)  # here, not in the thread: queue order is the order of start()
            _LIVE.append(self)
            if self.alive is not None and _watcher is None:
                _watcher = threading.Thread(target=_watch_owners, name="sharecore-watch", daemon=True)
                _watcher.start()
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Asks the run to end after its current chunk of steps (a waiting run leaves the queue
        at once) and waits up to `timeout` seconds for it."""
        self._request_stop()
        self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for the worker; returns True when it has finished."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return self.done

    def reattach(self, alive: Callable[[], bool] | None) -> bool:
        """Hands the run to a new page of its owner: `alive` now tells whether that page is there.

        Returns:
            True if the run goes on; False if it was already asked to stop (it still ends, and
            `on_result` still hands on what it recorded).
        """
        with _QUEUE:
            self.alive = alive
            self._gone_since = None
            return not self.stop_event.is_set()

    # -- state
    @property
    def running(self) -> bool:
        """True while the worker thread is alive (queued or training)."""
        return self._thread.is_alive()

    @property
    def done(self) -> bool:
        """True once the worker has started and ended."""
        return self._thread.ident is not None and not self._thread.is_alive()

    @property
    def queue_place(self) -> int | None:
        """The run's place in the queue for a trainer (1 = next), or None when not waiting."""
        with _QUEUE:
            return _WAITING.index(self) + 1 if self in _WAITING else None

    @property
    def fraction(self) -> float:
        """Steps done / steps asked, in [0, 1]."""
        if self.result is not None:
            return self.result.steps_done / max(1, self.config.steps)
        if self.progress is None:
            return 0.0
        return min(1.0, self.progress.step / max(1, self.progress.total))

    @property
    def history(self) -> pd.DataFrame | None:
        """The history of the steps trained so far (`HISTORY_COLUMNS`), for a live chart; None before the
        first report. Joined when a front end asks (a few times a second at most), not at every chunk."""
        parts = self._history
        if not parts:
            return None
        seen, joined = self._history_seen
        if seen is not parts or joined is None:
            joined = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
            self._history_seen = (parts, joined)
        return joined

    # -- queue and owner
    def _request_stop(self) -> None:
        self.stop_event.set()
        with _QUEUE:
            if self in _WAITING:
                _WAITING.remove(self)  # the runs behind move up now, not when the worker notices
            _QUEUE.notify_all()

    def _check_owner(self) -> None:
        """Called by the watcher: ends the run once its owner has been gone for `gone_after` seconds."""
        if self.alive is None or self.stop_event.is_set():
            return
        try:
            here = bool(self.alive())
        except Exception:  # a broken check must not end someone's run; the time cap still bounds it
            here = True
        now = time.monotonic()
        if here:
            self._gone_since = None
        elif self._gone_since is None:
            self._gone_since = now
        elif now - self._gone_since >= self.gone_after:
            self.abandoned = True
            self._request_stop()

    def _wait_for_trainer(self) -> bool:
        """Blocks until this run is first in the queue and a trainer is free; False if stopped first."""
        with _QUEUE:
            while True:
                if self.stop_event.is_set() or self not in _WAITING:
                    if self in _WAITING:
                        _WAITING.remove(self)
                        _QUEUE.notify_all()
                    return False
                if _WAITING[0] is self and len(_TRAINING) < MAX_CONCURRENT_RUNS:
                    _WAITING.pop(0)
                    _TRAINING.append(self)
                    self.queued = False
                    _QUEUE.notify_all()  # the next in line may find a trainer free too
                    return True
                _QUEUE.wait(0.5)  # also wakes on a stop_event set directly, without notify

    # -- worker
    def _on_progress(self, progress: TrainProgress) -> None:
        parts = [*self._history, progress.new_history]
        if len(parts) > HISTORY_PARTS:  # a slow model's long run reports a few rows thousands of times
            parts = [pd.concat(parts, ignore_index=True)]
        self._history = parts
        self.progress = progress

    def _work(self) -> None:
        try:
            self._train_and_hand_on()
        finally:
            with _QUEUE:
                _LIVE.remove(self)

    def _train_and_hand_on(self) -> None:
        if not self._wait_for_trainer():
            if self.abandoned:
                self.error = "the page that started this run was closed while it waited for a free trainer."
            else:
                self.error = "stopped while waiting for a free trainer; nothing was trained."
            return
        try:
            from sharecore.nn.training import train  # TensorFlow: imported by the worker, once

            result = train(
                self.spec, self.config, on_progress=self._on_progress, stop=self.stop_event, resume=self.resume
            )
            if self.abandoned and result.stop_reason is not None:
                result = dataclasses.replace(
                    result,
                    stop_reason=(
                        f"the page that started this run was closed or lost its connection for over "
                        f"{self.gone_after:g} s, so training stopped after step {result.steps_done} to free the "
                        f"trainer; what was recorded is kept."
                    ),
                )
        except ValueError as err:
            self.error = str(err)
            return
        except Exception as err:  # a front end shows this as a message; it must not kill the thread silently
            self.error = f"training failed: {type(err).__name__}: {err}"
            return
        finally:
            with _QUEUE:
                _TRAINING.remove(self)
                _QUEUE.notify_all()  # the trainer is free before the result is handed on
        if self.on_result is not None:
            try:
                self.kept = self.on_result(result)
            except Exception as err:  # the result is still shown; the front end says why it was not kept
                self.error = f"the run finished but could not be handed on: {type(err).__name__}: {err}"
        self.result = result


def orphaned_runs(owner: str) -> list[BackgroundRun]:
    """`owner`'s runs whose page has gone (their `alive` check answers False) and whose worker has not
    ended: training, stopping or handing on their result. A new page of the owner can `reattach` one."""
    with _QUEUE:
        runs = [run for run in _LIVE if run.owner == owner and run.alive is not None]
    gone = []
    for run in runs:  # outside the lock: `alive` is someone else's code
        try:
            here = bool(run.alive())
        except Exception:
            here = True  # as in _check_owner: a broken check counts as present
        if not here:
            gone.append(run)
    return gone


def _stop_runs_at_exit(timeout: float = 60.0) -> None:
    """At interpreter exit: asks every waiting or training run to stop and waits for its thread.

    A run's thread is a daemon, and Python ends daemon threads while it finalizes by unwinding them
    from wherever they are; inside TensorFlow's C++ that unwind is caught and not rethrown, and the
    process aborts ("FATAL: exception not rethrown", exit code 134) after all its work succeeded
    (a server stopped mid-run, a test session that left a run behind). Stopping takes at most one
    chunk of steps.
    """
    with _QUEUE:
        runs = list(_LIVE)  # handing on a result counts too: a kept run must not be cut short
    for run in runs:
        run._request_stop()
    deadline = time.monotonic() + timeout
    for run in runs:
        run.wait(max(0.0, deadline - time.monotonic()))


atexit.register(_stop_runs_at_exit)


def _watch_owners() -> None:
    """The watcher thread: checks the owners of waiting and training runs until none has a check."""
    global _watcher
    while True:
        with _QUEUE:
            runs = [run for run in _WAITING + _TRAINING if run.alive is not None]
            if not runs:
                _watcher = None
                return
        for run in runs:  # outside the lock: `alive` is someone else's code
            run._check_owner()
        time.sleep(WATCH_EVERY_S)
