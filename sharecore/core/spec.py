"""The model spec: frozen, hashable, JSON-serializable.

A spec is plain data that a user can write by hand, put in a URL and download.
It never touches TensorFlow; `sharecore.core.plan.plan(spec)` checks it and infers every
shape before any TensorFlow work happens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sharecore.core.fields import (
    INPUT_NODE,
    MAX_INT,
    check_choice,
    check_int,
    check_keys,
    check_name,
    check_shape,
    check_text,
    check_whole,
    fail,
    jsonable,
)

OPS = ("dense", "conv2d", "embedding", "conv2d_transpose")
RULES = ("identity", "transpose", "reshape", "slice", "rot90", "flip", "compose")
ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "gelu", "elu", "softplus")
INITIALIZERS = (
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_normal",
    "orthogonal",
    "random_normal",
)
BIAS_POLICIES = ("none", "own", "shared")
PADDINGS = ("same", "valid")
MAX_NAME_CHARS = 80  # a spec's name: one line of text
MAX_DESCRIPTION_CHARS = 2000  # its description: may break lines with \n
MAX_RULE_STEPS = 16  # steps in one composed rule: more is never needed and only slows every check


@dataclass(frozen=True)
class Rule:
    """How a use turns a shared tensor into its own kernel.

    Every rule is linear (a view), so a use's gradient maps back into the shared
    tensor's shape exactly. A 'compose' rule applies its steps in order (for example a
    slice, then a transpose); its steps are never composed themselves (`from_dict`
    flattens one level of nesting).

    A 'rot90' rule keeps `k % 4`: rotating by k and by k % 4 give the same kernel, and
    one form per view makes equal rules equal specs (one cache entry, one URL). So
    ``{"kind": "rot90", "k": -1}`` reads back as ``k=3``, which `numpy.rot90` agrees with.
    """

    kind: str = "identity"  # 'identity' | 'transpose' | 'reshape' | 'slice' | 'rot90' | 'flip' | 'compose'
    shape: tuple[int, ...] | None = None  # reshape: the target kernel shape
    perm: tuple[int, ...] | None = None  # transpose: axis order; None reverses the axes
    begin: tuple[int, ...] | None = None  # slice: first index on each axis
    size: tuple[int, ...] | None = None  # slice: extent on each axis
    k: int | None = None  # rot90: quarter turns from axis 0 towards axis 1, as numpy.rot90; stored as k % 4
    axis: int | None = None  # flip: the axis to reverse; negative counts from the last axis, as in NumPy
    rules: tuple[Rule, ...] | None = None  # compose: the steps, applied in order

    def __post_init__(self) -> None:
        if self.kind == "rot90" and isinstance(self.k, int) and not isinstance(self.k, bool):
            object.__setattr__(self, "k", self.k % 4)

    @property
    def box(self) -> tuple[tuple[int, int], ...]:
        """A slice's [start, stop) on each axis of the stored tensor."""
        return tuple((b, b + s) for b, s in zip(self.begin or (), self.size or ()))

    @property
    def steps(self) -> tuple[Rule, ...]:
        """The single (not composed) rules this rule applies, in order: itself, or a composed rule's steps."""
        if self.kind != "compose":
            return (self,)
        return tuple(step for rule in self.rules or () for step in rule.steps)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for key in ("shape", "perm", "begin", "size"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value)
        for key in ("k", "axis"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.rules is not None:
            out["rules"] = [step.to_dict() for step in self.steps]
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "rule") -> Rule:
        """Reads a rule from a dict, from a bare name such as ``"transpose"``, or from a list.

        A list of rules is the composed rule of those steps, as is ``{"kind": "compose",
        "rules": [...]}``: ``[{"kind": "slice", "begin": [0, 0], "size": [4, 4]}, "transpose"]``.

        Raises:
            ValueError: naming the field (and the step of a composed rule), what was received
                and the allowed values.
        """
        return cls._from_dict(data, where, depth=0)

    @classmethod
    def _from_dict(cls, data: Any, where: str, depth: int) -> Rule:
        """`from_dict` at nesting `depth`: a composed rule's steps are read at depth + 1."""
        steps_where = where if isinstance(data, list) else f"{where}.rules"
        if isinstance(data, str):
            data = {"kind": data}
        elif isinstance(data, list):
            data = {"kind": "compose", "rules": data}
        check_keys(where, data, cls, ("kind",))
        kind = check_choice(f"{where}.kind", data["kind"], RULES)
        allowed = {
            "identity": (),
            "transpose": ("perm",),
            "reshape": ("shape",),
            "slice": ("begin", "size"),
            "rot90": ("k",),
            "flip": ("axis",),
            "compose": ("rules",),
        }[kind]
        extra = sorted(k for k in data if k != "kind" and k not in allowed)
        if extra:
            raise fail(where, f"rule '{kind}' takes only {list(allowed) or 'no options'}.", data)
        kwargs: dict[str, Any] = {"kind": kind}
        if kind == "reshape":
            if "shape" not in data:
                raise fail(where, "rule 'reshape' needs a target 'shape', e.g. [1, 1, 10, 5].", data)
            kwargs["shape"] = check_shape(f"{where}.shape", data["shape"])
        if kind == "transpose" and data.get("perm") is not None:
            kwargs["perm"] = check_shape(f"{where}.perm", data["perm"], minimum=0)
        if kind == "slice":
            if "begin" not in data or "size" not in data:
                raise fail(where, "rule 'slice' needs 'begin' and 'size' lists, one entry per axis.", data)
            kwargs["begin"] = check_shape(f"{where}.begin", data["begin"], minimum=0)
            kwargs["size"] = check_shape(f"{where}.size", data["size"])
        if kind == "rot90":
            # numpy.rot90's default: one quarter turn.
            kwargs["k"] = check_whole(f"{where}.k", data.get("k", 1), "1 (a quarter turn) or -1 (back)")
        if kind == "flip":
            if "axis" not in data:
                raise fail(where, "rule 'flip' needs the 'axis' to reverse, e.g. 0.", data)
            kwargs["axis"] = check_whole(f"{where}.axis", data["axis"], "0 (the first axis)", bound=MAX_INT)
        if kind == "compose":
            kwargs["rules"] = cls._compose_steps(data, data.get("rules"), where, steps_where, depth)
        return cls(**kwargs)

    @classmethod
    def _compose_steps(cls, data: dict, steps: Any, where: str, steps_where: str, depth: int) -> tuple[Rule, ...]:
        """The steps of a composed rule, with a composed step replaced by its own steps."""
        if not isinstance(steps, list) or not steps:
            raise fail(
                steps_where,
                "a composed rule needs a non-empty list of rules, applied in order, e.g. "
                '[{"kind": "slice", "begin": [0, 0], "size": [4, 4]}, "transpose"].',
                steps,
            )
        if depth > 1:
            # One level is flattened; deeper nesting adds nothing and would let a link recurse without end.
            raise fail(
                where,
                "composed rules nest one level deep at most. Write this rule's steps into the list that holds it.",
                data,
            )
        flat: list[Rule] = []
        if len(steps) <= MAX_RULE_STEPS:
            for i, step in enumerate(steps):
                flat += cls._from_dict(step, f"{steps_where}[{i}]", depth + 1).steps
        if len(steps) > MAX_RULE_STEPS or len(flat) > MAX_RULE_STEPS:
            raise fail(
                steps_where,
                f"a composed rule holds at most {MAX_RULE_STEPS} steps (counting the steps of a composed step). "
                "Merge steps, e.g. two transposes into one.",
                f"{max(len(steps), len(flat))} steps",
            )
        return tuple(flat)

    def describe(self) -> str:
        """A short human label, e.g. ``reshape (1, 1, 10, 5)``."""
        if self.kind == "reshape":
            return f"reshape {self.shape}"
        if self.kind == "transpose" and self.perm is not None:
            return f"transpose {self.perm}"
        if self.kind == "slice":
            return f"slice begin={self.begin} size={self.size}"
        if self.kind == "rot90":
            return f"rot90 k={self.k}"
        if self.kind == "flip":
            return f"flip axis={self.axis}"
        if self.kind == "compose":
            # ' then ', not an arrow: tensor views and diagrams already use '→' for "gives".
            return " then ".join(step.describe() for step in self.steps) or "compose"
        return self.kind


