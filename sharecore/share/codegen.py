"""Writes a spec out as a standalone Keras script that a learner can copy and run.

The script needs only `keras`, `tensorflow` and `numpy`. It builds the same architecture as
`sharecore.build(spec, tied)`, with the same layer and weight names, so weights can be copied
between the two by `variable.path`. Its `SharedKernel` layer is the whole idea in ~50 lines:
one layer instance owns the variable and is called once per use; it is registered with
`keras.saving.register_keras_serializable`, so a saved model keeps the tie.

The text is deterministic and already in `ruff format` style at 88 columns, because the
dashboard shows it in `st.code` and learners paste it into their own projects.
"""

from __future__ import annotations

import builtins
import keyword
import math
import re
import textwrap
from dataclasses import dataclass, replace

from sharecore.core.params import param_report
from sharecore.core.plan import Plan, UsePlan, plan
from sharecore.core.shapes import rule_output_shape
from sharecore.core.spec import INPUT_NODE, ModelSpec, Rule

WIDTH = 88  # line length of the generated script (ruff's and black's default)
_INDENT = "    "
_PACKAGE = "weight_sharing"  # the registration package, "weight_sharing>SharedKernel"

_SHARED_KERNEL = f'''
@keras.saving.register_keras_serializable(package="{_PACKAGE}")
class SharedKernel(keras.layers.Layer):
    """Stores one kernel (and its biases) and applies it once per use.

    Calling one instance for several uses is the tie: its variable is stored, counted,
    trained and saved once, and the gradients of all its uses add up in it.

    Args:
        shape: the stored kernel shape.
        uses: the settings of each use, by use name: "op" ("embedding", whose
            kernel is (vocab, dim); "dense"; "conv2d"; or "conv2d_transpose", whose
            kernel is (kh, kw, c_out, c_in)); the view of
            the kernel it reads ("transpose": perm, "reshape": shape,
            "slice_begin" and "slice_size", "rot90": quarter turns in axes 0 and 1,
            or "flip": axis; or "views": a list of such views, applied in order;
            none reads the kernel as stored);
            "strides" and "padding" (the convs); "bias" ("own" or "shared", with
            "units"); "activation".
        initializer: the Keras initializer of the kernel.
    """

    def __init__(self, shape, uses, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.kernel_shape = tuple(shape)
        self.uses = uses
        self.initializer = initializer
        self.kernel = self.add_weight(
            name="kernel", shape=self.kernel_shape, initializer=initializer
        )
        self.own_biases = {{}}  # by use name
        self.shared_bias = None  # one bias for all the uses with bias "shared"
        for use, cfg in uses.items():
            if cfg.get("bias") == "own":
                self.own_biases[use] = self.add_weight(
                    name=f"bias_{{use}}", shape=(cfg["units"],), initializer="zeros"
                )
            elif cfg.get("bias") == "shared" and self.shared_bias is None:
                self.shared_bias = self.add_weight(
                    name="bias", shape=(cfg["units"],), initializer="zeros"
                )

    def call(self, x, use):
        cfg = self.uses[use]
        # Views are linear, so autodiff maps each use's gradient back into the kernel.
        k = self.kernel
        for view in cfg.get("views", [cfg]):  # one view, or several in order
            if "transpose" in view:
                k = tf.transpose(k, view["transpose"])
            if "reshape" in view:
                k = tf.reshape(k, view["reshape"])
            if "slice_begin" in view:
                k = tf.slice(k, view["slice_begin"], view["slice_size"])
            if "rot90" in view:  # keras.ops.rot90 scrambles non-square half turns
                k = tf.experimental.numpy.rot90(k, view["rot90"], axes=(0, 1))
            if "flip" in view:
                k = tf.reverse(k, [view["flip"]])
        if cfg["op"] == "embedding":
            # Row t of the (vocab, dim) table for token id t.
            y = tf.gather(k, tf.cast(x, "int32"))  # (batch, seq, dim)
        elif cfg["op"] == "dense":
            # tensordot runs one 2-D matmul: (batch * ..., in) @ (in, units)
            y = tf.tensordot(x, k, axes=1)  # (batch, ..., units)
        elif cfg["op"] == "conv2d_transpose":
            # conv2d's input gradient: it reads a conv2d kernel (kh, kw, a, b), as it
            # is, as the kernel of a transposed conv from b channels back to a.
            strides, padding = cfg.get("strides", 1), cfg.get("padding", "same")
            kh, kw, c_out, _ = k.shape
            h, w = x.shape[1] * strides, x.shape[2] * strides
            if padding == "valid":  # as keras.layers.Conv2DTranspose
                h, w = h + max(kh - strides, 0), w + max(kw - strides, 0)
            shape = tf.stack([tf.shape(x)[0], h, w, c_out])  # the op needs the batch
            y = tf.nn.conv2d_transpose(x, k, shape, strides, padding.upper())
        else:
            strides, padding = cfg.get("strides", 1), cfg.get("padding", "same")
            y = tf.nn.conv2d(x, k, strides, padding.upper())  # (batch, h, w, c_out)
        if cfg.get("bias") == "own":
            y = y + self.own_biases[use]
        elif cfg.get("bias") == "shared":
            y = y + self.shared_bias
        return keras.activations.get(cfg.get("activation", "linear"))(y)

    def get_config(self):
        config = {{"shape": list(self.kernel_shape), "uses": self.uses}}
        return {{**super().get_config(), **config, "initializer": self.initializer}}
'''

