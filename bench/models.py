"""Section `models`: `model.fit` of sharecore's models against the same functions in plain Keras."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import sharecore
from bench.common import Headline, Mode, Section, alternate, best_ratio, median, ratio, spread, steps, table
from bench.reference import REFERENCES, copy_weights
from sharecore.nn.data import random_inputs
from sharecore.nn.tfimport import keras, tf

TARGET = 0.95
BATCH = 32
# Timed fit steps per run in quick mode; conv steps cost about 20 times a dense one.
QUICK_STEPS = {
    "seed-dense": 60,
    "dense-256": 40,
    "seed-conv": 10,
    "seed-mixed": 60,
    "tied-lm": 60,
    "conv-autoencoder": 60,
}
SKIP = 4  # fit steps at the start of each timed fit that are not timed (the first fit traces in step 1)


class StepClock(keras.callbacks.Callback):
    """Times a `fit` from the end of batch `skip` to the end of its last batch.

    That leaves out what `fit` does once per call (building the data iterator, callbacks),
    which would otherwise dilute the difference between two models.
    """

    def __init__(self, skip: int) -> None:
        super().__init__()
        self.skip = skip
        self.first = self.last = 0.0
        self.batches = 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        now = time.perf_counter()
        if batch == self.skip - 1:
            self.first = now
        self.last, self.batches = now, batch + 1

    @property
    def steps_per_second(self) -> float:
        return (self.batches - self.skip) / (self.last - self.first)


def _compiled(model: keras.Model) -> keras.Model:
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    return model


def fit_case(model: keras.Model, batches: tf.data.Dataset) -> Any:
    """A case for `alternate`: one `fit` epoch over the same batches, returning steps per second."""

    def run() -> float:
        clock = StepClock(SKIP)
        model.fit(batches, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
        return clock.steps_per_second

    return run


def run(mode: Mode) -> Section:
    """Times `fit` of sharecore's tied and untied models against their plain-Keras references."""
    section = Section("Models: sharecore against the same function in plain Keras")
    rows = []
    names = ("seed-dense",) if mode.name == "smoke" else tuple(REFERENCES)
    for name in names:
        make_spec, make_reference = REFERENCES[name]
        spec = make_spec()
        n = steps(mode, QUICK_STEPS[name], minimum=SKIP + 3)
        rng = np.random.default_rng(0)
        x = random_inputs(spec, n * BATCH, rng)
        for tied in (True, False):
            keras.backend.clear_session()
            ours = sharecore.build(spec, tied, seed=0)
            ref = make_reference(tied)
            copy_weights(ours, spec, tied, ref)
            y = rng.standard_normal((len(x), *ours.output_shape[1:])).astype("float32")
            _compiled(ours), _compiled(ref.model)
            batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).cache()
            cases = {"sharecore": fit_case(ours, batches), "keras": fit_case(ref.model, batches)}
            result = alternate(cases, mode.rounds + 2)  # fits are short: more rounds, steadier medians
            r = ratio(result["sharecore"], result["keras"])
            variant = "tied" if tied else "untied"
            rows.append(
                [
                    name,
                    variant,
                    f"{ours.count_params():,}",
                    n - SKIP,
                    median(result["sharecore"]),
                    median(result["keras"]),
                    f"**{r:.2f}**",
                    spread(result["sharecore"], result["keras"]),
                    f"{best_ratio(result['sharecore'], result['keras']):.2f}",
                ]
            )
            section.headlines.append(
                Headline(f"fit, {name} {variant}: sharecore / plain Keras", r, f">= {TARGET}", r >= TARGET)
            )
    section.add(
        "`model.fit` steps per second of `sharecore.build(spec, tied)` (A) and of the same function "
        "written with plain Keras layers (B, `bench/reference.py`): one `Dense`/`Conv2D` instance "
        "called once per use when tied, one instance per use when untied; `seed-mixed` tied is one "
        "`add_weight` read as a dense and, reshaped, as a 1x1 conv kernel, since plain Keras cannot "
        "give a `Dense` and a `Conv2D` one variable. Both sides start from the same weights (checked "
        "equal outputs and parameter counts in `tests/project/test_bench.py`), compile with SGD(0.01) and MSE, "
        f"and fit the same batches (batch {BATCH}, one cached `tf.data.Dataset`, no shuffle). Each timed fit "
        f"is one epoch; its first {SKIP} steps (tracing, in the first fit) and `fit`'s per-call set-up are not "
        "timed (the table gives the timed steps per fit). "
        f"Target: ratio >= {TARGET}.",
        "",
        *table(
            [
                "model",
                "variant",
                "params",
                "timed steps",
                "sharecore steps/s",
                "plain Keras steps/s",
                "ratio",
                "per-round ratios",
                "ratio of bests",
            ],
            rows,
        ),
    )
    return section
