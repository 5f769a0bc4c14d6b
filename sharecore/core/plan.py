"""Checks a spec and infers every shape, in plain Python, before any TensorFlow work.

`plan(spec)` either returns a `Plan` (every node's shape, every use's kernel shape and
which uses share which tensor) or raises a `ValueError` that names the use, the shapes
received and a fix.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from sharecore.core.spec import INPUT_NODE, MAX_INT, ModelSpec, Rule, Use

Shape = tuple[int, ...]


def output_units(op: str, kernel_shape: Shape) -> int:
    """The output units (channels) of `op` with a kernel of `kernel_shape`: the size of its bias.

    Every op's kernel ends in its output units except conv2d_transpose, whose kernel is
    tf.nn.conv2d_transpose's filter (kh, kw, c_out, c_in): its outputs are on axis -2.
    """
    return kernel_shape[-2] if op == "conv2d_transpose" else kernel_shape[-1]


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


def rule_output_shape(rule: Rule, shape: Shape, where: str) -> Shape:
    """The kernel shape that `rule` makes from a tensor of `shape`, or a ValueError."""
    if rule.kind == "identity":
        return shape
    if rule.kind == "compose":
        if not rule.steps:
            raise ValueError(
                f"{where}: a composed rule needs at least one step, e.g. a slice then a transpose. "
                f"Received: rule={rule.to_dict()}"
            )
        for i, step in enumerate(rule.steps):
            # A step reads the previous step's output, so the message names the step and that shape.
            shape = rule_output_shape(
                step, shape, f"{where}: step {i} ('{step.describe()}') of the composed rule, on shape {shape}"
            )
        return shape
    if rule.kind == "rot90":
        if isinstance(rule.k, bool) or not isinstance(rule.k, int):
            raise ValueError(
                f"{where}: rule 'rot90' needs k, a whole number of quarter turns, e.g. 1. Received: k={rule.k!r}"
            )
        if len(shape) < 2:
            raise ValueError(
                f"{where}: rule 'rot90' turns the first two (spatial) axes, so it needs a tensor of at least "
                f"2 axes, but this one has {len(shape)}. Use rule 'flip' on a vector, or reshape it first in a "
                f"composed rule. Received: k={rule.k}, tensor shape={shape}"
            )
        # An odd number of quarter turns swaps the two axes it turns.
        return (shape[1], shape[0], *shape[2:]) if rule.k % 2 else shape
    if rule.kind == "flip":
        rank = len(shape)
        if isinstance(rule.axis, bool) or not isinstance(rule.axis, int) or not -rank <= rule.axis < rank:
            raise ValueError(
                f"{where}: rule 'flip' needs an axis from {-rank} to {rank - 1}, one of the tensor's {rank} "
                f"axes. Received: axis={rule.axis!r}, tensor shape={shape}"
            )
        return shape
    if rule.kind == "transpose":
        perm = rule.perm if rule.perm is not None else tuple(reversed(range(len(shape))))
        if sorted(perm) != list(range(len(shape))):
            raise ValueError(
                f"{where}: rule 'transpose' needs a perm that orders all {len(shape)} axes of the "
                f"tensor, e.g. {list(reversed(range(len(shape))))}. Received: perm={perm}, tensor shape={shape}"
            )
        return tuple(shape[p] for p in perm)
    if rule.kind == "reshape":
        target = rule.shape or ()
        if math.prod(target) != math.prod(shape):
            raise ValueError(
                f"{where}: rule 'reshape' must keep the number of elements, but the tensor has "
                f"{math.prod(shape)} ({shape}) and the target has {math.prod(target)} ({target}). "
                f"Pick a target whose dimensions multiply to {math.prod(shape)}. "
                f"Received: tensor shape={shape}, target={target}"
            )
        return target
    # slice
    begin, size = rule.begin or (), rule.size or ()
    if len(begin) != len(shape) or len(size) != len(shape):
        raise ValueError(
            f"{where}: rule 'slice' needs one begin and one size per tensor axis ({len(shape)} axes). "
            f"Received: begin={begin}, size={size}, tensor shape={shape}"
        )
    for axis, (b, s, n) in enumerate(zip(begin, size, shape)):
        if b + s > n:
            raise ValueError(
                f"{where}: rule 'slice' reaches index {b + s - 1} on axis {axis}, but the tensor has "
                f"only {n} there. Make begin + size <= {n}. Received: begin={begin}, size={size}, "
                f"tensor shape={shape}"
            )
    return size


def _input_shape(u: Use, source: str, shape: Shape) -> Shape:
    where = f"use '{u.name}'"
    flat = math.prod(shape)
    if u.input_slice is not None:
        start, stop = u.input_slice
        if not start < stop <= flat:
            raise ValueError(
                f"{where}: input_slice must satisfy start < stop <= {flat} (the {flat} flattened "
                f"features of '{source}'). Received: input_slice={list(u.input_slice)}, "
                f"'{source}' shape={shape}"
            )
        flat = stop - start
        shape = (flat,)
    if u.input_reshape is not None:
        if math.prod(u.input_reshape) != flat:
            raise ValueError(
                f"{where}: input_reshape must keep the {flat} input features, but "
                f"{u.input_reshape} holds {math.prod(u.input_reshape)}. Pick a shape whose "
                f"dimensions multiply to {flat}. Received: input shape={shape}, "
                f"input_reshape={u.input_reshape}"
            )
        shape = u.input_reshape
    return shape


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _kernel_origin(u: Use) -> str:
    return f"the shared tensor '{u.tensor}'" if u.tensor else "its own kernel"


def _dense_out(u: Use, in_shape: Shape, kernel: Shape, source: str) -> Shape:
    where = f"use '{u.name}'"
    if len(kernel) != 2:
        hint = (
            f"Use rule reshape to ({math.prod(kernel[:-1])}, {kernel[-1]}) to flatten it."
            if len(kernel) > 2
            else "A dense kernel is (inputs, units)."
        )
        raise ValueError(
            f"{where}: op 'dense' needs a 2-D kernel (inputs, units), but {_kernel_origin(u)} gives "
            f"a {len(kernel)}-D kernel {kernel} under rule '{u.rule.describe()}'. {hint} "
            f"Received: kernel shape={kernel}"
        )
    if in_shape[-1] != kernel[0]:
        rows, cols = kernel
        fixes = []
        if u.tensor and in_shape[-1] == cols and u.rule.kind == "identity":
            fixes.append(
                f"make '{u.tensor}' square, e.g. ({rows}, {rows}) or ({cols}, {cols}), "
                f"or use rule 'transpose' so the kernel is ({cols}, {rows})"
            )
        elif u.tensor:
            fixes.append(f"give '{u.tensor}' {in_shape[-1]} input rows, or feed this use {rows} features")
        else:
            fixes.append(f"set kernel_shape to ({in_shape[-1]}, {cols})")
        if len(in_shape) > 1:
            fixes.append(f"flatten the input with input_reshape [{math.prod(in_shape)}]")
        raise ValueError(
            f"{where} needs a kernel with {in_shape[-1]} input rows to read the {in_shape[-1]} "
            f"features of '{source}', but {_kernel_origin(u)} gives {rows}. "
            f"{_sentence('; or '.join(fixes))}. "
            f"Received: input shape={in_shape}, kernel shape={kernel}"
        )
    return in_shape[:-1] + (kernel[1],)


def _check_conv_ranks(u: Use, in_shape: Shape, kernel: Shape, source: str, layout: str, hint: str) -> None:
    """A convolution (conv2d or conv2d_transpose) needs a 4-D kernel and an image input.

    Args:
        layout: the kernel's axes as the message names them, e.g. 'height, width, in_channels, out_channels'.
        hint: what to do with a 2-D kernel (read through rule reshape as a 1x1 kernel).
    """
    where = f"use '{u.name}'"
    if len(kernel) != 4:
        raise ValueError(
            f"{where}: op '{u.op}' needs a 4-D kernel ({layout}), but {_kernel_origin(u)} gives a "
            f"{len(kernel)}-D kernel {kernel} under rule '{u.rule.describe()}'.{hint if len(kernel) == 2 else ''} "
            f"Received: kernel shape={kernel}"
        )
    if len(in_shape) != 3:
        raise ValueError(
            f"{where}: op '{u.op}' reads images (height, width, channels), but '{source}' gives "
            f"shape {in_shape}. Set input_reshape, e.g. [1, 1, {math.prod(in_shape)}]. "
            f"Received: input shape={in_shape}"
        )


def _conv_out(u: Use, in_shape: Shape, kernel: Shape, source: str) -> Shape:
    where = f"use '{u.name}'"
    hint = (
        f" Use rule reshape to (1, 1, {kernel[0]}, {kernel[-1]}) for a 1x1 conv; it then computes exactly the dense op."
    )
    _check_conv_ranks(u, in_shape, kernel, source, "height, width, in_channels, out_channels", hint)
    kh, kw, c_in, c_out = kernel
    h, w, c = in_shape
    if c != c_in:
        fix = (
            f"Make the kernel's input and output channels equal, e.g. ({kh}, {kw}, {c}, {c}), "
            f"or put an unshared conv before it that maps {c} channels to {c_in}"
            if u.tensor
            else f"Set kernel_shape to ({kh}, {kw}, {c}, {c_out})"
        )
        raise ValueError(
            f"{where} receives {c} channels from '{source}', but {_kernel_origin(u)} expects "
            f"{c_in} input channels. {fix}. Received: input shape={in_shape}, kernel shape={kernel}"
        )
    s = u.strides
    if u.padding == "same":
        return (math.ceil(h / s), math.ceil(w / s), c_out)
    if h < kh or w < kw:
        raise ValueError(
            f"{where}: a {kh}x{kw} kernel with padding 'valid' does not fit the {h}x{w} input from "
            f"'{source}'. Use padding 'same' or a smaller kernel. Received: input shape={in_shape}, "
            f"kernel shape={kernel}"
        )
    return ((h - kh) // s + 1, (w - kw) // s + 1, c_out)


def conv_transpose_length(length: int, kernel: int, stride: int, padding: str) -> int:
    """One spatial output length of conv2d_transpose, as `keras.layers.Conv2DTranspose` has it.

    'same': `length * stride`; 'valid': `(length - 1) * stride + kernel`, or `length * stride`
    when the stride is wider than the kernel. Either way a conv2d with the same kernel, strides
    and padding maps the output back to `length`; a decoder restores its encoder's input size
    when that size divides by the stride (7 -> 4 -> 8 at stride 2).
    `length` may be a scalar tensor (an unknown spatial size at trace time).
    """
    if padding == "same":
        return length * stride
    return length * stride + max(kernel - stride, 0)


def _conv_transpose_out(u: Use, in_shape: Shape, kernel: Shape, source: str) -> Shape:
    where = f"use '{u.name}'"
    hint = (
        f" Use rule reshape to (1, 1, {kernel[0]}, {kernel[-1]}) for a 1x1 transposed conv "
        f"from {kernel[-1]} channels to {kernel[0]}."
    )
    _check_conv_ranks(u, in_shape, kernel, source, "height, width, out_channels, in_channels", hint)
    # tf.nn.conv2d_transpose's filter layout: the last axis is the *input* channels. A conv2d
    # kernel (kh, kw, a, b) maps a channels to b; read as it is by this op it maps b back to a.
    kh, kw, c_out, c_in = kernel
    h, w, c = in_shape
    if c != c_in:
        if not u.tensor:
            fix = f"Set kernel_shape to ({kh}, {kw}, {c_out}, {c})"
        elif c == c_out:
            fix = (
                f"A conv2d_transpose kernel is (height, width, out_channels, in_channels), the reverse "
                f"of conv2d's: feed this use the {c_in}-channel output of a conv2d that reads "
                f"'{u.tensor}', or use rule transpose with perm [0, 1, 3, 2] to read {c} input channels"
            )
        else:
            fix = f"Give '{u.tensor}' {c} channels on its last axis, or feed this use {c_in} channels"
        raise ValueError(
            f"{where} receives {c} channels from '{source}', but {_kernel_origin(u)} expects {c_in} "
            f"input channels on its last axis. {fix}. Received: input shape={in_shape}, kernel shape={kernel}"
        )
    out_h = conv_transpose_length(h, kh, u.strides, u.padding)
    out_w = conv_transpose_length(w, kw, u.strides, u.padding)
    if max(out_h, out_w) > MAX_INT:
        raise ValueError(
            f"{where}: strides {u.strides} make the output {out_h}x{out_w}, larger than the {MAX_INT} "
            f"TensorFlow takes per dimension. Use smaller strides (or a smaller input or kernel). "
            f"Received: strides={u.strides}, input shape={in_shape}, kernel shape={kernel}"
        )
    return (out_h, out_w, c_out)


def _check_tokens(spec: ModelSpec, u: Use, source: str, kernel: Shape) -> None:
    """Token ids feed embeddings, and only embeddings: a (vocab, dim) table with one row per token id."""
    where = f"use '{u.name}'"
    if u.op != "embedding":
        if source == INPUT_NODE and spec.input_vocab is not None:
            raise ValueError(
                f"{where}: op '{u.op}' reads the input, which holds token ids (input_vocab "
                f"{spec.input_vocab}), not features. Put an 'embedding' use first and read its output. "
                f"Received: op={u.op!r}, source='input'"
            )
        return
    if u.input_slice is not None or u.input_reshape is not None:
        raise ValueError(
            f"{where}: op 'embedding' looks up each token id as it is; remove input_slice and "
            f"input_reshape. Received: input_slice={u.input_slice}, input_reshape={u.input_reshape}"
        )
    if source != INPUT_NODE:
        raise ValueError(
            f"{where}: op 'embedding' reads token ids, which only the input holds, but its source is "
            f"'{source}', whose output is floats. Set its source to 'input'. Received: source={source!r}"
        )
    if spec.input_vocab is None:
        raise ValueError(
            f"{where}: op 'embedding' reads token ids, but the input holds float features. Give the spec "
            f"an input_vocab (the number of token ids). Received: input_vocab=None"
        )
    if len(spec.input_shape) != 1:
        raise ValueError(
            f"{where}: token ids come as one sequence per sample, shape (seq,). Received: "
            f"input_shape={spec.input_shape}"
        )
    if len(kernel) != 2:
        raise ValueError(
            f"{where}: op 'embedding' needs a 2-D table (vocab, dim), but {_kernel_origin(u)} gives "
            f"{kernel} under rule '{u.rule.describe()}'. Received: kernel shape={kernel}"
        )
    if kernel[0] != spec.input_vocab:
        if kernel[1] != spec.input_vocab:
            fix = f"Give the table {spec.input_vocab} rows"
        elif u.rule.kind == "transpose":
            fix = "Remove rule 'transpose': an embedding reads the table as (vocab, dim)"
        else:
            fix = "Use rule 'transpose'"
        raise ValueError(
            f"{where}: the input has {spec.input_vocab} token ids (input_vocab), so the table needs "
            f"{spec.input_vocab} rows, but {_kernel_origin(u)} gives {kernel[0]}. {fix}, or set "
            f"input_vocab to {kernel[0]}. Received: kernel shape={kernel}, input_vocab={spec.input_vocab}"
        )
    if u.strides != 1 or u.padding != "same":
        raise ValueError(
            f"{where}: strides and padding apply to convolutions; leave them at 1 and 'same' for an "
            f"embedding. Received: strides={u.strides}, padding={u.padding!r}"
        )
    if u.bias != "none":
        raise ValueError(
            f"{where}: an embedding looks rows up and adds no bias; set bias 'none'. Received: bias={u.bias!r}"
        )


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
    bias_channels: dict[str, tuple[str, int]] = {}
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
        in_shape = _input_shape(u, source, node_shapes[source])
        _check_tokens(spec, u, source, kernel_shape)
        if u.op == "embedding":
            out_shape = (*in_shape, kernel_shape[1])  # (seq, dim): one row of the table per token
        elif u.op == "dense":
            if u.strides != 1 or u.padding != "same":
                raise ValueError(
                    f"{where}: strides and padding apply to conv2d and conv2d_transpose only; leave them "
                    f"at 1 and 'same' for dense. Received: strides={u.strides}, padding={u.padding!r}"
                )
            out_shape = _dense_out(u, in_shape, kernel_shape, source)
        elif u.op == "conv2d_transpose":
            out_shape = _conv_transpose_out(u, in_shape, kernel_shape, source)
        else:
            out_shape = _conv_out(u, in_shape, kernel_shape, source)
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
    for u in reversed(use_plans):
        if u.use.name in reached:
            reached.add(u.source)
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
    """Raises ValueError if `spec` cannot be built; returns None otherwise."""
    plan(spec)
