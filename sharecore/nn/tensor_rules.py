"""Rules in tensor space: a use's kernel mapped back into its shared tensor's shape, and pairs of uses compared.

The trainer records each use's gradient in the shared tensor's own shape (`rule_adjoint`; in its compiled
chunk, the same map as a gather, `sharecore.nn.variant.RuleMap`) and how far apart the uses of a tensor are on
the entries both read (`PairLayout`).
"""

from __future__ import annotations

import itertools

import numpy as np

from sharecore.core.plan import Plan, UsePlan
from sharecore.core.rules import reads_part, rule_mask, split_pairs
from sharecore.core.shapes import rule_output_shape
from sharecore.core.spec import Rule
from sharecore.nn.layers import apply_rule, rot90
from sharecore.nn.tfimport import tf


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


def row_cosine(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Cosine between matching rows of two (..., size) tensors, over the last axis; NaN where a row is all zeros."""
    denom = tf.norm(a, axis=-1) * tf.norm(b, axis=-1)  # (...,)
    return tf.where(denom > 0, tf.reduce_sum(a * b, -1) / tf.maximum(denom, 1e-30), float("nan"))


class PairLayout:
    """How one shared tensor's pairs of uses are compared in a fixed number of ops per pair offset.

    The views of a tensor's n uses are stacked as rows (uses, size), each row zero outside what its
    use reads. The pairs (i, i + d) for one offset d are rows [:n-d] against rows [d:], so the
    compiled chunk holds one small block of ops per offset (at most n - 1), not one per pair: with a
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
        """||Wa - Wb|| and cosine(Wa, Wb) on the entries both read, (records, pairs) each, from views
        (uses, records, size): the views of many recorded steps at once. The uses are the outer axis: a slice
        of it shares the views' memory, where a slice of an inner axis is a copy (a big model's tensors)."""
        n = int(views.shape[0])
        masks = None if self.masks is None else tf.constant(self.masks[:, None])  # (uses, 1, size), one constant
        distances, cosines = [], []
        for d in self.offsets:
            a, b = views[: n - d], views[d:]  # (n - d, records, size): uses i and i + d
            if masks is not None:
                a, b = a * masks[d:], b * masks[: n - d]  # each on what the other reads
            distances.append(tf.norm(a - b, axis=-1))
            cosines.append(row_cosine(a, b))
        return (
            tf.transpose(tf.gather(tf.concat(distances, 0), self.index)),
            tf.transpose(tf.gather(tf.concat(cosines, 0), self.index)),
        )


class Divergence:
    """How far apart the uses of each shared tensor of a model are, on the entries both read.

    For every compared pair of uses: ||Wa - Wb|| / ||W0|| and cosine(Wa, Wb), each use's weights
    mapped back into the shared tensor's shape. Tied uses read one variable, so they are exactly 0
    apart. The trainer records it in its compiled chunk (`values_of` the weights its recorded steps
    copied); `sharecore.SharingMonitor` records it eagerly for a model of `sharecore.build` in the
    user's own `model.fit`.

    Args:
        p: the model's plan.
        kernels: the stored kernel variable of each use, by use name (`kernel_variables`).
        tied: whether the uses of a tensor read one variable (True) or copies of their own.
    """

    def __init__(self, p: Plan, kernels: dict[str, tf.Variable], tied: bool) -> None:
        self.kernels, self.tied = kernels, tied
        self.groups = {t: p.group(t) for t in p.shared_tensors}
        # A pair that reads no common entry (two slices side by side) has nothing to compare and is not recorded.
        layouts = {t: PairLayout(group) for t, group in self.groups.items() if len(group) > 1}
        self.pairs = {t: layout for t, layout in layouts.items() if layout.pairs}
        self.keys = [(t, a, b) for t, layout in self.pairs.items() for a, b in layout.pairs]

    def tensor_view(self, u: UsePlan) -> tf.Tensor:
        """The use's current weights mapped into its shared tensor's shape."""
        k = tf.convert_to_tensor(self.kernels[u.use.name])
        if self.tied:
            # One variable: each use's view of it, mapped back through its own rule.
            k = apply_rule(u.use.rule.to_dict(), k)
        return rule_adjoint(u.use.rule, k, u.tensor_shape)

    def values_of(self, views: list[tf.Tensor], w0_norms: tf.Tensor, records: tf.Tensor | int) -> tf.Tensor:
        """(records, 2 * pairs): per compared pair, in `keys` order, ||Wa - Wb|| / ||W0|| and cosine(Wa, Wb) on
        what both read.

        Args:
            views: per compared tensor (`pairs` order), its uses' weights mapped into its shape, flat: (uses,
                records, size), one record per recorded step.
            w0_norms: (pairs,) ||W0|| on what each pair reads.
            records: how many records (rows of the result, also when nothing is compared).
        """
        if not self.keys:
            return tf.zeros([records, 0])
        distances, cosines = [], []
        for layout, stacked in zip(self.pairs.values(), views):
            distance, cosine = layout.compare(stacked)  # (records, pairs of the tensor) each
            distances.append(distance)
            cosines.append(cosine)
        relative = tf.concat(distances, 1) / w0_norms
        # distance, cosine per pair
        return tf.reshape(tf.stack([relative, tf.concat(cosines, 1)], -1), [-1, 2 * len(self.keys)])

    def values(self, w0_norms: tf.Tensor) -> tf.Tensor:
        """(2 * pairs,) `values_of` the current weights."""
        views = [tf.stack([tf.reshape(self.tensor_view(u), [1, -1]) for u in self.groups[t]]) for t in self.pairs]
        return self.values_of(views, w0_norms, 1)[0]

    def now(self, w0_norms: tf.Tensor) -> dict[tuple[str, str, str], tuple[float, float]]:
        """`values` of the current weights, computed eagerly, by (tensor, use_a, use_b)."""
        flat = self.values(w0_norms).numpy()
        return {key: (float(flat[2 * i]), float(flat[2 * i + 1])) for i, key in enumerate(self.keys)}

    def norms_now(self) -> np.ndarray:
        """(pairs,) ||W|| of the current weights on what each pair reads: ||W0|| when called before training.

        Use a's weights on the entries that b reads too; at the start, every use's view is the initial
        tensor on what it reads, so this is ||W0 * mask_a * mask_b||, what the trainer divides by.
        """
        norms = []
        for t, a, b in self.keys:
            group = {u.use.name: u for u in self.groups[t]}
            view = self.tensor_view(group[a]).numpy()
            norms.append(float(np.linalg.norm(view * rule_mask(group[b].use.rule, group[b].tensor_shape))))
        return np.array(norms, dtype="float32")
