"""The model spec and training settings: frozen, hashable, JSON-serializable.

A spec is plain data that a user can write by hand, put in a URL and download.
It never touches TensorFlow; `sharecore.core.plan.plan(spec)` checks it and infers every
shape before any TensorFlow work happens.
"""

from __future__ import annotations

import json
import re
import reprlib
import sys
from dataclasses import dataclass, field, fields
from typing import Any

from sharecore.core.text import forbidden_character

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
OPTIMIZERS = ("sgd", "adam")
DEVICES = ("auto", "cpu", "gpu")
DATASETS = ("teacher", "digits", "tokens")
TEACHERS = ("untied", "tied")  # the network that labels the 'teacher' data set: see `sharecore.nn.data.teacher_dataset`
DISTRIBUTE = ("none", "mirrored", "multi-worker")
TEACHER_POOL_SIZE = 512  # samples in a teacher pool; batches are drawn from it with replacement
TOKENS_HELDOUT = 128  # held-out sequences of the 'tokens' data set (its pool is TEACHER_POOL_SIZE sequences)
TEACHER_HELDOUT = 256  # held-out samples of the 'teacher' data set: more inputs, labelled by the same teacher
DIGITS_INPUT_SIZES = (64, 128)  # one 8x8 image, or two side by side: see `sharecore.nn.data.digits_dataset`
DIGITS_POOL_SIZE = 1797  # scikit-learn's 8x8 digits: all the images of the 'digits' data set
DIGITS_HELDOUT = 360  # of them held out (20%, the same images in every run) and never trained on
INPUT_NODE = "input"

# TensorFlow shapes, strides and seeds are int32 in places; bigger numbers only ever fail
# deep inside TensorFlow (or overflow float arithmetic in plan), so they are refused here.
MAX_INT = 2**31 - 1
MAX_NAME_CHARS = 80  # a spec's name: one line of text
MAX_DESCRIPTION_CHARS = 2000  # its description: may break lines with \n
MAX_RULE_STEPS = 16  # steps in one composed rule: more is never needed and only slows every check
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


# ----------------------------------------------------------------------------- helpers
class _ShortRepr(reprlib.Repr):
    """A repr for error messages about untrusted data: bounded in length and depth."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother = 4, 80, 80
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = 12

    def repr_int(self, x: int, level: int) -> str:
        # repr() itself refuses ints of more than 4300 digits.
        return repr(x) if x.bit_length() <= 256 else f"<a whole number of {x.bit_length()} bits>"


_short_repr = _ShortRepr().repr


def _fail(where: str, message: str, received: Any) -> ValueError:
    # A plain !r recursed without end on deeply nested input and copied a 10 MB string
    # into the message.
    return ValueError(f"{where}: {message} Received: {_short_repr(received)}")


def _check_name(where: str, value: Any) -> str:
    # fullmatch: with match, '$' also matches before a trailing newline, so 'W\n' slipped
    # through and later broke TensorFlow's node names.
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value == INPUT_NODE:
        raise _fail(
            where,
            "names must start with a letter, use only letters, digits and '_', "
            f"be at most 40 characters long and not be '{INPUT_NODE}'.",
            value,
        )
    return value


def _check_text(where: str, value: Any, max_chars: int, multiline: bool) -> str:
    """A spec's name (one line) or description: a string of allowed characters, not too long."""
    if not isinstance(value, str) or len(value) > max_chars:
        raise _fail(where, f"must be a string of at most {max_chars} characters.", value)
    found = forbidden_character(value, multiline=multiline)
    if found is None:
        return value
    position, character = found
    if "surrogate" in character:
        rule = (
            "must be text without lone surrogates (U+D800..U+DFFF), which no UTF-8 file, page or "
            "URL can hold (a JSON escape such as \\ud800 makes one)"
        )
    elif multiline:
        rule = (
            "may break lines with \\n and hold tabs, but no other control characters "
            "(U+0000..U+001F, U+007F..U+009F) or separators (U+2028, U+2029)"
        )
    else:
        rule = (
            "must be one line of printable text: no control characters (U+0000..U+001F, "
            "U+007F..U+009F), line breaks or separators (U+2028, U+2029)"
        )
    raise _fail(where, f"{rule}; found {character} at position {position}. Remove it.", value)


