"""Three ways weight sharing goes wrong in Keras 3, each measured live next to the sharecore way.

Every function builds tiny models when it is called, trains or saves them, and returns what
it measured as plain Python values. All models are the same chain as the `seed-dense` preset
(10 inputs, a (10, 10) kernel used twice, tanh between the uses), start from
`initial_values(preset("seed-dense"), seed)["W"]` and learn the same teacher data, so the
broken recipe and the sharecore way differ only in how the kernel is shared.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sharecore.core.presets import preset
from sharecore.nn.data import teacher_dataset
from sharecore.nn.model import build, initial_values, kernel_variables
from sharecore.nn.tfimport import keras, tf

SPEC_NAME = "seed-dense"
BATCH_SIZE = 16
LEARNING_RATE = 0.1
FIT_STEPS = 4  # optimizer steps for the "does fit change it?" pitfalls

KernelsOf = Callable[[keras.Model], tuple[keras.Variable, keras.Variable]]  # model -> the kernel each use reads


@dataclass(frozen=True)
class PitfallResult:
    """One pitfall, measured: the broken recipe and the sharecore way side by side."""

    title: str  # one line, e.g. "A raw tf.Variable on a layer is not tracked"
    explanation: str  # 2-3 sentences for learners (markdown)
    broken: dict[str, Any]  # measurement name -> plain value, for the broken recipe
    sharecore: dict[str, Any]  # the same measurement names, for the sharecore way
    broken_code: str  # a short snippet of the broken recipe
    sharecore_code: str  # a short snippet of the sharecore way


# ----------------------------------------------------------------------------- the broken layers
class RawVariableDense(keras.layers.Layer):
    """Multiplies by a raw `tf.Variable` it was handed. Keras 3 does not track it."""

    def __init__(self, kernel: tf.Variable, activation: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel = kernel
        self.activation = keras.activations.get(activation)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.activation(tf.matmul(x, self.kernel))  # (batch, 10) @ (10, 10) -> (batch, 10)


@keras.saving.register_keras_serializable(package="sharecore_pitfalls")
class KernelOwner(keras.layers.Layer):
    """Creates its kernel with `add_weight`; another layer may be handed it."""

    def __init__(self, units: int, activation: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.activation_name = activation
        self.activation = keras.activations.get(activation)

    def build(self, input_shape: tuple) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units), initializer="zeros")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.activation(tf.matmul(x, self.kernel))  # (batch, in) @ (in, units) -> (batch, units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "activation": self.activation_name}


@keras.saving.register_keras_serializable(package="sharecore_pitfalls")
class KernelBorrower(keras.layers.Layer):
    """Uses a kernel variable handed over from another layer.

    A variable cannot go into `get_config`, so a loaded copy is built without one and
    creates its own kernel: that is what lets the model load at all, and what unties it.
    """

    def __init__(self, units: int, kernel: keras.Variable | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.kernel = kernel

    def build(self, input_shape: tuple) -> None:
        if self.kernel is None:
            self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units), initializer="zeros")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.matmul(x, self.kernel)  # (batch, in) @ (in, units) -> (batch, units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


# ----------------------------------------------------------------------------- helpers
def _start_kernel(seed: int) -> np.ndarray:
    """The (10, 10) kernel every model of a pitfall starts from."""
    return initial_values(preset(SPEC_NAME), seed)["W"]


def _batches(seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Teacher data for exactly `steps` batches of `BATCH_SIZE`, in a fixed order."""
    data = teacher_dataset(preset(SPEC_NAME), seed, pool_size=steps * BATCH_SIZE)
    return data.x, data.y  # (steps * BATCH_SIZE, 10), (steps * BATCH_SIZE, 10)


def _fit(model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    """Plain SGD fit, one pass in order, so a seed gives the same numbers every time."""
    # Eager: these models are tiny, and tracing a train function would cost more than the steps.
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="mse", run_eagerly=True)
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, shuffle=False, verbose=0)


def _mse(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(model(x, training=False)) - y) ** 2))


