"""Compiled trainers are pooled by what the compiled graph depends on, not by a spec's name."""

from __future__ import annotations

import dataclasses
import gc
import weakref

import numpy as np
import pandas as pd

import sharecore
from sharecore import training
from sharecore.spec import TrainConfig

CONFIG = TrainConfig(steps=4, batch_size=8, seed=3)


def test_a_renamed_spec_reuses_the_pooled_trainer_and_trains_the_same_numbers():
    spec = sharecore.preset("partial-share")
    first = sharecore.train(spec, CONFIG)
    pooled = [t for trainers in training._POOL.values() for t in trainers]
    renamed = dataclasses.replace(spec, name="my-model-2", description="the same shapes, another name")
    second = sharecore.train(renamed, CONFIG)
    assert [t for trainers in training._POOL.values() for t in trainers] == pooled
    assert second.spec.name == "my-model-2"
    pd.testing.assert_frame_equal(first.history, second.history)
    pd.testing.assert_frame_equal(first.divergence, second.divergence)


def test_a_trainer_evicted_from_the_pool_is_freed_with_its_compiled_graph(monkeypatch):
    # TensorFlow kept every traced graph alive for good when a step asked for a variable's gradient
    # together with views of it, and Keras's optimizer registered each trace in a process-wide
    # gradient registry: the trainer went, its graph (a few MB) stayed.
    monkeypatch.setattr(training, "POOL_SIZE", 1)
    monkeypatch.setattr(training, "_POOL", {})
    monkeypatch.setattr(training, "_POOL_ORDER", [])
    sharecore.train(sharecore.preset("partial-share"), CONFIG)
    (trainer,) = [t for trainers in training._POOL.values() for t in trainers]
    trainer_gone = weakref.ref(trainer)
    graph_gone = weakref.ref(trainer.chunk.get_concrete_function().graph)
    del trainer
    sharecore.train(sharecore.preset("tied-autoencoder"), CONFIG)  # other shapes: evicts the first trainer
    gc.collect()
    assert trainer_gone() is None
    assert graph_gone() is None
    assert len([t for trainers in training._POOL.values() for t in trainers]) == 1


def test_a_spec_that_only_changes_initializers_reuses_the_trainer_and_trains_as_a_fresh_one(monkeypatch):
    spec = sharecore.preset("partial-share")
    other = dataclasses.replace(
        spec, tensors=tuple(dataclasses.replace(t, initializer="he_normal") for t in spec.tensors)
    )
    monkeypatch.setattr(training, "_POOL", {})
    monkeypatch.setattr(training, "_POOL_ORDER", [])
    fresh = sharecore.train(other, CONFIG)  # a trainer compiled for `other` itself
    monkeypatch.setattr(training, "_POOL", {})
    monkeypatch.setattr(training, "_POOL_ORDER", [])
    sharecore.train(spec, CONFIG)
    (compiled,) = [t for trainers in training._POOL.values() for t in trainers]
    reused = sharecore.train(other, CONFIG)
    assert [t for trainers in training._POOL.values() for t in trainers] == [compiled]
    pd.testing.assert_frame_equal(fresh.history, reused.history)
    pd.testing.assert_frame_equal(fresh.divergence, reused.divergence)
    np.testing.assert_array_equal(fresh.weights["end"]["tied"]["W"], reused.weights["end"]["tied"]["W"])
