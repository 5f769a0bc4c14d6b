"""Checks a spec and infers every shape, in plain Python, before any TensorFlow work.

`plan(spec)` either returns a `Plan` (every node's shape, every use's kernel shape and
which uses share which tensor) or raises a `ValueError` that names the use, the shapes
received and a fix.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from sharecore.core.shapes import Shape, check_tokens, op_output_shape, output_units, rule_output_shape, use_input_shape
from sharecore.core.spec import INPUT_NODE, ModelSpec, Use


@dataclass(frozen=True)
class UsePlan:
    """Everything inferred about one use."""

    use: Use
    source: str  # the node it reads
    source_shape: Shape  # that node's per-sample shape
    in_shape: Shape  # after input_slice / input_reshape
    tensor_shape: Shape  # the stored tensor it reads (its own kernel shape if unshared)
    kernel_shape: Shape  # after the rule
    out_shape: Shape

    @property
    def shared(self) -> bool:
        return self.use.tensor is not None

    @property
    def kernel_size(self) -> int:
        return math.prod(self.kernel_shape)

    @property
    def units(self) -> int:
        """Output units (channels) of the op: the size of its bias."""
        return output_units(self.use.op, self.kernel_shape)

    @property
    def bias_size(self) -> int:
        return 0 if self.use.bias == "none" else self.units


@dataclass(frozen=True)
class Plan:
    """A checked spec with all shapes inferred."""

    spec: ModelSpec
    uses: tuple[UsePlan, ...]
    node_shapes: dict[str, Shape]
    outputs: tuple[str, ...]
    output_shape: Shape

    def use(self, name: str) -> UsePlan:
        for u in self.uses:
            if u.use.name == name:
                return u
        raise KeyError(name)

    def group(self, tensor: str) -> tuple[UsePlan, ...]:
        """The uses that read shared tensor `tensor`, in model order."""
        return tuple(u for u in self.uses if u.use.tensor == tensor)

    @property
    def shared_tensors(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.spec.tensors)


@functools.lru_cache(maxsize=256)
def plan(spec: ModelSpec) -> Plan:
    """Checks `spec` and infers all shapes.

    Args:
        spec: the model spec.

    Returns:
        The `Plan` with every node's shape.

    Raises:
        ValueError: for any spec that cannot be built, naming the use and the fix.

    Specs are frozen and hashable, so the plan is memoised for the app, which asks again on
    every rerun. Treat the returned plan as read-only.

    Example:
        >>> from sharecore import preset
        >>> p = plan(preset("seed-dense"))  # W (10, 10) used by two dense layers in a chain
        >>> [(u.use.name, u.source, u.kernel_shape, u.out_shape) for u in p.uses]
        [('dense_1', 'input', (10, 10), (10,)), ('dense_2', 'dense_1', (10, 10), (10,))]
        >>> p.shared_tensors, p.output_shape
        (('W',), (10,))
    """
    tensors = {}
    for t in spec.tensors:
        if t.name in tensors:
            raise ValueError(f"shared tensor names must be unique; '{t.name}' appears twice. Received: {t.name!r}")
        if t.initializer == "orthogonal" and len(t.shape) < 2:
            # Keras would refuse it only at build time, with a message that does not name the tensor.
            raise ValueError(
                f"shared tensor '{t.name}' uses initializer 'orthogonal', which needs at least 2 dimensions, "
                f"but its shape is {t.shape}. Use another initializer such as 'glorot_uniform', or give "
                f"'{t.name}' 2 or more dimensions. Received: initializer='orthogonal', shape={t.shape}"
            )
        tensors[t.name] = t
    node_shapes: dict[str, Shape] = {INPUT_NODE: tuple(spec.input_shape)}
    bias_channels: dict[str | None, tuple[str, int]] = {}  # by tensor; only a use of a tensor shares a bias
    use_plans: list[UsePlan] = []
    previous = INPUT_NODE
    for u in spec.uses:
        where = f"use '{u.name}'"
        if u.name in node_shapes:
            raise ValueError(
                f"use names must be unique and not '{INPUT_NODE}'; '{u.name}' appears twice. Received: {u.name!r}"
            )
        if u.tensor is None and u.name in tensors:
            # Weights are keyed by shared tensor name or own-kernel use name (initial_values,
            # snapshots), so a clash made one silently overwrite the other and the build then failed.
            raise ValueError(
                f"{where} has its own kernel and the same name as shared tensor '{u.name}'; the weights "
                f"of both would be stored under one name. Rename the use or the tensor. Received: {u.name!r}"
            )
        source = u.source or previous
        if source not in node_shapes:
            earlier = list(node_shapes)
            raise ValueError(
                f"{where} reads node '{source}', which is not the input or an earlier use. "
                f"Pick one of {earlier}. Received: source={source!r}"
            )
        if u.tensor is None:
            if u.kernel_shape is None:
                raise ValueError(
                    f"{where} reads no shared tensor, so it needs its own kernel_shape, e.g. "
                    f"[3, 3, 3, 16] for conv2d or [10, 5] for dense; or set 'tensor' to one of "
                    f"{list(tensors)}. Received: tensor=None, kernel_shape=None"
                )
            if u.rule.kind != "identity":
                raise ValueError(
                    f"{where} has its own kernel, which is used as it is; rules apply to shared "
                    f"tensors. Use rule 'identity' or read a shared tensor. Received: rule={u.rule.describe()!r}"
                )
            if u.bias == "shared":
                raise ValueError(
                    f"{where} has bias 'shared' but reads no shared tensor. Use bias 'own' or "
                    f"'none'. Received: bias='shared'"
                )
            tensor_shape = u.kernel_shape
        else:
            if u.tensor not in tensors:
                raise ValueError(
                    f"{where} reads shared tensor '{u.tensor}', which is not declared. Declare it "
                    f"under 'tensors' or pick one of {list(tensors)}. Received: tensor={u.tensor!r}"
                )
            if u.kernel_shape is not None:
                raise ValueError(
                    f"{where} reads shared tensor '{u.tensor}', so its kernel shape comes from the "
                    f"tensor and its rule; remove kernel_shape. Received: kernel_shape={u.kernel_shape}"
                )
            tensor_shape = tensors[u.tensor].shape
        kernel_shape = rule_output_shape(u.rule, tensor_shape, where)
        in_shape = use_input_shape(u, source, node_shapes[source])
        check_tokens(spec, u, source, kernel_shape)
        out_shape = op_output_shape(u, in_shape, kernel_shape, source)
        if u.bias == "shared":
            channels = output_units(u.op, kernel_shape)
            first = bias_channels.setdefault(u.tensor, (u.name, channels))
            if first[1] != channels:
                raise ValueError(
                    f"{where} shares the bias of tensor '{u.tensor}' with use '{first[0]}', but "
                    f"has {channels} output units where '{first[0]}' has {first[1]}. Use bias "
                    f"'own'. Received: bias='shared'"
                )
        node_shapes[u.name] = out_shape
        use_plans.append(UsePlan(u, source, node_shapes[source], in_shape, tensor_shape, kernel_shape, out_shape))
        previous = u.name
    # A set, not any() per tensor: that was quadratic and took minutes on a large pasted spec.
    read = {u.use.tensor for u in use_plans}
    for name in tensors:
        if name not in read:
            raise ValueError(
                f"shared tensor '{name}' is declared but no use reads it. Remove it or set a use's "
                f"'tensor' to '{name}'. Received: tensors={list(tensors)}"
            )
    outputs = tuple(spec.outputs) or (previous,)
    for out in outputs:
        if out not in node_shapes:
            raise ValueError(
                f"output '{out}' is not a node of the model. Pick from {list(node_shapes)}. "
                f"Received: outputs={list(spec.outputs)}"
            )
    if len(set(outputs)) != len(outputs):
        raise ValueError(f"outputs must not repeat a node. Received: outputs={list(outputs)}")
    reached = set(outputs)
    for planned in reversed(use_plans):
        if planned.use.name in reached:
            reached.add(planned.source)
    dead = [u.use.name for u in use_plans if u.use.name not in reached]
    if dead:
        raise ValueError(
            f"use(s) {dead} do not lead to any output, so Keras would drop them and their weights. "
            f"Add them to 'outputs' or remove them. Received: outputs={list(outputs)}"
        )
    if len(outputs) == 1:
        output_shape = node_shapes[outputs[0]]
    else:
        output_shape = (sum(math.prod(node_shapes[o]) for o in outputs),)
    return Plan(spec, tuple(use_plans), node_shapes, outputs, output_shape)


def as_plan(spec: ModelSpec | Plan) -> Plan:
    """The plan of `spec`; a `Plan` is handed through as it is.

    Entry points (`build`, `train`, `check_limits`) plan once and hand the `Plan` down, so the
    functions below them take either and never plan the same spec again.
    """
    return spec if isinstance(spec, Plan) else plan(spec)


def validate(spec: ModelSpec) -> None:
    """Raises ValueError if `spec` cannot be built; returns None otherwise.

    Example:
        >>> from sharecore import ModelSpec
        >>> validate(ModelSpec.from_dict({
        ...     "input_shape": [5],
        ...     "tensors": [{"name": "W", "shape": [10, 5]}],
        ...     "uses": [{"name": "d", "op": "dense", "tensor": "W"}],
        ... }))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: use 'd' needs a kernel with 5 input rows to read the 5 features of 'input', but the shared tensor 'W' gives 10. Make 'W' square, ...
    """
    plan(spec)
