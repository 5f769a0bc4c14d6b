"""Trains the tied and untied models side by side and records what sharing does.

Both variants start from the same initial numbers and see the same batches. At the steps
chosen by `record_every` the trainer records, inside the compiled step:

* gradients: each use's contribution to its shared tensor's gradient (in the tensor's own
  shape), the norm of their sum, and the cosine between a use and the other uses;
* divergence: for every pair of uses of a shared tensor, how far apart their weights are on
  the entries both read, from the variables themselves (tied: one variable, so exactly 0). A
  pair that reads no common entry (two slices side by side) has nothing to compare and is left out.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import gc
import itertools
import math
import threading
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from sharecore.core.config import TrainConfig, check_batch_split
from sharecore.core.limits import SECRETS_SECTION, Limits, env_variable
from sharecore.core.plan import Plan, UsePlan, rule_output_shape
from sharecore.core.results import TrainProgress, TrainResult, TrainState
from sharecore.core.rules import reads_part, rule_mask, split_pairs
from sharecore.core.runcheck import check_run
from sharecore.core.spec import ModelSpec, Rule
from sharecore.nn.data import make_dataset
from sharecore.nn.devices import describe, make_strategy, resolve_device
from sharecore.nn.layers import apply_rule, record_views, rot90
from sharecore.nn.model import _build_from_plan, assign_initial, draw, initial_values, kernel_variables
from sharecore.nn.tfimport import keras, tf


# ----------------------------------------------------------------------------- rules in tensor space
def rule_adjoint(rule: Rule, g: tf.Tensor, tensor_shape: tuple[int, ...]) -> tf.Tensor:
    """Maps a kernel-shaped tensor back into the stored tensor's shape (the rule's adjoint).

    For identity, transpose, reshape, rot90 and flip this is the inverse; for slice it places
    the slice into a zero tensor; for a composed rule it is its steps' adjoints in reverse
    order. Gradients of a use's kernel map back to the shared tensor this way.
    """
    if rule.kind == "compose":
        # Each step's adjoint needs the shape that step was given: the stored shape, then each output.
        shapes = [tensor_shape]
        for i, step in enumerate(rule.steps[:-1]):
            shapes.append(rule_output_shape(step, shapes[-1], f"rule step {i}"))
        for step, shape in zip(reversed(rule.steps), reversed(shapes)):
            g = rule_adjoint(step, g, shape)
        return g
    if rule.kind == "rot90":
        return rot90(g, -rule.k)  # turning back is the inverse
    if rule.kind == "flip":
        return tf.reverse(g, [rule.axis])  # a flip is its own inverse
    if rule.kind == "identity":
        return g
    if rule.kind == "transpose":
        perm = rule.perm if rule.perm is not None else tuple(reversed(range(len(tensor_shape))))
        return tf.transpose(g, perm=np.argsort(perm).tolist())
    if rule.kind == "reshape":
        return tf.reshape(g, tensor_shape)
    pads = [[b, n - b - s] for b, s, n in zip(rule.begin, rule.size, tensor_shape)]
    return tf.pad(g, pads)


def _row_cosine(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Cosine between matching rows of two (rows, size) tensors; NaN where a row is all zeros."""
    denom = tf.norm(a, axis=1) * tf.norm(b, axis=1)  # (rows,)
    return tf.where(denom > 0, tf.reduce_sum(a * b, 1) / tf.maximum(denom, 1e-30), float("nan"))


