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

import keras
import tensorflow as tf

import sharecore.devices  # noqa: F401  (GPU memory growth on and TF32 off, before any sharecore op)

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
    raise ValueError(f"unknown rule kind {kind!r}. Received: {rule!r}")


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
        if cfg["op"] == "dense":
            y = _dense(x, k)  # (batch, ..., in) @ (in, units) -> (batch, ..., units)
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
