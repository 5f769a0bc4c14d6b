"""Rules in NumPy: the kernel a use sees from a stored tensor, and which entries it reads.

Plain NumPy, so that diagrams and tensor views need no TensorFlow. The TensorFlow forms live
beside the layers (`sharecore.nn.layers.apply_rule`) and the trainer (`rule_adjoint`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from sharecore.core.spec import Rule


def apply_rule_np(rule: Rule, w: np.ndarray) -> np.ndarray:
    """The kernel a use sees from stored tensor `w` under `rule` (a composed rule: each step in order)."""
    for step in rule.steps:
        w = _apply_step_np(step, w)
    return w


def _apply_step_np(rule: Rule, w: np.ndarray) -> np.ndarray:
    """One single (not composed) rule applied to `w`."""
    if rule.kind == "identity":
        return w
    if rule.kind == "transpose":
        return np.transpose(w, rule.perm)
    if rule.kind == "reshape":
        return np.reshape(w, rule.shape or ())
    if rule.kind == "rot90":
        return np.rot90(w, rule.k or 0, axes=(0, 1))
    if rule.kind == "flip":
        return np.flip(w, rule.axis)
    return w[tuple(slice(start, stop) for start, stop in rule.box)]


def reads_part(rule: Rule) -> bool:
    """Whether `rule` may leave entries of the stored tensor unread: only a slice step drops entries."""
    return any(step.kind == "slice" for step in rule.steps)


def _reads_a_box(rule: Rule) -> bool:
    """Whether `read_box` is exactly what `rule` reads.

    True without a slice, or for a lone slice. A slice after other steps may read a region that
    is no box of the stored tensor (a reshape then a slice reads whole rows and part of the next).
    """
    return not reads_part(rule) or rule.kind == "slice"


def rule_mask(rule: Rule, tensor_shape: tuple[int, ...]) -> np.ndarray:
    """1 where a use reads the stored tensor, 0 elsewhere."""
    mask = np.zeros(tensor_shape, dtype="float32")
    if not reads_part(rule):
        mask[...] = 1.0
    elif rule.kind == "slice":
        mask[tuple(slice(start, stop) for start, stop in rule.box)] = 1.0
    else:
        # A composed rule: apply it to the entries' flat indices and mark the ones that come out.
        # Every step is a view that moves or drops entries, so this is exact for any composition.
        mask.reshape(-1)[_read_indices(rule, tensor_shape)] = 1.0
    return mask


def _read_indices(rule: Rule, tensor_shape: tuple[int, ...]) -> np.ndarray:
    """The flat indices of the stored entries that `rule` reads, in the order its kernel holds them."""
    size = math.prod(tensor_shape)
    dtype = np.int32 if size <= np.iinfo(np.int32).max else np.int64  # half the memory of int64
    return apply_rule_np(rule, np.arange(size, dtype=dtype).reshape(tensor_shape)).reshape(-1)


def read_box(rule: Rule, tensor_shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """The [start, stop) range a use reads on each axis of the stored tensor.

    For a composed rule with a slice this is the smallest box that holds every entry it reads
    (see `rule_mask` for the exact entries).
    """
    if not reads_part(rule):
        return tuple((0, n) for n in tensor_shape)
    if rule.kind == "slice":
        return rule.box
    read = np.nonzero(rule_mask(rule, tensor_shape))
    return tuple((int(axis.min()), int(axis.max()) + 1) for axis in read)


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
    # Where a read region is no box, boxes that meet may still share no entry: the masks decide.
    masks = {name: rule_mask(rule, tensor_shape) > 0 for name, rule in uses if not _reads_a_box(rule)}
    overlap: list[tuple[str, str]] = []
    apart: list[tuple[str, str]] = []
    for (a, rule_a), (b, rule_b) in itertools.combinations(uses, 2):
        shared = all(max(a0, b0) < min(a1, b1) for (a0, a1), (b0, b1) in zip(boxes[a], boxes[b]))
        if shared and (a in masks or b in masks):
            mask_a = masks[a] if a in masks else rule_mask(rule_a, tensor_shape) > 0
            mask_b = masks[b] if b in masks else rule_mask(rule_b, tensor_shape) > 0
            shared = bool(np.any(mask_a & mask_b))
        (overlap if shared else apart).append((a, b))
    return overlap, apart