_SLICE_FEATURES = f'''
@keras.saving.register_keras_serializable(package="{_PACKAGE}")
class SliceFeatures(keras.layers.Layer):
    """Keeps features [start, stop) of each flattened sample; Lambda would not load."""

    def __init__(self, start, stop, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = start, stop

    def call(self, x):
        flat = tf.reshape(x, (tf.shape(x)[0], -1))  # (batch, features)
        return flat[:, self.start : self.stop]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.stop - self.start)

    def get_config(self):
        return {{**super().get_config(), "start": self.start, "stop": self.stop}}
'''

# Names the script defines or needs, which no spec name may shadow.
_RESERVED = frozenset(
    {"keras", "tf", "np", "SharedKernel", "SliceFeatures", "inputs", "outputs", "model", "x", "batch"}
    | set(keyword.kwlist)
    | set(keyword.softkwlist)
    | set(dir(builtins))
)


# ----------------------------------------------------------------------------- formatting
@dataclass(frozen=True)
class _Group:
    """A bracketed expression, laid out the way `ruff format` lays it out."""

    open: str  # e.g. 'SharedKernel(' or '{'
    items: tuple[tuple[str, _Group | str], ...]  # (prefix such as 'shape=', value)
    close: str
    explode: bool = False  # one item per line even if it fits (kept by the trailing comma)
    hug: bool = False  # when too long, may keep all items on one indented line (calls, not literals)


def _flat(e: _Group | str) -> str:
    if isinstance(e, str):
        return e
    return e.open + ", ".join(p + _flat(v) for p, v in e.items) + e.close


def _lines(prefix: str, e: _Group | str, suffix: str, depth: int) -> list[str]:
    """Lays out `prefix + e + suffix` at `depth` indents within WIDTH columns."""
    pad = _INDENT * depth
    one = pad + prefix + _flat(e) + suffix
    if isinstance(e, str) or not e.items or (len(one) <= WIDTH and not e.explode):
        return [one]
    body = _INDENT * (depth + 1) + ", ".join(p + _flat(v) for p, v in e.items)
    if len(body) <= WIDTH and e.hug and not e.explode:
        return [pad + prefix + e.open, body, pad + e.close + suffix]
    lines = [pad + prefix + e.open]
    for p, v in e.items:
        lines += _lines(p, v, ",", depth + 1)
    return [*lines, pad + e.close + suffix]


def _statement(target: str, e: _Group | str, comment: str = "") -> list[str]:
    """`target = e` with `comment` beside it: after its last line, or above a line it would overflow."""
    lines = _lines(f"{target} = " if target else "", e, "", 0)
    if not comment:
        return lines
    if len(lines[-1]) + len(comment) + 4 <= WIDTH:
        return [*lines[:-1], f"{lines[-1]}  # {comment}"]
    return [f"# {target}: {comment}" if target else f"# {comment}", *lines]


def _call(func: str, *args: _Group | str, explode: bool = False, **kwargs: _Group | str) -> _Group:
    items = tuple(("", a) for a in args) + tuple((f"{k}=", v) for k, v in kwargs.items())
    return _Group(f"{func}(", items, ")", explode, hug=True)


def _str(text: str) -> str:
    # Spec names match [A-Za-z][A-Za-z0-9_]*, so they never need escaping.
    return f'"{text}"'


def _tuple(values: tuple[int, ...]) -> str:
    return f"({values[0]},)" if len(values) == 1 else "(" + ", ".join(map(str, values)) + ")"


def _list(values: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, values)) + "]"


def _shape_comment(shape: tuple[int, ...]) -> str:
    return "(batch, " + ", ".join(map(str, shape)) + ")"