def _relative_distance(a: np.ndarray, b: np.ndarray, reference: np.ndarray) -> float:
    """||a - b|| / ||reference||."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(reference))


def _distinct(variables: list[Any]) -> int:
    """How many different variable objects are in `variables`."""
    return len({id(v) for v in variables})


def _sharecore_model(seed: int) -> tuple[keras.Model, keras.Variable, keras.Variable]:
    """The tied seed-dense model and the kernel variable each of its two uses reads."""
    spec = preset(SPEC_NAME)
    model = build(spec, tied=True, seed=seed)
    kernels = kernel_variables(model, spec, tied=True)
    return model, kernels["dense_1"], kernels["dense_2"]


# ----------------------------------------------------------------------------- 1. raw tf.Variable
def raw_variable_not_tracked(seed: int = 0) -> PitfallResult:
    """A layer that holds a raw `tf.Variable` versus sharecore's tied model, both fitted.

    Args:
        seed: seeds the starting kernel and the training data.

    Returns:
        A `PitfallResult` whose `broken` and `sharecore` dicts hold `trainable_weights`,
        `count_params`, `fit_steps`, `changed_by_fit`, `max_abs_change`, `loss_before` and
        `loss_after`.
    """
    w0 = _start_kernel(seed)
    x, y = _batches(seed, FIT_STEPS)

    shared = tf.Variable(w0, name="W")
    inputs = keras.Input(shape=(10,))
    h = RawVariableDense(shared, activation="tanh", name="raw_1")(inputs)
    broken_model = keras.Model(inputs, RawVariableDense(shared, name="raw_2")(h), name="raw_variable")
    broken = _fit_and_measure(broken_model, shared, w0, x, y)

    sharecore_model, kernel, _ = _sharecore_model(seed)
    ours = _fit_and_measure(sharecore_model, kernel, w0, x, y)

    return PitfallResult(
        title="A raw tf.Variable on a layer is not tracked",
        explanation=(
            "Keras 3 collects a layer's weights from the variables it creates with `add_weight` "
            "(Keras variables), not from any `tf.Variable` stored on it. The model below therefore "
            "reports no trainable weights and no parameters, and `fit` runs without error while the "
            "shared kernel never moves (Keras only warns that there is nothing to train). "
            "sharecore's tied model owns its kernel through `add_weight`, so the one shared kernel "
            "is counted once and trained."
        ),
        broken=broken,
        sharecore=ours,
        broken_code=(
            "W = tf.Variable(w0)  # created outside Keras\n"
            "\n"
            "class RawVariableDense(keras.layers.Layer):\n"
            "    def __init__(self, kernel, activation=None):\n"
            "        super().__init__()\n"
            "        self.kernel = kernel  # a raw tf.Variable: not tracked\n"
            "        self.activation = keras.activations.get(activation)\n"
            "\n"
            "    def call(self, x):\n"
            "        return self.activation(tf.matmul(x, self.kernel))\n"
            "\n"
            "inputs = keras.Input((10,))\n"
            'h = RawVariableDense(W, "tanh")(inputs)\n'
            "model = keras.Model(inputs, RawVariableDense(W)(h))\n"
            "model.trainable_weights  # []"
        ),
        sharecore_code=(
            "spec = sharecore.preset('seed-dense')\n"
            "model = sharecore.build(spec, tied=True)\n"
            "# one SharedKernel layer owns W (add_weight) and is called once per use:\n"
            "#   h = layer(x, use='dense_1'); out = layer(h, use='dense_2')\n"
            "model.trainable_weights  # [tensor_W/kernel]"
        ),
    )


def _fit_and_measure(
    model: keras.Model, kernel: tf.Variable | keras.Variable, w0: np.ndarray, x: np.ndarray, y: np.ndarray
) -> dict[str, Any]:
    loss_before = _mse(model, x, y)
    _fit(model, x, y)
    change = float(np.max(np.abs(np.asarray(kernel.numpy()) - w0)))
    return {
        "trainable_weights": len(model.trainable_weights),
        "count_params": int(model.count_params()),
        "fit_steps": len(x) // BATCH_SIZE,
        "changed_by_fit": change > 0.0,
        "max_abs_change": change,
        "loss_before": loss_before,
        "loss_after": _mse(model, x, y),
    }


# ----------------------------------------------------------------------------- 2. copies
def copies_are_not_shared(seed: int = 0, steps: int = 20) -> PitfallResult:
    """Two Dense layers set to the same kernel values versus one tied kernel, both trained.

    Args:
        seed: seeds the starting kernel and the training data.
        steps: SGD steps of `BATCH_SIZE` samples each.

    Returns:
        A `PitfallResult` whose `broken` and `sharecore` dicts hold `count_params`,
        `trainable_weights`, `kernel_variables` (distinct variables the two uses read),
        `steps`, `relative_distance_before` and `relative_distance_after`
        (||W_use1 - W_use2|| / ||W0||, read from the variables) and `uses_equal_after`.

    Raises:
        ValueError: if `steps` is not a positive integer.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive integer, e.g. 20. Received: steps={steps!r}")
    w0 = _start_kernel(seed)
    x, y = _batches(seed, steps)

    inputs = keras.Input(shape=(10,))
    dense_1 = keras.layers.Dense(10, use_bias=False, activation="tanh", name="dense_1")
    dense_2 = keras.layers.Dense(10, use_bias=False, name="dense_2")
    broken_model = keras.Model(inputs, dense_2(dense_1(inputs)), name="copied_values")
    dense_1.set_weights([w0])
    dense_2.set_weights([w0])
    broken = _train_pair(broken_model, dense_1.kernel, dense_2.kernel, w0, x, y)

    sharecore_model, kernel_1, kernel_2 = _sharecore_model(seed)
    ours = _train_pair(sharecore_model, kernel_1, kernel_2, w0, x, y)

    return PitfallResult(
        title="Copying values is not sharing",
        explanation=(
            "Giving two layers the same numbers with `set_weights` makes two variables that merely "
            "start equal: the model stores both, and each use gets its own gradient, so training "
            "pulls them apart. A tie means one variable read by both uses; its gradient is the sum "
            "of both uses' contributions, and the distance between the uses stays exactly 0."
        ),
        broken=broken,
        sharecore=ours,
        broken_code=(
            "dense_1 = keras.layers.Dense(10, use_bias=False, activation='tanh')\n"
            "dense_2 = keras.layers.Dense(10, use_bias=False)\n"
            "model = keras.Model(inputs, dense_2(dense_1(inputs)))\n"
            "dense_1.set_weights([w0])\n"
            "dense_2.set_weights([w0])  # equal values, two variables"
        ),
        sharecore_code=(
            "model = sharecore.build(sharecore.preset('seed-dense'), tied=True)\n"
            "kernels = sharecore.kernel_variables(model, spec, tied=True)\n"
            "kernels['dense_1'] is kernels['dense_2']  # True: one variable"
        ),
    )


