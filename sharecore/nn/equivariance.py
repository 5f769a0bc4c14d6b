"""Equivariance measured on a model's real outputs: one image and its turn (or flip) through every
turned or flipped use (`sharecore.core.symmetry`), tied or untied, at the start or where a run ended."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from sharecore.core.plan import plan
from sharecore.core.spec import ModelSpec
from sharecore.core.symmetry import TRANSFORMS, Equivariance, slots, symmetric_uses, transform_for
from sharecore.nn.data import make_dataset
from sharecore.nn.model import build_from_plan, initial_values, kernel_variables


def equivariance(
    spec: ModelSpec,
    *,
    tied: bool,
    image: np.ndarray,
    weights: dict[str, np.ndarray] | None = None,
    seed: int = 0,
    transform: str | None = None,
) -> Equivariance:
    """Runs one image and its transform through the model and compares each use's maps with the slot's.

    Args:
        spec: a spec with `symmetric_uses`.
        tied: measure the tied model, or the untied one.
        image: (h, w, c), the model's per-sample input shape.
        weights: the stored kernels, as `TrainResult.weights[phase][variant]` holds them (tied: by shared
            tensor; untied: by use), e.g. where a run ended. None: the seed's initial values, where
            untied copies still are the turns they were initialised as.
        seed: the initial values' seed when `weights` is None.
        transform: a key of TRANSFORMS; None: `transform_for(spec)`.

    Returns:
        The maps, the slots (found from the tied kernels, which the untied copies start as) and the errors.

    Raises:
        ValueError: if the spec has no such uses, or the image or transform does not fit.

    Example:
        >>> import numpy as np
        >>> from sharecore import preset
        >>> x = np.random.default_rng(0).standard_normal((8, 8, 1)).astype("float32")
        >>> found = equivariance(preset("rotation-tied-conv"), tied=True, image=x)
        >>> found.slot["rot0"], found.slot["rot270"], found.worst < 1e-5
        ('rot90', 'rot0', True)
    """
    p = plan(spec)
    uses = symmetric_uses(p)
    if not uses:
        raise ValueError(
            f"spec {spec.name!r} has no conv2d use that reads the input through a turned or flipped shared kernel "
            "(rule rot90 or flip, stride 1, padding 'same', an odd square kernel, a square image), so turning the "
            "input has no slot to move to. Try preset 'rotation-tied-conv'."
        )
    transform = transform or transform_for(p)
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}. Choose one of {list(TRANSFORMS)}.")
    turn = TRANSFORMS[transform]
    x = np.asarray(image, dtype="float32")
    if x.shape != tuple(spec.input_shape):
        raise ValueError(f"the image must have the input shape {tuple(spec.input_shape)}. Received: shape={x.shape}")
    names = tuple(u.use.name for u in uses)
    init = initial_values(p, seed)
    slot = slots(p, init, transform)

    # One model whose outputs are every compared use (flattened and concatenated), kernels set to `weights`.
    outputs = dataclasses.replace(spec, outputs=names)
    q = plan(outputs)
    model = build_from_plan(q, tied, init)
    if weights is not None:
        stored = kernel_variables(model, q, tied)
        for u in q.uses:
            key = u.use.tensor if (tied and u.shared) else u.use.name
            if key in weights:
                stored[u.use.name].assign(np.asarray(weights[key], dtype="float32"))
    turned = np.ascontiguousarray(turn(x))
    flat = np.asarray(model(np.stack([x, turned]))).reshape(2, -1)  # (2, the uses' map sizes summed)
    maps, turned_maps, at = {}, {}, 0
    for u in uses:
        size = int(np.prod(u.out_shape))
        maps[u.use.name] = flat[0, at : at + size].reshape(u.out_shape)
        turned_maps[u.use.name] = flat[1, at : at + size].reshape(u.out_shape)
        at += size
    scale = max(float(np.abs(m).max()) for m in maps.values()) or 1.0
    error = {
        a: float(np.abs(turned_maps[b] - turn(maps[a])).max()) / scale if b is not None else float("nan")
        for a, b in slot.items()
    }
    return Equivariance(transform, tied, x, turned, names, slot, maps, turned_maps, error)


def sample_image(spec: ModelSpec, seed: int = 0) -> np.ndarray:
    """An input to turn: a held-out 8x8 digit when the input holds 64 floats (a turned digit is easy to
    recognise), else seeded standard-normal noise of the input shape."""
    if math.prod(spec.input_shape) == 64 and spec.input_vocab is None:
        return make_dataset(spec, "digits", seed).heldout_x[0]
    return np.random.default_rng(seed).standard_normal(spec.input_shape).astype("float32")
