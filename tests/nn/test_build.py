"""Building tied and untied models: exact counts, equal functions, ties that survive saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import sharecore
from sharecore.core.spec import ModelSpec
from sharecore.nn.data import random_inputs
from sharecore.nn.layers import record_views
from tests.support.ties import assert_tie_holds

# preset: (tied params, untied params, tied trainable weights, untied trainable weights)
EXPECTED = {
    "seed-dense": (100, 200, 1, 2),
    "seed-conv": (2736, 5040, 2, 3),
    "seed-mixed": (50, 100, 1, 2),
    "tied-autoencoder": (50, 100, 1, 2),
    "albert-mlp": (1024, 3072, 2, 6),
    "siamese-digits": (4680, 9360, 2, 4),
    "partial-share": (80, 120, 1, 2),
    "conv-autoencoder": (36, 72, 1, 2),
    "tied-lm": (768, 1280, 2, 3),
    "albert-embedding": (448, 640, 3, 5),
    "rotation-tied-conv": (36, 144, 1, 4),
}


def batch(spec: ModelSpec, n: int = 4, seed: int = 0) -> np.ndarray:
    return random_inputs(spec, n, np.random.default_rng(seed))


def test_every_preset_has_an_expected_count():
    assert set(sharecore.presets()) == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_preset_holds_its_tie_counts_exactly_computes_one_function_and_saves(name, tmp_path):
    """tests/support/ties.py's harness: exact counts against EXPECTED and param_report, one variable per
    stored tensor, the same function tied and untied at init, and a tie that survives save and load."""
    assert_tie_holds(sharecore.preset(name), counts=EXPECTED[name], tmp_path=tmp_path)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_param_report_rows_add_up_to_its_totals(name):
    # Its totals equal Keras's count_params (assert_tie_holds, above); here its rows add up to them.
    report = sharecore.param_report(sharecore.preset(name))
    for variant, total in (("tied", report.tied_total), ("untied", report.untied_total)):
        rows = report.table[report.table.variant == variant]
        assert rows.owned_params.sum() == total
        assert rows.bytes.sum() == 4 * total


def test_param_report_counts_a_shared_bias_once_and_own_biases_per_use():
    spec = ModelSpec.from_dict(
        {
            "input_shape": [6],
            "tensors": [{"name": "W", "shape": [6, 6]}],
            "uses": [
                {"name": "a", "op": "dense", "tensor": "W", "bias": "shared"},
                {"name": "b", "op": "dense", "tensor": "W", "bias": "shared"},
                {"name": "c", "op": "dense", "tensor": "W", "bias": "own"},
            ],
        }
    )
    report = sharecore.param_report(spec)
    # tied: W once (36) + one shared bias (6) + c's own bias (6); untied: 3 * (36 + 6)
    assert (report.tied_total, report.untied_total) == (48, 126)
    assert sharecore.build(spec, tied=True).count_params() == 48
    assert sharecore.build(spec, tied=False).count_params() == 126
    tied = report.table[report.table.variant == "tied"].set_index("use")
    assert tied.loc["b", "owned_params"] == 0
    assert tied.loc["b", "referenced_params"] == 36 + 6


def test_different_seeds_give_different_weights_and_the_same_seed_the_same():
    spec = sharecore.preset("seed-dense")
    a, b, c = (sharecore.build(spec, True, seed=s).get_weights()[0] for s in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_mixed_preset_branches_are_equal_before_training():
    spec = sharecore.preset("seed-mixed")
    y = np.asarray(sharecore.build(spec, tied=True)(batch(spec)))
    assert y.shape == (4, 10)
    # Equal to float rounding, not bit for bit: the dense matmul and the 1x1 conv add the same products
    # in different orders (oneDNN's kernels differ between CPUs).
    np.testing.assert_allclose(y[:, :5], y[:, 5:], rtol=1e-5, atol=1e-6)
    assert np.abs(y).max() > 0


def test_one_by_one_conv_view_of_a_dense_kernel_equals_the_dense_op_in_numpy():
    spec = sharecore.preset("seed-mixed")
    model = sharecore.build(spec, tied=True)
    w = model.get_layer("tensor_W").kernel.numpy()
    x = batch(spec)
    np.testing.assert_allclose(np.asarray(model(x))[:, :5], x @ w, rtol=1e-5, atol=1e-6)


def test_tied_dense_chain_matches_keras_layer_reuse_in_outputs_and_gradients():
    spec = ModelSpec.from_dict(
        {
            "input_shape": [10],
            "tensors": [{"name": "W", "shape": [10, 10]}],
            "uses": [
                {"name": "d1", "op": "dense", "tensor": "W", "activation": "tanh"},
                {"name": "d2", "op": "dense", "tensor": "W", "activation": "tanh"},
            ],
        }
    )
    ours = sharecore.build(spec, tied=True)
    dense = keras.layers.Dense(10, use_bias=False, activation="tanh")
    inp = keras.Input((10,))
    reference = keras.Model(inp, dense(dense(inp)))  # Keras's own reuse: one instance, called twice
    reference.set_weights(ours.get_weights())
    assert reference.count_params() == ours.count_params() == 100
    x = tf.constant(batch(spec, 8))

    def loss_and_grad(model):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x) ** 2)
        return loss, tape.gradient(loss, model.trainable_variables)[0]

    loss_ours, grad_ours = loss_and_grad(ours)
    loss_ref, grad_ref = loss_and_grad(reference)
    np.testing.assert_allclose(loss_ours.numpy(), loss_ref.numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad_ours.numpy(), grad_ref.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("name", ["seed-dense", "seed-conv", "seed-mixed", "tied-autoencoder", "partial-share"])
def test_save_and_load_keep_counts_outputs_and_the_tie(tmp_path, name, tied):
    spec = sharecore.preset(name)
    original = sharecore.build(spec, tied=tied, seed=1)
    path = tmp_path / "m.keras"
    original.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = batch(spec, 8)
    assert loaded.count_params() == original.count_params()
    assert len(loaded.trainable_weights) == len(original.trainable_weights)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(original(x)))
    # Training continues exactly as the original's would: one SGD step on the same batch.
    y = np.random.default_rng(1).standard_normal(np.asarray(original(x)).shape).astype("float32")
    for model in (original, loaded):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.train_on_batch(x, y)
    for a, b in zip(original.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(original(x)), rtol=1e-5, atol=1e-6)


def test_loaded_tied_model_still_reads_one_variable_for_every_use(tmp_path):
    spec = sharecore.preset("seed-dense")
    path = tmp_path / "m.keras"
    sharecore.build(spec, tied=True).save(path)
    loaded = keras.models.load_model(path)
    loaded.get_layer("tensor_W").kernel.assign(np.eye(10, dtype="float32"))
    x = batch(spec)
    # With W = I both uses are the identity: y = tanh(x) @ I.
    np.testing.assert_allclose(np.asarray(loaded(x)), np.tanh(x), rtol=1e-6)


def test_fit_trains_the_shared_variable():
    spec = sharecore.preset("tied-autoencoder")
    model = sharecore.build(spec, tied=True)
    before = model.get_weights()[0].copy()
    x = batch(spec, 32)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, x, epochs=2, batch_size=8, verbose=0)
    assert np.abs(model.get_weights()[0] - before).max() > 1e-4


def test_one_sgd_step_of_the_tied_model_moves_w_by_the_sum_of_the_untied_moves():
    spec = sharecore.preset("tied-autoencoder")  # identity and transpose views of W
    x = batch(spec, 16)
    tied, untied = sharecore.build(spec, True, seed=2), sharecore.build(spec, False, seed=2)
    w0 = tied.get_layer("tensor_W").kernel.numpy().copy()
    enc0 = untied.get_layer("copy_encoder").kernel.numpy().copy()
    dec0 = untied.get_layer("copy_decoder").kernel.numpy().copy()
    for model in (tied, untied):
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        model.train_on_batch(x, x)
    move_tied = tied.get_layer("tensor_W").kernel.numpy() - w0
    move_enc = untied.get_layer("copy_encoder").kernel.numpy() - enc0
    move_dec = untied.get_layer("copy_decoder").kernel.numpy() - dec0  # (5, 10): transpose back
    assert np.abs(move_tied).max() > 1e-4
    np.testing.assert_allclose(move_tied, move_enc + move_dec.T, rtol=1e-4, atol=1e-7)


def _seed_dense_loss_numpy(w: np.ndarray, x: np.ndarray) -> float:
    """seed-dense in float64 NumPy: y = tanh(x W) W, loss = mean(y^2)."""
    return float(np.mean((np.tanh(x @ w) @ w) ** 2))


def test_per_use_contributions_sum_to_the_shared_gradient_and_match_an_independent_oracle():
    spec = sharecore.preset("seed-dense")
    model = sharecore.build(spec, tied=True, seed=4)
    w = model.get_layer("tensor_W").kernel
    x = tf.constant(batch(spec, 8))
    with tf.GradientTape() as tape, record_views() as views:
        loss = tf.reduce_mean(model(x) ** 2)
    grads = tape.gradient(loss, [w] + [v for _, _, v in views])
    total, contributions = grads[0].numpy(), [g.numpy() for g in grads[1:]]
    assert [use for _, use, _ in views] == ["dense_1", "dense_2"]
    assert np.abs(sum(contributions) - total).max() <= 1e-6

    # Oracle: two independent plain variables standing for the two uses, both equal to W.
    k1, k2 = tf.Variable(w.numpy()), tf.Variable(w.numpy())
    with tf.GradientTape() as tape:
        oracle_loss = tf.reduce_mean((tf.tanh(x @ k1) @ k2) ** 2)
    g1, g2 = tape.gradient(oracle_loss, [k1, k2])
    np.testing.assert_allclose(contributions[0], g1.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(contributions[1], g2.numpy(), rtol=1e-5, atol=1e-7)

    # Finite differences in float64 on one entry of W.
    w64, x64, eps, (i, j) = w.numpy().astype("float64"), x.numpy().astype("float64"), 1e-6, (3, 7)
    plus, minus = w64.copy(), w64.copy()
    plus[i, j] += eps
    minus[i, j] -= eps
    numeric = (_seed_dense_loss_numpy(plus, x64) - _seed_dense_loss_numpy(minus, x64)) / (2 * eps)
    np.testing.assert_allclose(total[i, j], numeric, rtol=1e-3, atol=1e-6)


def test_contributions_through_reshape_and_slice_rules_map_back_to_the_tensor_shape():
    spec = ModelSpec.from_dict(
        {
            "input_shape": [10],
            "tensors": [{"name": "W", "shape": [10, 4]}],
            "uses": [
                {"name": "dense", "op": "dense", "tensor": "W", "source": "input"},
                {
                    "name": "conv",
                    "op": "conv2d",
                    "tensor": "W",
                    "source": "input",
                    "input_reshape": [1, 1, 10],
                    "rule": {"kind": "reshape", "shape": [1, 1, 10, 4]},
                },
                {
                    "name": "part",
                    "op": "dense",
                    "tensor": "W",
                    "source": "input",
                    "rule": {"kind": "slice", "begin": [0, 1], "size": [10, 2]},
                },
            ],
            "outputs": ["dense", "conv", "part"],
        }
    )
    model = sharecore.build(spec, tied=True)
    w = model.get_layer("tensor_W").kernel
    x = tf.constant(batch(spec, 5))
    with tf.GradientTape() as tape, record_views() as views:
        loss = tf.reduce_sum(model(x) ** 3)
    grads = tape.gradient(loss, [w] + [v for _, _, v in views])
    contributions = dict(zip([u for _, u, _ in views], (g.numpy() for g in grads[1:]), strict=True))
    assert all(g.shape == (10, 4) for g in contributions.values())
    np.testing.assert_allclose(sum(contributions.values()), grads[0].numpy(), atol=1e-6)
    # The slice use reads columns 1-2 only: its contribution is zero elsewhere.
    assert np.all(contributions["part"][:, [0, 3]] == 0)
    # Each output is x @ view, so d(sum(y^3))/dW = x^T (3 y^2) for each use.
    y = np.asarray(model(x))
    xn = x.numpy()
    np.testing.assert_allclose(contributions["dense"], xn.T @ (3 * y[:, :4] ** 2), rtol=1e-4)
    np.testing.assert_allclose(contributions["conv"], xn.T @ (3 * y[:, 4:8] ** 2), rtol=1e-4)
    np.testing.assert_allclose(contributions["part"][:, 1:3], xn.T @ (3 * y[:, 8:] ** 2), rtol=1e-4)


def test_a_use_named_shared_with_its_own_bias_does_not_collide_with_the_shared_bias():
    spec = ModelSpec.from_dict(
        {
            "input_shape": [10],
            "tensors": [{"name": "W", "shape": [10, 10]}],
            "uses": [
                {"name": "shared", "op": "dense", "tensor": "W", "bias": "own"},
                {"name": "other", "op": "dense", "tensor": "W", "bias": "shared"},
            ],
        }
    )
    report = sharecore.param_report(spec)
    assert report.tied_total == 120 and report.untied_total == 220
    assert sharecore.build(spec, tied=True).count_params() == 120
    assert sharecore.build(spec, tied=False).count_params() == 220


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_rotation_tied_conv_is_equivariant_to_quarter_turns_only_when_tied(tied):
    """p4 lifting: rotating the image rotates each output and shifts it to the next rotation's slot."""
    model = sharecore.build(sharecore.preset("rotation-tied-conv"), tied=tied, seed=1)
    if not tied:  # trained apart, untied copies stop being rotations of each other
        for layer in model.layers:
            if getattr(layer, "kernel", None) is not None:
                layer.kernel.assign(np.random.default_rng(5).standard_normal(layer.kernel.shape).astype("float32"))
    x = batch(sharecore.preset("rotation-tied-conv"), n=2)

    def outputs(images: np.ndarray) -> np.ndarray:
        return np.asarray(model(images)).reshape(2, 4, 8, 8, 4)  # (batch, rotation, h, w, c)

    plain, turned = outputs(x), outputs(np.ascontiguousarray(np.rot90(x, 1, axes=(1, 2))))
    error = max(np.abs(turned[:, r] - np.rot90(plain[:, r - 1], 1, axes=(1, 2))).max() for r in range(4))
    if tied:
        assert error < 1e-5
    else:
        assert error > 0.1
