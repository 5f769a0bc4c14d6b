"""Turned and flipped uses of one kernel (rules `rot90` and `flip`), and what an input's turn does to them.

A p4 convolution (rotation-tied-conv) reads one kernel K as it is and turned by 90, 180 and 270
degrees. Cross-correlation commutes with turning both image and kernel about their centres, so
turning the input a quarter turn turns each use's output maps and moves them to the next use's slot:
out_{K turned}(turned x) = turned out_K(x). Tied, the four kernels are one variable, so this holds at
every step, to float rounding. Untied copies start as the same turns but train apart, and lose it.

Plain NumPy: which uses can swap, and the record of a measurement. `sharecore.nn.equivariance`
measures it on a model's outputs; `sharecore.viz.equivariance` draws it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sharecore.core.plan import Plan, UsePlan, plan
from sharecore.core.rules import apply_rule_np
from sharecore.core.spec import INPUT_NODE, ModelSpec

# Turns or flips an array's first two axes: an image's (h, w), a kernel's (kh, kw).
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "a quarter turn": lambda a: np.rot90(a, 1, axes=(0, 1)),
    "a flip upside down": lambda a: np.flip(a, 0),
    "a flip left to right": lambda a: np.flip(a, 1),
}
SAME_KERNEL = 1e-6  # relative: two uses' kernels are one transform apart when they agree this closely


@dataclass(frozen=True)
class Equivariance:
    """What one input and its transform do to each use's output maps.

    `slot[u]` names the use whose output on the transformed image should be the transformed output of
    `u` (its kernel is `u`'s kernel transformed the same way), or None when no use reads that kernel.
    """

    transform: str  # a key of TRANSFORMS
    tied: bool
    image: np.ndarray  # (h, w, c): the input
    turned: np.ndarray  # (h, w, c): the input transformed
    uses: tuple[str, ...]  # the uses compared, in model order
    slot: dict[str, str | None]
    maps: dict[str, np.ndarray]  # use -> (h, w, c_out): its output on `image`
    turned_maps: dict[str, np.ndarray]  # use -> (h, w, c_out): its output on `turned`
    error: dict[str, float]  # use -> max |turned_maps[slot] - transform(maps[use])| / max |maps|; nan: no slot

    @property
    def worst(self) -> float:
        """The largest error over the uses that have a slot (nan when none has)."""
        found = [e for e in self.error.values() if np.isfinite(e)]
        return max(found) if found else float("nan")


def symmetric_uses(spec: ModelSpec | Plan) -> tuple[UsePlan, ...]:
    """The conv2d uses that read the model's input through one shared kernel, of a tensor that some use
    reads turned or flipped: the uses an input's turn or flip can move between. () when there are none."""
    p = spec if isinstance(spec, Plan) else plan(spec)
    turned = {u.use.tensor for u in p.uses if u.shared and _turns_or_flips(u.use.rule.to_dict())}
    return tuple(
        u
        for u in p.uses
        if u.use.tensor in turned
        and u.use.op == "conv2d"
        and u.source == INPUT_NODE
        and u.use.input_slice is None
        and u.use.input_reshape is None
        and len(u.in_shape) == 3
        and u.in_shape[0] == u.in_shape[1]  # a turn keeps the image's shape
        and u.use.strides == 1
        and u.use.padding == "same"
        and u.kernel_shape[0] % 2 == 1  # an odd kernel turns about its centre pixel
        and u.kernel_shape[0] == u.kernel_shape[1]
    )


def _turns_or_flips(rule: dict) -> bool:
    """Whether a rule (as `Rule.to_dict` writes it) turns or flips, itself or in one of its composed steps."""
    if rule.get("kind") == "compose":
        return any(_turns_or_flips(r if isinstance(r, dict) else {"kind": r}) for r in rule.get("rules", []))
    return rule.get("kind") in ("rot90", "flip")


def transform_for(spec: ModelSpec | Plan) -> str:
    """The transform the spec's rules suggest: a quarter turn if any use turns its kernel, else a flip."""
    p = spec if isinstance(spec, Plan) else plan(spec)
    rules = [u.use.rule.to_dict() for u in symmetric_uses(p)]
    if any("rot90" in str(r) for r in rules):
        return "a quarter turn"
    flips = [r.get("axis") for r in rules if r.get("kind") == "flip"]
    return "a flip left to right" if flips and flips[0] in (1, -3) else "a flip upside down"


def slots(spec: ModelSpec | Plan, init: dict[str, np.ndarray], transform: str) -> dict[str, str | None]:
    """For each of `symmetric_uses`, the use whose kernel is its kernel under `transform` (or None),
    from the stored tensors `init` (by shared tensor name, e.g. `sharecore.initial_values`)."""
    p = spec if isinstance(spec, Plan) else plan(spec)
    kernels = {u.use.name: _kernel(u, init) for u in symmetric_uses(p)}
    turn = TRANSFORMS[transform]
    return {name: _slot(turn(k), kernels) for name, k in kernels.items()}


def _kernel(u: UsePlan, init: dict[str, np.ndarray]) -> np.ndarray:
    """The kernel `u` (a shared use) reads from the stored tensors: its tensor through its rule."""
    return apply_rule_np(u.use.rule, init[str(u.use.tensor)])


def _slot(wanted: np.ndarray, kernels: dict[str, np.ndarray]) -> str | None:
    """The use whose kernel is `wanted` (to float rounding), or None."""
    for name, k in kernels.items():
        if k.shape == wanted.shape and np.abs(k - wanted).max() <= SAME_KERNEL * (np.abs(wanted).max() or 1.0):
            return name
    return None
