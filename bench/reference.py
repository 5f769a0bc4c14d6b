"""The benchmark models written a second time, with plain Keras layers.

sharecore's models are built from one `SharedKernel` layer per stored tensor. Each reference
here computes the same function the way a Keras user would write it by hand:

* tied: one `Dense` / `Conv2D` instance called once per use (`use_bias=False`, the activation
  applied after the call, since the uses differ in activation);
* untied: one layer instance per use.

`seed-mixed` reads one (10, 5) tensor as a dense kernel and, reshaped to (1, 1, 10, 5), as a
1x1 conv kernel. Plain Keras cannot hand one variable to both a `Dense` and a `Conv2D`, so
its tied reference is the smallest custom layer that can: one `add_weight` and
`keras.ops.reshape`. Its untied reference is a plain `Dense` and a plain `Conv2D`.

`tied-lm` tied is Keras's own `ReversibleEmbedding(tie_weights=True)`; `conv-autoencoder` tied is one
`add_weight` read by `keras.ops.conv` and `keras.ops.conv_transpose`, for the same reason.

`tests/project/test_bench.py` checks that each reference has sharecore's parameter count and weight
count, and computes the same outputs once `copy_weights` has given it sharecore's weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sharecore import ModelSpec, kernel_variables, preset
from sharecore.nn.tfimport import keras


@dataclass
class Reference:
    """A plain Keras model and, per sharecore use name, the variable holding that use's kernel."""

    model: keras.Model
    kernels: dict[str, keras.Variable]  # tied uses map to the same variable


def dense_chain_spec(width: int) -> ModelSpec:
    """`seed-dense` at another width: one (width, width) kernel W used by two dense layers in a chain."""
    data = preset("seed-dense").to_dict()
    data["name"] = f"dense-{width}"
    data["description"] = f"seed-dense at width {width}: one ({width}, {width}) kernel W used twice in a chain."
    data["input_shape"] = [width]
    data["tensors"] = [{"name": "W", "shape": [width, width]}]
    return ModelSpec.from_dict(data)


def chain_spec(uses: int, width: int) -> ModelSpec:
    """One square (width, width) tensor W read by `uses` dense layers in a chain (tanh between)."""
    return ModelSpec.from_dict(
        {
            "name": f"chain-{uses}x{width}",
            "input_shape": [width],
            "tensors": [{"name": "W", "shape": [width, width]}],
            "uses": [
                {"name": f"dense_{i}", "op": "dense", "tensor": "W", "activation": "tanh" if i < uses else "linear"}
                for i in range(1, uses + 1)
            ],
        }
    )


# ----------------------------------------------------------------------------- the references
def dense_chain(width: int, tied: bool) -> Reference:
    """x -> tanh(x W1) -> (.) W2, with W1 = W2 = W when tied."""
    inp = keras.Input((width,), name="input")
    if tied:
        w = keras.layers.Dense(width, use_bias=False, name="W")
        h = keras.layers.Activation("tanh")(w(inp))  # (batch, width)
        out = w(h)  # the same layer again: one variable, two uses
        return Reference(keras.Model(inp, out), {"dense_1": w.kernel, "dense_2": w.kernel})
    d1 = keras.layers.Dense(width, activation="tanh", use_bias=False, name="dense_1")
    d2 = keras.layers.Dense(width, use_bias=False, name="dense_2")
    out = d2(d1(inp))
    return Reference(keras.Model(inp, out), {"dense_1": d1.kernel, "dense_2": d2.kernel})


def seed_conv(tied: bool) -> Reference:
    """An own 3x3 stem conv (3 -> 16, relu), then a 3x3 16 -> 16 kernel K applied twice."""
    inp = keras.Input((28, 28, 3), name="input")
    stem = keras.layers.Conv2D(16, 3, padding="same", activation="relu", use_bias=False, name="stem")
    h = stem(inp)  # (batch, 28, 28, 16)
    if tied:
        k = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="K")
        out = k(keras.layers.Activation("relu")(k(h)))
        return Reference(keras.Model(inp, out), {"stem": stem.kernel, "conv_1": k.kernel, "conv_2": k.kernel})
    c1 = keras.layers.Conv2D(16, 3, padding="same", activation="relu", use_bias=False, name="conv_1")
    c2 = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv_2")
    out = c2(c1(h))
    return Reference(keras.Model(inp, out), {"stem": stem.kernel, "conv_1": c1.kernel, "conv_2": c2.kernel})


class DenseAndConv1x1(keras.layers.Layer):
    """One (in, out) kernel applied as a dense kernel and, reshaped, as a 1x1 conv kernel.

    Plain Keras has no way to give a `Dense` and a `Conv2D` one variable, so this is the
    smallest hand-written layer that does: what a Keras user would write for `seed-mixed`.
    """

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape: tuple) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units))

    def call(self, x: Any) -> tuple[Any, Any]:
        dense = keras.ops.matmul(x, self.kernel)  # (batch, units)
        image = keras.ops.reshape(x, (-1, 1, 1, x.shape[-1]))  # (batch, 1, 1, in)
        conv = keras.ops.conv(image, keras.ops.reshape(self.kernel, (1, 1, *self.kernel.shape)))  # (batch, 1, 1, units)
        return dense, conv