def _check_choice(where: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(where, f"must be one of {', '.join(repr(c) for c in choices)}.", value)
    return value


def _check_int(where: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"must be a whole number >= {minimum}.", value)
    if value < minimum:
        raise _fail(where, f"must be >= {minimum}.", value)
    if value > MAX_INT:
        raise _fail(where, f"must be <= {MAX_INT}, the largest whole number TensorFlow takes here.", value)
    return value


def _check_whole(where: str, value: Any, example: str, bound: int | None = None) -> int:
    """A whole number of either sign (a rule's quarter turns or axis), at most `bound` from 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"must be a whole number, e.g. {example}.", value)
    if bound is not None and abs(value) > bound:
        raise _fail(where, f"must be between {-bound} and {bound}.", value)
    return value


def _check_shape(where: str, value: Any, minimum: int = 1, rank: tuple[int, int] = (1, 4)) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise _fail(where, "must be a list of whole numbers, e.g. [10, 5].", value)
    if not rank[0] <= len(value) <= rank[1]:
        raise _fail(where, f"must have between {rank[0]} and {rank[1]} dimensions.", value)
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise _fail(where, f"dimension {i} must be a whole number >= {minimum}.", value)
        if v > MAX_INT:
            raise _fail(
                where, f"dimension {i} must be <= {MAX_INT}, the largest whole number TensorFlow takes here.", value
            )
    return tuple(value)


def _check_keys(where: str, data: Any, cls: type, required: tuple[str, ...]) -> dict:
    if not isinstance(data, dict):
        raise _fail(where, "must be a JSON object.", data)
    allowed = [f.name for f in fields(cls)]
    # key=str: a dict built in Python may mix str and int keys, which plain sorted() refuses.
    unknown = sorted(set(data) - set(allowed), key=str)
    if unknown:
        raise _fail(where, f"unknown key(s) {_short_repr(unknown)}; allowed keys are {allowed}.", sorted(data, key=str))
    missing = [k for k in required if k not in data]
    if missing:
        raise _fail(where, f"missing required key(s) {missing}.", sorted(data, key=str))
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


# ----------------------------------------------------------------------------- Rule
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
        _check_keys(where, data, cls, ("kind",))
        kind = _check_choice(f"{where}.kind", data["kind"], RULES)
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
            raise _fail(where, f"rule '{kind}' takes only {list(allowed) or 'no options'}.", data)
        kwargs: dict[str, Any] = {"kind": kind}
        if kind == "reshape":
            if "shape" not in data:
                raise _fail(where, "rule 'reshape' needs a target 'shape', e.g. [1, 1, 10, 5].", data)
            kwargs["shape"] = _check_shape(f"{where}.shape", data["shape"])
        if kind == "transpose" and data.get("perm") is not None:
            kwargs["perm"] = _check_shape(f"{where}.perm", data["perm"], minimum=0)
        if kind == "slice":
            if "begin" not in data or "size" not in data:
                raise _fail(where, "rule 'slice' needs 'begin' and 'size' lists, one entry per axis.", data)
            kwargs["begin"] = _check_shape(f"{where}.begin", data["begin"], minimum=0)
            kwargs["size"] = _check_shape(f"{where}.size", data["size"])
        if kind == "rot90":
            # numpy.rot90's default: one quarter turn.
            kwargs["k"] = _check_whole(f"{where}.k", data.get("k", 1), "1 (a quarter turn) or -1 (back)")
        if kind == "flip":
            if "axis" not in data:
                raise _fail(where, "rule 'flip' needs the 'axis' to reverse, e.g. 0.", data)
            kwargs["axis"] = _check_whole(f"{where}.axis", data["axis"], "0 (the first axis)", bound=MAX_INT)
        if kind == "compose":
            kwargs["rules"] = cls._compose_steps(data, data.get("rules"), where, steps_where, depth)
        return cls(**kwargs)

    @classmethod
    def _compose_steps(cls, data: dict, steps: Any, where: str, steps_where: str, depth: int) -> tuple[Rule, ...]:
        """The steps of a composed rule, with a composed step replaced by its own steps."""
        if not isinstance(steps, list) or not steps:
            raise _fail(
                steps_where,
                "a composed rule needs a non-empty list of rules, applied in order, e.g. "
                '[{"kind": "slice", "begin": [0, 0], "size": [4, 4]}, "transpose"].',
                steps,
            )
        if depth > 1:
            # One level is flattened; deeper nesting adds nothing and would let a link recurse without end.
            raise _fail(
                where,
                "composed rules nest one level deep at most. Write this rule's steps into the list that holds it.",
                data,
            )
        flat: list[Rule] = []
        if len(steps) <= MAX_RULE_STEPS:
            for i, step in enumerate(steps):
                flat += cls._from_dict(step, f"{steps_where}[{i}]", depth + 1).steps
        if len(steps) > MAX_RULE_STEPS or len(flat) > MAX_RULE_STEPS:
            raise _fail(
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
        _check_keys(where, data, cls, ("name", "shape"))
        return cls(
            name=_check_name(f"{where}.name", data["name"]),
            shape=_check_shape(f"{where}.shape", data["shape"]),
            initializer=_check_choice(f"{where}.initializer", data.get("initializer", "glorot_uniform"), INITIALIZERS),
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
            "kernel_shape": _jsonable(self.kernel_shape),
            "activation": self.activation,
            "bias": self.bias,
            "source": self.source,
            "input_slice": _jsonable(self.input_slice),
            "input_reshape": _jsonable(self.input_reshape),
            "strides": self.strides,
            "padding": self.padding,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "use") -> Use:
        _check_keys(where, data, cls, ("name", "op"))
        name = _check_name(f"{where}.name", data["name"])
        where = f"use '{name}'"
        tensor = data.get("tensor")
        if tensor is not None:
            _check_name(f"{where}.tensor", tensor)
        kernel_shape = data.get("kernel_shape")
        if kernel_shape is not None:
            kernel_shape = _check_shape(f"{where}.kernel_shape", kernel_shape)
        source = data.get("source")
        if source is not None and source != INPUT_NODE:
            _check_name(f"{where}.source", source)
        input_slice = data.get("input_slice")
        if input_slice is not None:
            input_slice = _check_shape(f"{where}.input_slice", input_slice, minimum=0, rank=(2, 2))
        input_reshape = data.get("input_reshape")
        if input_reshape is not None:
            input_reshape = _check_shape(f"{where}.input_reshape", input_reshape)
        return cls(
            name=name,
            op=_check_choice(f"{where}.op", data["op"], OPS),
            tensor=tensor,
            rule=Rule.from_dict(data.get("rule", "identity"), where=f"{where}.rule"),
            kernel_shape=kernel_shape,
            activation=_check_choice(f"{where}.activation", data.get("activation", "linear"), ACTIVATIONS),
            bias=_check_choice(f"{where}.bias", data.get("bias", "none"), BIAS_POLICIES),
            source=source,
            input_slice=input_slice,
            input_reshape=input_reshape,
            strides=_check_int(f"{where}.strides", data.get("strides", 1)),
            padding=_check_choice(f"{where}.padding", data.get("padding", "same"), PADDINGS),
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
        _check_text("spec.name", self.name, MAX_NAME_CHARS, multiline=False)
        _check_text("spec.description", self.description, MAX_DESCRIPTION_CHARS, multiline=True)
        if self.input_vocab is not None:
            _check_int("spec.input_vocab", self.input_vocab, minimum=2)

    def to_dict(self) -> dict[str, Any]:
        out = {
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
        _check_keys("spec", data, cls, ("input_shape", "uses"))
        name = _check_text("spec.name", data.get("name", "custom"), MAX_NAME_CHARS, multiline=False)
        description = _check_text(
            "spec.description", data.get("description", ""), MAX_DESCRIPTION_CHARS, multiline=True
        )
        tensors = data.get("tensors", [])
        uses = data["uses"]
        outputs = data.get("outputs", [])
        for key, value in (("tensors", tensors), ("uses", uses), ("outputs", outputs)):
            if not isinstance(value, list):
                raise _fail(f"spec.{key}", "must be a list.", value)
        if not uses:
            raise _fail("spec.uses", "a model needs at least one use.", uses)
        for i, out in enumerate(outputs):
            if out != INPUT_NODE:
                _check_name(f"spec.outputs[{i}]", out)
        return cls(
            name=name,
            description=description,
            input_shape=_check_shape("spec.input_shape", data["input_shape"], rank=(1, 3)),
            tensors=tuple(SharedTensor.from_dict(t, f"spec.tensors[{i}]") for i, t in enumerate(tensors)),
            uses=tuple(Use.from_dict(u, f"spec.uses[{i}]") for i, u in enumerate(uses)),
            outputs=tuple(outputs),
            input_vocab=data.get("input_vocab"),
        )

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        """Parses JSON text (or UTF-8 bytes, as uploaded); malformed JSON raises ValueError with the position."""
        if not isinstance(text, (str, bytes, bytearray)):
            raise _fail("spec JSON", "must be text (str) or UTF-8 bytes.", type(text).__name__)
        try:
            data = json.loads(text)
        # ValueError covers JSONDecodeError, bytes that are not UTF-8 and ints of > 4300 digits.
        except (ValueError, RecursionError) as err:
            raise ValueError(f"spec JSON could not be parsed: {err}. Check the file is valid JSON.") from None
        return cls.from_dict(data)


# ----------------------------------------------------------------------------- training settings
def check_batch_split(batch_size: int, replicas: int) -> None:
    """Each replica trains on an equal slice of every batch.

    Raises:
        ValueError: if `batch_size` does not divide by `replicas`, with the nearest sizes that do.
    """
    if batch_size % replicas:
        fits = batch_size - batch_size % replicas or replicas
        raise _fail(
            "train.batch_size",
            f"must divide evenly by the {replicas} replicas, so that each trains on an equal slice of every "
            f"batch; use {fits} or {fits + replicas}.",
            batch_size,
        )


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one side-by-side training run of the tied and untied models."""

    steps: int = 60  # optimizer steps per variant
    batch_size: int = 32
    optimizer: str = "adam"  # 'sgd' | 'adam'
    learning_rate: float = 0.01
    seed: int = 0  # initial weights, teacher network and batch order
    device: str = "auto"  # 'auto' | 'cpu' | 'gpu'
    record_every: int = 1  # record gradients and divergence every k steps (and at the last step)
    dataset: str = "teacher"  # 'teacher' (fits any spec) | 'digits' (8x8 images, 64 or 128 inputs)
    # The network that labels the 'teacher' data set, drawn at seed + 7919: 'untied' (each use its own
    # copy, which a tied student cannot always match) | 'tied' (the spec's own tied model, which it can).
    teacher: str = "untied"
    # 'none': one device | 'mirrored': replicas on this machine's devices | 'multi-worker': the
    # machines TF_CONFIG names. Replicas split each batch evenly; the records are the same as one device's.
    distribute: str = "none"
    replicas: int = 0  # devices for 'mirrored'; 0: every GPU, or the CPU devices TensorFlow has

    def __post_init__(self) -> None:
        _check_int("train.steps", self.steps)
        _check_int("train.batch_size", self.batch_size)
        _check_choice("train.optimizer", self.optimizer, OPTIMIZERS)
        lr = self.learning_rate
        # A chained comparison, not math.isfinite: that raises OverflowError on an int like 10**400.
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= sys.float_info.max:
            raise _fail("train.learning_rate", "must be a finite number > 0, e.g. 0.01.", lr)
        _check_int("train.seed", self.seed, minimum=0)
        _check_choice("train.device", self.device, DEVICES)
        _check_int("train.record_every", self.record_every)
        _check_choice("train.dataset", self.dataset, DATASETS)
        _check_choice("train.teacher", self.teacher, TEACHERS)
        _check_choice("train.distribute", self.distribute, DISTRIBUTE)
        _check_int("train.replicas", self.replicas, minimum=0)
        if self.distribute == "none" and self.replicas > 1:
            raise _fail("train.replicas", "needs train.distribute 'mirrored'.", self.replicas)
        if self.distribute == "multi-worker" and self.replicas:
            raise _fail(
                "train.replicas",
                "must be 0 with 'multi-worker', which uses every GPU of each worker (or its CPU).",
                self.replicas,
            )
        if self.replicas:
            check_batch_split(self.batch_size, self.replicas)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Any) -> TrainConfig:
        _check_keys("train", data, cls, ())
        return cls(**data)