# ----------------------------------------------------------------------------- tensors and uses
@dataclass(frozen=True)
class SharedTensor:
    """One parameter tensor that several uses may read."""

    name: str
    shape: tuple[int, ...]  # the stored shape, e.g. (10, 5) for a dense kernel
    initializer: str = "glorot_uniform"  # a Keras initializer name, seeded by the build seed

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "initializer": self.initializer}

    @classmethod
    def from_dict(cls, data: Any, where: str = "tensor") -> SharedTensor:
        check_keys(where, data, cls, ("name", "shape"))
        return cls(
            name=check_name(f"{where}.name", data["name"]),
            shape=check_shape(f"{where}.shape", data["shape"]),
            initializer=check_choice(f"{where}.initializer", data.get("initializer", "glorot_uniform"), INITIALIZERS),
        )


@dataclass(frozen=True)
class Use:
    """One layer use: an op applied with a kernel read from a tensor through a rule."""

    name: str
    op: str  # 'dense' (kernel (in, out)), 'conv2d' (kernel (kh, kw, c_in, c_out)) or 'embedding' (kernel (vocab, dim))
    # ... or 'conv2d_transpose' (kernel (kh, kw, c_out, c_in), tf.nn.conv2d_transpose's filter layout)
    tensor: str | None = None  # the shared tensor it reads; None = its own kernel of `kernel_shape`
    rule: Rule = field(default_factory=Rule)  # shared tensor -> this op's kernel
    kernel_shape: tuple[int, ...] | None = None  # only for an own (unshared) kernel
    activation: str = "linear"
    bias: str = "none"  # 'none' | 'own' (per use) | 'shared' (one bias per shared tensor)
    source: str | None = None  # node it reads: 'input' or an earlier use; None = the previous use
    input_slice: tuple[int, int] | None = None  # [start, stop) of the flattened input features
    input_reshape: tuple[int, ...] | None = None  # reshape of the (sliced) input per sample
    strides: int = 1  # conv2d and conv2d_transpose only
    padding: str = "same"  # conv2d and conv2d_transpose only: 'same' | 'valid'

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "tensor": self.tensor,
            "rule": self.rule.to_dict(),
            "kernel_shape": jsonable(self.kernel_shape),
            "activation": self.activation,
            "bias": self.bias,
            "source": self.source,
            "input_slice": jsonable(self.input_slice),
            "input_reshape": jsonable(self.input_reshape),
            "strides": self.strides,
            "padding": self.padding,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "use") -> Use:
        check_keys(where, data, cls, ("name", "op"))
        name = check_name(f"{where}.name", data["name"])
        where = f"use '{name}'"
        tensor = data.get("tensor")
        if tensor is not None:
            check_name(f"{where}.tensor", tensor)
        kernel_shape = data.get("kernel_shape")
        if kernel_shape is not None:
            kernel_shape = check_shape(f"{where}.kernel_shape", kernel_shape)
        source = data.get("source")
        if source is not None and source != INPUT_NODE:
            check_name(f"{where}.source", source)
        input_slice = data.get("input_slice")
        if input_slice is not None:
            input_slice = check_shape(f"{where}.input_slice", input_slice, minimum=0, rank=(2, 2))
        input_reshape = data.get("input_reshape")
        if input_reshape is not None:
            input_reshape = check_shape(f"{where}.input_reshape", input_reshape)
        return cls(
            name=name,
            op=check_choice(f"{where}.op", data["op"], OPS),
            tensor=tensor,
            rule=Rule.from_dict(data.get("rule", "identity"), where=f"{where}.rule"),
            kernel_shape=kernel_shape,
            activation=check_choice(f"{where}.activation", data.get("activation", "linear"), ACTIVATIONS),
            bias=check_choice(f"{where}.bias", data.get("bias", "none"), BIAS_POLICIES),
            source=source,
            input_slice=input_slice,
            input_reshape=input_reshape,
            strides=check_int(f"{where}.strides", data.get("strides", 1)),
            padding=check_choice(f"{where}.padding", data.get("padding", "same"), PADDINGS),
        )


