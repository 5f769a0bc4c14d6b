"""One variant of a run: the tied or untied model with its optimizer, its head and what its compiled step records.

At the steps chosen by `record_every` a variant records:

* gradients: each use's contribution to its shared tensor's gradient (in the tensor's own
  shape), the norm of their sum, and the cosine between a use and the other uses;
* divergence: for every pair of uses of a shared tensor, how far apart their weights are on
  the entries both read, from the variables themselves (tied: one variable, so exactly 0). A
  pair that reads no common entry (two slices side by side) has nothing to compare and is left out.

A step of a model with small shared tensors only copies what these are computed from (its `raw`
row: the uses' gradients and weights as the variables hold them); the compiled chunk maps them into
their tensors' shapes and computes the norms, cosines and distances of all its recorded steps at
once, after its last step (`stats_of`). Computed in every recorded step, they were about 110 graph
ops on a 250-op step of the smallest preset (seed-dense recorded every step at about half the speed
of a bare step); a copy is a few ops. A step of a model whose raw row is big (`DEFER_MAX`) computes
its stats at once, in a branch taken only when it records: a copy at every step would cost it more
than the branch, and the chunk would hold a big row per recorded step.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from sharecore.core.config import TrainConfig
from sharecore.core.plan import Plan, UsePlan
from sharecore.core.rules import reads_part, rule_mask
from sharecore.core.shapes import rule_output_shape
from sharecore.core.spec import Rule
from sharecore.nn.layers import apply_rule, record_views
from sharecore.nn.model import assign_initial, build_from_plan, draw, kernel_variables
from sharecore.nn.tensor_rules import Divergence, row_cosine, rule_adjoint
from sharecore.nn.tfimport import keras, tf

# The largest raw row (numbers) a step copies for the end of its chunk, recording or not; above it, a recording
# step computes its stats itself.
DEFER_MAX = 16384


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


class Variant:
    """One model (tied or untied) with its optimizer, its head and what it records."""

    def __init__(self, p: Plan, tied: bool, classes: int, optimizer: str) -> None:
        self.plan, self.tied, self.name = p, tied, "tied" if tied else "untied"
        self.model = build_from_plan(p, tied, _zeros(p))
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
        # A tensor no use reads has no records.
        self.groups = {t: group for t in p.shared_tensors if (group := p.group(t))}
        self.kernels = kernel_variables(self.model, p, tied)
        self.kernel_uses: dict[int, list[str]] = {}  # id(kernel variable) -> the uses that read it
        for use, k in self.kernels.items():
            self.kernel_uses.setdefault(id(k), []).append(use)
        self.viewless = [v for v in self.variables if id(v) not in self.kernel_uses]  # biases, the head
        self.masks = {u.use.name: rule_mask(u.use.rule, u.tensor_shape) for u in p.uses if u.shared}
        self.grad_keys = [(t, u.use.name) for t, group in self.groups.items() for u in group]
        # Divergence compares two uses on the entries both read.
        self.divergence = Divergence(p, self.kernels, tied)
        self.div_keys = self.divergence.keys
        # ||W0|| on what each pair reads; a variable so that a compiled trainer serves any seed.
        self.w0_norms = tf.Variable(tf.zeros([len(self.div_keys)]), trainable=False)
        # Where each use's kernel entries go in its tensor's shape (`RuleMap`), for the records' gradients and views.
        self.maps = {u.use.name: RuleMap(u.use.rule, u.tensor_shape) for group in self.groups.values() for u in group}
        self.compared = set(self.divergence.pairs)  # the tensors whose uses' weights a step copies
        # Whether a step hands the chunk its raw row (stats at the chunk's end) or its stats (a branch per step
        # costs a tiny model more than the copy; a big one, the other way round).
        self.defer = self.raw_size <= DEFER_MAX

    @property
    def stats_size(self) -> int:
        return 3 * len(self.grad_keys) + 2 * len(self.div_keys)

    @property
    def raw_size(self) -> int:
        """Numbers in a step's raw row (`_raw`)."""
        return sum(self._raw_sizes())

    @property
    def row_size(self) -> int:
        """Numbers in the row a step hands the chunk: the raw row (`defer`) or the stats."""
        return self.raw_size if self.defer else self.stats_size

    @property
    def held_size(self) -> int:
        """Numbers a recorded step takes in a chunk until and at its end: its row, and when `defer`, the largest
        temporaries `stats_of` makes of it (each use's gradient and weights in the tensor's shape, their
        differences and products, about three times over)."""
        if not self.defer:
            return self.row_size
        mapped = sum(
            len(group) * math.prod(group[0].tensor_shape) * (2 if t in self.compared else 1)
            for t, group in self.groups.items()
        )
        return self.raw_size + 3 * mapped

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
    def loss(self, x: tf.Tensor, y: tf.Tensor, training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
        """The loss (and accuracy, NaN without classes) of the model on a batch."""
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
        """One optimizer step. Returns loss, accuracy, whether all is finite, and the step's row for the chunk
        (`row_size`): the raw row `stats_of` reads at the chunk's end (`defer`: at every step, recording or
        not), or the stats (zeros at a step that does not `record`).

        Under a strategy, `replica` is the context of the replica that holds this slice of the batch;
        the step's gradients, loss and accuracy are then summed over the replicas, so that every
        replica records and applies the numbers of the whole batch.
        """
        with tf.GradientTape() as tape, record_views() as views:  # views: this replica's own
            loss, acc = self.loss(x, y)
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
            # Here, before a tf.cond(record, ...) (`defer` off): an all-reduce inside a branch fails.
            grads, loss, acc = _all_reduce(replica, grads, loss, acc)
        by_use = {use: g for (_, use, _), g in zip(views, grads)}
        by_id = dict(zip(map(id, self.viewless), grads[len(views) :]))
        by_id.update({k: _sum_or_none([by_use[u] for u in uses]) for k, uses in self.kernel_uses.items()})
        var_grads = [by_id[id(v)] for v in self.variables]
        self.optimizer.apply_gradients(zip(var_grads, self.variables))
        finite = tf.math.is_finite(loss)
        for v in self.variables:
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(v)))
        if self.defer:
            row = self._raw(by_use, var_grads)
        else:
            # Straight from the parts: a row joined and cut again would be two more copies of a big model's tensors.
            row = tf.cond(
                record,
                lambda: self._stats([tf.reshape(p, [1, -1]) for p in self._raw_parts(by_use, var_grads)], 1)[0],
                lambda: tf.zeros([self.stats_size]),
            )
        return loss, acc, finite, row

    def stats_of_rows(self, rows: tf.Tensor) -> tf.Tensor:
        """(records, stats_size) from the rows (records, row_size) the chunk's recorded steps handed it."""
        return self.stats_of(rows) if self.defer else rows

    def _raw(self, by_use: dict[str, tf.Tensor], var_grads: list[tf.Tensor]) -> tf.Tensor:
        """(raw_size,) what this step's records are computed from, as the variables hold it (no rule is applied
        here: `stats_of` maps what it reads): `_raw_parts`, flat, one after the other."""
        parts = self._raw_parts(by_use, var_grads)
        return tf.concat([tf.reshape(part, [-1]) for part in parts], 0) if parts else tf.zeros([0])

    def _raw_parts(self, by_use: dict[str, tf.Tensor], var_grads: list[tf.Tensor]) -> list[tf.Tensor]:
        """Tensor by tensor: each use's gradient contribution (tied: the gradient of its view of the one variable,
        already in the tensor's shape; untied: its copy's kernel gradient); then, for a tensor whose uses are
        compared, the weights after the update (tied: the one variable; untied: each copy)."""
        parts = []
        for t, group in self.groups.items():
            for u in group:
                if self.tied:
                    parts.append(by_use[u.use.name])
                else:
                    parts.append(var_grads[self.var_index[id(self.kernels[u.use.name])]])
            if t in self.compared:
                kernels = group[:1] if self.tied else group
                parts += [tf.convert_to_tensor(self.kernels[u.use.name]) for u in kernels]
        return parts

    def stats_of(self, raw: tf.Tensor) -> tf.Tensor:
        """(records, stats_size) from (records, raw_size) raw rows: per use grad_norm, sum_norm and the cosine with
        the other uses, tensor by tensor; then per compared pair distance and cosine (`div_keys` order).

        Whole-tensor ops on the stacked uses of each tensor and the stacked records, never one block of ops
        per use, pair or step: the compiled chunk (and its compile time and memory) grows linearly with the uses.
        """
        return self._stats(split_columns(raw, self._raw_sizes()), tf.shape(raw)[0])

    def _stats(self, parts: list[tf.Tensor], records: tf.Tensor | int) -> tf.Tensor:
        """`stats_of` from the raw rows' parts, each (records, its size) (`_raw_parts`, flat)."""
        columns = iter(parts)
        values, views = [], []
        for t, group in self.groups.items():
            n = len(group)
            # Each use's contribution in the tensor's shape, flat: (uses, records, size). The uses are the outer
            # axis, as in `PairLayout.compare`: slicing it copies nothing.
            g = tf.stack([self._in_tensor(u, next(columns)) for u in group])
            total = tf.add_n(tf.unstack(g))[None]  # (1, records, size): the tensor's gradient
            cos = row_cosine(g, total - g) if n > 1 else tf.fill(tf.shape(g)[:2], float("nan"))
            norms = tf.norm(g, axis=-1)  # (uses, records)
            sum_norm = tf.broadcast_to(tf.norm(total, axis=-1), tf.shape(norms))
            per_use = tf.transpose(tf.stack([norms, sum_norm, cos], -1), [1, 0, 2])  # (records, uses, 3)
            values.append(tf.reshape(per_use, [-1, 3 * n]))
            if t in self.compared:  # (uses, records, size): each use's weights in the tensor's shape
                if self.tied:  # every use's view of the one variable: the variable on what the use reads
                    weights = next(columns)
                    views.append(tf.stack([self.maps[u.use.name].masked(weights) for u in group]))
                else:
                    views.append(tf.stack([self._in_tensor(u, next(columns)) for u in group]))
        values.append(self.divergence.values_of(views, self.w0_norms, records))
        return tf.concat(values, 1)  # grad_norm, sum_norm, cosine per use; distance, cosine per pair

    def _raw_sizes(self) -> list[int]:
        """The sizes of `_raw`'s parts, in its order."""
        sizes = []
        for t, group in self.groups.items():
            size = math.prod(group[0].tensor_shape)
            sizes += [size if self.tied else self.maps[u.use.name].kernel_size for u in group]
            if t in self.compared:
                sizes += [size] if self.tied else [self.maps[u.use.name].kernel_size for u in group]
        return sizes

    def _in_tensor(self, u: UsePlan, values: tf.Tensor) -> tf.Tensor:
        """(records, tensor size): a use's flat values in its tensor's shape; tied ones are there already."""
        return values if self.tied else self.maps[u.use.name].to_tensor(values)

    def divergence_now(self) -> dict[tuple[str, str, str], tuple[float, float]]:
        """The divergence of the current weights, computed eagerly."""
        return self.divergence.now(self.w0_norms)

    def snapshot(self) -> dict[str, np.ndarray]:
        """The stored kernels, by shared tensor name (tied) or use name (copies and own kernels)."""
        out = {}
        for u in self.plan.uses:
            key = u.use.tensor if (self.tied and u.shared) else u.use.name
            out[key] = np.array(self.kernels[u.use.name].numpy())
        return out


