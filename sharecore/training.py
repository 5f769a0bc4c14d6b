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

from sharecore.data import Dataset, make_dataset
from sharecore.layers import record_views
from sharecore.model import _build_from_plan, initial_values, layer_name
from sharecore.plan import Plan, UsePlan, plan
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
    seconds: float
    dataset: str = ""
    params: dict[str, int] = field(default_factory=dict)  # variant -> count_params()

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


def rule_mask(rule: Rule, tensor_shape: tuple[int, ...]) -> np.ndarray:
    """1 where a use reads the stored tensor, 0 elsewhere."""
    mask = np.zeros(tensor_shape, dtype="float32")
    if rule.kind == "slice":
        mask[tuple(slice(b, b + s) for b, s in zip(rule.begin, rule.size))] = 1.0
    else:
        mask[...] = 1.0
    return mask


def _cosine(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    a, b = tf.reshape(a, [-1]), tf.reshape(b, [-1])
    denom = tf.norm(a) * tf.norm(b)
    return tf.where(denom > 0, tf.reduce_sum(a * b) / tf.maximum(denom, 1e-30), tf.constant(float("nan")))


# ----------------------------------------------------------------------------- one variant
class _Variant:
    """One model with its optimizer, head and compiled step."""

    def __init__(self, p: Plan, tied: bool, init: dict[str, np.ndarray], data: Dataset, config: TrainConfig) -> None:
        self.plan, self.tied, self.name = p, tied, "tied" if tied else "untied"
        self.model = _build_from_plan(p, tied, init)
        self.classes = data.classes
        self.head = None
        if data.classes:
            # Classification needs a readout; it is the same (seeded) for both variants and is
            # not part of the spec's parameter count.
            self.head = keras.layers.Dense(
                data.classes, name="head", kernel_initializer=keras.initializers.GlorotUniform(seed=config.seed)
            )
            self.head.build((None, math.prod(p.output_shape)))
        self.variables = list(self.model.trainable_variables) + (
            list(self.head.trainable_variables) if self.head else []
        )
        self.var_index = {id(v): i for i, v in enumerate(self.variables)}
        opt = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}[config.optimizer]
        self.optimizer = opt(learning_rate=config.learning_rate)
        self.optimizer.build(self.variables)
        self.groups = {t: p.group(t) for t in p.shared_tensors}
        self.kernels = {u.use.name: self.model.get_layer(layer_name(u, tied)).kernel for u in p.uses}
        self.masks = {u.use.name: rule_mask(u.use.rule, u.tensor_shape) for u in p.uses if u.shared}
        self.w0_norms = {
            (t, a.use.name, b.use.name): float(
                np.linalg.norm(init[t] * self.masks[a.use.name] * self.masks[b.use.name])
            )
            for t, group in self.groups.items()
            for a, b in itertools.combinations(group, 2)
        }
        self.step_fn = tf.function(self._step, reduce_retracing=True)

    # -- pieces of the compiled step
    def _loss(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        out = self.model(x, training=True)
        if self.head is None:
            loss = tf.reduce_mean(tf.square(out - y))
            return loss, tf.constant(float("nan"))
        logits = self.head(tf.reshape(out, [tf.shape(out)[0], -1]))  # (batch, classes)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return loss, acc

    def _tensor_view(self, u: UsePlan) -> tf.Tensor:
        """The use's current weights mapped into its shared tensor's shape."""
        k = tf.convert_to_tensor(self.kernels[u.use.name])
        if self.tied:
            # One variable: each use's view of it, mapped back through its own rule.
            from sharecore.layers import apply_rule

            k = apply_rule(u.use.rule.to_dict(), k)
        return rule_adjoint(u.use.rule, k, u.tensor_shape)

    def _step(self, x: tf.Tensor, y: tf.Tensor, record: bool) -> dict[str, Any]:
        with tf.GradientTape() as tape:
            if record:
                with record_views() as views:
                    loss, acc = self._loss(x, y)
            else:
                views, (loss, acc) = [], self._loss(x, y)
        view_tensors = [v for _, _, v in views]
        grads = tape.gradient(loss, self.variables + view_tensors)
        var_grads, view_grads = grads[: len(self.variables)], grads[len(self.variables) :]
        self.optimizer.apply_gradients(zip(var_grads, self.variables))
        finite = tf.math.is_finite(loss)
        for v in self.variables:
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(v)))
        out: dict[str, Any] = {"loss": loss, "accuracy": acc, "finite": finite}
        if record:
            out["gradients"] = self._gradient_stats(views, view_grads, var_grads)
            out["divergence"] = self.divergence_stats()
        return out

    def _gradient_stats(self, views: list, view_grads: list, var_grads: list) -> dict[tuple[str, str], tuple]:
        """Per use: (contribution norm, norm of the tensor's summed gradient, cosine with the rest)."""
        by_use = {use: g for (_, use, _), g in zip(views, view_grads)}
        stats = {}
        for t, group in self.groups.items():
            if self.tied:
                # Contributions are the gradients w.r.t. each use's view of the one variable;
                # autodiff has already mapped them back through the rules.
                contribs = {u.use.name: by_use[u.use.name] for u in group}
                total = var_grads[self.var_index[id(self.kernels[group[0].use.name])]]
            else:
                # Each copy's kernel gradient, mapped back into the shared tensor's shape.
                contribs = {
                    u.use.name: rule_adjoint(
                        u.use.rule, var_grads[self.var_index[id(self.kernels[u.use.name])]], u.tensor_shape
                    )
                    for u in group
                }
                total = tf.add_n(list(contribs.values()))
            total_norm = tf.norm(total)
            for name, g in contribs.items():
                stats[(t, name)] = (
                    tf.norm(g),
                    total_norm,
                    _cosine(g, total - g) if len(group) > 1 else tf.constant(float("nan")),
                )
        return stats

    def divergence_stats(self) -> dict[tuple[str, str, str], tuple]:
        """Per pair of uses of a tensor: (||Wa - Wb|| / ||W0||, cosine(Wa, Wb)) on what both read."""
        stats = {}
        for t, group in self.groups.items():
            views = {u.use.name: self._tensor_view(u) for u in group}
            for a, b in itertools.combinations(group, 2):
                mask = self.masks[a.use.name] * self.masks[b.use.name]
                wa, wb = views[a.use.name] * mask, views[b.use.name] * mask
                w0 = self.w0_norms[(t, a.use.name, b.use.name)]
                rel = tf.norm(wa - wb) / w0 if w0 > 0 else tf.constant(float("nan"))
                stats[(t, a.use.name, b.use.name)] = (rel, _cosine(wa, wb))
        return stats

    def snapshot(self) -> dict[str, np.ndarray]:
        """The stored kernels, by shared tensor name (tied) or use name (copies and own kernels)."""
        out = {}
        for u in self.plan.uses:
            key = u.use.tensor if (self.tied and u.shared) else u.use.name
            out[key] = np.array(self.kernels[u.use.name].numpy())
        return out


