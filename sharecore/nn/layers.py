"""The two Keras layers that sharecore models are made of.

A tie is *one layer instance called once per use*: `SharedKernel` owns the variable and
is called as `layer(x, use="dense_2")`. Keras saves a functional graph with a layer
called several times as exactly that, so the tie survives `save` + `load_model`
(handing a variable from one layer to another does not; see the pitfalls page).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import sharecore.nn.devices  # noqa: F401  (GPU memory growth on and TF32 off, before any sharecore op)
from sharecore.core.shapes import conv_transpose_length
from sharecore.nn.tfimport import keras, tf

_local = threading.local()


@contextlib.contextmanager
def record_views() -> Iterator[list[tuple[str, str, tf.Tensor]]]:
    """Collects, while active, each use's view of its layer's stored kernel.

    Inside the block every `SharedKernel` call reads its variable through its own
    `tf.identity`, and appends `(layer_name, use_name, view)`. The gradient of a loss
    with respect to a view is that use's contribution to the variable's gradient, already
    mapped back through the rule by autodiff; the contributions sum to the variable's
    gradient exactly.
    """
    views: list[tuple[str, str, tf.Tensor]] = []
    previous = getattr(_local, "views", None)
    _local.views = views
    try:
        yield views
    finally:
        _local.views = previous


def apply_rule(rule: dict[str, Any], w: tf.Tensor) -> tf.Tensor:
    """Applies a rule (in its `Rule.to_dict()` form) to a stored tensor."""
    kind = rule["kind"]
    if kind == "identity":
        return w
    if kind == "transpose":
        return tf.transpose(w, perm=rule.get("perm"))
    if kind == "reshape":
        return tf.reshape(w, rule["shape"])
    if kind == "slice":
        return tf.slice(w, rule["begin"], rule["size"])
    if kind == "rot90":
        return rot90(w, rule["k"])
    if kind == "flip":
        return tf.reverse(w, [rule["axis"]])
    if kind == "compose":
        for step in rule["rules"]:
            w = apply_rule(step, w)
        return w
    raise ValueError(f"unknown rule kind {kind!r}. Received: {rule!r}")


def rot90(w: tf.Tensor, k: int) -> tf.Tensor:
    """``numpy.rot90(w, k, axes=(0, 1))``: k quarter turns in the first two axes of `w` (rank >= 2).

    Written with reverse and transpose (as NumPy does) rather than `keras.ops.rot90`, whose
    TensorFlow form scrambles the entries of a half turn (k=2) when axes 0 and 1 differ in
    length (Keras 3.15).
    """
    k %= 4
    swap = [1, 0, *range(2, w.shape.rank)]  # axes 0 and 1 exchanged
    if k == 1:
        return tf.transpose(tf.reverse(w, [1]), swap)
    if k == 2:
        return tf.reverse(w, [0, 1])
    if k == 3:
        return tf.reverse(tf.transpose(w, swap), [1])
    return w


def _dense(x: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """``x @ k`` over the last axis of `x`, always as one 2-D matmul.

    A broadcasting batch matmul of a (batch, 1, w, in) input with a 2-D kernel corrupts the heap
    in TensorFlow 2.21's oneDNN kernel (the process aborts or segfaults), so inputs of rank > 2
    are flattened to (batch * ..., in) and reshaped back.
    """
    if x.shape.rank == 2:
        return tf.matmul(x, k)  # (batch, in) @ (in, units)
    y = tf.matmul(tf.reshape(x, [-1, tf.shape(x)[-1]]), k)  # (batch * ..., in) @ (in, units)
    if x.shape[1:].is_fully_defined():  # the usual case: keep the static shape for Keras
        return tf.reshape(y, [-1, *x.shape[1:-1], k.shape[-1]])  # (batch, ..., units)
    return tf.reshape(y, tf.concat([tf.shape(x)[:-1], tf.shape(k)[-1:]], 0))


def _conv2d_transpose(x: tf.Tensor, k: tf.Tensor, strides: int, padding: str) -> tf.Tensor:
    """``tf.nn.conv2d_transpose`` with filter `k` (kh, kw, c_out, c_in), sized as Keras's Conv2DTranspose.

    The op is the gradient of conv2d with respect to its input, so it reads the filter in conv2d's
    layout with the channel roles swapped: the kernel of a conv2d from a to b channels, as it is,
    is the kernel of the transposed conv from b back to a (the tied conv autoencoder).
    """
    kh, kw, c_out = k.shape[0], k.shape[1], k.shape[2]
    # The op needs the output shape spelled out, batch included. Spatial sizes are static in
    # sharecore models (so Keras sees the output shape); the dynamic ones are the fallback.
    h = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
    w = x.shape[2] if x.shape[2] is not None else tf.shape(x)[2]
    out_h, out_w = conv_transpose_length(h, kh, strides, padding), conv_transpose_length(w, kw, strides, padding)
    output_shape = tf.stack([tf.shape(x)[0], out_h, out_w, c_out])  # (batch, h', w', c_out)
    return tf.nn.conv2d_transpose(x, k, output_shape, strides=strides, padding=padding.upper())


@keras.saving.register_keras_serializable(package="sharecore")
class SharedKernel(keras.layers.Layer):
    """Owns one stored kernel (and its biases) and applies it for each of its uses.

    Args:
        shape: the stored kernel shape.
        uses: per use name, a dict with `op`, `rule` (a `Rule.to_dict()`), `activation`,
            `bias` ('none' | 'own' | 'shared'), `units`, `strides` and `padding`.
    """

    def __init__(self, shape: list[int], uses: dict[str, dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel_shape = tuple(shape)
        self.uses = uses
        # Real initial values are assigned by sharecore.build from the seed, so that tied
        # and untied models start from the same numbers.
        self.kernel = self.add_weight(name="kernel", shape=self.kernel_shape, initializer="zeros")
        # Own biases by use name; the shared bias (one for every use with bias 'shared') apart,
        # so that a use that happens to be named 'shared' cannot collide with it.
        self.biases: dict[str, keras.Variable] = {}
        self.shared_bias: keras.Variable | None = None
        for name, cfg in uses.items():
            if cfg["bias"] == "own":
                self.biases[name] = self.add_weight(name=f"bias_{name}", shape=(cfg["units"],), initializer="zeros")
            elif cfg["bias"] == "shared" and self.shared_bias is None:
                self.shared_bias = self.add_weight(name="bias", shape=(cfg["units"],), initializer="zeros")
        self._activations = {name: keras.activations.get(cfg["activation"]) for name, cfg in uses.items()}

    def call(self, x: tf.Tensor, use: str) -> tf.Tensor:
        cfg = self.uses[use]
        w = tf.convert_to_tensor(self.kernel)
        views = getattr(_local, "views", None)
        if views is not None:
            w = tf.identity(w)
            views.append((self.name, use, w))
        k = apply_rule(cfg["rule"], w)
        if cfg["op"] == "embedding":
            # Row t of the (vocab, dim) table for token id t; its gradient adds into the rows read.
            y = tf.gather(k, tf.cast(x, tf.int32))  # (batch, seq) -> (batch, seq, dim)
        elif cfg["op"] == "dense":
            y = _dense(x, k)  # (batch, ..., in) @ (in, units) -> (batch, ..., units)
        elif cfg["op"] == "conv2d_transpose":
            y = _conv2d_transpose(x, k, cfg["strides"], cfg["padding"])  # (batch, h * s, w * s, c_out) for 'same'
        else:
            y = tf.nn.conv2d(x, k, strides=cfg["strides"], padding=cfg["padding"].upper())  # (batch, h, w, c_out)
        if cfg["bias"] == "own":
            y = y + self.biases[use]
        elif cfg["bias"] == "shared":
            y = y + self.shared_bias
        return self._activations[use](y)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shape": list(self.kernel_shape), "uses": self.uses}


@keras.saving.register_keras_serializable(package="sharecore")
class UseInput(keras.layers.Layer):
    """Slices the flattened features and/or reshapes them, per sample."""

    def __init__(self, input_slice: list[int] | None, target_shape: list[int] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_slice = list(input_slice) if input_slice is not None else None
        self.target_shape = list(target_shape) if target_shape is not None else None

    def call(self, x: tf.Tensor) -> tf.Tensor:
        batch = tf.shape(x)[0]
        if self.input_slice is not None:
            start, stop = self.input_slice
            x = tf.reshape(x, (batch, -1))[:, start:stop]  # (batch, stop - start)
        if self.target_shape is not None:
            x = tf.reshape(x, [batch, *self.target_shape])
        return x

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        if self.target_shape is not None:
            return (input_shape[0], *self.target_shape)
        start, stop = self.input_slice
        return (input_shape[0], stop - start)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "input_slice": self.input_slice, "target_shape": self.target_shape}