# ----------------------------------------------------------------------------- model spec
@dataclass(frozen=True)
class ModelSpec:
    """A whole model: its input, its shared tensors, its uses in order, and its outputs."""

    input_shape: tuple[int, ...]  # per sample, without the batch axis
    tensors: tuple[SharedTensor, ...]
    uses: tuple[Use, ...]
    outputs: tuple[str, ...] = ()  # nodes to output; () = the last use. Several are flattened and concatenated.
    name: str = "custom"
    description: str = ""
    # The input is integer token ids in [0, input_vocab), shape `input_shape` (seq,), read by an
    # `embedding` use; None: the input is float features.
    input_vocab: int | None = None

    def __post_init__(self) -> None:
        # Here as well as in from_dict, so that no spec (from a link, a paste, an upload, the
        # CLI or dataclasses.replace) holds text that fails to encode or breaks a line later.
        check_text("spec.name", self.name, MAX_NAME_CHARS, multiline=False)
        check_text("spec.description", self.description, MAX_DESCRIPTION_CHARS, multiline=True)
        if self.input_vocab is not None:
            check_int("spec.input_vocab", self.input_vocab, minimum=2)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "input_shape": list(self.input_shape),
            "tensors": [t.to_dict() for t in self.tensors],
            "uses": [u.to_dict() for u in self.uses],
            "outputs": list(self.outputs),
        }
        if self.input_vocab is not None:  # only token models carry the key
            out["input_vocab"] = self.input_vocab
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        """Reads a spec from plain data (as parsed from JSON).

        Raises:
            ValueError: naming the field, what was received and the allowed values.
        """
        check_keys("spec", data, cls, ("input_shape", "uses"))
        name = check_text("spec.name", data.get("name", "custom"), MAX_NAME_CHARS, multiline=False)
        description = check_text("spec.description", data.get("description", ""), MAX_DESCRIPTION_CHARS, multiline=True)
        tensors = data.get("tensors", [])
        uses = data["uses"]
        outputs = data.get("outputs", [])
        for key, value in (("tensors", tensors), ("uses", uses), ("outputs", outputs)):
            if not isinstance(value, list):
                raise fail(f"spec.{key}", "must be a list.", value)
        if not uses:
            raise fail("spec.uses", "a model needs at least one use.", uses)
        for i, out in enumerate(outputs):
            if out != INPUT_NODE:
                check_name(f"spec.outputs[{i}]", out)
        return cls(
            name=name,
            description=description,
            input_shape=check_shape("spec.input_shape", data["input_shape"], rank=(1, 3)),
            tensors=tuple(SharedTensor.from_dict(t, f"spec.tensors[{i}]") for i, t in enumerate(tensors)),
            uses=tuple(Use.from_dict(u, f"spec.uses[{i}]") for i, u in enumerate(uses)),
            outputs=tuple(outputs),
            input_vocab=data.get("input_vocab"),
        )

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        """Parses JSON text (or UTF-8 bytes, as uploaded); malformed JSON raises ValueError with the position.

        Example:
            >>> spec = ModelSpec.from_json(
            ...     '{"name": "chain", "input_shape": [4], "tensors": [{"name": "W", "shape": [4, 4]}],'
            ...     ' "uses": [{"name": "a", "op": "dense", "tensor": "W"}, {"name": "b", "op": "dense", "tensor": "W"}]}'
            ... )
            >>> spec.name, [u.source for u in spec.uses]
            ('chain', [None, None])
            >>> ModelSpec.from_json(spec.to_json()) == spec
            True
        """
        if not isinstance(text, (str, bytes, bytearray)):
            raise fail("spec JSON", "must be text (str) or UTF-8 bytes.", type(text).__name__)
        try:
            data = json.loads(text)
        # ValueError covers JSONDecodeError, bytes that are not UTF-8 and ints of > 4300 digits.
        except (ValueError, RecursionError) as err:
            raise ValueError(f"spec JSON could not be parsed: {err}. Check the file is valid JSON.") from None
        return cls.from_dict(data)