# ----------------------------------------------------------------------------- the run
def train(
    spec: ModelSpec,
    config: TrainConfig | None = None,
    *,
    on_progress: Callable[[TrainProgress], None] | None = None,
    stop: threading.Event | None = None,
    progress_every: int | None = None,
) -> TrainResult:
    """Trains the tied and untied models of `spec` side by side.

    Both start from `config.seed`'s initial weights and see the same batches.

    Args:
        spec: the model spec.
        config: the training settings; defaults to `TrainConfig()`.
        on_progress: called every `progress_every` steps and at the end, with the history so far.
        stop: when set, the run ends after the current step and returns what it recorded.
        progress_every: steps between progress calls; default about 40 calls a run.

    Returns:
        A `TrainResult`. A run that stops early (stop request or a non-finite loss or
        weight) says why in `stop_reason` and keeps everything recorded before.

    Raises:
        ValueError: for an impossible spec, dataset or device, before any training.
    """
    config = config or TrainConfig()
    p = plan(spec)
    device = resolve_device(config.device)
    data = make_dataset(spec, config.dataset, config.seed)
    init = initial_values(spec, config.seed)
    progress_every = progress_every or max(1, config.steps // 40)
    rng = np.random.default_rng([config.seed, 3])
    history, gradients, divergence = [], [], []

    with tf.device(device):
        variants = [_Variant(p, tied, init, data, config) for tied in (True, False)]
        params = {v.name: int(v.model.count_params()) for v in variants}
        weights = {"start": {v.name: v.snapshot() for v in variants}}
        for v in variants:
            _append_divergence(divergence, 0, v.name, v.divergence_stats())

        def frame() -> pd.DataFrame:
            return pd.DataFrame(history, columns=["step", "variant", "loss", "accuracy"])

        stop_reason = None
        steps_done = 0
        start = time.perf_counter()
        for step in range(1, config.steps + 1):
            if stop is not None and stop.is_set():
                stop_reason = f"stopped by request after step {steps_done}"
                break
            idx = rng.integers(0, len(data.x), config.batch_size)
            x, y = tf.constant(data.x[idx]), tf.constant(data.y[idx])
            record = step == 1 or step % config.record_every == 0 or step == config.steps
            outs = [v.step_fn(x, y, record) for v in variants]
            bad = [v.name for v, o in zip(variants, outs) if not bool(o["finite"])]
            if bad:
                stop_reason = (
                    f"the {' and '.join(bad)} model's loss or weights became non-finite (NaN or inf) at step "
                    f"{step}; training stopped there. The learning rate {config.learning_rate:g} is probably too "
                    f"high for the {config.optimizer} optimizer: try {config.learning_rate / 10:g}."
                )
                break
            for v, o in zip(variants, outs):
                history.append((step, v.name, float(o["loss"]), float(o["accuracy"])))
                if record:
                    for (t, use), (norm, total, cos) in o["gradients"].items():
                        gradients.append((step, v.name, t, use, float(norm), float(total), float(cos)))
                    _append_divergence(divergence, step, v.name, o["divergence"])
            steps_done = step
            if on_progress is not None and (step % progress_every == 0 or step == config.steps):
                on_progress(TrainProgress(step, config.steps, frame()))
        seconds = time.perf_counter() - start
        weights["end"] = {v.name: v.snapshot() for v in variants}

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
    )


def _append_divergence(rows: list, step: int, variant: str, stats: dict) -> None:
    for (t, a, b), (rel, cos) in stats.items():
        rows.append((step, variant, t, a, b, float(rel), float(cos)))
