"""Rules in NumPy: the kernel a use sees from a stored tensor, and which entries it reads.

Plain NumPy, so that diagrams and tensor views need no TensorFlow. The TensorFlow forms live
beside the layers (`sharecore.layers.apply_rule`) and the trainer (`rule_adjoint`).
"""

from __future__ import annotations

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
