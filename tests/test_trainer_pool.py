"""Compiled trainers are pooled by what the compiled graph depends on, not by a spec's name."""

from __future__ import annotations

import dataclasses

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
