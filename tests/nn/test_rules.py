"""Rules rot90 and flip, and composed rules: views, counts, ties, gradients and exported code.

Every number is checked against an oracle that shares no code with sharecore: NumPy's own
`rot90`, `flip`, `transpose`, `reshape` and slicing for the views; a scatter-add of the
entries' indices for the adjoints; the models written again in plain TensorFlow ops with one
variable per use; and finite differences in float64.
"""

from __future__ import annotations

import importlib.util
import math
import re
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.core.plan import plan
from sharecore.core.rules import apply_rule_np, read_box, rule_mask, split_pairs
from sharecore.core.shapes import rule_output_shape
from sharecore.core.spec import ModelSpec, Rule
from sharecore.nn.data import make_dataset
from sharecore.nn.layers import apply_rule, record_views
from sharecore.nn.model import initial_values
from sharecore.nn.tensor_rules import rule_adjoint
from sharecore.nn.variant import RuleMap
from sharecore.share import urlstate
from sharecore.share.codegen import keras_code
from sharecore.viz import plots
from tests.support.codegen import assert_ruff_clean, exec_script
from tests.support.ties import assert_tie_holds

# ----------------------------------------------------------------------------- the specs
# One 3x3 kernel under its four rotations in a conv chain (p4-style), and a 2x3 kernel whose
# rotations by an odd k are 3x2, with a bias shared by its four uses. (A half turn of a kernel
# that is not square is where keras.ops.rot90 goes wrong in Keras 3.15.)
ROTATIONS = {
    "input_shape": [5, 5, 2],
    "tensors": [{"name": "K", "shape": [3, 3, 2, 2]}, {"name": "R", "shape": [2, 3, 2, 2]}],
    "uses": [
        {"name": "r0", "op": "conv2d", "tensor": "K", "activation": "tanh"},
        {"name": "r1", "op": "conv2d", "tensor": "K", "rule": {"kind": "rot90", "k": 1}, "activation": "tanh"},
        {"name": "r2", "op": "conv2d", "tensor": "K", "rule": {"kind": "rot90", "k": 2}, "activation": "tanh"},
        {"name": "r3", "op": "conv2d", "tensor": "K", "rule": {"kind": "rot90", "k": 3}, "activation": "tanh"},
        {"name": "q1", "op": "conv2d", "tensor": "R", "rule": {"kind": "rot90", "k": 1}, "bias": "shared"},
        {"name": "q3", "op": "conv2d", "tensor": "R", "rule": {"kind": "rot90", "k": -1}, "bias": "shared"},
        {"name": "q0", "op": "conv2d", "tensor": "R", "bias": "shared"},
        {"name": "q2", "op": "conv2d", "tensor": "R", "rule": {"kind": "rot90", "k": 2}, "bias": "shared"},
    ],
}
# One conv kernel flipped along each of its axes (the last written as -1).
FLIPS = {
    "input_shape": [4, 4, 2],
    "tensors": [{"name": "K", "shape": [3, 3, 2, 2]}],
    "uses": [
        {
            "name": f"f{axis % 4}",
            "op": "conv2d",
            "tensor": "K",
            "rule": {"kind": "flip", "axis": axis},
            "activation": "tanh",
        }
        for axis in (0, 1, 2, -1)
    ],
}
# A dense chain 6 -> 4 -> 3 -> 4 on one (6, 4) tensor: c reads W transposed then sliced (W[2:5, 0:4]
# transposed), b reads W[1:5, 1:4] then transposed. b and c overlap on W[2:5, 1:4].
SLICE_TRANSPOSE = {
    "input_shape": [6],
    "tensors": [{"name": "W", "shape": [6, 4]}],
    "uses": [
        {"name": "a", "op": "dense", "tensor": "W", "activation": "tanh"},
        {
            "name": "c",
            "op": "dense",
            "tensor": "W",
            "rule": ["transpose", {"kind": "slice", "begin": [0, 2], "size": [4, 3]}],
            "activation": "tanh",
        },
        {
            "name": "b",
            "op": "dense",
            "tensor": "W",
            "rule": {"kind": "compose", "rules": [{"kind": "slice", "begin": [1, 1], "size": [4, 3]}, "transpose"]},
        },
    ],
}
# A conv kernel read as it is, flipped then turned, and turned then reshaped into a dense kernel.
ROT_RESHAPE = {
    "input_shape": [4, 4, 2],
    "tensors": [{"name": "K", "shape": [3, 3, 2, 2]}],
    "uses": [
        {"name": "c0", "op": "conv2d", "tensor": "K", "activation": "tanh"},
        {
            "name": "c1",
            "op": "conv2d",
            "tensor": "K",
            "rule": [{"kind": "flip", "axis": 0}, {"kind": "rot90", "k": 1}],
            "activation": "tanh",
        },
        {
            "name": "d",
            "op": "dense",
            "tensor": "K",
            "input_slice": [0, 18],
            "rule": [{"kind": "rot90", "k": 3}, {"kind": "reshape", "shape": [18, 2]}],
        },
    ],
}
# Reshape then slice reads no box of W: a reads flat entries 0-7 (row 0 and W[1, 0:2]), b reads
# entries 8-15 (W[1, 2:6] and W[2, 0:4]). Their bounding boxes meet on row 1, their entries do not.
PIECES = {
    "input_shape": [4],
    "tensors": [{"name": "W", "shape": [4, 6]}],
    "uses": [
        {"name": "full", "op": "dense", "tensor": "W", "source": "input", "activation": "tanh"},
        {
            "name": "a",
            "op": "dense",
            "tensor": "W",
            "source": "input",
            "input_slice": [0, 1],
            "rule": [{"kind": "reshape", "shape": [3, 8]}, {"kind": "slice", "begin": [0, 0], "size": [1, 8]}],
            "activation": "tanh",
        },
        {
            "name": "b",
            "op": "dense",
            "tensor": "W",
            "source": "input",
            "input_slice": [1, 2],
            "rule": [{"kind": "reshape", "shape": [3, 8]}, {"kind": "slice", "begin": [1, 0], "size": [1, 8]}],
            "activation": "tanh",
        },
    ],
    "outputs": ["full", "a", "b"],
}
SPECS = {
    "rotations": ROTATIONS,
    "flips": FLIPS,
    "slice-transpose": SLICE_TRANSPOSE,
    "rot90-reshape": ROT_RESHAPE,
    "pieces": PIECES,
}
# spec: (tied params, untied params, tied trainable weights, untied trainable weights)
COUNTS = {
    # tied: K 36 + R 24 + one shared bias 2; untied: 4 copies of K, 4 of R each with its own bias.
    "rotations": (36 + 24 + 2, 4 * 36 + 4 * (24 + 2), 3, 4 + 4 * 2),
    "flips": (36, 4 * 36, 1, 4),
    # untied: W (6, 4) and two (3, 4) / (4, 3) kernels
    "slice-transpose": (24, 24 + 12 + 12, 1, 3),
    "rot90-reshape": (36, 3 * 36, 1, 3),
    "pieces": (24, 24 + 8 + 8, 1, 3),
}
PARAMS = [pytest.param(name, id=name) for name in SPECS]


