"""The shape arithmetic of rules and ops: the kernel a rule makes from a stored tensor, and what each op
makes of its input, with a `ValueError` that names the use, the shapes and a fix when they do not fit.

`sharecore.core.plan.plan` walks a spec's uses through these; the Keras layers (`conv_transpose_length`)
and the diagrams (`rule_output_shape`) use them too. Plain Python.
"""

from __future__ import annotations

import math

from sharecore.core.spec import INPUT_NODE, MAX_INT, ModelSpec, Rule, Use

Shape = tuple[int, ...]


def output_units(op: str, kernel_shape: Shape) -> int:
    """The output units (channels) of `op` with a kernel of `kernel_shape`: the size of its bias.

    Every op's kernel ends in its output units except conv2d_transpose, whose kernel is
    tf.nn.conv2d_transpose's filter (kh, kw, c_out, c_in): its outputs are on axis -2.
    """
    return kernel_shape[-2] if op == "conv2d_transpose" else kernel_shape[-1]


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


def use_input_shape(u: Use, source: str, shape: Shape) -> Shape:
    """The shape a use's op reads: the source's `shape` after the use's input_slice and input_reshape."""
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


def check_tokens(spec: ModelSpec, u: Use, source: str, kernel: Shape) -> None:
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


def op_output_shape(u: Use, in_shape: Shape, kernel: Shape, source: str) -> Shape:
    """The per-sample output shape of use `u`'s op on an input of `in_shape` with a kernel of `kernel`, or a ValueError.

    Args:
        u: the use; its op, strides and padding, and for messages its name, tensor and rule.
        in_shape: what the op reads (`use_input_shape`).
        kernel: the kernel the op uses, after the rule (`rule_output_shape`).
        source: the node it reads, for messages.
    """
    where = f"use '{u.name}'"
    if u.op == "embedding":
        return (*in_shape, kernel[1])  # (seq, dim): one row of the table per token
    if u.op == "dense":
        if u.strides != 1 or u.padding != "same":
            raise ValueError(
                f"{where}: strides and padding apply to conv2d and conv2d_transpose only; leave them "
                f"at 1 and 'same' for dense. Received: strides={u.strides}, padding={u.padding!r}"
            )
        return _dense_out(u, in_shape, kernel, source)
    if u.op == "conv2d_transpose":
        return _conv_transpose_out(u, in_shape, kernel, source)
    return _conv_out(u, in_shape, kernel, source)