class _PairLayout:
    """How one shared tensor's pairs of uses are compared in a fixed number of ops per pair offset.

    The views of a tensor's n uses are stacked as rows (uses, size), each row zero outside what its
    use reads. The pairs (i, i + d) for one offset d are rows [:n-d] against rows [d:], so the
    compiled step holds one small block of ops per offset (at most n - 1), not one per pair: with a
    block per pair, compile time and memory grew with the square of the uses. Differences are taken
    entry by entry (not from Gram matrices), so tied pairs, whose rows are equal, are exactly 0.
    """

    def __init__(self, group: tuple[UsePlan, ...]) -> None:
        shape = group[0].tensor_shape
        self.pairs, self.apart = split_pairs([(u.use.name, u.use.rule) for u in group], shape)
        row = {u.use.name: i for i, u in enumerate(group)}
        self.offsets = sorted({row[b] - row[a] for a, b in self.pairs})
        start = dict(zip(self.offsets, itertools.accumulate([0, *(len(group) - d for d in self.offsets)])))
        # Where each compared pair lands in the offset blocks laid end to end.
        self.index = np.array([start[row[b] - row[a]] + row[a] for a, b in self.pairs], dtype="int32")
        # Only slices (alone or as a step) read part of the tensor; every other rule reads all of it.
        partial = any(reads_part(u.use.rule) for u in group)
        self.masks = np.stack([rule_mask(u.use.rule, shape).ravel() for u in group]) if partial else None

    def compare(self, views: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """||Wa - Wb|| and cosine(Wa, Wb) on the entries both read, for each compared pair, from (uses, size) views."""
        n = int(views.shape[0])
        masks = None if self.masks is None else tf.constant(self.masks)  # (uses, size), one constant
        distances, cosines = [], []
        for d in self.offsets:
            a, b = views[: n - d], views[d:]  # (n - d, size): uses i and i + d
            if masks is not None:
                a, b = a * masks[d:], b * masks[: n - d]  # each on what the other reads
            distances.append(tf.norm(a - b, axis=1))
            cosines.append(_row_cosine(a, b))
        return tf.gather(tf.concat(distances, 0), self.index), tf.gather(tf.concat(cosines, 0), self.index)


# ----------------------------------------------------------------------------- one variant
@functools.cache
def _optimizer_class(name: str) -> type:
    """Keras's SGD or Adam, minus its own all-reduce of the gradients over replicas.

    The trainer sums each step's gradients over the replicas itself (`_all_reduce`, per use, so that
    the records are the whole batch's); Keras's sum on top of it would double every distributed
    gradient. On one device that sum changes no number, but Keras's TensorFlow optimizer calls it
    in every trace, and TensorFlow registers a custom gradient for it in a process-wide registry
    that is never emptied; that entry held the whole traced graph, so every trainer ever made
    stayed in memory (about 7 MB for a 4-use chain).
    """
    base = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}[name]

    class OneReplica(base):
        def _all_reduce_sum_gradients(self, grads_and_vars: list) -> list:
            return list(grads_and_vars)

    return OneReplica