def _one_line(text: str) -> str:
    """Text made safe for a comment: printable characters, single spaces, no line breaks.

    Every line break Python, str.splitlines or an editor acts on (\\n, \\r, \\x0b, \\x0c,
    \\x1c-\\x1e, \\x85, U+2028, U+2029), NUL, bidi controls and lone surrogates are not
    printable, so none of them can end the comment or make the file fail to encode.
    """
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _identifier(name: str) -> str:
    # The same cleaning as sharecore.nn.model, so both models get the same name.
    cleaned = "".join(c if c.isalnum() else "_" for c in name)
    return cleaned if cleaned[:1].isalpha() else f"m_{cleaned}"


class _Names:
    """Hands out Python variable names that are unique and shadow nothing the script uses."""

    def __init__(self) -> None:
        self.taken = set(_RESERVED)
        self.nodes: dict[str, str] = {}

    def node(self, use: str) -> str:
        """The variable holding the output of `use` (the same name on every call)."""
        if use not in self.nodes:
            self.nodes[use] = self.new(use, f"{use}_out")
        return self.nodes[use]

    def new(self, *preferred: str) -> str:
        for name in preferred:
            if name not in self.taken:
                self.taken.add(name)
                return name
        base, n = preferred[-1], 2
        while f"{base}_{n}" in self.taken:
            n += 1
        self.taken.add(f"{base}_{n}")
        return f"{base}_{n}"


# ----------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class _KernelLayer:
    """One SharedKernel instance of the generated model."""

    keras_name: str  # as in sharecore.nn.model.layer_name, so weights match by path
    shape: tuple[int, ...]
    initializer: str
    uses: tuple[UsePlan, ...]
    tensor: str | None  # the shared tensor it stores (tied only)


def _kernel_layers(p: Plan, tied: bool) -> list[_KernelLayer]:
    initializers = {t.name: t.initializer for t in p.spec.tensors}
    layers: dict[str, _KernelLayer] = {}
    for u in p.uses:
        if u.use.tensor is None:
            name, shape, init = f"own_{u.use.name}", u.tensor_shape, "glorot_uniform"
        elif tied:
            name, shape, init = f"tensor_{u.use.tensor}", u.tensor_shape, initializers[u.use.tensor]
        else:  # an untied copy stores the kernel this use reads, with the rule already applied
            name, shape, init = f"copy_{u.use.name}", u.kernel_shape, initializers[u.use.tensor]
        if name in layers:
            layers[name] = replace(layers[name], uses=(*layers[name].uses, u))
        else:
            layers[name] = _KernelLayer(name, shape, init, (u,), u.use.tensor if tied else None)
    return list(layers.values())


def _view_settings(rule: Rule, tensor_shape: tuple[int, ...]) -> list[tuple[str, _Group | str]]:
    """The settings of the view a use reads: one view's keys, or "views" with each step's, in order."""
    views: list[tuple[tuple[str, str], ...]] = []
    shape = tensor_shape
    for step in rule.steps:
        if step.kind == "transpose":
            perm = step.perm if step.perm is not None else tuple(reversed(range(len(shape))))
            views.append((('"transpose": ', _list(perm)),))
        elif step.kind == "reshape":
            views.append((('"reshape": ', _list(step.shape)),))
        elif step.kind == "slice":
            views.append((('"slice_begin": ', _list(step.begin)), ('"slice_size": ', _list(step.size))))
        elif step.kind == "rot90":
            views.append((('"rot90": ', str(step.k)),))
        elif step.kind == "flip":
            views.append((('"flip": ', str(step.axis)),))
        # The shape the next step reads, for a transpose without a perm; plan has checked every step.
        shape = rule_output_shape(step, shape, "rule")
    if len(views) <= 1:  # identity steps write nothing: the kernel is read as it is
        return [item for view in views for item in view]
    return [('"views": ', _Group("[", tuple(("", _Group("{", view, "}")) for view in views), "]"))]


def _use_settings(u: UsePlan, tied: bool) -> _Group:
    """The `uses` entry of one use: only the settings that differ from the defaults."""
    use, rule = u.use, u.use.rule
    items: list[tuple[str, _Group | str]] = [('"op": ', _str(use.op))]
    if tied and u.shared:
        items += _view_settings(rule, u.tensor_shape)
    if use.op in ("conv2d", "conv2d_transpose"):
        if use.strides != 1:
            items.append(('"strides": ', str(use.strides)))
        if use.padding != "same":
            items.append(('"padding": ', _str(use.padding)))
    if use.bias != "none":
        # Untied copies cannot share a bias either: each use gets its own.
        bias = use.bias if tied else "own"
        items += [('"bias": ', _str(bias)), ('"units": ', str(u.units))]
    if use.activation != "linear":
        items.append(('"activation": ', _str(use.activation)))
    return _Group("{", tuple(items), "}")


