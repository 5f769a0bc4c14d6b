"""Rules in NumPy: the kernel a use sees from a stored tensor, and which entries it reads.

Plain NumPy, so that diagrams and tensor views need no TensorFlow. The TensorFlow forms live
beside the layers (`sharecore.layers.apply_rule`) and the trainer (`rule_adjoint`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from sharecore.spec import Rule


def apply_rule_np(rule: Rule, w: np.ndarray) -> np.ndarray:
    """The kernel a use sees from stored tensor `w` under `rule`."""
    if rule.kind == "identity":
        return w
    if rule.kind == "transpose":
        return np.transpose(w, rule.perm)
    if rule.kind == "reshape":
        return np.reshape(w, rule.shape)
    index = tuple(slice(b, b + s) for b, s in zip(rule.begin, rule.size))
    return w[index]


def rule_mask(rule: Rule, tensor_shape: tuple[int, ...]) -> np.ndarray:
    """1 where a use reads the stored tensor, 0 elsewhere."""
    mask = np.zeros(tensor_shape, dtype="float32")
    if rule.kind == "slice":
        mask[tuple(slice(b, b + s) for b, s in zip(rule.begin, rule.size))] = 1.0
    else:
        mask[...] = 1.0
    return mask


def read_box(rule: Rule, tensor_shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """The [start, stop) range a use reads on each axis of the stored tensor."""
    if rule.kind == "slice":
        return tuple((b, b + s) for b, s in zip(rule.begin, rule.size))
    return tuple((0, n) for n in tensor_shape)


def split_pairs(
    uses: Sequence[tuple[str, Rule]], tensor_shape: tuple[int, ...]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Splits the pairs of uses of one tensor into those that read a common entry and those that do not.

    Divergence compares two uses on the entries both read, so a pair that shares none (two slices
    side by side) has nothing to compare. Both lists keep model order (`itertools.combinations`).

    Args:
        uses: (use name, rule) of each use of the tensor, in model order.
        tensor_shape: the stored tensor's shape.

    Returns:
        (pairs that overlap, pairs that share no entry), each pair as (use_a, use_b).
    """
    boxes = {name: read_box(rule, tensor_shape) for name, rule in uses}
    overlap, apart = [], []
    for (a, _), (b, _) in itertools.combinations(uses, 2):
        shared = all(max(a0, b0) < min(a1, b1) for (a0, a1), (b0, b1) in zip(boxes[a], boxes[b]))
        (overlap if shared else apart).append((a, b))
    return overlap, apart
