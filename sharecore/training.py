"""Trains the tied and untied models side by side and records what sharing does.

Both variants start from the same initial numbers and see the same batches. At the steps
chosen by `record_every` the trainer records, inside the compiled step:

* gradients: each use's contribution to its shared tensor's gradient (in the tensor's own
  shape), the norm of their sum, and the cosine between a use and the other uses;
* divergence: for every pair of uses of a shared tensor, how far apart their weights are,
  read from the variables themselves (tied: one variable, so exactly 0).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from sharecore.data import make_dataset
from sharecore.layers import apply_rule, record_views
from sharecore.limits import Limits, check_limits
from sharecore.model import _build_from_plan, assign_initial, draw, initial_values, kernel_variables
from sharecore.plan import Plan, UsePlan, plan
from sharecore.rules import rule_mask
from sharecore.spec import ModelSpec, Rule, TrainConfig

VARIANTS = ("tied", "untied")


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class TrainProgress:
    """What a progress callback receives."""

    step: int  # steps done by both variants
    total: int
    history: pd.DataFrame  # the history so far


@dataclass
class TrainResult:
    """Everything one run recorded. The frames are tidy (one row per observation)."""

    spec: ModelSpec
    config: TrainConfig
    device: str  # the device it ran on, e.g. '/CPU:0'
    steps_done: int
    stop_reason: str | None  # None when all steps ran
    history: pd.DataFrame  # step, variant, loss, accuracy
    gradients: pd.DataFrame  # step, variant, tensor, use, grad_norm, sum_norm, cosine_with_others
    divergence: pd.DataFrame  # step, variant, tensor, use_a, use_b, relative_distance, cosine
    weights: dict[str, dict[str, dict[str, np.ndarray]]]  # phase ('start'|'end') -> variant -> name -> array
    seconds: float  # training time, excluding the one-off compile
    dataset: str = ""
    params: dict[str, int] = field(default_factory=dict)  # variant -> count_params()
    compile_seconds: float = 0.0  # tracing the compiled chunk; 0 when a compiled trainer was reused

    @property
    def steps_per_second(self) -> float:
        """Optimizer steps per second, counting a tied plus an untied step as one."""
        return self.steps_done / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary of the run."""
        last = self.history[self.history.step == self.history.step.max()] if len(self.history) else self.history
        return {
            "spec": self.spec.to_dict(),
            "train": self.config.to_dict(),
            "device": self.device,
            "dataset": self.dataset,
            "steps_done": self.steps_done,
            "stop_reason": self.stop_reason,
            "seconds": round(self.seconds, 3),
            "compile_seconds": round(self.compile_seconds, 3),
            "steps_per_second": round(self.steps_per_second, 2),
            "params": self.params,
            "final_loss": {r.variant: float(r.loss) for r in last.itertuples()},
        }


# ----------------------------------------------------------------------------- devices
def resolve_device(device: str) -> str:
    """Maps 'cpu' | 'gpu' | 'auto' to a TensorFlow device name.

    Raises:
        ValueError: if 'gpu' is asked for and TensorFlow sees none.
    """
    gpus = tf.config.list_logical_devices("GPU")
    if device == "gpu":
        if not gpus:
            raise ValueError(
                "device 'gpu' was requested, but TensorFlow sees no GPU on this machine. Use "
                "device 'cpu' (or 'auto', which picks a GPU when there is one). Received: device='gpu'"
            )
        return gpus[0].name
    if device == "auto" and gpus:
        return gpus[0].name
    if device not in ("auto", "cpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu'. Received: device={device!r}")
    return tf.config.list_logical_devices("CPU")[0].name


# ----------------------------------------------------------------------------- rules in tensor space
def rule_adjoint(rule: Rule, g: tf.Tensor, tensor_shape: tuple[int, ...]) -> tf.Tensor:
    """Maps a kernel-shaped tensor back into the stored tensor's shape (the rule's adjoint).

    For identity, transpose and reshape this is the inverse; for slice it places the slice
    into a zero tensor. Gradients of a use's kernel map back to the shared tensor this way.
    """
    if rule.kind == "identity":
        return g
    if rule.kind == "transpose":
        perm = rule.perm if rule.perm is not None else tuple(reversed(range(len(tensor_shape))))
        return tf.transpose(g, perm=np.argsort(perm).tolist())
    if rule.kind == "reshape":
        return tf.reshape(g, tensor_shape)
    pads = [[b, n - b - s] for b, s, n in zip(rule.begin, rule.size, tensor_shape)]
    return tf.pad(g, pads)