def spec_of(name: str) -> ModelSpec:
    return ModelSpec.from_dict({"name": name, **SPECS[name]})


def batch(spec: ModelSpec, n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *spec.input_shape)).astype("float32")


# ----------------------------------------------------------------------------- NumPy oracles
def _steps(rule: Any) -> list[dict]:
    """The single steps of a rule as written in JSON: a name, a dict, a list or a 'compose'."""
    if rule is None:
        return []
    if isinstance(rule, str):
        return [{"kind": rule}]
    if isinstance(rule, list):
        return [step for r in rule for step in _steps(r)]
    if rule["kind"] == "compose":
        return _steps(rule["rules"])
    return [rule]


def numpy_view(rule: Any, w: np.ndarray) -> np.ndarray:
    """The kernel that `rule` (JSON) makes from `w`, with NumPy's own functions."""
    for step in _steps(rule):
        kind = step["kind"]
        if kind == "rot90":
            w = np.rot90(w, step.get("k", 1), axes=(0, 1))
        elif kind == "flip":
            w = np.flip(w, step["axis"])
        elif kind == "transpose":
            w = np.transpose(w, step.get("perm"))
        elif kind == "reshape":
            w = np.reshape(w, step["shape"])
        elif kind == "slice":
            w = w[tuple(slice(b, b + s) for b, s in zip(step["begin"], step["size"]))]
        else:
            assert kind == "identity", kind
    return w