class RuleMap:
    """A use's rule applied to many records at once: `to_tensor` is `rule_adjoint` (a copy's kernel gradient or
    weights, mapped back into the tensor's shape; zero where the use does not read) and `masked` is a view of the
    tensor's own variable mapped back (`rule_adjoint(apply_rule(W))`: the tensor on what the use reads), each on
    (records, size) rows.

    With the rule's own ops vectorized over the records (`tf.vectorized_map`), not a gather by an index map:
    an index as big as the tensor is a constant that the traced graph holds several copies of (a tied LM of
    vocab 2,000 x dim 250 trained with 25 MB more at its peak).
    """

    def __init__(self, rule: Rule, tensor_shape: tuple[int, ...]) -> None:
        self.rule, self.tensor_shape = rule, tuple(tensor_shape)
        self.kernel_shape = tuple(rule_output_shape(rule, self.tensor_shape, "rule"))
        self.kernel_size = math.prod(self.kernel_shape)
        self.identity = rule.kind == "identity"
        self.partial = reads_part(rule)

    def to_tensor(self, values: tf.Tensor) -> tf.Tensor:
        """(records, tensor size) from (records, kernel size): kernel entries at their places, zero elsewhere."""
        if self.identity:
            return values
        kernels = tf.reshape(values, [-1, *self.kernel_shape])
        mapped = tf.vectorized_map(lambda k: rule_adjoint(self.rule, k, self.tensor_shape), kernels)
        return tf.reshape(mapped, [-1, math.prod(self.tensor_shape)])

    def masked(self, values: tf.Tensor) -> tf.Tensor:
        """(records, tensor size) with zeros where the use does not read."""
        if not self.partial:
            return values
        read = self.rule.to_dict()
        tensors = tf.reshape(values, [-1, *self.tensor_shape])
        mapped = tf.vectorized_map(lambda w: rule_adjoint(self.rule, apply_rule(read, w), self.tensor_shape), tensors)
        return tf.reshape(mapped, [-1, math.prod(self.tensor_shape)])


def split_columns(raw: tf.Tensor, sizes: list[int]) -> list[tf.Tensor]:
    """(records, sum of sizes) -> the columns of each size, in order."""
    starts = [0, *itertools.accumulate(sizes)]
    return [raw[:, a:b] for a, b in zip(starts, starts[1:])]


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