def _train_pair(
    model: keras.Model, kernel_1: keras.Variable, kernel_2: keras.Variable, w0: np.ndarray, x: np.ndarray, y: np.ndarray
) -> dict[str, Any]:
    before = _relative_distance(kernel_1.numpy(), kernel_2.numpy(), w0)
    _fit(model, x, y)
    w1, w2 = np.asarray(kernel_1.numpy()), np.asarray(kernel_2.numpy())
    return {
        "count_params": int(model.count_params()),
        "trainable_weights": len(model.trainable_weights),
        "kernel_variables": _distinct([kernel_1, kernel_2]),
        "steps": len(x) // BATCH_SIZE,
        "relative_distance_before": before,
        "relative_distance_after": _relative_distance(w1, w2, w0),
        "uses_equal_after": bool(np.array_equal(w1, w2)),
    }


# ----------------------------------------------------------------------------- 3. save / load
def handoff_tie_lost_on_save(seed: int = 0, workdir: str | None = None) -> PitfallResult:
    """A variable handed from one layer to another versus sharecore's tie, through save + load.

    Args:
        seed: seeds the starting kernel and the training data.
        workdir: an existing directory to keep the two saved `.keras` files in
            (`handed_over_{seed}.keras`, `sharecore_tied_{seed}.keras`, both saved untrained);
            by default they go to a temporary directory that is removed afterwards.

    Returns:
        A `PitfallResult` whose `broken` and `sharecore` dicts hold, before saving,
        `count_params_before_save`, `kernel_variables_before_save` and `tied_after_step_before_save`,
        and after `model.save` + `keras.models.load_model`, `count_params_after_load`,
        `kernel_variables_after_load`, `uses_equal_after_load` (both uses hold the saved values),
        `tied_after_step_after_load` and `max_abs_gap_after_step_after_load`.

    Raises:
        ValueError: if `workdir` is given but is not a directory.
    """
    if workdir is not None and not os.path.isdir(workdir):
        raise ValueError(
            f"`workdir` must be an existing directory, or None for a temporary one. Received: workdir={workdir!r}"
        )
    w0 = _start_kernel(seed)
    x, y = _batches(seed, 1)

    inputs = keras.Input(shape=(10,))
    owner = KernelOwner(10, activation="tanh", name="owner")
    h = owner(inputs)
    borrower = KernelBorrower(10, kernel=owner.kernel, name="borrower")
    broken_model = keras.Model(inputs, borrower(h), name="handed_over")
    owner.kernel.assign(w0)

    sharecore_model, _, _ = _sharecore_model(seed)
    spec = preset(SPEC_NAME)

    def broken_kernels(model: keras.Model) -> tuple[keras.Variable, keras.Variable]:
        return model.get_layer("owner").kernel, model.get_layer("borrower").kernel

    def sharecore_kernels(model: keras.Model) -> tuple[keras.Variable, keras.Variable]:
        kernels = kernel_variables(model, spec, tied=True)
        return kernels["dense_1"], kernels["dense_2"]

    directory = workdir if workdir is not None else tempfile.mkdtemp(prefix="sharecore_pitfalls_")
    paths = [os.path.join(directory, f"{name}_{seed}.keras") for name in ("handed_over", "sharecore_tied")]
    try:
        broken = _save_load_and_step(broken_model, broken_kernels, paths[0], x, y)
        ours = _save_load_and_step(sharecore_model, sharecore_kernels, paths[1], x, y)
    finally:
        if workdir is None:
            shutil.rmtree(directory)

    return PitfallResult(
        title="A variable handed to another layer is untied by save and load",
        explanation=(
            "Handing layer A's variable to layer B ties them in memory: one variable, counted once, "
            "trained once. But a `.keras` file stores each layer's config and its own weights, and a "
            "variable cannot be part of a config, so after loading B builds a kernel of its own: the "
            "loaded model has twice the parameters, starts with equal values, and drifts apart at the "
            "first training step. sharecore's tie is one layer called twice, which the saved graph "
            "records as such, so it survives."
        ),
        broken=broken,
        sharecore=ours,
        broken_code=(
            "owner = KernelOwner(10, activation='tanh')  # add_weight('kernel', ...)\n"
            "h = owner(inputs)\n"
            "borrower = KernelBorrower(10, kernel=owner.kernel)  # handed the variable\n"
            "model = keras.Model(inputs, borrower(h))  # count_params() == 100\n"
            "model.save('m.keras')\n"
            "keras.models.load_model('m.keras').count_params()  # 200"
        ),
        sharecore_code=(
            "model = sharecore.build(sharecore.preset('seed-dense'), tied=True)\n"
            "model.save('m.keras')  # one SharedKernel layer, called twice\n"
            "keras.models.load_model('m.keras').count_params()  # 100"
        ),
    )