def numpy_adjoint(rule: Any, g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Adds each kernel entry of `g` into the stored entry it was read from (the transpose of the view)."""
    index = numpy_view(rule, np.arange(math.prod(shape)).reshape(shape))
    out = np.zeros(math.prod(shape), dtype=g.dtype)
    np.add.at(out, index.ravel(), np.asarray(g).ravel())
    return out.reshape(shape)


def plain_forward(data: dict, kernels: dict[str, Any], x: tf.Tensor) -> tf.Tensor:
    """A spec's function in plain TensorFlow ops, from each use's kernel (biases are 0 at the start)."""
    activations = {"tanh": tf.tanh, "linear": lambda h: h}
    nodes, previous = {"input": x}, "input"
    for u in data["uses"]:
        h = nodes[u.get("source") or previous]
        if "input_slice" in u:
            start, stop = u["input_slice"]
            h = tf.reshape(h, [tf.shape(h)[0], -1])[:, start:stop]  # (batch, stop - start)
        k = kernels[u["name"]]
        if u["op"] == "dense":
            h = tf.tensordot(h, k, axes=1)  # (batch, units)
        else:
            h = tf.nn.conv2d(h, k, 1, "SAME")  # (batch, h, w, c_out)
        nodes[u["name"]] = activations[u.get("activation", "linear")](h)
        previous = u["name"]
    outputs = data.get("outputs") or [previous]
    if len(outputs) == 1:
        return nodes[outputs[0]]
    return tf.concat([tf.reshape(nodes[o], [tf.shape(x)[0], -1]) for o in outputs], 1)


def plain_use_gradients(
    data: dict, init: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray | None = None, dtype: str = "float32"
) -> tuple[float, dict[str, np.ndarray]]:
    """Loss and, per use, the gradient of one separate variable holding that use's view, mapped back by NumPy.

    Loss: mean(out^2), or mean((out - y)^2) when `y` is given (the trainer's regression loss).
    """
    shapes = {t["name"]: tuple(t["shape"]) for t in data["tensors"]}
    kernels = {u["name"]: tf.Variable(numpy_view(u.get("rule"), init[u["tensor"]]).astype(dtype)) for u in data["uses"]}
    with tf.GradientTape() as tape:
        out = plain_forward(data, kernels, tf.constant(x, dtype))
        loss = tf.reduce_mean(tf.square(out if y is None else out - tf.constant(y, dtype)))
    grads = tape.gradient(loss, list(kernels.values()))
    return float(loss), {
        u["name"]: numpy_adjoint(u.get("rule"), g.numpy(), shapes[u["tensor"]])
        for u, g in zip(data["uses"], grads, strict=True)
    }


# ----------------------------------------------------------------------------- views
@pytest.mark.parametrize("k", [-1, 0, 1, 2, 3, 5])
def test_rot90_views_equal_numpy_rot90_in_the_first_two_axes(k):
    w = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)
    rule = Rule.from_dict({"kind": "rot90", "k": k})
    expected = np.rot90(w, k, axes=(0, 1))

    assert rule.k == k % 4
    np.testing.assert_array_equal(apply_rule_np(rule, w), expected)
    np.testing.assert_array_equal(apply_rule(rule.to_dict(), tf.constant(w)).numpy(), expected)
    assert rule_output_shape(rule, w.shape, "use 'x'") == expected.shape
    assert expected.shape == ((3, 2, 4) if k % 2 else (2, 3, 4))


@pytest.mark.parametrize("axis", [-3, -2, -1, 0, 1, 2])
def test_flip_views_equal_numpy_flip_on_each_axis(axis):
    w = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)
    rule = Rule.from_dict({"kind": "flip", "axis": axis})
    expected = np.flip(w, axis)

    np.testing.assert_array_equal(apply_rule_np(rule, w), expected)
    np.testing.assert_array_equal(apply_rule(rule.to_dict(), tf.constant(w)).numpy(), expected)
    assert rule_output_shape(rule, w.shape, "use 'x'") == w.shape


def test_composed_rules_apply_their_steps_in_order():
    w = np.arange(24, dtype="float32").reshape(6, 4)
    slice_then_transpose = Rule.from_dict([{"kind": "slice", "begin": [1, 1], "size": [4, 3]}, "transpose"])
    transpose_then_slice = Rule.from_dict(["transpose", {"kind": "slice", "begin": [1, 1], "size": [3, 4]}])

    np.testing.assert_array_equal(apply_rule_np(slice_then_transpose, w), w[1:5, 1:4].T)
    np.testing.assert_array_equal(apply_rule_np(transpose_then_slice, w), w.T[1:4, 1:5])
    for rule in (slice_then_transpose, transpose_then_slice):
        np.testing.assert_array_equal(apply_rule(rule.to_dict(), tf.constant(w)).numpy(), apply_rule_np(rule, w))
    assert rule_output_shape(slice_then_transpose, (6, 4), "use 'x'") == (3, 4)
    kernel = np.arange(36, dtype="float32").reshape(3, 3, 2, 2)
    turned = Rule.from_dict([{"kind": "rot90", "k": 1}, {"kind": "reshape", "shape": [18, 2]}])
    np.testing.assert_array_equal(apply_rule_np(turned, kernel), np.rot90(kernel, 1, axes=(0, 1)).reshape(18, 2))


def test_tensor_views_show_each_rotation_and_flip_of_the_stored_tensor():
    spec = ModelSpec.from_dict(
        {
            "input_shape": [4],
            "tensors": [{"name": "W", "shape": [3, 4]}],
            "uses": [
                {"name": "plain", "op": "dense", "tensor": "W", "source": "input", "input_slice": [0, 3]},
                {"name": "turned", "op": "dense", "tensor": "W", "source": "input", "rule": {"kind": "rot90"}},
                {
                    "name": "mirrored",
                    "op": "dense",
                    "tensor": "W",
                    "source": "input",
                    "input_slice": [0, 3],
                    "rule": {"kind": "flip", "axis": 1},
                },
            ],
            "outputs": ["plain", "turned", "mirrored"],
        }
    )
    w = initial_values(spec, seed=3)["W"]

    fig = plots.tensor_views(spec, "W", w)

    np.testing.assert_array_equal(fig.data[1].z, w)
    np.testing.assert_array_equal(fig.data[2].z, np.rot90(w))
    np.testing.assert_array_equal(fig.data[3].z, np.flip(w, 1))
    titles = [a.text for a in fig.layout.annotations]
    assert titles[2:] == ["<b>turned</b><br>rot90 k=1 → (4, 3)", "<b>mirrored</b><br>flip axis=1 → (3, 4)"]


# ----------------------------------------------------------------------------- the spec's JSON
def test_rules_read_and_write_json_and_label_themselves():
    composed = {"kind": "compose", "rules": [{"kind": "slice", "begin": [0, 0], "size": [4, 3]}, "transpose"]}
    rule = Rule.from_dict(composed)

    assert Rule.from_dict(composed["rules"]) == rule  # a bare list is the composed rule
    assert rule.to_dict() == {
        "kind": "compose",
        "rules": [{"kind": "slice", "begin": [0, 0], "size": [4, 3]}, {"kind": "transpose"}],
    }
    assert Rule.from_dict(rule.to_dict()) == rule
    assert rule.describe() == "slice begin=(0, 0) size=(4, 3) then transpose"
    # A composed step is replaced by its steps.
    nested = Rule.from_dict([[{"kind": "flip", "axis": 0}, "transpose"], {"kind": "compose", "rules": ["rot90"]}])
    assert [s.kind for s in nested.rules] == ["flip", "transpose", "rot90"]
    assert nested.describe() == "flip axis=0 then transpose then rot90 k=1"
    # rot90 keeps k % 4 (numpy.rot90's default k is 1); flip keeps the axis as written.
    assert Rule.from_dict({"kind": "rot90", "k": -1}).to_dict() == {"kind": "rot90", "k": 3}
    assert Rule.from_dict({"kind": "rot90", "k": 5}) == Rule.from_dict("rot90") == Rule(kind="rot90", k=1)
    assert Rule.from_dict({"kind": "flip", "axis": -1}).to_dict() == {"kind": "flip", "axis": -1}
    assert Rule(kind="rot90", k=2).describe() == "rot90 k=2"
    assert Rule(kind="flip", axis=0).describe() == "flip axis=0"
    # Whole specs survive JSON and the URL form unchanged.
    for name in SPECS:
        spec = spec_of(name)
        assert ModelSpec.from_json(spec.to_json()) == spec
        assert urlstate.decode_spec(urlstate.encode_spec(spec)) == spec


def _use_with_rule(rule: Any, tensor_shape: list[int], input_shape: list[int]) -> ModelSpec:
    return ModelSpec.from_dict(
        {
            "input_shape": input_shape,
            "tensors": [{"name": "W", "shape": tensor_shape}],
            "uses": [{"name": "d", "op": "dense", "tensor": "W", "rule": rule}],
        }
    )


@pytest.mark.parametrize(
    ("rule", "tensor_shape", "says"),
    [
        pytest.param(
            {"kind": "rot90", "k": 1},
            [6],
            ["use 'd'", "rule 'rot90'", "at least 2 axes", "Received: k=1, tensor shape=(6,)"],
            id="rot90-on-rank-1",
        ),
        pytest.param(
            {"kind": "flip", "axis": 2},
            [6, 4],
            ["use 'd'", "rule 'flip' needs an axis from -2 to 1", "Received: axis=2, tensor shape=(6, 4)"],
            id="flip-axis-out-of-range",
        ),
        pytest.param(
            {"kind": "flip", "axis": -3},
            [6, 4],
            ["rule 'flip' needs an axis from -2 to 1", "Received: axis=-3"],
            id="flip-negative-axis-out-of-range",
        ),
        pytest.param(
            [{"kind": "slice", "begin": [0, 0], "size": [6, 2]}, {"kind": "transpose", "perm": [0, 1, 2]}],
            [6, 4],
            ["step 1 ('transpose (0, 1, 2)') of the composed rule, on shape (6, 2)", "Received: perm=(0, 1, 2)"],
            id="compose-bad-transpose-step",
        ),
        pytest.param(
            [{"kind": "rot90", "k": 1}, {"kind": "slice", "begin": [0, 0], "size": [6, 4]}],
            [6, 4],
            ["step 1 ('slice begin=(0, 0) size=(6, 4)') of the composed rule, on shape (4, 6)", "axis 0"],
            id="compose-slice-past-the-turned-shape",
        ),
    ],
)
def test_invalid_rules_are_refused_by_plan_with_what_was_received(rule, tensor_shape, says):
    spec = _use_with_rule(rule, tensor_shape, [6])

    with pytest.raises(ValueError) as error:
        plan(spec)

    for part in says:
        assert part in str(error.value)


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        pytest.param({"kind": "flip"}, ["rule 'flip' needs the 'axis'", "Received: {'kind': 'flip'}"], id="no-axis"),
        pytest.param(
            {"kind": "flip", "axis": 1.0}, ["rule.axis: must be a whole number", "Received: 1.0"], id="float-axis"
        ),
        pytest.param({"kind": "rot90", "k": "1"}, ["rule.k: must be a whole number", "Received: '1'"], id="text-k"),
        pytest.param({"kind": "rot90", "k": True}, ["rule.k: must be a whole number", "Received: True"], id="bool-k"),
        pytest.param({"kind": "rot90", "axis": 0}, ["rule 'rot90' takes only ['k']"], id="rot90-with-axis"),
        pytest.param([], ["needs a non-empty list of rules", "Received: []"], id="empty-list"),
        pytest.param({"kind": "compose"}, ["rule.rules: a composed rule needs", "Received: None"], id="no-steps"),
        pytest.param(["transpose", "turn"], ["rule[1].kind: must be one of", "Received: 'turn'"], id="unknown-step"),
        pytest.param(
            {"kind": "compose", "rules": ["transpose", {"kind": "flip", "axis": "0"}]},
            ["rule.rules[1].axis: must be a whole number", "Received: '0'"],
            id="bad-step-option",
        ),
        pytest.param([[["transpose"]]], ["rule[0][0]: composed rules nest one level deep at most"], id="too-deep"),
        pytest.param(["identity"] * 17, ["at most 16 steps", "Received: '17 steps'"], id="too-many-steps"),
    ],
)
def test_invalid_rules_are_refused_when_read_with_the_step_named(rule, says):
    with pytest.raises(ValueError) as error:
        _use_with_rule(rule, [6, 4], [6])

    for part in says:
        assert part in str(error.value)
    assert str(error.value).startswith("use 'd'.rule")


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("name", PARAMS)
def test_tied_and_untied_compute_the_plain_tensorflow_function_at_init(name):
    spec = spec_of(name)
    x = batch(spec, 3)
    init = initial_values(spec, seed=2)
    kernels = {u["name"]: numpy_view(u.get("rule"), init[u["tensor"]]) for u in SPECS[name]["uses"]}

    pair = assert_tie_holds(spec, seed=2, x=x)  # tied and untied: one function (and the tie's own checks)
    tied, untied = pair.tied, pair.untied

    expected = plain_forward(SPECS[name], kernels, tf.constant(x)).numpy()
    np.testing.assert_allclose(np.asarray(tied(x)), expected, rtol=1e-5, atol=1e-6)
    # Each untied copy starts as its use's view: numpy.rot90 / numpy.flip of the stored tensor.
    for u in SPECS[name]["uses"]:
        np.testing.assert_array_equal(untied.get_layer(f"copy_{u['name']}").kernel.numpy(), kernels[u["name"]])


def _sgd_step(model: keras.Model, x: np.ndarray, y: np.ndarray, lr: float) -> None:
    """One plain SGD step on mean((model(x) - y)^2)."""
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - y))
    grads = tape.gradient(loss, model.trainable_weights)
    keras.optimizers.SGD(lr).apply_gradients(zip(grads, model.trainable_weights))


@pytest.mark.parametrize("name", PARAMS)
def test_counts_exactly_and_a_saved_tied_model_loads_in_safe_mode_keeping_the_tie(tmp_path, name):
    """tests/support/ties.py's harness (COUNTS exactly, against param_report; the tied model saved and
    loaded in safe mode keeps its counts, its one variable per tensor and its outputs), then training
    goes on the same in the loaded model as in the original."""
    spec = spec_of(name)
    x = batch(spec, 6)
    pair = assert_tie_holds(spec, counts=COUNTS[name], seed=1, x=x, tmp_path=tmp_path)
    original, loaded = pair.tied, pair.loaded

    y = np.random.default_rng(1).standard_normal(np.asarray(original(x)).shape).astype("float32")
    before = [w.numpy().copy() for w in loaded.trainable_weights]
    for model in (original, loaded):
        _sgd_step(model, x, y, lr=0.1)
    for a, b in zip(original.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert max(np.abs(w.numpy() - w0).max() for w, w0 in zip(loaded.trainable_weights, before)) > 1e-4


@pytest.mark.parametrize("name", PARAMS)
def test_one_sgd_step_of_the_tied_model_moves_each_tensor_by_the_untied_gradients_mapped_back(name):
    spec, data, lr = spec_of(name), SPECS[name], 0.1
    x = batch(spec, 8, seed=3)
    tied, untied = sharecore.build(spec, True, seed=4), sharecore.build(spec, False, seed=4)
    y = np.random.default_rng(4).standard_normal(np.asarray(tied(x)).shape).astype("float32")
    init = initial_values(spec, seed=4)
    copies = {u["name"]: untied.get_layer(f"copy_{u['name']}").kernel for u in data["uses"]}
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(untied(x) - y))
    copy_grads = dict(zip(copies, (g.numpy() for g in tape.gradient(loss, list(copies.values()))), strict=True))

    _sgd_step(tied, x, y, lr)

    for t in data["tensors"]:
        shape = tuple(t["shape"])
        mapped = [
            numpy_adjoint(u.get("rule"), copy_grads[u["name"]], shape) for u in data["uses"] if u["tensor"] == t["name"]
        ]
        expected = init[t["name"]] - lr * sum(mapped)
        after = tied.get_layer(f"tensor_{t['name']}").kernel.numpy()
        assert np.abs(after - init[t["name"]]).max() > 1e-4
        np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-6)


def _fd_loss(data: dict, tensors: dict[str, np.ndarray], x: np.ndarray) -> float:
    """mean(out^2) in float64, every use reading its NumPy view of the stored tensors."""
    kernels = {u["name"]: tf.constant(numpy_view(u.get("rule"), tensors[u["tensor"]])) for u in data["uses"]}
    return float(tf.reduce_mean(tf.square(plain_forward(data, kernels, tf.constant(x)))))


@pytest.mark.parametrize("name", PARAMS)
def test_per_use_contributions_sum_to_the_gradient_and_match_separate_variables_and_finite_differences(name):
    spec, data = spec_of(name), SPECS[name]
    model = sharecore.build(spec, tied=True, seed=5)
    x = batch(spec, 4, seed=5)
    variables = {t["name"]: model.get_layer(f"tensor_{t['name']}").kernel for t in data["tensors"]}

    with tf.GradientTape() as tape, record_views() as views:
        loss = tf.reduce_mean(tf.square(model(x)))
    grads = tape.gradient(loss, list(variables.values()) + [v for _, _, v in views])

    totals = dict(zip(variables, (g.numpy() for g in grads[: len(variables)]), strict=True))
    contributions = {use: g.numpy() for (_, use, _), g in zip(views, grads[len(variables) :], strict=True)}
    assert sorted(contributions) == sorted(u["name"] for u in data["uses"])
    init = initial_values(spec, seed=5)
    _, oracle = plain_use_gradients(data, init, x)
    for t, total in totals.items():
        uses = [u["name"] for u in data["uses"] if u["tensor"] == t]
        assert np.abs(sum(contributions[u] for u in uses) - total).max() <= 1e-6
        for u in uses:
            np.testing.assert_allclose(contributions[u], oracle[u], rtol=1e-4, atol=1e-6)

    # Finite differences in float64 on one entry of the first tensor, the entry every use reads.
    t = data["tensors"][0]["name"]
    entry = (1,) * len(init[t].shape)
    tensors64, x64, eps = {k: v.astype("float64") for k, v in init.items()}, x.astype("float64"), 1e-6
    plus, minus = dict(tensors64), dict(tensors64)
    plus[t], minus[t] = tensors64[t].copy(), tensors64[t].copy()
    plus[t][entry] += eps
    minus[t][entry] -= eps
    numeric = (_fd_loss(data, plus, x64) - _fd_loss(data, minus, x64)) / (2 * eps)
    assert abs(numeric) > 1e-5  # the entry matters, so the check can fail
    np.testing.assert_allclose(totals[t][entry], numeric, rtol=1e-3, atol=1e-7)


# ----------------------------------------------------------------------------- adjoints and masks
ADJOINT_CASES = (
    [pytest.param({"kind": "rot90", "k": k}, (3, 2, 2), id=f"rot90-k{k}") for k in range(4)]
    + [pytest.param({"kind": "flip", "axis": axis}, (3, 2, 2), id=f"flip-{axis}") for axis in (0, 1, 2, -1)]
    + [
        pytest.param([{"kind": "slice", "begin": [1, 1], "size": [4, 3]}, "transpose"], (6, 4), id="slice-transpose"),
        pytest.param(["transpose", {"kind": "slice", "begin": [0, 2], "size": [4, 3]}], (6, 4), id="transpose-slice"),
        pytest.param(
            [{"kind": "rot90", "k": 3}, {"kind": "reshape", "shape": [18, 2]}], (3, 3, 2, 2), id="rot90-reshape"
        ),
        pytest.param([{"kind": "flip", "axis": 0}, {"kind": "rot90", "k": 1}], (2, 3, 2, 2), id="flip-rot90"),
        pytest.param(
            [{"kind": "reshape", "shape": [3, 8]}, {"kind": "slice", "begin": [1, 0], "size": [1, 8]}],
            (4, 6),
            id="reshape-slice",
        ),
        pytest.param(
            [{"kind": "rot90", "k": 1}, {"kind": "slice", "begin": [1, 0, 0], "size": [2, 2, 2]}, "transpose"],
            (2, 3, 2),
            id="rot90-slice-transpose",
        ),
    ]
)


@pytest.mark.parametrize(("rule", "shape"), ADJOINT_CASES)
def test_rule_adjoint_is_the_transpose_of_the_view(rule, shape):
    r = Rule.from_dict(rule)
    kernel_shape = rule_output_shape(r, shape, "rule")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(shape), rng.standard_normal(kernel_shape)

    ax = apply_rule(r.to_dict(), tf.constant(x)).numpy()
    aty = rule_adjoint(r, tf.constant(y), shape).numpy()

    assert ax.shape == kernel_shape and aty.shape == shape
    np.testing.assert_array_equal(ax, numpy_view(rule, x))
    np.testing.assert_allclose(np.sum(ax * y), np.sum(x * aty), rtol=1e-12)
    np.testing.assert_array_equal(aty, numpy_adjoint(rule, y, shape))


@pytest.mark.parametrize(("rule", "shape"), ADJOINT_CASES)
def test_a_rule_map_maps_many_records_as_the_numpy_adjoint_maps_each(rule, shape):
    """The trainer maps its recorded kernels back into the tensor's shape with one gather for all records
    (`RuleMap`); each record must be the NumPy oracle's adjoint of it, and a tied view the tensor where it is read."""
    r = Rule.from_dict(rule)
    kernel_shape = rule_output_shape(r, shape, "rule")
    rng = np.random.default_rng(1)
    kernels, tensors = rng.standard_normal((3, *kernel_shape)), rng.standard_normal((3, *shape))
    m = RuleMap(r, shape)

    mapped = m.to_tensor(tf.constant(kernels.reshape(3, -1), tf.float32)).numpy()
    viewed = m.masked(tf.constant(tensors.reshape(3, -1), tf.float32)).numpy()

    for i in range(3):
        expected = numpy_adjoint(rule, kernels[i].astype("float32"), shape)
        np.testing.assert_array_equal(mapped[i].reshape(shape), expected)
        view_back = numpy_adjoint(rule, numpy_view(rule, tensors[i].astype("float32")), shape)
        np.testing.assert_array_equal(viewed[i].reshape(shape), view_back)


@pytest.mark.parametrize(("rule", "shape"), ADJOINT_CASES)
def test_rule_mask_and_read_box_are_the_entries_a_rule_reads(rule, shape):
    r = Rule.from_dict(rule)
    w = tf.Variable(tf.zeros(shape))
    with tf.GradientTape() as tape:
        read = tf.reduce_sum(apply_rule(r.to_dict(), w))
    reads = tape.gradient(read, w).numpy()  # 1 on every entry the view holds, by autodiff

    np.testing.assert_array_equal(rule_mask(r, shape), reads)
    rows = np.nonzero(reads)
    assert read_box(r, shape) == tuple((int(i.min()), int(i.max()) + 1) for i in rows)


def test_split_pairs_keeps_apart_uses_whose_boxes_meet_but_whose_entries_do_not():
    spec = spec_of("pieces")
    uses = [(u.name, u.rule) for u in spec.uses]

    overlap, apart = split_pairs(uses, (4, 6))

    # The boxes of a and b both hold row 1 ...
    assert read_box(spec.uses[1].rule, (4, 6)) == ((0, 2), (0, 6))
    assert read_box(spec.uses[2].rule, (4, 6)) == ((1, 3), (0, 6))
    # ... but no entry is read by both.
    assert overlap == [("full", "a"), ("full", "b")]
    assert apart == [("a", "b")]
    overlap, apart = split_pairs([(u.name, u.rule) for u in spec_of("slice-transpose").uses], (6, 4))
    assert overlap == [("a", "c"), ("a", "b"), ("c", "b")] and apart == []


# ----------------------------------------------------------------------------- training records
@pytest.fixture(scope="module")
def one_step_runs():
    config = TrainConfig(steps=1, batch_size=8, optimizer="sgd", learning_rate=0.1, seed=3, record_every=1)
    return config, {name: sharecore.train(spec_of(name), config) for name in SPECS}


@pytest.mark.parametrize("name", PARAMS)
def test_one_training_step_records_contributions_moves_and_divergence_of_numpy_oracles(one_step_runs, name):
    config, runs = one_step_runs
    result, spec, data = runs[name], spec_of(name), SPECS[name]
    # The first batch, drawn as the trainer draws it.
    pool = make_dataset(spec, config.dataset, config.seed, config.teacher)
    idx = np.random.default_rng([config.seed, 3]).integers(0, len(pool.x), (1, config.batch_size))[0]
    init = initial_values(spec, seed=config.seed)
    loss, oracle = plain_use_gradients(data, init, pool.x[idx], pool.y[idx], dtype="float64")

    assert result.history.loss.iloc[0] == pytest.approx(loss, rel=1e-5)
    start, end = result.weights["start"], result.weights["end"]
    for t in data["tensors"]:
        name_t, shape = t["name"], tuple(t["shape"])
        uses = [u for u in data["uses"] if u["tensor"] == name_t]
        total = sum(oracle[u["name"]] for u in uses)
        # Gradient records: each use's contribution and their sum, in both variants.
        g = result.gradients[result.gradients.tensor == name_t]
        for variant in ("tied", "untied"):
            rows = g[g.variant == variant].set_index("use")
            for u in uses:
                assert rows.loc[u["name"], "grad_norm"] == pytest.approx(np.linalg.norm(oracle[u["name"]]), rel=1e-4)
            assert rows["sum_norm"].iloc[0] == pytest.approx(np.linalg.norm(total), rel=1e-4)
        # One SGD step: the tied tensor moves by lr * the summed gradient, and so do the untied
        # copies once their moves are mapped back through their rules.
        tied_move = (start["tied"][name_t] - end["tied"][name_t]) / config.learning_rate
        untied_move = (
            sum(
                numpy_adjoint(u.get("rule"), start["untied"][u["name"]] - end["untied"][u["name"]], shape) for u in uses
            )
            / config.learning_rate
        )
        np.testing.assert_allclose(tied_move, total, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(untied_move, total, rtol=1e-4, atol=1e-5)

    # Divergence: on the entries both uses read, from the untied copies mapped back by NumPy.
    d = result.divergence[result.divergence.step == 1]
    assert (d[d.variant == "tied"].relative_distance == 0).all()
    untied = d[d.variant == "untied"].set_index(["use_a", "use_b"])
    expected_pairs = []
    for t in data["tensors"]:
        shape = tuple(t["shape"])
        uses = [u for u in data["uses"] if u["tensor"] == t["name"]]
        for i, ua in enumerate(uses):
            for ub in uses[i + 1 :]:
                both = (numpy_adjoint(ua.get("rule"), np.ones_like(end["untied"][ua["name"]]), shape) > 0) & (
                    numpy_adjoint(ub.get("rule"), np.ones_like(end["untied"][ub["name"]]), shape) > 0
                )
                if not both.any():
                    continue
                expected_pairs.append((ua["name"], ub["name"]))
                va = numpy_adjoint(ua.get("rule"), end["untied"][ua["name"]], shape) * both
                vb = numpy_adjoint(ub.get("rule"), end["untied"][ub["name"]], shape) * both
                relative = np.linalg.norm(va - vb) / np.linalg.norm(start["tied"][t["name"]] * both)
                cosine = np.sum(va * vb) / (np.linalg.norm(va) * np.linalg.norm(vb))
                row = untied.loc[(ua["name"], ub["name"])]
                assert row.relative_distance == pytest.approx(relative, rel=1e-4)
                assert row.relative_distance > 1e-4
                assert row.cosine == pytest.approx(cosine, rel=1e-5)
    assert sorted(untied.index) == sorted(expected_pairs)
    if name == "pieces":
        assert ("a", "b") not in expected_pairs


# ----------------------------------------------------------------------------- exported Keras code
@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("name", PARAMS)
def test_generated_keras_code_applies_the_rules_and_builds_the_same_model(name, tied):
    spec = spec_of(name)
    reference = sharecore.build(spec, tied, seed=0)

    code = keras_code(spec, tied)
    namespace, printed = exec_script(code)

    count = COUNTS[name][0 if tied else 1]
    assert int(re.search(r"^count_params: (\d+)$", printed, re.MULTILINE).group(1)) == count
    model = namespace["model"]
    by_path = {v.path: v for v in reference.weights}
    assert sorted(v.path for v in model.weights) == sorted(by_path)
    for variable in model.weights:
        variable.assign(by_path[variable.path])
    x = batch(spec, 5, seed=1)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(reference(x)), rtol=0, atol=1e-6)


def test_generated_code_writes_composed_rules_as_views_in_order():
    # Line breaks as ruff lays them out, collapsed to single spaces.
    code = " ".join(keras_code(spec_of("rot90-reshape"), tied=True).split())
    transposed = " ".join(keras_code(spec_of("slice-transpose"), tied=True).split())
    untied = " ".join(keras_code(spec_of("rot90-reshape"), tied=False).split())

    assert '"c1": { "op": "conv2d", "views": [{"flip": 0}, {"rot90": 1}], "activation": "tanh", },' in code
    assert '"d": {"op": "dense", "views": [{"rot90": 3}, {"reshape": [18, 2]}]},' in code
    # A transpose without a perm is written with the perm of the shape it reads at its step.
    assert '"views": [ {"transpose": [1, 0]}, {"slice_begin": [0, 2], "slice_size": [4, 3]}, ],' in transposed
    assert '"views": [ {"slice_begin": [1, 1], "slice_size": [4, 3]}, {"transpose": [1, 0]}, ],' in transposed
    # Untied copies store the view itself, so they read it as it is.
    layers = untied.split("# Untied: one layer per use")[1]
    assert '"c1": {"op": "conv2d", "activation": "tanh"},' in layers
    assert '"views":' not in layers and '"rot90":' not in layers and '"flip":' not in layers


@pytest.mark.parametrize("name", ["rotations", "rot90-reshape"])
def test_generated_tied_script_saves_and_loads_in_safe_mode_keeping_the_tie(tmp_path, name):
    spec = spec_of(name)
    model = exec_script(keras_code(spec, tied=True))[0]["model"]
    path = tmp_path / "model.keras"

    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)

    assert loaded.count_params() == COUNTS[name][0]
    assert len(loaded.trainable_weights) == COUNTS[name][2]
    x = batch(spec, 3)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=0, atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed")
def test_generated_code_with_the_new_rules_is_ruff_formatted_and_lint_clean(tmp_path):
    assert_ruff_clean({name: spec_of(name) for name in SPECS}, tmp_path)
