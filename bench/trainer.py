"""Section `trainer`: `sharecore.train` against a bare compiled chunk of the same two models, and plain-Keras `fit`."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np

import sharecore
from bench.common import (
    Headline,
    Mode,
    Section,
    Stopwatch,
    alternate,
    best_ratio,
    median,
    note,
    ratio,
    spread,
    steps,
    table,
)
from sharecore.core.config import TrainConfig
from sharecore.core.limits import Limits
from sharecore.core.spec import ModelSpec
from sharecore.nn.data import make_dataset
from sharecore.nn.tfimport import keras, tf

TARGETS = {1: 0.6, 10: 0.8}  # record_every -> minimum train / bare chunk
# About a second a run at the bare chunk's rate on a quiet 2-core machine (seed-conv: 3 s, so that its
# handful of held-out scores, 256 samples through both models each, weigh as they do in a real run).
QUICK_STEPS = {"seed-dense": 3000, "seed-mixed": 2000, "seed-conv": 150, "tied-lm": 3000, "conv-autoencoder": 1000}
BARE_CHUNK = 50  # steps per call of the bare chunk


class BarePair:
    """The tied and untied models of a spec (or just one of them, `variants`) trained one after
    the other on each batch, with nothing recorded: forward, loss, gradients and the optimizer update, in one `tf.function`.

    It draws batches exactly as `sharecore.train` does (the same pool, the same indices), uses
    the same optimizer and learning rate, and counts a tied plus an untied update as one step.
    """

    def __init__(self, spec: ModelSpec, config: TrainConfig, variants: tuple[bool, ...] = (True, False)) -> None:
        data = make_dataset(spec, config.dataset, config.seed, config.teacher)
        if data.classes:
            raise ValueError(f"BarePair times regression (the teacher data set). Received: dataset={config.dataset!r}")
        self.pool_x, self.pool_y = tf.constant(data.x), tf.constant(data.y)
        self.models = [sharecore.build(spec, tied, config.seed) for tied in variants]
        self.optimizers = []
        for m in self.models:
            opt = keras.optimizers.get(
                {"class_name": config.optimizer, "config": {"learning_rate": config.learning_rate}}
            )
            opt.build(m.trainable_variables)
            self.optimizers.append(opt)
        rng = np.random.default_rng([config.seed, 3])  # train()'s batch order
        self.idx = rng.integers(0, len(data.x), (config.steps, config.batch_size)).astype("int32")
        self.rows = tf.unstack(tf.constant(self.idx))  # one (batch,) tensor per step, made before timing
        batch = tf.TensorSpec([config.batch_size], tf.int32)
        self.step = tf.function(self._step, input_signature=[batch])
        self.chunk = tf.function(self._chunk, input_signature=[tf.TensorSpec([None, config.batch_size], tf.int32)])

    def _step(self, idx: tf.Tensor) -> None:
        x, y = tf.gather(self.pool_x, idx), tf.gather(self.pool_y, idx)  # (batch, ...) each
        for model, opt in zip(self.models, self.optimizers):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))

    def _chunk(self, idx: tf.Tensor) -> None:
        for i in tf.range(tf.shape(idx)[0]):
            self._step(idx[i])

    def state_bytes(self) -> int:
        """Bytes of the models' weights and optimizer state (float32)."""
        variables = [v for m in self.models for v in m.weights] + [v for o in self.optimizers for v in o.variables]
        return 4 * sum(int(np.prod(v.shape)) for v in variables)

    def _sync(self) -> None:
        self.models[-1].trainable_variables[0].numpy()

    def per_step(self, n: int) -> float:
        """Steps per second of `n` steps, one Python call per step."""
        with Stopwatch() as sw:
            for row in self.rows[:n]:
                self.step(row)
            self._sync()
        return n / sw.seconds

    def chunked(self, n: int) -> float:
        """Steps per second of `n` steps, `BARE_CHUNK` steps per call (a loop inside the graph)."""
        chunks = [tf.constant(self.idx[i : i + BARE_CHUNK]) for i in range(0, n, BARE_CHUNK)]
        with Stopwatch() as sw:
            for c in chunks:
                self.chunk(c)
            self._sync()
        return n / sw.seconds


# The full mode's runs (4 x the quick steps: seed-dense 12,000) are longer than a hosted server allows.
BENCH_LIMITS = Limits(max_steps=10**6, max_run_seconds=3600, max_recorded_rows=10**9)


def train_case(spec: ModelSpec, config: TrainConfig) -> Callable[[], float]:
    def run() -> float:
        result = sharecore.train(spec, config, limits=BENCH_LIMITS)
        return result.steps_done / result.seconds

    return run


class KerasFit:
    """A plain-Keras `fit` of the spec's tied model alone: `compile(optimizer, 'mse')`, then `fit`
    over the same batches (no shuffling, one epoch of `steps` batches), nothing recorded.

    What a practitioner would write for one model; sharecore trains two (the tied and the untied)
    per step, so at equal per-step cost train / fit is about 0.5.
    """

    def __init__(self, spec: ModelSpec, config: TrainConfig) -> None:
        data = make_dataset(spec, config.dataset, config.seed, config.teacher)
        rng = np.random.default_rng([config.seed, 3])  # train()'s batch order
        idx = rng.integers(0, len(data.x), (config.steps, config.batch_size)).reshape(-1)
        self.x, self.y, self.batch_size = data.x[idx], data.y[idx], config.batch_size
        self.model = sharecore.build(spec, True, config.seed)
        optimizer = keras.optimizers.get(
            {"class_name": config.optimizer, "config": {"learning_rate": config.learning_rate}}
        )
        self.model.compile(optimizer=optimizer, loss="mse")
        self.fit(self.batch_size * 2)  # traces, not timed

    def fit(self, n: int | None = None) -> float:
        """Steps per second of one `fit` over the first `n` samples (all by default)."""
        x, y = self.x[:n], self.y[:n]
        with Stopwatch() as sw:
            self.model.fit(x, y, batch_size=self.batch_size, epochs=1, shuffle=False, verbose=0)
        return len(x) // self.batch_size / sw.seconds


