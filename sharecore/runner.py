"""A training run in a worker thread that an interactive front end can watch and stop.

A dashboard cannot block while it trains: its Stop button must stay clickable. A
`BackgroundRun` trains in its own thread, keeps the latest progress for the front end to
poll, and stops after the current step when asked, keeping what it recorded. A process-wide
limit on concurrent runs keeps a server shared by a workshop responsive: extra runs wait
in a queue (and can be stopped while they wait).
"""

from __future__ import annotations

import os
import threading
import time

from sharecore.spec import ModelSpec, TrainConfig
from sharecore.training import TrainProgress, TrainResult, train

# Runs that may train at once in this process; the rest wait. Each run uses all cores.
MAX_CONCURRENT_RUNS = max(1, int(os.environ.get("SHARECORE_MAX_CONCURRENT_RUNS", "2")))
_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_RUNS)
_ACTIVE = 0  # runs whose worker thread is alive (queued or training)
_ACTIVE_LOCK = threading.Lock()


def active_runs() -> int:
    """How many `BackgroundRun` workers of this process are alive (queued or training)."""
    return _ACTIVE


def _count_active(change: int) -> None:
    global _ACTIVE
    with _ACTIVE_LOCK:
        _ACTIVE += change


class BackgroundRun:
    """One side-by-side training of the tied and untied models, in a daemon thread.

    Args:
        spec: the model spec.
        config: the training settings.

    The attributes `progress`, `result` and `error` are written by the worker thread and
    read by the front end; each is replaced whole, so a reader never sees half an update.
    """

    def __init__(self, spec: ModelSpec, config: TrainConfig) -> None:
        self.spec = spec
        self.config = config
        self.stop_event = threading.Event()
        self.progress: TrainProgress | None = None  # the latest progress report
        self.result: TrainResult | None = None  # set when training ends, also after a stop
        self.error: str | None = None  # set instead of `result` when training could not run
        self.queued = True  # waiting for a free slot
        self.started_at: float | None = None
        self._thread = threading.Thread(target=self._work, name="sharecore-train", daemon=True)

    # -- control
    def start(self) -> BackgroundRun:
        """Starts the worker thread; returns self."""
        self.started_at = time.perf_counter()
        _count_active(+1)  # before the thread runs, so a caller sees the run at once
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Asks the run to end after its current step and waits up to `timeout` seconds for it."""
        self.stop_event.set()
        self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for the worker; returns True when it has finished."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return self.done

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
    def fraction(self) -> float:
        """Steps done / steps asked, in [0, 1]."""
        if self.result is not None:
            return self.result.steps_done / max(1, self.config.steps)
        if self.progress is None:
            return 0.0
        return min(1.0, self.progress.step / max(1, self.progress.total))

    # -- worker
    def _on_progress(self, progress: TrainProgress) -> None:
        self.progress = progress

    def _work(self) -> None:
        try:
            self._queue_and_train()
        finally:
            _count_active(-1)

    def _queue_and_train(self) -> None:
        while not _SLOTS.acquire(timeout=0.1):
            if self.stop_event.is_set():
                self.error = "stopped while waiting for a free trainer; nothing was trained."
                return
        try:
            self.queued = False
            self.result = train(self.spec, self.config, on_progress=self._on_progress, stop=self.stop_event)
        except ValueError as err:
            self.error = str(err)
        except Exception as err:  # a front end shows this as a message; it must not kill the thread silently
            self.error = f"training failed: {type(err).__name__}: {err}"
        finally:
            _SLOTS.release()
