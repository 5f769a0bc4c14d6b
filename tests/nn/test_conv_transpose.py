"""The conv2d_transpose op and the tied conv autoencoder, checked against independent oracles.

Oracles: Keras's own `Conv2DTranspose` and `Conv2D` layers, plain `tf.nn` ops on plain
variables under `tf.GradientTape`, and float64 NumPy loops with finite differences.
"""

from __future__ import annotations

import contextlib
import io
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.core.limits import activation_bytes
from sharecore.core.spec import ModelSpec
from sharecore.nn.data import make_dataset
from sharecore.nn.layers import record_views
from sharecore.share.codegen import keras_code
from tests.support.ties import assert_tie_holds

PRESET = "conv-autoencoder"


def batch(spec: ModelSpec, n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *spec.input_shape)).astype("float32")


def one_use_spec(input_shape: list[int], **use: object) -> ModelSpec:
    return ModelSpec.from_dict({"input_shape": input_shape, "uses": [{"name": "up", "op": "conv2d_transpose", **use}]})


# ----------------------------------------------------------------------------- float64 NumPy oracle
def _same_padding(n_in: int, n_out: int, kernel: int, stride: int) -> int:
    """Rows TensorFlow's 'SAME' pads before the image of a conv from n_in to n_out."""
    return max((n_out - 1) * stride + kernel - n_in, 0) // 2


