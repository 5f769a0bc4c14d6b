"""`sharecore.inspect`: the weight sharing of any Keras model, and each use's part of a shared weight's gradient.

How the uses are told apart: during one forward pass under `tf.GradientTape`, every layer of the
model has its `call` wrapped (on the instance, for that pass only), and the pass runs inside one
`keras.StatelessScope` whose lookup of a variable's value hands each *layer call* a watched copy
of the variable of its own. A weight that two or more calls read is shared; d loss / d copy is
that call's part of the weight's gradient, exact at the current weights, and the parts sum to the
tied gradient (the chain rule: the variable's gradient is the sum over the places it is read).

This finds a layer called several times (a functional graph node, a layer called in a loop of a
subclassed model, a siamese encoder), both directions of `keras.layers.ReversibleEmbedding(tie_weights=True)`,
and a variable held by several layers. A read is credited to the innermost layer call running
when it happens; a weight that one call reads twice (`x @ W @ W.T` inside one layer) is one use.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sharecore.core.inspection import (
    DEFAULT_MAX_BYTES,
    Inspection,
    check_model_file,
    gradient_frame,
    read_probe_data,
    shared_frame,
)
from sharecore.nn.layers import SharedKernel  # noqa: F401  registered with Keras: sharecore's own saved models load
from sharecore.nn.tfimport import keras, tf

PROBE_BATCH = 8  # samples in the random batch drawn when no x is given
DEFAULT_LOSS = "mean_squared_error"  # for an uncompiled model and no loss, unless y holds class ids


class Refusal(ValueError):
    """A model or batch inspection cannot split, said in one sentence (as opposed to an error of the model's own)."""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # Keras bolds parts of its messages for a terminal


def one_line(err: BaseException, limit: int = 400) -> str:
    """An exception's text on one line, without terminal colour codes, cut at `limit` characters."""
    text = " ".join(_ANSI.sub("", str(err)).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass
class _Site:
    """One layer call of the forward pass: a possible use of every weight it reads."""

    name: str  # '<layer>#<i>', '<layer>#embed' or '<layer>#reverse'
    layer: str
    keras_own: bool  # a layer class of Keras itself, whose repeated reads within one call are its own business
    reads: dict[int, int] = field(default_factory=dict)  # id(variable) -> times this call read it


class _UseScope(keras.StatelessScope):
    """A stateless scope that gives each layer call its own watched copy of every variable it reads."""

    def __init__(self, tape: tf.GradientTape) -> None:
        super().__init__()
        self.tape = tape
        self.stack: list[_Site] = []  # the calls running now, innermost last
        self.sites: list[_Site] = []  # every call, in the order it started
        self.copies: dict[tuple[int, int], tf.Tensor] = {}  # (id(variable), site index) -> its watched copy
        self.variables: dict[int, Any] = {}  # id(variable) -> variable, for every variable read
        self._index: dict[int, int] = {}  # id(site) -> its index in `sites`

    def enter_call(self, site: _Site) -> None:
        self._index[id(site)] = len(self.sites)
        self.sites.append(site)
        self.stack.append(site)

    def get_current_value(self, variable: Any) -> tf.Tensor | None:
        updated = self.state_mapping.get(id(variable))  # what the pass assigned (a seed, a statistic)
        if updated is not None or not self.stack:
            return updated
        site = self.stack[-1]
        site.reads[id(variable)] = site.reads.get(id(variable), 0) + 1
        key = (id(variable), self._index[id(site)])
        copy = self.copies.get(key)
        if copy is None:
            # stop_gradient: the copy is a leaf, so a read that bypassed the scope shows as a gradient on the variable.
            copy = tf.stop_gradient(tf.convert_to_tensor(variable._value))
            self.tape.watch(copy)
            self.copies[key] = copy
            self.variables[id(variable)] = variable
        return copy


def _site_name(layer: Any, i: int, args: tuple, kwargs: dict) -> str:
    if isinstance(layer, keras.layers.ReversibleEmbedding):
        reverse = kwargs.get("reverse", args[1] if len(args) > 1 else False)
        return f"{layer.name}#{'reverse' if reverse else 'embed'}"
    return f"{layer.name}#{i}"


@contextlib.contextmanager
def _calls_as_sites(model: keras.Model, scope: _UseScope) -> Iterator[None]:
    """Wraps `call` of the model and of every layer in it, on the instances, so each call is a site of `scope`."""
    layers = list(model._flatten_layers(include_self=True, recursive=True))
    counts: dict[int, int] = {}

    def wrap(layer: Any) -> Callable[..., Any]:
        call = layer.call

        def site_call(*args: Any, **kwargs: Any) -> Any:
            i = counts.get(id(layer), 0)
            counts[id(layer)] = i + 1
            name = _site_name(layer, i, args, kwargs)
            if any(s.name == name for s in scope.sites):  # a second 'embed' call of one ReversibleEmbedding
                name = f"{name}{i}"
            scope.enter_call(_Site(name, layer.name, type(layer).__module__.startswith("keras.")))
            try:
                return call(*args, **kwargs)
            finally:
                scope.stack.pop()

        return site_call

    for layer in layers:
        # object.__setattr__: past Keras's attribute tracking; the instance attribute hides the class's call.
        object.__setattr__(layer, "call", wrap(layer))
    try:
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("call", None)


def _loss_name(loss: Any) -> str:
    if isinstance(loss, str):
        return loss
    name = str(getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__)
    return f"{name} on logits" if getattr(loss, "from_logits", False) else name


def resolve_loss(model: keras.Model, loss: Any, y: Any, notes: list[str]) -> tuple[Callable[..., Any], str]:
    """The loss function to split, and its name: `loss`, else the compiled model's, else a stated default.

    The default, for a model that is not compiled: sparse categorical cross-entropy on logits when `y`
    holds whole numbers (class ids, next tokens) or, without `y`, when the model reads token ids through
    an embedding and scores every token of its vocabulary (a language model); else mean squared error.
    A note says which was taken.
    """
    if isinstance(loss, str) and "crossentropy" in loss.replace("_", "") and _scores_tokens(model):
        notes.append(
            f"{loss!r} by name reads the outputs as probabilities, but model {model.name!r} looks like a language "
            f"model, whose outputs are usually logits: leave the loss out for cross-entropy on logits, or pass "
            f"keras.losses.SparseCategoricalCrossentropy(from_logits=True) from Python."
        )
    if loss is None:
        loss = getattr(model, "loss", None)
    if loss is None:
        integer = y is not None and np.issubdtype(np.asarray(tf.nest.flatten(y)[0]).dtype, np.integer)
        tokens = y is None and _scores_tokens(model)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True) if integer or tokens else DEFAULT_LOSS
        why = ", as y holds whole numbers" if integer else ""
        if tokens:
            why = ", as it reads token ids and scores every token of its vocabulary: a language model"
        notes.append(
            f"model {model.name!r} is not compiled and no loss was given: using {_loss_name(loss)}"
            + why
            + "; pass loss= (--loss on the command line) to choose."
        )
    try:
        fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    except ValueError:
        raise Refusal(f"unknown loss {loss!r}; give a Keras loss name such as 'mse'. Received: loss={loss!r}") from None
    if not callable(fn):
        raise Refusal(f"the loss must be a Keras loss name, a keras.losses.Loss or a callable. Received: loss={loss!r}")
    return fn, _loss_name(loss)


def _scores_tokens(model: keras.Model) -> bool:
    """Whether the model reads token ids through an embedding and outputs one logit per token of its vocabulary."""
    first = _first_layer(model)
    try:
        outputs = [tuple(t.shape) for t in model.outputs]
    except (AttributeError, TypeError, ValueError):  # a subclassed model has no symbolic outputs
        return False
    last = model.layers[-1] if getattr(model, "layers", None) else None
    probabilities = isinstance(last, keras.layers.Softmax) or getattr(last, "activation", None) in (
        keras.activations.softmax,
        keras.activations.sigmoid,
    )
    return (
        isinstance(first, keras.layers.Embedding)
        and len(outputs) == 1
        and outputs[0][-1] == getattr(first, "input_dim", None)
        and not probabilities  # a softmax head scores probabilities, not logits
    )


def loss_value(fn: Callable[..., Any], y: Any, pred: Any) -> tf.Tensor:
    """The mean loss, summed over the outputs of a model with several."""
    ys, preds = tf.nest.flatten(y), tf.nest.flatten(pred)
    if len(ys) != len(preds):
        raise Refusal(f"the model has {len(preds)} outputs but y has {len(ys)} arrays. Received: y with {len(ys)}")
    return tf.add_n([tf.reduce_mean(fn(tf.convert_to_tensor(t), p)) for t, p in zip(ys, preds)])


def probe_inputs(model: keras.Model, batch: int = PROBE_BATCH, seed: int = 0) -> Any:
    """A seeded random batch for the model's inputs: standard normal floats, or token ids for integer inputs.

    Token ids are drawn below the smallest `input_dim` of the model's embedding layers (below 2 without one).
    """
    rng = np.random.default_rng(seed)
    try:
        specs = [(tuple(t.shape), str(t.dtype)) for t in model.inputs]
    except (AttributeError, TypeError, ValueError):  # a subclassed model has no symbolic inputs
        specs = []
    if not specs:
        shape = (model.get_build_config() or {}).get("input_shape")
        if shape is None or not isinstance(shape[0], int | type(None)):
            raise Refusal(
                f"cannot draw random inputs for model {model.name!r}: it keeps no single input shape; pass x (and y). "
                f"Received: x=None"
            )
        specs = [(tuple(shape), "float32")]
    if len(specs) == 1 and isinstance(_first_layer(model), keras.layers.Embedding):
        specs = [(specs[0][0], "int32")]  # token ids, whatever dtype a model built from a shape alone declares
    vocab = min([la.input_dim for la in model._flatten_layers() if hasattr(la, "input_dim")] or [2])
    arrays = []
    for shape, dtype in specs:
        full = (batch, *(1 if d is None else d for d in shape[1:]))
        if "int" in dtype:
            arrays.append(rng.integers(0, vocab, full).astype(dtype))
        else:
            arrays.append(rng.standard_normal(full).astype("float32"))
    return arrays[0] if len(arrays) == 1 else arrays


def _first_layer(model: keras.Model) -> Any:
    layers = [la for la in model._flatten_layers(include_self=False, recursive=True) if la.weights]
    return layers[0] if layers else None


def probe_targets(pred: Any, loss_name: str, seed: int = 0) -> Any:
    """Seeded random targets shaped like the model's output `pred`, of the kind the loss expects.

    Class ids for a sparse cross-entropy, one-hot rows for a categorical one, 0/1 for a binary one,
    standard normal values otherwise.
    """
    rng = np.random.default_rng(seed + 1)
    name = loss_name.lower().replace("_", "")

    def one(p: Any) -> np.ndarray:
        shape = tuple(p.shape)
        if "sparse" in name:
            return rng.integers(0, shape[-1], shape[:-1]).astype("int32")
        if "categorical" in name:
            return np.eye(shape[-1], dtype="float32")[rng.integers(0, shape[-1], shape[:-1])]
        if "binary" in name:
            return rng.integers(0, 2, shape).astype("float32")
        return rng.standard_normal(shape).astype("float32")

    return tf.nest.map_structure(one, pred)


def _check_built(model: Any) -> None:
    if not isinstance(model, keras.Model):
        raise Refusal(f"inspect needs a keras.Model. Received: model of type {type(model).__name__}")
    if not model.built:
        raise Refusal(
            f"model {model.name!r} is not built, so it has no weights to inspect yet: call it on a batch or "
            f"call model.build(input_shape) first. Received: model.built=False"
        )


def split_gradients(
    model: keras.Model, x: Any, y: Any, loss_fn: Callable[..., Any]
) -> tuple[dict[str, list[tuple[str, np.ndarray]]], list[tuple[str, str, int, str, str]], list[str]]:
    """One forward pass that finds the shared weights and each use's part of their gradients.

    Returns:
        shares: tensor path -> [(use, that use's gradient), ...] for every trainable shared weight;
        rows: (tensor, shape, params, use, layer) for every use of every shared weight;
        notes: what the pass could not split.
    """
    with tf.GradientTape() as tape:
        scope = _UseScope(tape)
        with _calls_as_sites(model, scope), scope:
            pred = model(x, training=False)
        loss = loss_value(loss_fn, y, pred)
    notes: list[str] = []
    by_var: dict[int, list[int]] = {}  # id(variable) -> indices of the sites that read it
    for (vid, i), _ in scope.copies.items():
        by_var.setdefault(vid, []).append(i)
    top = scope.sites[0] if scope.sites else None
    for vid, sites in by_var.items():
        for i in sites:
            site = scope.sites[i]
            if site.reads[vid] > 1:
                path = scope.variables[vid].path
                if site is top:
                    raise Refusal(
                        f"model {model.name!r} reads weight {path!r} {site.reads[vid]} times in its own call(), "
                        f"not through a Keras layer call, so inspect cannot tell its uses apart. Move the shared "
                        f"computation into a Keras layer and call that layer once per use. Received: {site.name} "
                        f"reads {path!r} {site.reads[vid]} times"
                    )
                if not site.keras_own:
                    notes.append(f"{site.name} reads {path!r} {site.reads[vid]} times in one call: counted as one use.")
    shared = {vid: sites for vid, sites in by_var.items() if len(sites) > 1}
    keys = [(vid, i) for vid, sites in shared.items() for i in sites if scope.variables[vid].trainable]
    variables = [scope.variables[vid] for vid in shared if scope.variables[vid].trainable]
    grads = tape.gradient(loss, [scope.copies[k] for k in keys] + [v.value for v in variables])
    for v, g in zip(variables, grads[len(keys) :]):
        if g is not None:
            raise Refusal(
                f"weight {v.path!r} is also read outside the layer calls (by code that reads the variable's raw "
                f"value), so the uses' parts would not add up to its gradient. Received: a gradient on {v.path!r} itself"
            )
    shares: dict[str, list[tuple[str, np.ndarray]]] = {}
    for (vid, i), g in zip(keys, grads):
        v = scope.variables[vid]
        g = tf.zeros(v.shape, "float32") if g is None else tf.convert_to_tensor(g)  # an embedding's rows -> dense
        shares.setdefault(v.path, []).append((scope.sites[i].name, np.asarray(g, dtype="float32")))
    rows = [
        (v.path, str(tuple(v.shape)), int(np.prod(v.shape)), scope.sites[i].name, scope.sites[i].layer)
        for vid, sites in shared.items()
        for v in [scope.variables[vid]]
        for i in sites
    ]
    return shares, rows, notes


def inspect(model: keras.Model, x: Any = None, y: Any = None, loss: Any = None, seed: int = 0) -> Inspection:
    """The shared weights of a Keras model, their uses, the counts, and each use's part of their gradients.

    Works for functional, Sequential and subclassed models whose sharing is a Keras layer called more
    than once (or a `ReversibleEmbedding` with `tie_weights=True`, or a variable held by several
    layers). Uses are named `<layer>#<i>` (the layer's i-th call in the forward pass, from 0), or
    `<layer>#embed` and `<layer>#reverse` for a ReversibleEmbedding. The forward pass runs with
    `training=False` (no dropout), and the loss leaves out the model's regularization losses. While
    it runs, the model's layers are wrapped: do not call the same model from another thread meanwhile.

    Args:
        model: a built Keras model.
        x: a batch of inputs; default a seeded random batch of the model's input shape (`probe_inputs`).
        y: its targets; default seeded random targets of the model's output shape (`probe_targets`).
        loss: a Keras loss name or object, or a callable (y_true, y_pred); default the compiled model's
            loss, else as `resolve_loss` says (cross-entropy on logits for whole-number y or a language
            model, else mean squared error), with a note saying so.
        seed: seeds the random x and y.

    Returns:
        An `Inspection`: `shared` (one row per use of a shared weight), `stored_params` (equal to
        `model.count_params()`), `untied_params`, `gradients` (the run's gradient columns, step 0,
        variant 'tied'), `loss` and `notes`. A model that shares nothing gives empty frames and a note.

    Raises:
        ValueError: for a model that is not built, or whose sharing is not a Keras layer call.

    Example:
        >>> import keras
        >>> dense = keras.layers.Dense(4, name="block")
        >>> inp = keras.Input((4,))
        >>> model = keras.Model(inp, dense(dense(inp)))  # one Dense, called twice
        >>> result = inspect(model)
        >>> result.tensors, list(result.gradients.use)
        (['block/kernel', 'block/bias'], ['block#0', 'block#1', 'block#0', 'block#1'])
        >>> result.stored_params, result.untied_params
        (20, 40)
    """
    _check_built(model)
    notes: list[str] = []
    if x is None:
        x = probe_inputs(model, seed=seed)
        notes.append(f"no x given: a seeded random batch of {PROBE_BATCH} (seed {seed}).")
    loss_fn, loss_name = resolve_loss(model, loss, y, notes)
    try:
        # A plain pass first: a sublayer that a subclassed model builds on its first call makes its variables
        # here, not inside the stateless scope (where Keras forbids making one).
        pred = model(x, training=False)
        if y is None:
            y = probe_targets(pred, loss_name, seed)
            notes.append(f"no y given: seeded random targets of the output's shape for {loss_name}.")
        shares, rows, split_notes = split_gradients(model, x, y, loss_fn)
    except Refusal:
        raise
    except Exception as err:  # Keras's input checks, TensorFlow's (a token id past the vocabulary), the loss's
        raise ValueError(
            f"model {model.name!r} could not be run on the batch ({type(err).__name__}: {one_line(err)}). Check "
            f"that x fits the model's inputs (x0, x1, ... in an .npz for several) and y its outputs, or give "
            f"another loss."
        ) from None
    notes.extend(split_notes)
    weights = {id(w): w for w in model.weights}
    stored = sum(int(np.prod(w.shape)) for w in weights.values())
    extra_uses = {path: 0 for path, *_ in rows}
    for path, *_ in rows:
        extra_uses[path] += 1
    sizes = {path: params for path, _, params, *_ in rows}
    untied = stored + sum((n - 1) * sizes[path] for path, n in extra_uses.items())
    if not rows:
        notes.append(f"no weight of model {model.name!r} is read by more than one layer call: nothing is shared.")
    return Inspection(
        model_name=model.name,
        shared=shared_frame(rows),
        stored_params=stored,
        untied_params=untied,
        gradients=gradient_frame(0, "tied", shares),
        loss=loss_name,
        notes=tuple(notes),
    )


def load_inspectable(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> keras.Model:
    """Loads a `.keras` file for inspection: checked first (a regular zip file of at most `max_bytes`).

    Loaded with `safe_mode=True` (no code in the file runs: a Lambda layer is refused), with the loss it
    was compiled with where that loads, else without (`compile=False`; give the loss to `inspect`).

    Raises:
        ValueError: for a missing, oversized or non-Keras file, or one Keras refuses to load.
    """
    check_model_file(path, max_bytes)
    try:
        try:  # with the loss it was compiled with, which `inspect` then splits
            with warnings.catch_warnings():  # e.g. an optimizer saved unbuilt: inspection never uses it
                warnings.simplefilter("ignore")
                return keras.saving.load_model(path, safe_mode=True)
        except Exception:  # a loss or optimizer that does not load: the architecture and weights are what count
            return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises ValueError, TypeError, KeyError... for a file it cannot rebuild
        first = one_line(err, limit=300)
        if "safe_mode" in first:  # a Lambda layer or other code in the file: inspection never runs it
            first = first.split(" If you trust")[0].split(" This carries")[0]  # advice inspection cannot take
            raise ValueError(
                f"Keras refused to load {path!r} in safe mode, which inspection keeps on: ({first}) Inspection "
                f"never runs code from a file: save the model without Lambda layers (a registered layer "
                f"subclass instead), or call sharecore.inspect(model) in your own Python."
            ) from None
        raise ValueError(
            f"Keras could not load {path!r} as a model ({type(err).__name__}: {first}). A subclassed model or "
            f"custom layer loads only where its class is registered (keras.saving.register_keras_serializable) "
            f"and imported: call sharecore.inspect(model) in that Python, or save a functional or Sequential model."
        ) from None


def inspect_file(
    path: str, data: str | None = None, loss: Any = None, seed: int = 0, max_bytes: int = DEFAULT_MAX_BYTES
) -> Inspection:
    """`inspect` of a saved `.keras` file, on the arrays `x` and `y` of an `.npz` file (or random ones).

    For an upload page as for the CLI: both files are checked (regular files, at most `max_bytes`
    each, the model a zip archive, the data an `.npz` with arrays `x` and `y` and no pickled objects)
    before anything is loaded.

    Raises:
        ValueError: for either file, in one sentence.
    """
    check_model_file(path, max_bytes)
    x, y = read_probe_data(data, max_bytes) if data is not None else (None, None)
    return inspect(load_inspectable(path, max_bytes), x, y, loss=loss, seed=seed)