def _trainable_weights(layers: list[_KernelLayer], tied: bool) -> int:
    count = 0
    for layer in layers:
        biases = [u.use.bias if tied else ("none" if u.use.bias == "none" else "own") for u in layer.uses]
        count += 1 + biases.count("own") + ("shared" in biases)
    return count


# Tools read settings out of comments: Python takes a PEP 263 encoding cookie
# (`# coding: unicode_escape`, also written `-*- coding: x -*-` or `vim: set fileencoding=x`)
# from line 1 or 2 and then decodes the whole file with it, which turned a description's
# printable `\u000a...` into a line of code; vim runs a modeline (`vim: set ...`) from the first
# or last five lines. So user text never reaches lines 1-2, and in every comment that holds it
# a space keeps `coding`, `vi`, `vim` and `ex` apart from a following ':' or '=': no line of
# the script then matches Python's `^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+` or a modeline,
# wherever a reader pastes it.
_DIRECTIVE = re.compile(r"(?i)(coding|(?<!\S)(?:vim?|ex)(?:[<=>]?\d+)?)(?=[:=])")


def _defused(text: str) -> str:
    return _DIRECTIVE.sub(r"\1 ", text)


def _comment_lines(text: str) -> list[str]:
    """User text as comment lines: one logical line, wrapped, never ending the comment or read as a directive."""
    # Defused before wrapping (so lines stay within WIDTH) and again after, because wrapping
    # may cut a long word right before 'vim:'.
    return [f"# {_defused(line)}" for line in textwrap.wrap(_defused(_one_line(text)), WIDTH - 2)]


def _header(spec: ModelSpec, tied: bool) -> list[str]:
    variant = "tied" if tied else "untied"
    # Lines 1 and 2 are fixed text: Python reads an encoding cookie only there (see _DIRECTIVE).
    lines = [f"# Weight sharing in Keras 3: the {variant} model of a spec, as a standalone script.", "#"]
    lines += _comment_lines(f"Spec '{spec.name}'.")
    lines += _comment_lines(spec.description)
    how = (
        "Tied: each shared tensor lives in one SharedKernel layer that is called once per "
        "use, so its variable is stored, counted, trained and saved once."
        if tied
        else "Untied: every use gets its own SharedKernel layer, holding its own copy of the "
        "kernel it reads, so nothing is shared. Compare it with the tied script."
    )
    saving = "keep the tie" if tied else "restore the model"
    fixed = [
        "",
        *textwrap.wrap(how, WIDTH - 2),
        *textwrap.wrap(
            f"SharedKernel is registered, so model.save and keras.saving.load_model {saving}. "
            "Needs only keras, tensorflow and numpy.",
            WIDTH - 2,
        ),
    ]
    return lines + [f"# {line}".rstrip() for line in fixed]


def keras_code(spec: ModelSpec, tied: bool = True) -> str:
    """A standalone Python script that builds the Keras model of `spec`.

    The script imports only `keras`, `tensorflow` and `numpy`. It defines a `SharedKernel`
    layer (one instance owns a variable and is called once per use) and builds the same
    functional model as `sharecore.build(spec, tied)`, with the same layer and weight
    names, so `variable.path` matches between the two. Run as a script, it prints
    `model.count_params()` and the output shape on a random batch.

    Args:
        spec: the model spec.
        tied: one layer per shared tensor (True), or one layer per use (False).

    Returns:
        The script's source text, formatted for 88 columns and ending in a newline. The
        same spec always gives the same text.

    Raises:
        ValueError: if the spec cannot be built (from `sharecore.core.plan.plan`).
    """
    p = plan(spec)
    report = param_report(spec)
    layers = _kernel_layers(p, tied)
    names = _Names()
    # Uses first: their names are the ones a reader follows through the graph.
    for u in p.uses:
        names.node(u.use.name)
    layer_vars = {layer.keras_name: names.new(*filter(None, [layer.tensor]), layer.keras_name) for layer in layers}

    out = [*_header(spec, tied), "", "import keras", "import numpy as np", "import tensorflow as tf", "", ""]
    out += _SHARED_KERNEL.strip("\n").split("\n")
    if any(u.use.input_slice is not None for u in p.uses):
        out += ["", "", *_SLICE_FEATURES.strip("\n").split("\n")]
    out += ["", "", *_layer_lines(layers, layer_vars, tied), ""]
    out += _wiring_lines(p, layers, layer_vars, names, tied)
    count = report.tied_total if tied else report.untied_total
    batch_shape = (4, *spec.input_shape)
    if spec.input_vocab:  # token ids
        batch = _call("np.random.default_rng(0).integers", "0", str(spec.input_vocab), _tuple(batch_shape))
    else:
        batch = _call("np.random.default_rng(0).standard_normal", _tuple(batch_shape), dtype='"float32"')
    out += [
        "",
        'if __name__ == "__main__":',
        f'    print("count_params:", model.count_params())  # {count}',
        f'    print("trainable weights:", len(model.trainable_weights))  # {_trainable_weights(layers, tied)}',
        *[_INDENT + line for line in _lines("batch = ", batch, "", 0)],
        f'    print("output shape:", tuple(model(batch).shape))  # {_tuple((4, *p.output_shape))}',
    ]
    return "\n".join(out) + "\n"


