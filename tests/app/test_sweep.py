"""ui.sweep: what a server gives back when sessions end."""

from __future__ import annotations

import gc

import pandas as pd

from ui import figures, sweep
from ui.cache import ByIdentity


def test_a_sweep_drops_the_cached_figures_of_runs_that_no_longer_exist(monkeypatch):
    monkeypatch.setattr(figures, "_cache", type(figures._cache)(figures._cache.max_bytes))
    frame = pd.DataFrame({"step": [1, 2, 3]})
    figures._cache.put(("loss", ByIdentity(frame)), {"data": list(range(100))})
    figures._cache.put(("param_report", "seed-dense"), {"rows": 3})
    del frame  # the session that held the run has ended
    gc.collect()
    assert sweep.sweep_once(None) is None  # no Streamlit server in a test: no sessions to count
    assert len(figures._cache) == 1 and ("param_report", "seed-dense") in figures._cache


def test_the_sweep_thread_starts_once_per_process():
    sweep.start()
    sweep.start()
    assert sweep._THREAD.is_alive() and sweep._THREAD.daemon