def seed_mixed(tied: bool) -> Reference:
    """One (10, 5) kernel read as a dense kernel and as a 1x1 conv kernel; both outputs, concatenated."""
    inp = keras.Input((10,), name="input")
    if tied:
        both = DenseAndConv1x1(5, name="W")
        dense, conv = both(inp)
        kernels = {"dense": both.kernel, "conv": both.kernel}
    else:
        d = keras.layers.Dense(5, use_bias=False, name="dense")
        c = keras.layers.Conv2D(5, 1, use_bias=False, name="conv")
        dense, conv = d(inp), c(keras.layers.Reshape((1, 1, 10))(inp))
        kernels = {"dense": d.kernel, "conv": c.kernel}
    out = keras.layers.Concatenate()([keras.layers.Flatten()(dense), keras.layers.Flatten()(conv)])  # (batch, 10)
    return Reference(keras.Model(inp, out), kernels)


def tied_lm(tied: bool) -> Reference:
    """Token ids -> embedding E (32, 16) -> dense tanh block (16, 16) -> logits over 32 tokens.

    Tied: Keras's own tied embedding, `ReversibleEmbedding(tie_weights=True)`, whose reverse call
    multiplies by the transposed table. Untied: an `Embedding` and an output `Dense`.
    """
    inp = keras.Input((8,), dtype="int32", name="input")
    block = keras.layers.Dense(16, activation="tanh", use_bias=False, name="block")
    if tied:
        table = keras.layers.ReversibleEmbedding(32, 16, tie_weights=True, name="E")
        out = table(block(table(inp)), reverse=True)  # (batch, 8, 32)
        kernels = {"embed": table.embeddings, "block": block.kernel, "logits": table.embeddings}
        return Reference(keras.Model(inp, out), kernels)
    embed = keras.layers.Embedding(32, 16, name="embed")
    logits = keras.layers.Dense(32, use_bias=False, name="logits")
    out = logits(block(embed(inp)))
    return Reference(keras.Model(inp, out), {"embed": embed.embeddings, "block": block.kernel, "logits": logits.kernel})


class ConvAndTranspose(keras.layers.Layer):
    """One (3, 3, 1, 4) kernel read by a strided conv (1 -> 4 channels, tanh) and, as it is, by the
    transposed conv back (4 -> 1): plain Keras cannot give a `Conv2D` and a `Conv2DTranspose` one
    variable, so this is the smallest hand-written layer that does."""

    def build(self, input_shape: tuple) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(3, 3, input_shape[-1], 4))

    def call(self, x: Any) -> Any:
        h = keras.ops.tanh(keras.ops.conv(x, self.kernel, strides=2, padding="same"))  # (batch, 4, 4, 4)
        # conv_transpose's kernel is (kh, kw, out, in): the conv's kernel with its channel roles swapped.
        return keras.ops.conv_transpose(h, self.kernel, strides=2, padding="same")  # (batch, 8, 8, 1)


def conv_autoencoder(tied: bool) -> Reference:
    """8x8x1 images -> Conv2D(4, 3, strides 2, tanh) -> Conv2DTranspose(1, 3, strides 2)."""
    inp = keras.Input((8, 8, 1), name="input")
    if tied:
        both = ConvAndTranspose(name="K")
        out = both(inp)
        return Reference(keras.Model(inp, out), {"encoder": both.kernel, "decoder": both.kernel})
    encoder = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="tanh", use_bias=False, name="encoder")
    decoder = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same", use_bias=False, name="decoder")
    out = decoder(encoder(inp))
    return Reference(keras.Model(inp, out), {"encoder": encoder.kernel, "decoder": decoder.kernel})


# Each benchmark spec and its plain-Keras reference, by the spec's name.
REFERENCES: dict[str, tuple[Callable[[], ModelSpec], Callable[[bool], Reference]]] = {
    "seed-dense": (lambda: preset("seed-dense"), lambda tied: dense_chain(10, tied)),
    "dense-256": (lambda: dense_chain_spec(256), lambda tied: dense_chain(256, tied)),
    "seed-conv": (lambda: preset("seed-conv"), seed_conv),
    "seed-mixed": (lambda: preset("seed-mixed"), seed_mixed),
    "tied-lm": (lambda: preset("tied-lm"), tied_lm),
    "conv-autoencoder": (lambda: preset("conv-autoencoder"), conv_autoencoder),
}


def copy_weights(model: keras.Model, spec: ModelSpec, tied: bool, ref: Reference) -> None:
    """Gives the reference sharecore's weights, use by use (a tied variable gets its one value)."""
    for use, variable in kernel_variables(model, spec, tied).items():
        value = np.asarray(variable.numpy())
        ref.kernels[use].assign(np.reshape(value, ref.kernels[use].shape))