def _save_load_and_step(
    model: keras.Model, kernels_of: KernelsOf, path: str, x: np.ndarray, y: np.ndarray
) -> dict[str, Any]:
    """Saves `model` untrained, steps it, then loads the saved file and steps the loaded model."""
    k1, k2 = kernels_of(model)
    count_before = int(model.count_params())
    variables_before = _distinct([k1, k2])
    start = np.asarray(k1.numpy())  # save the untrained model, so loaded values are comparable
    model.save(path)
    _fit(model, x, y)
    tied_before = bool(np.array_equal(k1.numpy(), k2.numpy()))

    loaded = keras.models.load_model(path)
    l1, l2 = kernels_of(loaded)
    equal_after_load = bool(np.array_equal(l1.numpy(), l2.numpy()) and np.array_equal(l1.numpy(), start))
    count_after = int(loaded.count_params())
    variables_after = _distinct([l1, l2])
    _fit(loaded, x, y)
    gap = float(np.max(np.abs(np.asarray(l1.numpy()) - np.asarray(l2.numpy()))))
    return {
        "count_params_before_save": count_before,
        "kernel_variables_before_save": variables_before,
        "tied_after_step_before_save": tied_before,
        "count_params_after_load": count_after,
        "kernel_variables_after_load": variables_after,
        "uses_equal_after_load": equal_after_load,
        "tied_after_step_after_load": gap == 0.0,
        "max_abs_gap_after_step_after_load": gap,
    }


# ----------------------------------------------------------------------------- all
def all_pitfalls(seed: int = 0) -> list[PitfallResult]:
    """All three pitfalls, measured with the same seed, in the order a page shows them.

    Args:
        seed: seeds the starting kernels and the training data.

    Returns:
        `[raw_variable_not_tracked, copies_are_not_shared, handoff_tie_lost_on_save]` results.
    """
    return [raw_variable_not_tracked(seed), copies_are_not_shared(seed), handoff_tie_lost_on_save(seed)]