def _cosine(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    a, b = tf.reshape(a, [-1]), tf.reshape(b, [-1])
    denom = tf.norm(a) * tf.norm(b)
    return tf.where(denom > 0, tf.reduce_sum(a * b) / tf.maximum(denom, 1e-30), tf.constant(float("nan")))


# ----------------------------------------------------------------------------- one variant
class _Variant:
    """One model (tied or untied) with its optimizer, its head and what it records."""

    def __init__(self, p: Plan, tied: bool, classes: int, optimizer: str) -> None:
        self.plan, self.tied, self.name = p, tied, "tied" if tied else "untied"
        self.model = _build_from_plan(p, tied, _zeros(p))
        self.head = None
        if classes:
            # Classification needs a readout. It is the same (seeded) for both variants and is
            # not part of the spec's parameter count.
            self.head = keras.layers.Dense(classes, name="head")
            self.head.build((None, math.prod(p.output_shape)))
        self.variables = list(self.model.trainable_variables) + (
            list(self.head.trainable_variables) if self.head else []
        )
        self.var_index = {id(v): i for i, v in enumerate(self.variables)}
        self.optimizer = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}[optimizer](learning_rate=0.01)
        self.optimizer.build(self.variables)
        self.groups = {t: p.group(t) for t in p.shared_tensors}
        self.kernels = kernel_variables(self.model, p.spec, tied)
        self.masks = {u.use.name: rule_mask(u.use.rule, u.tensor_shape) for u in p.uses if u.shared}
        self.grad_keys = [(t, u.use.name) for t, group in self.groups.items() for u in group]
        self.div_keys = [
            (t, a.use.name, b.use.name) for t, group in self.groups.items() for a, b in itertools.combinations(group, 2)
        ]
        # ||W0|| on what each pair reads; a variable so that a compiled trainer serves any seed.
        self.w0_norms = tf.Variable(tf.zeros([len(self.div_keys)]), trainable=False)

    @property
    def stats_size(self) -> int:
        return 3 * len(self.grad_keys) + 2 * len(self.div_keys)

    def reset(self, init: dict[str, np.ndarray], config: TrainConfig) -> None:
        """Puts the variant back at its initial state for a new run."""
        assign_initial(self.model, self.plan, self.tied, init)
        if self.head is not None:
            self.head.kernel.assign(draw("glorot_uniform", tuple(self.head.kernel.shape), config.seed, "head"))
            self.head.bias.assign(np.zeros(self.head.bias.shape, dtype="float32"))
        for v in self.optimizer.variables:
            v.assign(tf.zeros(v.shape, v.dtype))
        self.optimizer.learning_rate = config.learning_rate
        self.w0_norms.assign(
            [float(np.linalg.norm(init[t] * self.masks[a] * self.masks[b])) for t, a, b in self.div_keys]
        )

    # -- pieces of the compiled step
    def _loss(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        out = self.model(x, training=True)
        if self.head is None:
            return tf.reduce_mean(tf.square(out - y)), tf.constant(float("nan"))
        logits = self.head(tf.reshape(out, [tf.shape(out)[0], -1]))  # (batch, classes)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return loss, acc

    def train_step(self, x: tf.Tensor, y: tf.Tensor, record: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """One optimizer step. Returns loss, accuracy, whether all is finite, and the stats vector."""
        with tf.GradientTape() as tape, record_views() as views:
            loss, acc = self._loss(x, y)
        grads = tape.gradient(loss, self.variables + [v for _, _, v in views])
        var_grads, view_grads = grads[: len(self.variables)], grads[len(self.variables) :]
        self.optimizer.apply_gradients(zip(var_grads, self.variables))
        finite = tf.math.is_finite(loss)
        for v in self.variables:
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(v)))
        by_use = {use: g for (_, use, _), g in zip(views, view_grads)}
        stats = tf.cond(
            record,
            lambda: self._stats(by_use, var_grads),
            lambda: tf.zeros([self.stats_size]),
        )
        return loss, acc, finite, stats

    def _stats(self, by_use: dict[str, tf.Tensor], var_grads: list[tf.Tensor]) -> tf.Tensor:
        values = []
        for _, group in self.groups.items():
            if self.tied:
                # Contributions are the gradients w.r.t. each use's view of the one variable;
                # autodiff has already mapped them back through the rules.
                contribs = [by_use[u.use.name] for u in group]
                total = var_grads[self.var_index[id(self.kernels[group[0].use.name])]]
            else:
                # Each copy's kernel gradient, mapped back into the shared tensor's shape.
                contribs = [
                    rule_adjoint(u.use.rule, var_grads[self.var_index[id(self.kernels[u.use.name])]], u.tensor_shape)
                    for u in group
                ]
                total = tf.add_n(contribs)
            total_norm = tf.norm(total)
            for g in contribs:
                cos = _cosine(g, total - g) if len(group) > 1 else tf.constant(float("nan"))
                values += [tf.norm(g), total_norm, cos]
        values += self._divergence_values()
        return tf.stack(values) if values else tf.zeros([0])

    def _tensor_view(self, u: UsePlan) -> tf.Tensor:
        """The use's current weights mapped into its shared tensor's shape."""
        k = tf.convert_to_tensor(self.kernels[u.use.name])
        if self.tied:
            # One variable: each use's view of it, mapped back through its own rule.
            k = apply_rule(u.use.rule.to_dict(), k)
        return rule_adjoint(u.use.rule, k, u.tensor_shape)

    def _divergence_values(self) -> list[tf.Tensor]:
        """Per pair of uses: ||Wa - Wb|| / ||W0|| and cosine(Wa, Wb), on what both read."""
        values = []
        views: dict[str, tf.Tensor] = {}
        for i, (t, a, b) in enumerate(self.div_keys):
            for name in (a, b):
                if name not in views:
                    views[name] = self._tensor_view(next(u for u in self.groups[t] if u.use.name == name))
            mask = self.masks[a] * self.masks[b]
            wa, wb = views[a] * mask, views[b] * mask
            values += [tf.norm(wa - wb) / self.w0_norms[i], _cosine(wa, wb)]
        return values

    def divergence_now(self) -> dict[tuple[str, str, str], tuple[float, float]]:
        """The divergence of the current weights, computed eagerly."""
        flat = [float(v) for v in self._divergence_values()]
        return {key: (flat[2 * i], flat[2 * i + 1]) for i, key in enumerate(self.div_keys)}

    def snapshot(self) -> dict[str, np.ndarray]:
        """The stored kernels, by shared tensor name (tied) or use name (copies and own kernels)."""
        out = {}
        for u in self.plan.uses:
            key = u.use.tensor if (self.tied and u.shared) else u.use.name
            out[key] = np.array(self.kernels[u.use.name].numpy())
        return out


