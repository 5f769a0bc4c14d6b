"""The byte-bounded cache of the pages' pure results (ui/cache.py) and how ui/figures.py uses it."""

from __future__ import annotations

import ast
import gc
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sharecore
from sharecore.core.spec import ModelSpec
from sharecore.viz import plots
from ui.cache import ByIdentity, ByteLRU, pickled_size


@pytest.fixture(autouse=True)
def _clean_keras_session():
    """Overrides conftest's per-test Keras reset: nothing here builds a model."""
    yield


def test_cache_module_imports_neither_streamlit_nor_tensorflow():
    tree = ast.parse((Path(__file__).resolve().parents[2] / "ui" / "cache.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name.split(".")[0] for name in imported} & {"streamlit", "tensorflow", "keras", "sharecore"}


def test_cache_evicts_the_least_recently_used_entries_until_the_bytes_fit():
    cache = ByteLRU(100, size_of=len, max_item_bytes=100)
    cache.put("a", "x" * 40)
    cache.put("b", "y" * 40)
    assert cache.get("a") == "x" * 40  # a is now more recently used than b
    cache.put("c", "z" * 40)  # 120 bytes would not fit: b, the least recently used, goes
    assert "b" not in cache
    assert cache.get("a") == "x" * 40 and cache.get("c") == "z" * 40
    assert cache.total_bytes == 80
    cache.put("d", "w" * 90)  # needs both others out
    assert len(cache) == 1 and cache.total_bytes == 90


def test_cache_replaces_a_key_without_counting_its_old_value():
    cache = ByteLRU(100, size_of=len, max_item_bytes=100)
    cache.put("a", "x" * 60)
    cache.put("a", "y" * 30)
    assert cache.get("a") == "y" * 30
    assert cache.total_bytes == 30


def test_cache_returns_but_does_not_keep_a_value_larger_than_a_quarter_of_its_budget():
    cache = ByteLRU(100, size_of=len)
    cache.put("small", "s" * 10)
    calls = []
    value = cache.get_or_compute("big", lambda: calls.append(1) or "b" * 26)
    assert value == "b" * 26 and "big" not in cache
    cache.get_or_compute("big", lambda: calls.append(1) or "b" * 26)
    assert len(calls) == 2  # computed again: it was never kept
    assert cache.get("small") == "s" * 10  # and it did not push anything out


def test_cache_computes_a_key_once_and_then_returns_the_kept_value():
    cache = ByteLRU(1000)
    calls = []
    first = cache.get_or_compute(("f", 1), lambda: calls.append(1) or [1, 2, 3])
    second = cache.get_or_compute(("f", 1), lambda: calls.append(1) or [1, 2, 3])
    assert first is second and calls == [1]


def test_cache_rejects_a_budget_that_is_not_a_positive_number_of_bytes():
    with pytest.raises(ValueError, match=r"max_bytes must be a whole number of bytes >= 1. Received: max_bytes=0"):
        ByteLRU(0)
    with pytest.raises(ValueError, match=r"max_item_bytes must be between 0 and max_bytes \(10\)"):
        ByteLRU(10, max_item_bytes=11)


def test_cache_stays_consistent_when_threads_fill_it_at_once():
    cache = ByteLRU(1000, size_of=len, max_item_bytes=1000)

    def fill(worker: int) -> None:
        for i in range(300):
            cache.put((worker, i), "x" * (1 + (i * 7 + worker) % 50))
            cache.get((worker, i // 2))

    threads = [threading.Thread(target=fill, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.total_bytes <= 1000
    assert cache.total_bytes == sum(len(cache.get(k)) for k in list(cache._entries))


# ----------------------------------------------------------------------------- keys by identity
def test_identity_keys_match_only_the_same_living_object():
    frame = pd.DataFrame({"step": [1, 2]})
    twin = frame.copy()  # equal contents, another object
    assert ByIdentity(frame) == ByIdentity(frame)
    assert hash(ByIdentity(frame)) == hash(ByIdentity(frame))
    assert ByIdentity(frame) != ByIdentity(twin)


def test_cache_never_matches_or_keeps_entries_of_a_frame_that_was_freed():
    cache = ByteLRU(10_000)
    frame = pd.DataFrame({"step": [1, 2]})
    key = ByIdentity(frame)
    cache.put(("loss", key), "figure of the first run")
    assert cache.get(("loss", ByIdentity(frame))) == "figure of the first run"
    del frame
    gc.collect()
    assert not key.alive
    later = pd.DataFrame({"step": [1, 2]})  # CPython often reuses the freed id for the next object
    assert cache.get(("loss", ByIdentity(later))) is None
    cache.put(("other",), "x")  # any put drops entries no key can reach
    assert len(cache) == 1


def test_a_sweep_drops_the_figures_of_freed_frames_and_keeps_the_rest():
    cache = ByteLRU(10_000, size_of=len)
    gone, kept = pd.DataFrame({"step": [1]}), pd.DataFrame({"step": [2]})
    cache.put(("loss", ByIdentity(gone)), "a closed tab's chart")  # 20 bytes
    cache.put(("loss", ByIdentity(kept)), "an open tab's chart")  # 19 bytes
    cache.put(("model_dot", "seed-dense"), "digraph")  # 7 bytes, keyed by value: never swept
    del gone
    gc.collect()
    assert cache.sweep() == len("a closed tab's chart")
    assert len(cache) == 2 and cache.total_bytes == len("an open tab's chart") + len("digraph")
    assert cache.get(("loss", ByIdentity(kept))) == "an open tab's chart"
    assert cache.sweep() == 0


# ----------------------------------------------------------------------------- the largest figures
def largest_tensor_views() -> object:
    spec = ModelSpec.from_dict(
        {
            "name": "wide",
            "input_shape": [1000],
            "tensors": [{"name": "W", "shape": [1000, 2000]}],
            "uses": [{"name": "wide", "op": "dense", "tensor": "W"}],
        }
    )
    w = np.random.default_rng(0).normal(size=(1000, 2000)).astype(np.float32)
    return plots.tensor_views(spec, "W", values=w)


def test_pickled_size_of_a_figure_counts_its_arrays_and_stays_below_its_json():
    fig = largest_tensor_views()
    # At least the heatmap values it holds in memory, at most the (base64) JSON the browser gets.
    assert sum(t.z.nbytes for t in fig.data) < pickled_size(fig) < len(fig.to_json())


def test_cache_filled_with_the_largest_figures_stays_within_its_budget():
    fig = largest_tensor_views()
    size = pickled_size(fig)
    cache = ByteLRU(4 * 2**20)
    for i in range(40):
        cache.put(("tensor_views", i), fig)
        assert cache.total_bytes <= 4 * 2**20
    assert len(cache) == 4 * 2**20 // size  # as many as fit, the newest ones
    assert ("tensor_views", 39) in cache and ("tensor_views", 0) not in cache


def test_ui_caches_build_page_figures_by_their_arguments():
    from ui import figures  # streamlit is imported, but no page runs

    spec = sharecore.preset("tied-autoencoder")
    assert figures.model_dot(spec, True) is figures.model_dot(spec, True)
    assert figures.model_dot(spec, False) != figures.model_dot(spec, True)
    report = figures.param_report(spec)
    assert figures.param_report(spec) is report
    assert figures.param_bars(report) is figures.param_bars(report)
    assert figures._cache.total_bytes <= figures.CACHE_MB * 2**20