def conv2d_np(x: np.ndarray, k: np.ndarray, s: int) -> np.ndarray:
    """conv2d with padding 'same', by loops: (n, H, W, a) * (kh, kw, a, b) -> (n, ceil(H/s), ceil(W/s), b)."""
    n, big_h, big_w, _ = x.shape
    kh, kw, _, c_out = k.shape
    oh, ow = -(-big_h // s), -(-big_w // s)
    top, left = _same_padding(big_h, oh, kh, s), _same_padding(big_w, ow, kw, s)
    y = np.zeros((n, oh, ow, c_out))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    r, c = i * s + a - top, j * s + b - left
                    if 0 <= r < big_h and 0 <= c < big_w:
                        y[:, i, j] += x[:, r, c] @ k[a, b]
    return y


def conv2d_transpose_np(y: np.ndarray, k: np.ndarray, s: int) -> np.ndarray:
    """The adjoint of `conv2d_np`, scattering each input pixel: (n, h, w, b) * (kh, kw, a, b) -> (n, h*s, w*s, a)."""
    n, h, w, _ = y.shape
    kh, kw, c_out, _ = k.shape
    big_h, big_w = h * s, w * s
    top, left = _same_padding(big_h, h, kh, s), _same_padding(big_w, w, kw, s)
    x = np.zeros((n, big_h, big_w, c_out))
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                for b in range(kw):
                    r, c = i * s + a - top, j * s + b - left
                    if 0 <= r < big_h and 0 <= c < big_w:
                        x[:, r, c] += y[:, i, j] @ k[a, b].T
    return x


def autoencoder_loss_np(k: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """conv-autoencoder's mean squared error in float64: decoder(tanh(encoder(x))) with one K."""
    return float(np.mean((conv2d_transpose_np(np.tanh(conv2d_np(x, k, 2)), k, 2) - y) ** 2))


def autoencoder_tf(x: tf.Tensor, k_enc: tf.Tensor, k_dec: tf.Tensor) -> tf.Tensor:
    """conv-autoencoder in plain tf.nn ops, with the encoder's and decoder's kernels apart."""
    h = tf.tanh(tf.nn.conv2d(x, k_enc, strides=2, padding="SAME"))  # (n, 4, 4, 4)
    return tf.nn.conv2d_transpose(h, k_dec, [x.shape[0], 8, 8, 1], strides=2, padding="SAME")  # (n, 8, 8, 1)


def first_batch(spec: ModelSpec, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The first batch sharecore.train draws, rebuilt (the recorded loss confirms it)."""
    data = make_dataset(spec, config.dataset, config.seed, config.teacher)
    idx = np.random.default_rng([config.seed, 3]).integers(0, len(data.x), config.batch_size)
    return data.x[idx], data.y[idx]


def test_numpy_oracle_agrees_with_itself_as_an_adjoint_pair():
    # <conv(x), y> == <x, conv_transpose(y)>: the loops above are each other's transposes.
    rng = np.random.default_rng(0)
    x, k, y = rng.standard_normal((2, 8, 8, 1)), rng.standard_normal((3, 3, 1, 4)), rng.standard_normal((2, 4, 4, 4))
    assert np.sum(conv2d_np(x, k, 2) * y) == pytest.approx(np.sum(x * conv2d_transpose_np(y, k, 2)), rel=1e-12)


# ----------------------------------------------------------------------------- the op
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("strides", [1, 2, 3])
@pytest.mark.parametrize("kernel_hw", [(3, 3), (1, 2)], ids=["3x3", "1x2"])
def test_op_equals_keras_conv2d_transpose_with_the_same_kernel_and_bias(kernel_hw, strides, padding):
    kh, kw = kernel_hw
    spec = one_use_spec([5, 4, 3], kernel_shape=[kh, kw, 2, 3], strides=strides, padding=padding, bias="own")
    model = sharecore.build(spec, tied=True)
    rng = np.random.default_rng(strides)
    kernel = rng.standard_normal((kh, kw, 2, 3)).astype("float32")  # (kh, kw, c_out, c_in)
    bias = rng.standard_normal(2).astype("float32")
    layer = model.get_layer("own_up")
    layer.kernel.assign(kernel)
    layer.biases["up"].assign(bias)
    reference = keras.layers.Conv2DTranspose(2, (kh, kw), strides=strides, padding=padding)
    reference.build((None, 5, 4, 3))
    reference.set_weights([kernel, bias])
    x = batch(spec, 3)

    ours, theirs = np.asarray(model(x)), np.asarray(reference(x))

    assert ours.shape == theirs.shape == (3, *sharecore.plan(spec).output_shape)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    assert model.count_params() == kh * kw * 2 * 3 + 2  # the bias has c_out = kernel_shape[-2] units


def test_output_sizes_follow_the_same_and_valid_formulas():
    plan = sharecore.plan
    assert plan(one_use_spec([4, 5, 3], kernel_shape=[3, 3, 2, 3], strides=2)).output_shape == (8, 10, 2)
    # 'valid': (h - 1) * s + kh.
    assert plan(one_use_spec([4, 5, 3], kernel_shape=[3, 2, 2, 3], strides=2, padding="valid")).output_shape == (
        9,
        10,
        2,
    )
    assert plan(one_use_spec([4, 5, 3], kernel_shape=[3, 3, 2, 3], padding="valid")).output_shape == (6, 7, 2)


def test_a_conv_kernel_read_as_it_is_by_the_transposed_conv_is_its_adjoint():
    # Why the layout matters: K (3, 3, 1, 4) maps 1 channel to 4 in conv2d and, read as it is,
    # 4 back to 1 in conv2d_transpose, which is then exactly the transpose of the encoder's map.
    spec = sharecore.preset(PRESET)
    spec = ModelSpec.from_dict(
        {**spec.to_dict(), "uses": [{**u.to_dict(), "activation": "linear"} for u in spec.uses[:1]]}
    )
    encoder = sharecore.build(spec, tied=True, seed=3)
    decoder = sharecore.build(one_use_spec([4, 4, 4], tensor=None, kernel_shape=[3, 3, 1, 4], strides=2), True)
    decoder.get_layer("own_up").kernel.assign(encoder.get_layer("tensor_K").kernel)
    x, y = batch(spec, 2, seed=1), np.random.default_rng(2).standard_normal((2, 4, 4, 4)).astype("float32")

    lhs = float(np.sum(np.asarray(encoder(x), dtype="float64") * y))
    rhs = float(np.sum(x * np.asarray(decoder(y), dtype="float64")))

    assert abs(lhs) > 1e-2
    assert lhs == pytest.approx(rhs, rel=1e-5)


# ----------------------------------------------------------------------------- the preset
def test_conv_autoencoder_counts_the_shared_kernel_once_when_tied_and_computes_one_function_at_init(tmp_path):
    """tests/support/ties.py's harness: counts against param_report, one K when tied, the same function at
    init (float32 rounding allowed: conv2d_transpose reads the tied view and the untied copy differently)."""
    spec = sharecore.preset(PRESET)
    # K (3, 3, 1, 4) once, or one copy per use; one trainable weight, or two.
    assert_tie_holds(spec, counts=(36, 72, 1, 2), seed=7, x=batch(spec, 6), exact=False, tmp_path=tmp_path)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_own_biases_have_the_output_channels_of_each_op(tied):
    # conv2d's bias has kernel_shape[-1] = 4 units, conv2d_transpose's kernel_shape[-2] = 1.
    data = sharecore.preset(PRESET).to_dict()
    data["uses"] = [{**u, "bias": "own"} for u in data["uses"]]
    spec = ModelSpec.from_dict(data)
    model = sharecore.build(spec, tied=tied)
    assert model.count_params() == (36 if tied else 72) + 4 + 1
    assert sharecore.param_report(spec).tied_total == 41
    assert model.get_layer("tensor_K" if tied else "copy_decoder").biases["decoder"].shape == (1,)


def test_conv_autoencoder_equals_keras_conv2d_and_conv2d_transpose_reading_one_kernel():
    spec = sharecore.preset(PRESET)
    model = sharecore.build(spec, tied=True, seed=5)
    k = model.get_layer("tensor_K").kernel.numpy()
    encoder = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="tanh", use_bias=False)
    decoder = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same", use_bias=False)
    encoder.build((None, 8, 8, 1))
    decoder.build((None, 4, 4, 4))
    encoder.set_weights([k])
    decoder.set_weights([k])  # the same array: the tie
    x = batch(spec, 3)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(decoder(encoder(x))), rtol=0, atol=1e-5)
    # And the float64 NumPy loops.
    expected = conv2d_transpose_np(np.tanh(conv2d_np(x.astype("float64"), k.astype("float64"), 2)), k, 2)
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=0, atol=1e-5)


def test_save_and_load_model_keep_the_tie(tmp_path):
    spec = sharecore.preset(PRESET)
    original = sharecore.build(spec, tied=True, seed=1)
    path = tmp_path / "conv_autoencoder.keras"
    original.save(path)
    loaded = sharecore.load_model(path)
    assert loaded.count_params() == 36
    assert len(loaded.trainable_weights) == 1
    x = batch(spec, 8)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(original(x)))
    y = np.random.default_rng(1).standard_normal((8, 8, 8, 1)).astype("float32")
    for model in (original, loaded):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.train_on_batch(x, y)
    (moved,) = original.get_weights()
    assert np.abs(moved - sharecore.initial_values(spec, 1)["K"]).max() > 1e-4
    for a, b in zip(original.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_one_sgd_step_moves_k_by_the_sum_of_the_untied_copies_gradients():
    spec, lr = sharecore.preset(PRESET), 0.1
    x = batch(spec, 16)
    y = np.random.default_rng(3).standard_normal((16, 8, 8, 1)).astype("float32")
    tied, untied = sharecore.build(spec, True, seed=2), sharecore.build(spec, False, seed=2)
    k0 = tied.get_layer("tensor_K").kernel.numpy().copy()
    # Oracle: the encoder's and decoder's kernels as two plain variables, in plain tf.nn ops.
    k_enc, k_dec = tf.Variable(k0), tf.Variable(k0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((autoencoder_tf(tf.constant(x), k_enc, k_dec) - y) ** 2)
    g_enc, g_dec = (g.numpy() for g in tape.gradient(loss, [k_enc, k_dec]))

    for model in (tied, untied):
        model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
        model.train_on_batch(x, y)

    k1 = tied.get_layer("tensor_K").kernel.numpy()
    assert np.abs(g_enc).max() > 1e-3 and np.abs(g_dec).max() > 1e-3
    np.testing.assert_allclose(k1, k0 - lr * (g_enc + g_dec), rtol=1e-5, atol=1e-6)
    # The untied copies each move by their own gradient; the tied K by the sum of their moves.
    move_enc = untied.get_layer("copy_encoder").kernel.numpy() - k0
    move_dec = untied.get_layer("copy_decoder").kernel.numpy() - k0
    np.testing.assert_allclose(move_enc, -lr * g_enc, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(k1 - k0, move_enc + move_dec, rtol=1e-4, atol=1e-7)


def test_per_use_contributions_sum_to_the_variable_gradient_and_match_a_float64_finite_difference():
    spec = sharecore.preset(PRESET)
    model = sharecore.build(spec, tied=True, seed=4)
    k = model.get_layer("tensor_K").kernel
    x = batch(spec, 8)
    y = np.random.default_rng(4).standard_normal((8, 8, 8, 1)).astype("float32")
    with tf.GradientTape() as tape, record_views() as views:
        loss = tf.reduce_mean((model(x) - y) ** 2)
    grads = tape.gradient(loss, [k] + [v for _, _, v in views])
    total, contributions = grads[0].numpy(), {use: g.numpy() for (_, use, _), g in zip(views, grads[1:])}

    assert list(contributions) == ["encoder", "decoder"]
    assert np.abs(contributions["encoder"] + contributions["decoder"] - total).max() <= 1e-6
    k_enc, k_dec = tf.Variable(k.numpy()), tf.Variable(k.numpy())
    with tf.GradientTape() as tape:
        oracle = tf.reduce_mean((autoencoder_tf(tf.constant(x), k_enc, k_dec) - y) ** 2)
    g_enc, g_dec = tape.gradient(oracle, [k_enc, k_dec])
    np.testing.assert_allclose(contributions["encoder"], g_enc.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(contributions["decoder"], g_dec.numpy(), rtol=1e-5, atol=1e-7)

    k64, x64, y64, eps, entry = (
        k.numpy().astype("float64"),
        x.astype("float64"),
        y.astype("float64"),
        1e-6,
        (1, 2, 0, 3),
    )
    plus, minus = k64.copy(), k64.copy()
    plus[entry] += eps
    minus[entry] -= eps
    numeric = (autoencoder_loss_np(plus, x64, y64) - autoencoder_loss_np(minus, x64, y64)) / (2 * eps)
    assert abs(numeric) > 1e-4
    np.testing.assert_allclose(total[entry], numeric, rtol=1e-3, atol=1e-6)


def test_train_records_contributions_whose_sum_is_the_gradient_that_moved_k():
    spec = sharecore.preset(PRESET)
    # One plain SGD step: K_end = K_start - lr * gradient. lr = 1 keeps the float32 rounding of
    # K in (K_start - K_end) / lr far below the 1e-6 compared.
    config = TrainConfig(steps=1, optimizer="sgd", learning_rate=1.0, seed=3, batch_size=16)
    result = sharecore.train(spec, config)
    x, y = first_batch(spec, config)
    k0, k1 = result.weights["start"]["tied"]["K"], result.weights["end"]["tied"]["K"]
    moved_by = (k0 - k1) / config.learning_rate

    # Oracle: plain variables for each use's copy, and one for the shared K.
    k_enc, k_dec, k_one = tf.Variable(k0), tf.Variable(k0), tf.Variable(k0)
    with tf.GradientTape(persistent=True) as tape:
        loss_copies = tf.reduce_mean((autoencoder_tf(tf.constant(x), k_enc, k_dec) - y) ** 2)
        loss_one = tf.reduce_mean((autoencoder_tf(tf.constant(x), k_one, k_one) - y) ** 2)
    contrib = {
        "encoder": tape.gradient(loss_copies, k_enc).numpy(),
        "decoder": tape.gradient(loss_copies, k_dec).numpy(),
    }
    gradient = tape.gradient(loss_one, k_one).numpy()

    history = result.history.set_index("variant")
    assert history.loc["tied", "loss"] == pytest.approx(float(loss_one), rel=1e-5)
    assert np.abs(contrib["encoder"] + contrib["decoder"] - gradient).max() <= 1e-6
    assert np.abs(moved_by - gradient).max() <= 1e-6
    rows = result.gradients[result.gradients.variant == "tied"].set_index("use")
    for use, c in contrib.items():
        assert rows.loc[use, "grad_norm"] == pytest.approx(np.linalg.norm(c), rel=1e-5)
        other = gradient - c
        cosine = float(np.sum(c * other) / (np.linalg.norm(c) * np.linalg.norm(other)))
        assert rows.loc[use, "cosine_with_others"] == pytest.approx(cosine, rel=1e-4, abs=1e-6)
    assert rows["sum_norm"].iloc[0] == pytest.approx(np.linalg.norm(gradient), rel=1e-5)

    # Finite differences of the float64 NumPy loss on one entry of K.
    k64, eps, entry = k0.astype("float64"), 1e-6, (2, 0, 0, 1)
    plus, minus = k64.copy(), k64.copy()
    plus[entry] += eps
    minus[entry] -= eps
    x64, y64 = x.astype("float64"), y.astype("float64")
    numeric = (autoencoder_loss_np(plus, x64, y64) - autoencoder_loss_np(minus, x64, y64)) / (2 * eps)
    assert abs(numeric) > 1e-4
    np.testing.assert_allclose(moved_by[entry], numeric, rtol=1e-3, atol=1e-6)


def test_conv_autoencoder_trains_with_the_default_settings():
    result = sharecore.train(sharecore.preset(PRESET), TrainConfig())
    assert result.stop_reason is None and result.steps_done == TrainConfig().steps
    h = result.history
    for variant in ("tied", "untied"):
        loss = h[h.variant == variant].sort_values("step").loss.to_numpy()
        assert np.isfinite(loss).all()
        # Mean of the last ten steps against the first ten: batches are noisy step to step.
        assert loss[-10:].mean() < 0.9 * loss[:10].mean(), variant


# ----------------------------------------------------------------------------- plan errors
@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        pytest.param(
            {
                "input_shape": [8, 8, 1],
                "tensors": [{"name": "K", "shape": [3, 3, 1, 4]}],
                "uses": [{"name": "decoder", "op": "conv2d_transpose", "tensor": "K"}],
            },
            r"use 'decoder' receives 1 channels from 'input', but the shared tensor 'K' expects 4 input "
            r"channels on its last axis\. A conv2d_transpose kernel is \(height, width, out_channels, "
            r"in_channels\).*rule transpose with perm \[0, 1, 3, 2\].*Received: input shape=\(8, 8, 1\), "
            r"kernel shape=\(3, 3, 1, 4\)",
            id="conv2d-layout-fed-to-the-transpose",
        ),
        pytest.param(
            {
                "input_shape": [8, 8, 3],
                "tensors": [{"name": "K", "shape": [3, 3, 2, 5]}],
                "uses": [{"name": "up", "op": "conv2d_transpose", "tensor": "K"}],
            },
            r"use 'up' receives 3 channels.*expects 5 input channels on its last axis\. Give 'K' 3 channels on "
            r"its last axis, or feed this use 5 channels",
            id="shared-channel-mismatch",
        ),
        pytest.param(
            {
                "input_shape": [8, 8, 3],
                "uses": [{"name": "up", "op": "conv2d_transpose", "kernel_shape": [3, 3, 2, 5]}],
            },
            r"use 'up' receives 3 channels from 'input', but its own kernel expects 5.*Set kernel_shape to "
            r"\(3, 3, 2, 3\)",
            id="own-channel-mismatch",
        ),
        pytest.param(
            {
                "input_shape": [2, 2, 2],
                "tensors": [{"name": "W", "shape": [4, 2]}],
                "uses": [{"name": "up", "op": "conv2d_transpose", "tensor": "W"}],
            },
            r"use 'up': op 'conv2d_transpose' needs a 4-D kernel \(height, width, out_channels, in_channels\), "
            r"but the shared tensor 'W' gives a 2-D kernel \(4, 2\).*rule reshape to \(1, 1, 4, 2\)",
            id="kernel-rank",
        ),
        pytest.param(
            {"input_shape": [12], "uses": [{"name": "up", "op": "conv2d_transpose", "kernel_shape": [3, 3, 2, 12]}]},
            r"use 'up': op 'conv2d_transpose' reads images \(height, width, channels\), but 'input' gives shape "
            r"\(12,\)\. Set input_reshape, e\.g\. \[1, 1, 12\]",
            id="input-rank",
        ),
        pytest.param(
            {
                "input_shape": [8, 8, 1],
                "uses": [{"name": "up", "op": "conv2d_transpose", "kernel_shape": [3, 3, 1, 1], "strides": 2**31 - 1}],
            },
            r"use 'up': strides 2147483647 make the output 17179869176x17179869176, larger than the 2147483647 "
            r"TensorFlow takes per dimension\. Use smaller strides",
            id="strides-overflow",
        ),
        pytest.param(
            {
                "input_shape": [8, 8, 1],
                "uses": [{"name": "up", "op": "conv2d_transpose", "kernel_shape": [3, 3, 1, 1], "strides": 0}],
            },
            r"use 'up'\.strides: must be >= 1\. Received: 0",
            id="strides-zero",
        ),
        pytest.param(
            {
                "input_shape": [8, 8, 1],
                "uses": [{"name": "up", "op": "conv2d_transpose", "kernel_shape": [3, 3, 1, 1], "padding": "full"}],
            },
            r"use 'up'\.padding: must be one of 'same', 'valid'\. Received: 'full'",
            id="padding",
        ),
        pytest.param(
            {
                "input_shape": [8, 8, 1],
                "tensors": [{"name": "K", "shape": [3, 3, 1, 4]}],
                "uses": [
                    {"name": "encoder", "op": "conv2d", "tensor": "K", "bias": "shared"},
                    {"name": "decoder", "op": "conv2d_transpose", "tensor": "K", "bias": "shared"},
                ],
            },
            r"use 'decoder' shares the bias of tensor 'K' with use 'encoder', but has 1 output units where "
            r"'encoder' has 4\. Use bias 'own'",
            id="shared-bias-units",
        ),
    ],
)
def test_invalid_conv_transpose_specs_raise_a_value_error_that_says_how_to_fix(data, pattern):
    with pytest.raises(ValueError, match=pattern):
        sharecore.plan(ModelSpec.from_dict(data))


# ----------------------------------------------------------------------------- code export and limits
def test_generated_script_runs_and_equals_the_sharecore_model_with_valid_padding_and_biases():
    spec = ModelSpec.from_dict(
        {
            "name": "decoder-check",
            "input_shape": [5, 5, 1],
            "tensors": [{"name": "K", "shape": [3, 3, 1, 4]}],
            "uses": [
                {"name": "encoder", "op": "conv2d", "tensor": "K", "strides": 2, "padding": "valid", "bias": "own"},
                {
                    "name": "decoder",
                    "op": "conv2d_transpose",
                    "tensor": "K",
                    "strides": 2,
                    "padding": "valid",
                    "bias": "own",
                },
            ],
        }
    )
    assert sharecore.plan(spec).output_shape == (5, 5, 1)  # (2 - 1) * 2 + 3: the encoder's input size again
    for tied in (True, False):
        reference = sharecore.build(spec, tied, seed=3)
        for variable in reference.weights:  # nonzero biases, so their sizes and places matter
            variable.assign(np.random.default_rng(len(variable.path)).standard_normal(variable.shape))
        namespace: dict = {"__name__": "__main__"}
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(keras_code(spec, tied), "<keras_code>", "exec"), namespace)
        assert f"count_params: {reference.count_params()}\n" in printed.getvalue()
        assert "output shape: (4, 5, 5, 1)\n" in printed.getvalue()
        model, by_path = namespace["model"], {v.path: v for v in reference.weights}
        for variable in model.weights:
            variable.assign(by_path[variable.path])
        x = batch(spec, 3)
        np.testing.assert_allclose(np.asarray(model(x)), np.asarray(reference(x)), rtol=0, atol=1e-5)


def test_a_transposed_conv_is_estimated_with_the_conv_memory_factors():
    spec = one_use_spec([8, 8, 4], kernel_shape=[3, 3, 1, 4], strides=2)  # (8, 8, 4) -> (16, 16, 1)
    values = 8 * 8 * 4 + 16 * 16 * 1  # the input and the output, per sample
    io_values, pool, batch_size = 8 * 8 * 4 + 16 * 16, 512, 32
    expected = 4 * (17 * values * batch_size + math.floor(4.5 * io_values * pool))
    assert activation_bytes(sharecore.plan(spec), TrainConfig(batch_size=batch_size)) == expected


def test_the_diagram_says_which_way_the_transposed_kernel_maps_channels():
    from sharecore.viz.diagram import model_dot

    assert "kernel axes (height, width, out, in): 4 -> 1 channels" in model_dot(sharecore.preset(PRESET))


def test_the_build_page_shows_the_preset_and_its_editor_keeps_the_decoders_strides():
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "streamlit_app.py"), default_timeout=60)
    at.query_params.update(preset=PRESET)
    at.run()
    at.switch_page("pages/build.py").run()
    assert not at.exception
    assert [m.value for m in at.metric] == ["36", "72", "36"]
    (decoder_strides,) = [w for w in at.number_input if w.key and w.key.endswith(".use.1.strides")]
    assert decoder_strides.value == 2
    # An edit elsewhere rebuilds the spec from every widget: the transposed conv keeps its strides.
    (activation,) = [w for w in at.selectbox if w.key and w.key.endswith(".use.0.activation")]
    activation.set_value("relu").run()
    spec = at.session_state["spec"]
    assert spec.uses[0].activation == "relu"
    assert (spec.uses[1].op, spec.uses[1].strides) == ("conv2d_transpose", 2)
    assert sharecore.plan(spec).output_shape == (8, 8, 1)