class _Variant:
    """One model (tied or untied) with its optimizer, its head and what it records."""

    def __init__(self, p: Plan, tied: bool, classes: int, optimizer: str) -> None:
        self.plan, self.tied, self.name = p, tied, "tied" if tied else "untied"
        self.model = _build_from_plan(p, tied, _zeros(p))
        self.head = None
        # A token model outputs its own logits (seq, vocab), one next-token prediction per position.
        self.logits = bool(classes and p.spec.input_vocab)
        if classes and not self.logits:
            # Classification needs a readout. It is the same (seeded) for both variants and is
            # not part of the spec's parameter count.
            self.head = keras.layers.Dense(classes, name="head")
            self.head.build((None, math.prod(p.output_shape)))
        self.variables = list(self.model.trainable_variables) + (
            list(self.head.trainable_variables) if self.head else []
        )
        self.var_index = {id(v): i for i, v in enumerate(self.variables)}
        self.optimizer = _optimizer_class(optimizer)(learning_rate=0.01, name=optimizer)
        self.optimizer.build(self.variables)
        self.groups = {t: p.group(t) for t in p.shared_tensors}
        self.kernels = kernel_variables(self.model, p, tied)
        self.kernel_uses: dict[int, list[str]] = {}  # id(kernel variable) -> the uses that read it
        for use, k in self.kernels.items():
            self.kernel_uses.setdefault(id(k), []).append(use)
        self.viewless = [v for v in self.variables if id(v) not in self.kernel_uses]  # biases, the head
        self.masks = {u.use.name: rule_mask(u.use.rule, u.tensor_shape) for u in p.uses if u.shared}
        self.grad_keys = [(t, u.use.name) for t, group in self.groups.items() for u in group]
        # Divergence compares two uses on the entries both read; a pair that shares none (two slices
        # side by side) has nothing to compare and is not recorded.
        layouts = {t: _PairLayout(group) for t, group in self.groups.items() if len(group) > 1}
        self.pairs = {t: layout for t, layout in layouts.items() if layout.pairs}
        self.div_keys = [(t, a, b) for t, layout in self.pairs.items() for a, b in layout.pairs]
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
    def _loss(self, x: tf.Tensor, y: tf.Tensor, training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
        out = self.model(x, training=training)
        if self.logits:
            logits = out  # (batch, seq, vocab); y: (batch, seq) next tokens
        elif self.head is None:
            return tf.reduce_mean(tf.square(out - y)), tf.constant(float("nan"))
        else:
            logits = self.head(tf.reshape(out, [tf.shape(out)[0], -1]))  # (batch, classes)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return loss, acc

    def train_step(
        self, x: tf.Tensor, y: tf.Tensor, record: tf.Tensor, replica: tf.distribute.ReplicaContext | None = None
    ) -> tuple[tf.Tensor, ...]:
        """One optimizer step. Returns loss, accuracy, whether all is finite, and the stats vector.

        Under a strategy, `replica` is the context of the replica that holds this slice of the batch;
        the step's gradients, loss and accuracy are then summed over the replicas, so that every
        replica records and applies the numbers of the whole batch.
        """
        with tf.GradientTape() as tape, record_views() as views:  # views: this replica's own
            loss, acc = self._loss(x, y)
            if replica is not None:
                # Each replica's mean over its 1/n of the batch, divided by n and summed over the
                # replicas below, is the mean over the whole batch.
                loss, acc = loss / replica.num_replicas_in_sync, acc / replica.num_replicas_in_sync
        # Every kernel is read through one view per use, so a kernel's gradient is the sum of its
        # views' gradients; only biases and the head are asked for as variables. (Asking for a kernel
        # together with views of it kept every traced graph alive for good in TensorFlow 2.21.)
        grads = tape.gradient(loss, [v for _, _, v in views] + self.viewless)
        # An embedding's gradient comes as IndexedSlices (the rows its tokens read); the records and
        # the sums over uses take whole tensors.
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if replica is not None:
            # Here, before tf.cond(record, ...): an all-reduce inside a branch fails.
            grads, loss, acc = _all_reduce(replica, grads, loss, acc)
        by_use = {use: g for (_, use, _), g in zip(views, grads)}
        by_id = dict(zip(map(id, self.viewless), grads[len(views) :]))
        by_id.update({k: _sum_or_none([by_use[u] for u in uses]) for k, uses in self.kernel_uses.items()})
        var_grads = [by_id[id(v)] for v in self.variables]
        self.optimizer.apply_gradients(zip(var_grads, self.variables))
        finite = tf.math.is_finite(loss)
        for v in self.variables:
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(v)))
        stats = tf.cond(
            record,
            lambda: self._stats(by_use, var_grads),
            lambda: tf.zeros([self.stats_size]),
        )
        return loss, acc, finite, stats

    def _stats(self, by_use: dict[str, tf.Tensor], var_grads: list[tf.Tensor]) -> tf.Tensor:
        # Whole-tensor ops on the stacked uses of each tensor, never one block of ops per use or pair:
        # the compiled step (and its compile time and memory) then grows linearly with the uses.
        values = []
        for group in self.groups.values():
            if not group:
                continue
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
            g = tf.stack([tf.reshape(c, [-1]) for c in contribs])  # (uses, size)
            total = tf.reshape(total, [1, -1])  # (1, size)
            n = len(group)
            cos = _row_cosine(g, total - g) if n > 1 else tf.fill([n], float("nan"))
            values.append(tf.reshape(tf.stack([tf.norm(g, axis=1), tf.fill([n], tf.norm(total)), cos], 1), [-1]))
        values.append(self._divergence_values())
        return tf.concat(values, 0)  # grad_norm, sum_norm, cosine per use; distance, cosine per pair

    def _tensor_view(self, u: UsePlan) -> tf.Tensor:
        """The use's current weights mapped into its shared tensor's shape."""
        k = tf.convert_to_tensor(self.kernels[u.use.name])
        if self.tied:
            # One variable: each use's view of it, mapped back through its own rule.
            k = apply_rule(u.use.rule.to_dict(), k)
        return rule_adjoint(u.use.rule, k, u.tensor_shape)

    def _divergence_values(self) -> tf.Tensor:
        """Per compared pair, in `div_keys` order: ||Wa - Wb|| / ||W0|| and cosine(Wa, Wb), on what both read."""
        if not self.div_keys:
            return tf.zeros([0])
        distances, cosines = [], []
        for t, layout in self.pairs.items():
            views = tf.stack([tf.reshape(self._tensor_view(u), [-1]) for u in self.groups[t]])  # (uses, size)
            distance, cosine = layout.compare(views)
            distances.append(distance)
            cosines.append(cosine)
        relative = tf.concat(distances, 0) / self.w0_norms
        return tf.reshape(tf.stack([relative, tf.concat(cosines, 0)], 1), [-1])  # distance, cosine per pair

    def divergence_now(self) -> dict[tuple[str, str, str], tuple[float, float]]:
        """The divergence of the current weights, computed eagerly."""
        flat = self._divergence_values().numpy()
        return {key: (float(flat[2 * i]), float(flat[2 * i + 1])) for i, key in enumerate(self.div_keys)}

    def snapshot(self) -> dict[str, np.ndarray]:
        """The stored kernels, by shared tensor name (tied) or use name (copies and own kernels)."""
        out = {}
        for u in self.plan.uses:
            key = u.use.tensor if (self.tied and u.shared) else u.use.name
            out[key] = np.array(self.kernels[u.use.name].numpy())
        return out


