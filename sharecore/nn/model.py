"""Builds tied and untied Keras models from a spec."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from sharecore.core.limits import Limits, check_limits
from sharecore.core.plan import Plan, UsePlan, as_plan
from sharecore.core.rules import apply_rule_np
from sharecore.core.spec import INPUT_NODE, ModelSpec, Rule
from sharecore.nn.layers import SharedKernel, UseInput
from sharecore.nn.tfimport import keras


def layer_name(use: UsePlan, tied: bool) -> str:
    """The name of the Keras layer that stores the kernel `use` reads."""
    if use.use.tensor is None:
        return f"own_{use.use.name}"
    return f"tensor_{use.use.tensor}" if tied else f"copy_{use.use.name}"


def _seed_for(seed: int, key: str) -> int:
    # Stable across processes (unlike hash()), so the same seed gives the same weights.
    return int(np.random.SeedSequence([seed, *key.encode()]).generate_state(1)[0] % (2**31 - 1))


def initial_values(spec: ModelSpec | Plan, seed: int = 0) -> dict[str, np.ndarray]:
    """The initial value of every stored tensor, by shared tensor name or own-kernel use name.

    Tied and untied models are both initialised from these numbers, so for the same seed they
    compute the same function before training. `spec` may be its `Plan`.
    """
    p = as_plan(spec)
    values = {t.name: draw(t.initializer, t.shape, seed, t.name) for t in p.spec.tensors}
    for u in p.uses:
        if u.use.tensor is None:
            values[u.use.name] = draw("glorot_uniform", u.tensor_shape, seed, "own/" + u.use.name)
    return values


def draw(initializer: str, shape: tuple[int, ...], seed: int, key: str) -> np.ndarray:
    """A seeded draw of a Keras initializer; `key` makes draws for different tensors independent."""
    init = keras.initializers.get({"class_name": initializer, "config": {"seed": _seed_for(seed, key)}})
    return np.asarray(init(shape, dtype="float32"))


def _use_config(u: UsePlan, tied: bool) -> dict[str, Any]:
    rule = u.use.rule if (tied and u.shared) else Rule()
    return {
        "op": u.use.op,
        "rule": rule.to_dict(),
        "activation": u.use.activation,
        "bias": u.use.bias if tied else ("none" if u.use.bias == "none" else "own"),
        "units": u.units,  # the bias size: axis -2 of a conv2d_transpose kernel, else axis -1
        "strides": u.use.strides,
        "padding": u.use.padding,
    }


def build(spec: ModelSpec, tied: bool, seed: int = 0, limits: Limits | None = None) -> keras.Model:
    """Builds the tied or untied Keras model of `spec`.

    Tied: one `SharedKernel` layer per shared tensor, called once per use, so its variable
    is listed once in `trainable_weights`, counted once and survives save/load as one.
    Untied: each use owns a copy initialised to its view of the same initial tensor.

    Args:
        spec: the model spec.
        tied: share each tensor between its uses (True) or give each use its own copy.
        seed: seeds the initial values; the same seed gives tied and untied the same function.
        limits: caps on model size; default `Limits.from_env()` (see sharecore/core/limits.py).

    Returns:
        A functional `keras.Model`, not compiled.

    Raises:
        ValueError: if the spec cannot be built or exceeds the limits (before any TensorFlow work).

    Example:
        >>> from sharecore import preset
        >>> spec = preset("seed-mixed")  # W (10, 5): a dense op, and a 1x1 conv reading it reshaped
        >>> tied, untied = build(spec, tied=True), build(spec, tied=False)
        >>> tied.count_params(), untied.count_params(), len(tied.trainable_weights), len(untied.trainable_weights)
        (50, 100, 1, 2)
    """
    p = check_limits(spec, None, limits)
    return build_from_plan(p, tied, initial_values(p, seed))


def build_from_plan(p: Plan, tied: bool, init: dict[str, np.ndarray]) -> keras.Model:
    """The Keras model of a checked plan, its kernels set to `init` (by shared tensor or own-kernel use name).

    `build` is this with the seed's initial values; the trainer builds with zeros and assigns each run's own.
    """
    spec = p.spec
    # Token ids are whole numbers: an int input, which an embedding looks up.
    inp = keras.Input(shape=spec.input_shape, name=INPUT_NODE, dtype="int32" if spec.input_vocab else "float32")
    nodes = {INPUT_NODE: inp}
    layers: dict[str, SharedKernel] = {}
    for u in p.uses:
        name = layer_name(u, tied)
        if name not in layers:
            members = [v for v in p.uses if layer_name(v, tied) == name]
            shape = u.tensor_shape if (tied or not u.shared) else u.kernel_shape
            layers[name] = SharedKernel(list(shape), {v.use.name: _use_config(v, tied) for v in members}, name=name)
        x = nodes[u.source]
        if u.use.input_slice is not None or u.use.input_reshape is not None:
            x = UseInput(
                list(u.use.input_slice) if u.use.input_slice else None,
                list(u.use.input_reshape) if u.use.input_reshape else None,
                name=f"in_{u.use.name}",
            )(x)
        nodes[u.use.name] = layers[name](x, use=u.use.name)
    if len(p.outputs) == 1:
        out = nodes[p.outputs[0]]
    else:
        flat = [keras.layers.Flatten(name=f"flat_{o}")(nodes[o]) for o in p.outputs]
        out = keras.layers.Concatenate(name="concat_outputs")(flat)
    model = keras.Model(inp, out, name=f"{_identifier(spec.name)}_{'tied' if tied else 'untied'}")
    assign_initial(model, p, tied, init)
    return model


def assign_initial(model: keras.Model, p: Plan, tied: bool, init: dict[str, np.ndarray]) -> None:
    """Sets every kernel of a built model to its initial value and every bias to zero."""
    for u in p.uses:
        layer = model.get_layer(layer_name(u, tied))
        if u.use.tensor is None:
            layer.kernel.assign(init[u.use.name])
        elif tied:
            layer.kernel.assign(init[u.use.tensor])
        else:
            layer.kernel.assign(apply_rule_np(u.use.rule, init[u.use.tensor]))
        for bias in [*layer.biases.values(), layer.shared_bias]:
            if bias is not None:
                bias.assign(np.zeros(bias.shape, dtype="float32"))


def _identifier(name: str) -> str:
    # ASCII only: str.isalnum() accepts letters such as 'à', which TensorFlow refuses in the
    # scope names it makes from the model name when training.
    cleaned = "".join(c if c.isascii() and c.isalnum() else "_" for c in name)
    return cleaned if cleaned[:1].isalpha() else f"m_{cleaned}"


def kernel_variables(model: keras.Model, spec: ModelSpec | Plan, tied: bool) -> dict[str, keras.Variable]:
    """The stored kernel variable of each use, by use name (tied uses share one); `spec` may be its `Plan`."""
    p = as_plan(spec)
    return {u.use.name: model.get_layer(layer_name(u, tied)).kernel for u in p.uses}


def load_model(path: str | os.PathLike[str]) -> keras.Model:
    """Loads a model saved with `model.save(path)`, ties included.

    sharecore's layers are registered with Keras when TensorFlow is imported through sharecore,
    so `keras.saving.load_model` can rebuild them; this function is the one documented way to
    load, and it keeps Keras's `safe_mode` on (no code in the file is run).

    Args:
        path: a `.keras` file written by `model.save`.

    Returns:
        The model, with each shared tensor stored once as when it was saved.

    Raises:
        ValueError: if the file does not exist or is not a Keras model file.

    Example:
        >>> import os, tempfile
        >>> from sharecore import preset
        >>> path = os.path.join(tempfile.mkdtemp(), "tied.keras")
        >>> build(preset("seed-mixed"), tied=True).save(path)
        >>> len(load_model(path).trainable_weights)  # still one variable for both uses
        1
    """
    if not os.path.isfile(path):
        raise ValueError(f"no saved model at {os.fspath(path)!r}; pass the path of a .keras file. Received: {path!r}")
    return keras.saving.load_model(path, safe_mode=True)
