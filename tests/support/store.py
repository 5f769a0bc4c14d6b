"""Runs for the run store: a hand-made result with every field away from its default, and deep equality."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

import sharecore
from sharecore import TrainConfig
from sharecore.core.results import TrainResult, TrainState


def hand_made(seed: int = 0, *, weight_values: int = 12) -> TrainResult:
    """A result with a value other than the default in every field, and awkward contents."""
    rng = np.random.default_rng(seed)
    spec = sharecore.preset("seed-mixed")
    history = pd.DataFrame(
        {
            "step": np.array([1, 1, 2, 2], dtype=np.int64),
            "variant": pd.array(["tied", "untied"] * 2, dtype="string"),
            "loss": [0.5, np.nan, 0.25, 1e-300],
            "accuracy": [0.1, 0.2, np.inf, 0.4],
        }
    )
    gradients = pd.DataFrame(
        {
            "step": np.array([2, 2], dtype=np.int64),
            "variant": pd.array(["tied", "untied"], dtype="string"),
            "tensor": pd.array(["W", "W"], dtype="string"),
            "use": pd.array(["dense_1", "dense_ü"], dtype="string"),
            "grad_norm": [1.0, 2.0],
            "sum_norm": [3.0, 4.0],
            "cosine_with_others": [np.nan, -1.0],
        }
    )
    divergence = pd.DataFrame(
        {
            "step": np.array([], dtype=np.int64),
            "variant": pd.array([], dtype="string"),
            "relative_distance": np.array([], dtype=np.float64),
        }
    )
    heldout = pd.DataFrame({"step": [0, 2], "variant": ["tied", "tied"], "loss": [2.0, 1.0], "accuracy": [0.0, 0.5]})
    weights = {
        "start": {
            "tied": {"W": rng.standard_normal((3, weight_values)).astype(np.float32)},
            "untied": {"a/b c": np.arange(6, dtype=np.int32).reshape(2, 3), "scalar": np.float64(2.5)},
        },
        "end": {"tied": {}, "untied": {"W": np.zeros((0, 4), np.float16)}},
    }
    state = TrainState(
        steps_done=2,
        arrays={"tied/var/0": rng.standard_normal((2, 2)), "untied/opt/3": np.array([7], np.int64)},
        rng={"bit_generator": "PCG64", "state": {"state": 2**127 + 12345, "inc": 3}, "has_uint32": 0, "uinteger": 0},
    )
    return TrainResult(
        spec=spec,
        config=TrainConfig(steps=7, optimizer="sgd", learning_rate=0.125, seed=seed + 3, record_every=2),
        device="/CPU:0",
        steps_done=2,
        stop_reason="the run stopped: out of time",
        history=history,
        gradients=gradients,
        divergence=divergence,
        weights=weights,
        seconds=1.5,
        dataset="teacher: a random untied network of the same spec (seed 7919)",
        params={"tied": 100, "untied": 200},
        compile_seconds=0.75,
        heldout=heldout,
        state=state,
    )


def assert_same(a, b, where: str = "result") -> None:
    """Deep equality over frames, arrays, dicts and dataclasses, naming where they differ."""
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(b, a, obj=where)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert isinstance(b, (np.ndarray, np.generic)), where
        assert np.asarray(b).dtype == np.asarray(a).dtype and np.shape(b) == np.shape(a), where
        np.testing.assert_array_equal(b, a, err_msg=where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(b) == list(a), f"{where}: keys {list(b)} != {list(a)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, TrainState):
        for f in dataclasses.fields(TrainState):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    else:
        assert type(b) is type(a) and b == a, f"{where}: {b!r} != {a!r}"


def assert_results_equal(original: TrainResult, back: TrainResult) -> None:
    # Over dataclasses.fields: a field added to TrainResult later is compared without changing this test.
    for f in dataclasses.fields(TrainResult):
        assert_same(getattr(original, f.name), getattr(back, f.name), f"result.{f.name}")