def _zeros(p: Plan) -> dict[str, np.ndarray]:
    values = {t.name: np.zeros(t.shape, "float32") for t in p.spec.tensors}
    values.update({u.use.name: np.zeros(u.tensor_shape, "float32") for u in p.uses if not u.shared})
    return values


# ----------------------------------------------------------------------------- the compiled pair
class _Trainer:
    """The tied and untied variants of one spec, with one compiled function that runs a chunk
    of steps of both (many steps per call, recorded values fetched once per chunk).

    Trainers are reused across runs of the same shapes (reset to the new run's initial
    state), so a second run does not trace again. A trainer serves one run at a time.
    """

    def __init__(self, p: Plan, classes: int, optimizer: str, batch_size: int, input_dtype: tf.DType) -> None:
        self.variants = [_Variant(p, tied, classes, optimizer) for tied in (True, False)]
        y_spec = tf.TensorSpec([None], tf.int32) if classes else tf.TensorSpec([None, *p.output_shape], tf.float32)
        self.chunk = tf.function(
            self._chunk,
            input_signature=[
                tf.TensorSpec([None, *p.spec.input_shape], input_dtype),
                y_spec,
                tf.TensorSpec([None, batch_size], tf.int32),
                tf.TensorSpec([None], tf.bool),
            ],
        )

    def _chunk(self, pool_x: tf.Tensor, pool_y: tf.Tensor, idx: tf.Tensor, record: tf.Tensor) -> tuple:
        n = tf.shape(idx)[0]
        size = sum(v.stats_size for v in self.variants)
        losses = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[2])
        accs = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[2])
        stats = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[size])
        finite = tf.ones([2], tf.bool)
        for i in tf.range(n):
            x, y = tf.gather(pool_x, idx[i]), tf.gather(pool_y, idx[i])  # (batch, ...) each
            outs = [v.train_step(x, y, record[i]) for v in self.variants]
            finite = tf.stack([o[2] for o in outs])
            if not tf.reduce_all(finite):
                break
            losses = losses.write(i, tf.stack([o[0] for o in outs]))
            accs = accs.write(i, tf.stack([o[1] for o in outs]))
            stats = stats.write(i, tf.concat([o[3] for o in outs], axis=0))
        return losses.stack(), accs.stack(), stats.stack(), finite