def _all_reduce(
    replica: tf.distribute.ReplicaContext, grads: list[tf.Tensor | None], loss: tf.Tensor, acc: tf.Tensor
) -> tuple[list[tf.Tensor | None], tf.Tensor, tf.Tensor]:
    """Sums a step's gradients (per use, so the records stay per use), loss and accuracy over the replicas, in one call."""
    present = [g for g in grads if g is not None]
    summed = iter(replica.all_reduce(tf.distribute.ReduceOp.SUM, [*present, loss, acc]))
    grads = [None if g is None else next(summed) for g in grads]
    return grads, next(summed), next(summed)


def _sum_or_none(grads: list[tf.Tensor | None]) -> tf.Tensor | None:
    present = [g for g in grads if g is not None]
    return tf.add_n(present) if present else None


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

    def __init__(
        self,
        p: Plan,
        classes: int,
        optimizer: str,
        batch_size: int,
        input_dtype: tf.DType,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        # Under a strategy, every variable (weights, optimizer slots) is made in its scope: one
        # mirrored variable per tensor, so a shared tensor stays one variable on every replica.
        self.strategy = strategy
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            self.variants = [_Variant(p, tied, classes, optimizer) for tied in (True, False)]
        if not classes:
            y_spec = tf.TensorSpec([None, *p.output_shape], tf.float32)
        elif p.spec.input_vocab:  # next tokens, one per position
            y_spec = tf.TensorSpec([None, *p.spec.input_shape], tf.int32)
        else:
            y_spec = tf.TensorSpec([None], tf.int32)
        # autograph=False: the step's control flow is written as tf.while_loop and tf.cond, so nothing
        # needs converting. With AutoGraph on, tracing parsed and rewrote the source of every method
        # and Keras layer it reached: about two thirds of a first run's compile time.
        x_spec = tf.TensorSpec([None, *p.spec.input_shape], input_dtype)
        self.chunk = tf.function(
            self._chunk,
            input_signature=[
                x_spec,
                y_spec,
                tf.TensorSpec([None, batch_size], tf.int32),
                tf.TensorSpec([None], tf.bool),
            ],
            autograph=False,
        )
        self.evaluate = tf.function(self._evaluate, input_signature=[x_spec, y_spec], autograph=False)

    def _evaluate(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Loss and accuracy of both variants on held-out samples, (2,) each; no step is taken."""
        outs = [v._loss(x, y, training=False) for v in self.variants]
        return tf.stack([o[0] for o in outs]), tf.stack([o[1] for o in outs])

    def _chunk(self, pool_x: tf.Tensor, pool_y: tf.Tensor, idx: tf.Tensor, record: tf.Tensor) -> tuple:
        """Trains len(idx) steps, or up to and without the first step whose loss or weights are not finite.

        Returns per step done: losses (steps, 2), accuracies (steps, 2), the stats vectors; and
        the finiteness of both variants at the last step tried.
        """
        n = tf.shape(idx)[0]
        size = sum(v.stats_size for v in self.variants)

        def more(i, finite, losses, accs, stats):
            return tf.logical_and(i < n, tf.reduce_all(finite))

        def step(i, finite, losses, accs, stats):
            x, y = tf.gather(pool_x, idx[i]), tf.gather(pool_y, idx[i])  # (batch, ...) each
            if self.strategy is None:
                outs = [v.train_step(x, y, record[i]) for v in self.variants]
            else:
                outs = self._replicated_step(x, y, record[i])
            return (
                i + 1,
                tf.stack([o[2] for o in outs]),
                losses.write(i, tf.stack([o[0] for o in outs])),
                accs.write(i, tf.stack([o[1] for o in outs])),
                stats.write(i, tf.concat([o[3] for o in outs], axis=0)),
            )

        tried, finite, losses, accs, stats = tf.while_loop(
            more,
            step,
            (
                tf.constant(0),
                tf.ones([2], tf.bool),
                tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[2]),
                tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[2]),
                tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[size]),
            ),
        )
        # A step that was not finite was written too; it is not a step done.
        done = tried - tf.cast(tf.logical_not(tf.reduce_all(finite)), tf.int32)
        return losses.stack()[:done], accs.stack()[:done], stats.stack()[:done], finite

    def _replicated_step(self, x: tf.Tensor, y: tf.Tensor, record: tf.Tensor) -> list[tuple[tf.Tensor, ...]]:
        """One step of both variants on every replica, each on its slice of the batch; what they return is summed
        over the replicas inside the step, so the first local replica's values are the whole batch's."""

        def on_replica(x: tf.Tensor, y: tf.Tensor, record: tf.Tensor) -> list[tuple[tf.Tensor, ...]]:
            replica = tf.distribute.get_replica_context()
            size = tf.shape(x)[0] // replica.num_replicas_in_sync
            start = replica.replica_id_in_sync_group * size  # the global replica id, over every worker
            x, y = x[start : start + size], y[start : start + size]  # (batch / replicas, ...) each
            return [v.train_step(x, y, record, replica) for v in self.variants]

        per_replica = self.strategy.run(on_replica, args=(x, y, record))
        return tf.nest.map_structure(lambda t: self.strategy.experimental_local_results(t)[0], per_replica)


_POOL: dict[tuple, list[_Trainer]] = {}
_POOL_ORDER: list[tuple] = []
_POOL_LOCK = threading.Lock()
POOL_SIZE = 6  # idle compiled trainers kept for reuse (each is a few small models and a graph)


# Keys whose trainer `warm_up` is compiling now, each with an event set when it is in the pool.
_WARMING: dict[tuple, threading.Event] = {}
WARM_UP_WAIT_S = 60.0  # the longest a run waits for a warm-up's compile before compiling its own


def _checkout(key: tuple, make: Callable[[], _Trainer]) -> _Trainer:
    """An idle trainer for `key` from the pool, or a new one from `make`.

    A run whose trainer a warm-up is compiling waits for it: a second compile beside the first
    would take longer than the rest of the first (the workshop's first Train clicks after a
    server starts).
    """
    with _POOL_LOCK:
        idle = _POOL.get(key)
        if idle:
            return idle.pop()
        warming = _WARMING.get(key)
    if warming is not None and warming.wait(WARM_UP_WAIT_S):
        with _POOL_LOCK:
            idle = _POOL.get(key)
            if idle:  # another run may have taken it first
                return idle.pop()
    return make()


def _checkin(key: tuple, trainer: _Trainer) -> None:
    evicted = False
    with _POOL_LOCK:
        _POOL.setdefault(key, []).append(trainer)
        if key in _POOL_ORDER:
            _POOL_ORDER.remove(key)
        _POOL_ORDER.append(key)
        while sum(len(v) for v in _POOL.values()) > POOL_SIZE:
            oldest = _POOL_ORDER[0]
            _POOL[oldest].pop(0)
            evicted = True
            if not _POOL[oldest]:
                del _POOL[oldest]
                _POOL_ORDER.pop(0)
    _give_back_memory(collect=evicted)


def _give_back_memory(collect: bool) -> None:
    """Frees an evicted trainer now, and hands freed memory back to the operating system.

    A traced graph is a web of reference cycles that only a full garbage collection frees, and with
    TensorFlow's many long-lived objects Python runs one rarely: evicted trainers piled up for a
    while (a few MB each). An eviction comes with a new trainer's compile (seconds), so the
    collection (a fraction of that) is paid only then. glibc keeps freed memory for reuse instead
    of returning it, so a run's transient peak (a teacher data set, a conv net's activations) stayed
    in the server's resident memory; `malloc_trim` returns it (Linux with glibc only).
    """
    if collect:
        gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018  (absent outside glibc)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def _input_dtype(p: Plan) -> tf.DType:
    return tf.int32 if p.spec.input_vocab else tf.float32  # token ids, or float features


def _pool_key(
    p: Plan, classes: int, config: TrainConfig, device: str, strategy: tf.distribute.Strategy | None = None
) -> tuple:
    """What the compiled chunk depends on.

    Not the spec's name, description or initializers (the initial values are assigned per run),
    so a renamed or re-described spec (a workshop's "my-model-2") reuses the trainer its shapes
    compiled. The strategy is part of it: a trainer's variables belong to the strategy they were
    made under (by identity; a pooled trainer holds its strategy, so the id is not reused while
    the trainer waits in the pool).
    """
    spec = dataclasses.replace(
        p.spec,
        name="",
        description="",
        tensors=tuple(dataclasses.replace(t, initializer="glorot_uniform") for t in p.spec.tensors),
    )
    where = None if strategy is None else (type(strategy).__name__, id(strategy))
    return (spec, classes, config.optimizer, config.batch_size, device, where)


def warming_up() -> bool:
    """Whether a `warm_up` is compiling a trainer now (a front end must not reset Keras meanwhile)."""
    with _POOL_LOCK:
        return bool(_WARMING)


def warm_up(spec: ModelSpec, config: TrainConfig | None = None) -> float:
    """Compiles the trainer `train(spec, config)` would use and leaves it in the pool, without training.

    A server calls it once TensorFlow is loaded, for its default experiment, so that the first
    Train click is as fast as later ones; a run that starts while this compiles waits for it
    instead of compiling a second trainer beside it. Returns the seconds spent (0 if a trainer
    was there already or is being compiled).

    Raises:
        ValueError: as `train` would, for an impossible spec or run, before any TensorFlow work.
    """
    config = config or TrainConfig()
    p = check_run(spec, config)
    device = resolve_device(config.device)
    classes = make_dataset(p, config.dataset, config.seed, config.teacher).classes
    key = _pool_key(p, classes, config, device)
    with _POOL_LOCK:
        if _POOL.get(key) or key in _WARMING:
            return 0.0
        done = _WARMING[key] = threading.Event()
    start = time.perf_counter()
    try:
        with tf.device(device):
            trainer = _Trainer(p, classes, config.optimizer, config.batch_size, _input_dtype(p))
            trainer.chunk.get_concrete_function()
        _checkin(key, trainer)
    finally:
        with _POOL_LOCK:
            del _WARMING[key]
        done.set()
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- the run
def train(
    spec: ModelSpec,
    config: TrainConfig | None = None,
    *,
    on_progress: Callable[[TrainProgress], None] | None = None,
    stop: threading.Event | None = None,
    progress_every: int | None = None,
    limits: Limits | None = None,
    strategy: tf.distribute.Strategy | None = None,
    resume: TrainResult | None = None,
) -> TrainResult:
    """Trains the tied and untied models of `spec` side by side.

    Both start from `config.seed`'s initial weights and see the same batches. Steps run in
    compiled chunks of `progress_every` steps; progress calls and stop requests are handled
    between chunks.

    With `resume`, the run carries on where an earlier result of the same spec ended: its weights,
    optimizer state and batch order go on, and `config.steps` is the new total (to continue a run
    of 40 steps by 20: `train(spec, dataclasses.replace(previous.config, steps=60), resume=previous)`).
    The numbers are those of one run of the total length, up to float rounding. The learning rate
    may change on the way (a learning-rate schedule by hand); the shapes, optimizer, batch size,
    seed and data set may not.

    Args:
        spec: the model spec.
        config: the training settings; defaults to `TrainConfig()`.
        on_progress: called after every chunk with the history so far.
        stop: when set, the run ends after the current chunk and returns what it recorded.
        progress_every: steps per chunk; default about 20 chunks a run (at most 50 steps).
        limits: caps on size and run length; default `Limits.from_env()`.
        strategy: a `tf.distribute` strategy to train under, e.g. a `MultiWorkerMirroredStrategy`
            made at the start of the program; default the one `config.distribute` asks for
            (`sharecore.nn.devices.make_strategy`). Each replica trains on an equal slice of every
            batch, and the records are those of one device with the same batch.
        resume: an earlier result to continue (see above); its records come first in the result.

    Returns:
        A `TrainResult`. A run that stops early (stop request, the wall-clock cap
        `limits.max_run_seconds`, or a non-finite loss or weight) says why in `stop_reason`
        and keeps everything recorded before. Its `state` is where it ended, for `resume`;
        None after a non-finite value or a device failure, whose weights are no place to go on from.

    Raises:
        ValueError: for an impossible spec, dataset or device, a spec or run over the limits, a
            batch that does not split evenly over the replicas, or a `resume` this run cannot
            continue, before any training.
    """
    config = config or TrainConfig()
    limits = limits or Limits.from_env()
    began = time.perf_counter()  # the wall-clock cap (limits.max_run_seconds) counts from here
    p = check_run(spec, config, limits, resume=resume)  # the one plan of this run, handed down from here
    strategy = strategy or make_strategy(config)
    if strategy is not None:
        check_batch_split(config.batch_size, strategy.num_replicas_in_sync)
    device = resolve_device(config.device)
    where = describe(strategy, device)
    # Everything of the run on its device, the data and initial values too (device 'cpu' on a GPU host).
    with tf.device(device):
        data = make_dataset(p, config.dataset, config.seed, config.teacher)
        init = initial_values(p, config.seed)
    chunk = progress_every or min(50, max(1, math.ceil(config.steps / 20)))
    # Each chunk draws its batches' indices from one generator as it starts: the same numbers as
    # drawing (steps, batch_size) at once, without holding them all (100,000 steps at batch 512
    # took 400 MB while they were drawn).
    batches = np.random.default_rng([config.seed, 3])
    if resume is not None:
        batches.bit_generator.state = resume.state.rng  # the batches the earlier run would have drawn next
    steps = np.arange(1, config.steps + 1)
    recorded = (steps == 1) | (steps % config.record_every == 0) | (steps == config.steps)
    # A continued run's records start with the earlier run's, kept as they were.
    history: list[tuple] = _rows(resume, "history")
    gradients: list[tuple] = _rows(resume, "gradients")
    divergence: list[tuple] = _rows(resume, "divergence")
    key = _pool_key(p, data.classes, config, device, strategy)

    def frame() -> pd.DataFrame:
        return pd.DataFrame(history, columns=["step", "variant", "loss", "accuracy"])

    # A strategy places the replicas' ops itself; under an outer device scope they would all go there.
    with tf.device(device) if strategy is None else contextlib.nullcontext():
        trainer = _checkout(
            key, lambda: _Trainer(p, data.classes, config.optimizer, config.batch_size, _input_dtype(p), strategy)
        )
        try:
            variants = trainer.variants
            for v in variants:
                v.reset(init, config)  # also for a continued run: it sets the seed's ||W0|| for divergence
            params = {v.name: int(v.model.count_params()) for v in variants}
            if resume is None:
                weights = {"start": {v.name: v.snapshot() for v in variants}}
                for v in variants:
                    _append_divergence(divergence, 0, v.name, v.divergence_now())
            else:
                weights = {"start": resume.weights["start"]}
                _restore(variants, resume.state, config)
            pool_x, pool_y = tf.constant(data.x), tf.constant(data.y)
            heldout: list[tuple] = _rows(resume, "heldout")
            if data.heldout_x is not None:
                heldout_x, heldout_y = tf.constant(data.heldout_x), tf.constant(data.heldout_y)

                def evaluate(step: int) -> None:
                    losses, accs = (t.numpy() for t in trainer.evaluate(heldout_x, heldout_y))
                    heldout.extend((step, v.name, float(losses[j]), float(accs[j])) for j, v in enumerate(variants))

                if resume is None:
                    evaluate(0)
            else:

                def evaluate(step: int) -> None:
                    pass

            stop_reason = None
            can_continue = True  # False once the weights are no place to go on from
            steps_done = resume.state.steps_done if resume is not None else 0
            # Trace before the clock starts, so that steps per second measure training only.
            start = time.perf_counter()
            trainer.chunk.get_concrete_function()
            compile_seconds = time.perf_counter() - start
            start = time.perf_counter()
            while steps_done < config.steps:
                if stop is not None and stop.is_set():
                    stop_reason = f"stopped by request after step {steps_done}"
                    break
                if time.perf_counter() - began > limits.max_run_seconds:
                    stop_reason = _over_time(limits, steps_done, config.steps)
                    break
                # Chunks end at multiples of `chunk`, also for a continued run, so that its held-out
                # evaluations fall on the steps of one uninterrupted run.
                first, last = steps_done, min((steps_done // chunk + 1) * chunk, config.steps)
                try:
                    losses, accs, stats, finite = (
                        t.numpy()
                        for t in trainer.chunk(
                            pool_x,
                            pool_y,
                            tf.constant(
                                batches.integers(0, len(data.x), (last - first, config.batch_size)).astype("int32")
                            ),
                            tf.constant(recorded[first:last]),
                        )
                    )
                except DEVICE_ERRORS as err:
                    stop_reason = _device_failure(err, where, first, last, config, strategy is not None)
                    can_continue = False  # the chunk may have updated some weights before it failed
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
                if steps_done > first:
                    evaluate(steps_done)
                if not finite.all():
                    can_continue = False
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
            # Once, at the end: a few small arrays, so that even an instant run can be continued.
            state = None
            if can_continue:
                state = TrainState(steps_done, _state_arrays(variants), batches.bit_generator.state)
        finally:
            _checkin(key, trainer)

    return TrainResult(
        spec=spec,
        config=config,
        device=where,
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
        seconds=seconds + (resume.seconds if resume is not None else 0.0),
        dataset=data.description,
        params=params,
        compile_seconds=compile_seconds + (resume.compile_seconds if resume is not None else 0.0),
        heldout=pd.DataFrame(heldout, columns=["step", "variant", "loss", "accuracy"]),
        state=state,
    )


# What a device, its driver or a lost replica raises mid-run (out of memory, cuDNN, a collective that
# timed out or was cut). Other TensorFlow errors, such as a shape mismatch, are bugs and are raised.
DEVICE_ERRORS = (
    tf.errors.ResourceExhaustedError,
    tf.errors.InternalError,
    tf.errors.UnknownError,
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)


def _device_failure(
    err: tf.errors.OpError, where: str, first: int, last: int, config: TrainConfig, distributed: bool
) -> str:
    """The stop reason for a TensorFlow error during a chunk: out of memory, a device or driver
    failure, or (distributed) a replica or worker that failed or stopped answering."""
    steps = f"between steps {first + 1} and {last}"
    if isinstance(err, tf.errors.ResourceExhaustedError):
        return (
            f"{where} ran out of memory {steps}; training stopped and kept what was recorded. Use a smaller batch "
            f"size (now {config.batch_size}) or smaller tensors, or train on the CPU."
        )
    detail = (err.message or "").strip().splitlines()
    detail = f"{type(err).__name__}: {detail[0][:300]}" if detail else type(err).__name__
    if distributed:
        fix = (
            "A replica or worker failed or stopped answering: check that every worker is running and can reach "
            "the others, then train again."
        )
    elif "GPU" in where.upper():
        fix = "On a GPU this is usually the driver or cuDNN: train on the CPU (device 'cpu') to go on."
    else:
        fix = "Train again; if it happens again with this spec and these settings, please report it."
    return f"TensorFlow failed on {where} {steps} ({detail}); training stopped and kept what was recorded. {fix}"


def _over_time(limits: Limits, steps_done: int, steps: int) -> str:
    return (
        f"the run reached this server's time limit of {limits.max_run_seconds:,} s (max_run_seconds) after step "
        f"{steps_done} of {steps}; training stopped and kept what was recorded. Train fewer steps, or raise the "
        f"limit with the environment variable {env_variable('max_run_seconds')} or in .streamlit/secrets.toml "
        f"under [{SECRETS_SECTION}] max_run_seconds."
    )


# ----------------------------------------------------------------------------- continuing a run
def _state_arrays(variants: list[_Variant]) -> dict[str, np.ndarray]:
    """Every trainable and optimizer variable of both variants, as 'tied/var/0', 'untied/opt/2', ..."""
    return {
        f"{v.name}/{kind}/{i}": np.array(var.numpy())
        for v in variants
        for kind, group in (("var", v.variables), ("opt", v.optimizer.variables))
        for i, var in enumerate(group)
    }


def _restore(variants: list[_Variant], state: TrainState, config: TrainConfig) -> None:
    """Assigns a saved state to freshly reset variants; the learning rate is the new config's."""
    for v in variants:
        for kind, group in (("var", v.variables), ("opt", v.optimizer.variables)):
            for i, var in enumerate(group):
                key = f"{v.name}/{kind}/{i}"
                value = state.arrays.get(key)
                if value is None or tuple(np.shape(value)) != tuple(var.shape):
                    got = "missing" if value is None else f"shape {tuple(np.shape(value))}"
                    raise ValueError(
                        f"the earlier run's state does not fit this model: {key} should have shape "
                        f"{tuple(var.shape)}. It was probably saved by another version of sharecore; train from "
                        f"the start instead. Received: {key} {got}"
                    )
                var.assign(np.asarray(value, dtype=var.dtype))
        # The state holds the earlier learning rate; a continued run may change it (a schedule by hand).
        v.optimizer.learning_rate = config.learning_rate


def _rows(result: TrainResult | None, frame: str) -> list[tuple]:
    """The rows of one of `result`'s record frames as tuples; none without a result."""
    if result is None:
        return []
    return list(getattr(result, frame).itertuples(index=False, name=None))


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
