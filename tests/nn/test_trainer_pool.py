"""Compiled trainers are pooled by what the compiled graph depends on, not by a spec's name."""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
import weakref

import numpy as np
import pandas as pd

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.nn import trainer as pool

CONFIG = TrainConfig(steps=4, batch_size=8, seed=3)


def test_a_renamed_spec_reuses_the_pooled_trainer_and_trains_the_same_numbers():
    spec = sharecore.preset("partial-share")
    first = sharecore.train(spec, CONFIG)
    pooled = [t for trainers in pool._POOL.values() for t in trainers]
    renamed = dataclasses.replace(spec, name="my-model-2", description="the same shapes, another name")
    second = sharecore.train(renamed, CONFIG)
    assert [t for trainers in pool._POOL.values() for t in trainers] == pooled
    assert second.spec.name == "my-model-2"
    pd.testing.assert_frame_equal(first.history, second.history)
    pd.testing.assert_frame_equal(first.divergence, second.divergence)


def test_a_trainer_evicted_from_the_pool_is_freed_with_its_compiled_graph(monkeypatch):
    # TensorFlow kept every traced graph alive for good when a step asked for a variable's gradient
    # together with views of it, and Keras's optimizer registered each trace in a process-wide
    # gradient registry: the trainer went, its graph (a few MB) stayed.
    monkeypatch.setattr(pool, "POOL_SIZE", 1)
    monkeypatch.setattr(pool, "_POOL", {})
    monkeypatch.setattr(pool, "_POOL_ORDER", [])
    sharecore.train(sharecore.preset("partial-share"), CONFIG)
    (trainer,) = [t for trainers in pool._POOL.values() for t in trainers]
    trainer_gone = weakref.ref(trainer)
    graph_gone = weakref.ref(trainer.chunk.get_concrete_function().graph)
    del trainer
    sharecore.train(sharecore.preset("tied-autoencoder"), CONFIG)  # other shapes: evicts the first trainer
    gc.collect()
    assert trainer_gone() is None
    assert graph_gone() is None
    assert len([t for trainers in pool._POOL.values() for t in trainers]) == 1


def test_a_spec_that_only_changes_initializers_reuses_the_trainer_and_trains_as_a_fresh_one(monkeypatch):
    spec = sharecore.preset("partial-share")
    other = dataclasses.replace(
        spec, tensors=tuple(dataclasses.replace(t, initializer="he_normal") for t in spec.tensors)
    )
    monkeypatch.setattr(pool, "_POOL", {})
    monkeypatch.setattr(pool, "_POOL_ORDER", [])
    fresh = sharecore.train(other, CONFIG)  # a trainer compiled for `other` itself
    monkeypatch.setattr(pool, "_POOL", {})
    monkeypatch.setattr(pool, "_POOL_ORDER", [])
    sharecore.train(spec, CONFIG)
    (compiled,) = [t for trainers in pool._POOL.values() for t in trainers]
    reused = sharecore.train(other, CONFIG)
    assert [t for trainers in pool._POOL.values() for t in trainers] == [compiled]
    pd.testing.assert_frame_equal(fresh.history, reused.history)
    pd.testing.assert_frame_equal(fresh.divergence, reused.divergence)
    np.testing.assert_array_equal(fresh.weights["end"]["tied"]["W"], reused.weights["end"]["tied"]["W"])


def graph_size(trainer) -> int:
    """Ops in a trainer's compiled chunk, the functions nested in it (loop body, cond branches) included."""
    graph = trainer.chunk.get_concrete_function().graph.as_graph_def()
    return len(graph.node) + sum(len(f.node_def) for f in graph.library.function)


def test_the_compiled_step_grows_linearly_with_the_uses_of_one_tensor(monkeypatch):
    # Issue 8.2: a block of ops per pair of uses made compile time and memory grow with the square of
    # the uses (32 uses of one (16, 16) tensor: 92 s and 720 MB). Twice the uses must add about
    # twice the ops: with ops per pair, going from 8 to 16 uses adds about 4 times what 4 to 8 adds.
    monkeypatch.setattr(pool, "_POOL", {})
    monkeypatch.setattr(pool, "_POOL_ORDER", [])
    sizes = {}
    for uses in (4, 8, 16):
        spec = sharecore.ModelSpec.from_dict(
            {
                "input_shape": [16],
                "tensors": [{"name": "W", "shape": [16, 16]}],
                "uses": [{"name": f"d{i}", "op": "dense", "tensor": "W", "activation": "tanh"} for i in range(uses)],
            }
        )
        sharecore.train(spec, TrainConfig(steps=1, batch_size=4))
        (trainer,) = [t for key, trainers in pool._POOL.items() if len(key[0].uses) == uses for t in trainers]
        sizes[uses] = graph_size(trainer)
    growth = (sizes[16] - sizes[8]) / (sizes[8] - sizes[4])
    print(f"ops in the compiled chunk: {sizes}; 8 -> 16 uses adds {growth:.2f} x what 4 -> 8 adds")
    assert growth < 2.5, sizes


def test_a_run_started_during_a_warm_up_waits_for_its_trainer_instead_of_compiling_another(monkeypatch):
    # A server warms up its default experiment's trainer once TensorFlow is loaded; a Train click
    # during that compile used to compile a second trainer beside it (the first Train click after a
    # server start took 2.6 s against 1.3 s for later ones).
    monkeypatch.setattr(pool, "_POOL", {})
    monkeypatch.setattr(pool, "_POOL_ORDER", [])
    made = []

    class SlowTrainer(pool.Trainer):
        def __init__(self, *args, **kwargs):
            made.append(threading.current_thread().name)
            super().__init__(*args, **kwargs)
            time.sleep(1.0)  # the run below starts while this compile is surely in flight

    monkeypatch.setattr(pool, "Trainer", SlowTrainer)
    spec = sharecore.preset("partial-share")
    warming = threading.Thread(target=pool.warm_up, args=(spec, CONFIG), name="warm-up")
    warming.start()
    deadline = time.monotonic() + 120
    while not pool._WARMING and warming.is_alive():
        assert time.monotonic() < deadline, "the warm-up never started compiling"
        time.sleep(0.01)
    result = sharecore.train(spec, CONFIG)
    warming.join()
    assert made == ["warm-up"]  # one trainer, compiled by the warm-up, used by the run
    assert result.compile_seconds < 0.5
    assert not pool._WARMING
    # The warmed-up trainer trains the same numbers as a trainer compiled for the run itself.
    monkeypatch.setattr(pool, "_POOL", {})
    monkeypatch.setattr(pool, "_POOL_ORDER", [])
    fresh = sharecore.train(spec, CONFIG)
    pd.testing.assert_frame_equal(fresh.history, result.history)
    pd.testing.assert_frame_equal(fresh.divergence, result.divergence)


def test_a_warm_up_compiles_without_training_and_twice_is_once(monkeypatch):
    monkeypatch.setattr(pool, "_POOL", {})
    monkeypatch.setattr(pool, "_POOL_ORDER", [])
    spec = sharecore.preset("seed-dense")
    assert pool.warm_up(spec, CONFIG) > 0
    assert pool.warm_up(spec, CONFIG) == 0.0  # the trainer is in the pool already
    (trainer,) = [t for trainers in pool._POOL.values() for t in trainers]
    assert trainer.chunk.experimental_get_tracing_count() == 1
    assert sharecore.train(spec, CONFIG).compile_seconds < 0.5