def compare(spec: ModelSpec, n: int, rounds: int, device: str = "auto") -> dict[str, list[float]]:
    """Steps per second of `n` steps of `spec`, `rounds` alternating rounds of the four cases: the bare
    chunk, train recording every step, Keras fit, train recording every 10th step (the dashboard's
    defaults otherwise: Adam 0.01, batch 32). Tracing is done before the first round."""
    config = TrainConfig(steps=n, seed=0, device=device)
    bare = BarePair(spec, config)
    bare.chunk(tf.constant(bare.idx[:2]))  # traces, not timed
    fit = KerasFit(spec, config)
    every_step, every_10 = (dataclasses.replace(config, record_every=k) for k in (1, 10))
    sharecore.train(spec, dataclasses.replace(config, steps=2))  # compiles the trainer the timed runs reuse
    cases = {
        "bare chunk": functools.partial(bare.chunked, n),
        "record every step": train_case(spec, every_step),
        "keras fit": fit.fit,
        "record every 10": train_case(spec, every_10),
    }
    return alternate(cases, rounds)


def target_headlines(prefix: str, result: dict[str, list[float]]) -> list[Headline]:
    """One preset's train / bare chunk against `TARGETS`, per record interval ("train, seed-dense, record
    every 10: train / bare chunk")."""
    headlines = []
    for every, label in ((10, "record every 10"), (1, "record every step")):
        r = ratio(result[label], result["bare chunk"])
        headlines.append(
            Headline(f"{prefix}, {label}: train / bare chunk", r, f">= {TARGETS[every]}", r >= TARGETS[every])
        )
    return headlines


def ratio_rows(name: str, result: dict[str, list[float]]) -> list[list[object]]:
    """The table rows of one preset's `compare`: train / bare chunk and train / Keras fit, per record interval."""
    rows = []
    for label in ("record every 10", "record every step"):
        rows.append(
            [
                name,
                label,
                median(result[label]),
                median(result["bare chunk"]),
                f"**{ratio(result[label], result['bare chunk']):.2f}**",
                spread(result[label], result["bare chunk"]),
                f"{best_ratio(result[label], result['bare chunk']):.2f}",
                median(result["keras fit"]),
                f"{ratio(result[label], result['keras fit']):.2f}",
            ]
        )
    return rows


RATIO_HEADER = [
    "model",
    "train",
    "train steps/s",
    "bare chunk steps/s",
    "train / bare chunk",
    "per-round",
    "ratio of bests",
    "Keras fit steps/s (tied only)",
    "train / Keras fit",
]


def run(mode: Mode) -> Section:
    names = ("seed-dense",) if mode.name == "smoke" else tuple(QUICK_STEPS)
    section = Section("Trainer: sharecore.train against a bare compiled chunk and plain-Keras fit")
    rows, cold_rows = [], []
    for name in names:
        spec = sharecore.preset(name)
        n = steps(mode, QUICK_STEPS[name])
        # The first run of a spec builds and traces its trainer; sharecore keeps the trainer for
        # later runs of the same shapes. That first run (the dashboard's default settings) is
        # shown apart; the timed runs come after it.
        with Stopwatch() as sw:
            first = sharecore.train(spec, TrainConfig(seed=0))
        cold_rows.append([name, first.steps_done, sw.seconds, first.seconds, first.steps_per_second])
        note(f"trainer: {name}, {n} steps a run, {mode.rounds} rounds")
        result = compare(spec, n, mode.rounds)
        rows += ratio_rows(name, result)
        section.headlines += target_headlines(f"train, {name}", result)
    section.add(
        "Steps per second, a step being one update of the tied and one of the untied model, as "
        "`TrainResult.steps_per_second` counts them (Keras fit: one update of the tied model). Same "
        "spec, data pool, batch order (batch 32), optimizer (Adam, learning rate 0.01) and step count "
        "on every side; the four cases alternate, round by round.",
        "",
        "* **train**: `sharecore.train(spec, TrainConfig(steps, record_every))` with the default "
        "held-out schedule, timed by `TrainResult.seconds` (the training loop: it leaves out building "
        "the data and models). Every timed run follows an untimed first run of the same spec, so the "
        "timed runs exclude tracing (the table below shows the first runs).",
        f"* **bare chunk**: forward pass, MSE, gradients and the optimizer update of the tied then the "
        f"untied model, in a `tf.range` loop inside one `tf.function`, {BARE_CHUNK} steps per call, "
        "nothing recorded or returned: the fastest a trainer of both models could go, so train / bare "
        "chunk is the cost of everything sharecore adds (records, held-out scoring, progress, stop).",
        "* **Keras fit**: `model.compile(Adam, 'mse')` and one `fit` over the same batches of the tied "
        "model alone (one model, so about twice the bare chunk's rate at equal cost per model).",
        "",
        *table(RATIO_HEADER, rows),
        "",
        "The first `train()` of each spec in this process, with the dashboard's default settings "
        "(60 steps, recording every step), before the timed runs above. Wall is the whole call "
        "(data set, models, tracing, training); the first spec also pays TensorFlow's one-time "
        "start-up of graph functions:",
        "",
        *table(["model", "steps", "wall s", "TrainResult.seconds", "steps/s"], cold_rows),
    )
    return section