def _layer_lines(layers: list[_KernelLayer], layer_vars: dict[str, str], tied: bool) -> list[str]:
    """The SharedKernel instances: one per shared tensor (tied) or one per use (untied)."""
    if tied:
        out = ["# The tie: one layer per shared tensor, called once by each use that reads it."]
    else:
        out = ["# Untied: one layer per use, each with its own copy of the kernel it reads."]
    for layer in layers:
        settings = tuple((f"{_str(u.use.name)}: ", _use_settings(u, tied)) for u in layer.uses)
        kwargs: dict[str, _Group | str] = {"shape": _tuple(layer.shape), "uses": _Group("{", settings, "}", True)}
        if layer.initializer != "glorot_uniform":
            kwargs["initializer"] = _str(layer.initializer)
        constructor = _call("SharedKernel", **kwargs, name=_str(layer.keras_name), explode=True)
        out += _statement(layer_vars[layer.keras_name], constructor)
    return out


def _wiring_lines(
    p: Plan, layers: list[_KernelLayer], layer_vars: dict[str, str], names: _Names, tied: bool
) -> list[str]:
    """The functional graph, one line per layer call, each with its output shape."""
    layer_of = {u.use.name: layer_vars[layer.keras_name] for layer in layers for u in layer.uses}
    node_vars = {INPUT_NODE: "inputs"} | {u.use.name: names.node(u.use.name) for u in p.uses}
    input_shape = tuple(p.spec.input_shape)
    if p.spec.input_vocab:  # token ids, which the embedding looks up
        inputs = _call("keras.Input", shape=_tuple(input_shape), dtype='"int32"', name=_str(INPUT_NODE))
    else:
        inputs = _call("keras.Input", shape=_tuple(input_shape), name=_str(INPUT_NODE))
    out = _statement("inputs", inputs, _shape_comment(input_shape))
    for u in p.uses:
        use, x = u.use, node_vars[u.source]
        if use.input_slice is not None:
            start, stop = use.input_slice
            layer = _call("SliceFeatures", str(start), str(stop), name=_str(f"slice_{use.name}"))
            out += _statement("x", _call(_flat(layer), x), _shape_comment((stop - start,)))
            x = "x"
        if use.input_reshape is not None:
            layer = _call("keras.layers.Reshape", _tuple(use.input_reshape), name=_str(f"reshape_{use.name}"))
            out += _statement("x", _call(_flat(layer), x), _shape_comment(use.input_reshape))
            x = "x"
        call = _call(layer_of[use.name], x, use=_str(use.name))
        out += _statement(node_vars[use.name], call, _shape_comment(u.out_shape))

    if len(p.outputs) == 1:
        result = node_vars[p.outputs[0]]
    else:  # as sharecore.build: flatten each output and concatenate them
        parts = []
        for o in p.outputs:
            shape = p.node_shapes[o]
            if len(shape) == 1:  # already flat; Flatten would be a no-op
                parts.append(node_vars[o])
                continue
            parts.append(names.new(f"{node_vars[o]}_flat"))
            flatten = _call(f'keras.layers.Flatten(name="flat_{o}")', node_vars[o])
            out += _statement(parts[-1], flatten, _shape_comment((math.prod(shape),)))
        concat = _call(
            'keras.layers.Concatenate(name="concat_outputs")', _Group("[", tuple(("", v) for v in parts), "]")
        )
        out += _statement("outputs", concat, _shape_comment(p.output_shape))
        result = "outputs"
    model_name = f"{_identifier(p.spec.name)}_{'tied' if tied else 'untied'}"
    return out + _statement("model", _call("keras.Model", "inputs", result, name=_str(model_name)))