_POOL: dict[tuple, list[_Trainer]] = {}
_POOL_ORDER: list[tuple] = []
_POOL_LOCK = threading.Lock()
POOL_SIZE = 6  # idle compiled trainers kept for reuse (each is a few small models and a graph)


def _checkout(key: tuple, make: Callable[[], _Trainer]) -> _Trainer:
    with _POOL_LOCK:
        idle = _POOL.get(key)
        if idle:
            return idle.pop()
    return make()


def _checkin(key: tuple, trainer: _Trainer) -> None:
    with _POOL_LOCK:
        _POOL.setdefault(key, []).append(trainer)
        if key in _POOL_ORDER:
            _POOL_ORDER.remove(key)
        _POOL_ORDER.append(key)
        while sum(len(v) for v in _POOL.values()) > POOL_SIZE:
            oldest = _POOL_ORDER[0]
            _POOL[oldest].pop(0)
            if not _POOL[oldest]:
                del _POOL[oldest]
                _POOL_ORDER.pop(0)


# ----------------------------------------------------------------------------- the run
def train(
    spec: ModelSpec,
    config: TrainConfig | None = None,
    *,
    on_progress: Callable[[TrainProgress], None] | None = None,
    stop: threading.Event | None = None,
    progress_every: int | None = None,
    limits: Limits | None = None,
) -> TrainResult:
    """Trains the tied and untied models of `spec` side by side.

    Both start from `config.seed`'s initial weights and see the same batches. Steps run in
    compiled chunks of `progress_every` steps; progress calls and stop requests are handled
    between chunks.

    Args:
        spec: the model spec.
        config: the training settings; defaults to `TrainConfig()`.
        on_progress: called after every chunk with the history so far.
        stop: when set, the run ends after the current chunk and returns what it recorded.
        progress_every: steps per chunk; default about 20 chunks a run (at most 50 steps).
        limits: caps on size and run length; default `Limits.from_env()`.

    Returns:
        A `TrainResult`. A run that stops early (stop request or a non-finite loss or
        weight) says why in `stop_reason` and keeps everything recorded before.

    Raises:
        ValueError: for an impossible spec, dataset or device, or a spec or run over the
            limits, before any training.
    """
    config = config or TrainConfig()
    check_limits(spec, config, limits)
    p = plan(spec)
    device = resolve_device(config.device)
    data = make_dataset(spec, config.dataset, config.seed)
    init = initial_values(spec, config.seed)
    chunk = progress_every or min(50, max(1, math.ceil(config.steps / 20)))
    rng = np.random.default_rng([config.seed, 3])
    all_idx = rng.integers(0, len(data.x), (config.steps, config.batch_size)).astype("int32")
    steps = np.arange(1, config.steps + 1)
    recorded = (steps == 1) | (steps % config.record_every == 0) | (steps == config.steps)
    history: list[tuple] = []
    gradients: list[tuple] = []
    divergence: list[tuple] = []
    key = (spec, data.classes, config.optimizer, config.batch_size, device)

    def frame() -> pd.DataFrame:
        return pd.DataFrame(history, columns=["step", "variant", "loss", "accuracy"])

    with tf.device(device):
        trainer = _checkout(key, lambda: _Trainer(p, data.classes, config.optimizer, config.batch_size, tf.float32))
        try:
            variants = trainer.variants
            for v in variants:
                v.reset(init, config)
            params = {v.name: int(v.model.count_params()) for v in variants}
            weights = {"start": {v.name: v.snapshot() for v in variants}}
            for v in variants:
                _append_divergence(divergence, 0, v.name, v.divergence_now())
            pool_x, pool_y = tf.constant(data.x), tf.constant(data.y)
            stop_reason = None
            steps_done = 0
            # Trace before the clock starts, so that steps per second measure training only.
            start = time.perf_counter()
            trainer.chunk.get_concrete_function()
            compile_seconds = time.perf_counter() - start
            start = time.perf_counter()
            while steps_done < config.steps:
                if stop is not None and stop.is_set():
                    stop_reason = f"stopped by request after step {steps_done}"
                    break
                first, last = steps_done, min(steps_done + chunk, config.steps)
                try:
                    losses, accs, stats, finite = (
                        t.numpy()
                        for t in trainer.chunk(
                            pool_x, pool_y, tf.constant(all_idx[first:last]), tf.constant(recorded[first:last])
                        )
                    )
                except tf.errors.ResourceExhaustedError:
                    stop_reason = (
                        f"{device} ran out of memory between steps {first + 1} and {last}; training stopped and "
                        f"kept what was recorded. Use a smaller batch size (now {config.batch_size}) or "
                        f"smaller tensors, or train on the CPU."
                    )
                    break
                for i in range(len(losses)):
                    step = first + i + 1
                    offset = 0
                    for j, v in enumerate(variants):
                        history.append((step, v.name, float(losses[i, j]), float(accs[i, j])))
                        if recorded[step - 1]:
                            _append_stats(gradients, divergence, step, v, stats[i, offset : offset + v.stats_size])
                        offset += v.stats_size
                steps_done = first + len(losses)
                if not finite.all():
                    bad = [v.name for v, ok in zip(variants, finite) if not ok]
                    stop_reason = (
                        f"the {' and '.join(bad)} model's loss or weights became non-finite (NaN or inf) at step "
                        f"{steps_done + 1}; training stopped there. The learning rate {config.learning_rate:g} is "
                        f"probably too high for the {config.optimizer} optimizer: try {config.learning_rate / 10:g}."
                    )
                if on_progress is not None:
                    on_progress(TrainProgress(steps_done, config.steps, frame()))
                if stop_reason:
                    break
            seconds = time.perf_counter() - start
            weights["end"] = {v.name: v.snapshot() for v in variants}
        finally:
            _checkin(key, trainer)

    return TrainResult(
        spec=spec,
        config=config,
        device=device,
        steps_done=steps_done,
        stop_reason=stop_reason,
        history=frame(),
        gradients=pd.DataFrame(
            gradients, columns=["step", "variant", "tensor", "use", "grad_norm", "sum_norm", "cosine_with_others"]
        ),
        divergence=pd.DataFrame(
            divergence, columns=["step", "variant", "tensor", "use_a", "use_b", "relative_distance", "cosine"]
        ),
        weights=weights,
        seconds=seconds,
        dataset=data.description,
        params=params,
        compile_seconds=compile_seconds,
    )


def _append_stats(gradients: list, divergence: list, step: int, v: _Variant, values: np.ndarray) -> None:
    for i, (t, use) in enumerate(v.grad_keys):
        norm, total, cos = values[3 * i : 3 * i + 3]
        gradients.append((step, v.name, t, use, float(norm), float(total), float(cos)))
    base = 3 * len(v.grad_keys)
    for i, (t, a, b) in enumerate(v.div_keys):
        rel, cos = values[base + 2 * i : base + 2 * i + 2]
        divergence.append((step, v.name, t, a, b, float(rel), float(cos)))


def _append_divergence(rows: list, step: int, variant: str, stats: dict) -> None:
    for (t, a, b), (rel, cos) in stats.items():
        rows.append((step, variant, t, a, b, float(rel), float(cos)))
