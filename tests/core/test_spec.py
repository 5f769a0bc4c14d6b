"""The spec: JSON round trip, and a clear ValueError for every spec that cannot be built."""

from __future__ import annotations

import json

import pytest

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.core.spec import ModelSpec, Rule


@pytest.mark.parametrize("name", sharecore.presets())
def test_spec_json_round_trip_is_exact(name):
    spec = sharecore.preset(name)
    data = json.loads(spec.to_json())
    assert ModelSpec.from_dict(data) == spec
    assert ModelSpec.from_json(spec.to_json()).to_dict() == spec.to_dict()
    assert hash(ModelSpec.from_dict(data)) == hash(spec)


def test_rule_accepts_a_bare_name_and_writes_the_dict_form():
    assert Rule.from_dict("transpose") == Rule(kind="transpose")
    assert Rule.from_dict({"kind": "reshape", "shape": [1, 1, 10, 5]}).to_dict() == {
        "kind": "reshape",
        "shape": [1, 1, 10, 5],
    }


def test_train_config_round_trips_and_rejects_bad_values():
    config = TrainConfig(steps=5, optimizer="sgd", learning_rate=0.5)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"train.learning_rate: must be a finite number > 0.*Received: nan"):
        TrainConfig(learning_rate=float("nan"))
    with pytest.raises(ValueError, match=r"train.optimizer: must be one of 'sgd', 'adam'.*Received: 'rmsprop'"):
        TrainConfig(optimizer="rmsprop")


def spec_of(**changes) -> dict:
    """seed-dense as a dict, with top-level keys replaced."""
    data = sharecore.preset("seed-dense").to_dict()
    data.update(changes)
    return data


def check_rejected(data: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        sharecore.plan(ModelSpec.from_dict(data))


# The three examples of the popular recipe, each failing on shapes.
def test_textbook_dense_chain_with_a_non_square_kernel_says_make_w_square_or_transpose():
    data = spec_of(tensors=[{"name": "W", "shape": [10, 5]}])
    check_rejected(
        data,
        r"use 'dense_2' needs a kernel with 5 input rows to read the 5 features of 'dense_1', but the shared "
        r"tensor 'W' gives 10\. Make 'W' square, e\.g\. \(10, 10\) or \(5, 5\), or use rule 'transpose' so the "
        r"kernel is \(5, 10\)\. Received: input shape=\(5,\), kernel shape=\(10, 5\)",
    )


def test_textbook_conv_kernel_applied_to_its_own_output_says_match_the_channels():
    data = {
        "input_shape": [28, 28, 3],
        "tensors": [{"name": "K", "shape": [3, 3, 3, 64]}],
        "uses": [
            {"name": "conv_1", "op": "conv2d", "tensor": "K"},
            {"name": "conv_2", "op": "conv2d", "tensor": "K"},
        ],
    }
    check_rejected(
        data,
        r"use 'conv_2' receives 64 channels from 'conv_1', but the shared tensor 'K' expects 3 input channels\. "
        r"Make the kernel's input and output channels equal, e\.g\. \(3, 3, 64, 64\).*"
        r"Received: input shape=\(28, 28, 64\), kernel shape=\(3, 3, 3, 64\)",
    )


def test_textbook_2d_tensor_used_as_a_conv_filter_says_reshape_to_1x1():
    data = {
        "input_shape": [1, 1, 10],
        "tensors": [{"name": "W", "shape": [10, 5]}],
        "uses": [{"name": "conv", "op": "conv2d", "tensor": "W"}],
    }
    check_rejected(
        data,
        r"use 'conv': op 'conv2d' needs a 4-D kernel .* gives a 2-D kernel \(10, 5\) under rule 'identity'\. "
        r"Use rule reshape to \(1, 1, 10, 5\) for a 1x1 conv; it then computes exactly the dense op\. "
        r"Received: kernel shape=\(10, 5\)",
    )


@pytest.mark.parametrize(
    ("use_changes", "pattern"),
    [
        (
            {"rule": {"kind": "reshape", "shape": [3, 3]}},
            r"use 'dense_1': rule 'reshape' must keep the number of elements.*100.*9",
        ),
        ({"op": "matmul"}, r"use 'dense_1'\.op: must be one of 'dense', 'conv2d', .*Received: 'matmul'"),
        ({"rule": "rotate"}, r"use 'dense_1'\.rule\.kind: must be one of 'identity', 'transpose', 'reshape', 'slice'"),
        ({"activation": "swishy"}, r"use 'dense_1'\.activation: must be one of .*Received: 'swishy'"),
        ({"bias": "both"}, r"use 'dense_1'\.bias: must be one of 'none', 'own', 'shared'"),
        ({"tensor": "V"}, r"use 'dense_1' reads shared tensor 'V', which is not declared"),
        ({"source": "later"}, r"use 'dense_1' reads node 'later', which is not the input or an earlier use"),
        ({"rule": {"kind": "slice", "begin": [5, 0], "size": [6, 10]}}, r"rule 'slice' reaches index 10 on axis 0"),
        ({"strides": 2}, r"use 'dense_1': strides and padding apply to conv2d and conv2d_transpose only"),
        ({"strides": 0}, r"use 'dense_1'\.strides: must be >= 1\. Received: 0"),
        ({"input_reshape": [3, 3]}, r"use 'dense_1': input_reshape must keep the 10 input features"),
        ({"tensor": None}, r"use 'dense_1' reads no shared tensor, so it needs its own kernel_shape"),
        ({"colour": "red"}, r"unknown key\(s\) \['colour'\]"),
    ],
)
def test_invalid_use_names_the_use_and_the_fix(use_changes, pattern):
    data = spec_of()
    data["uses"][0].update(use_changes)
    check_rejected(data, pattern)


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"input_shape": [0]}, r"spec.input_shape: dimension 0 must be a whole number >= 1\. Received: \[0\]"),
        ({"input_shape": [-3]}, r"spec.input_shape: dimension 0 must be a whole number >= 1"),
        ({"input_shape": [2.5]}, r"spec.input_shape: dimension 0 must be a whole number"),
        (
            {"tensors": [{"name": "W", "shape": [10, 0]}]},
            r"spec.tensors\[0\]\.shape: dimension 1 must be a whole number >= 1",
        ),
        ({"tensors": [{"name": "W", "shape": [10, 10], "initializer": "lucky"}]}, r"initializer: must be one of"),
        ({"uses": []}, r"spec.uses: a model needs at least one use"),
        ({"outputs": ["nowhere"]}, r"output 'nowhere' is not a node of the model"),
        ({"outputs": ["dense_1"]}, r"use\(s\) \['dense_2'\] do not lead to any output"),
        (
            {"tensors": [{"name": "W", "shape": [10, 10]}, {"name": "V", "shape": [2, 2]}]},
            r"shared tensor 'V' is declared but no use reads it",
        ),
    ],
)
def test_invalid_spec_fields_say_what_was_received(changes, pattern):
    check_rejected(spec_of(**changes), pattern)


def test_duplicate_use_names_are_rejected():
    data = spec_of()
    data["uses"][1]["name"] = "dense_1"
    check_rejected(data, r"use names must be unique.*'dense_1' appears twice")


def test_conv_on_a_flat_input_suggests_an_input_reshape():
    data = {
        "input_shape": [10],
        "tensors": [{"name": "W", "shape": [10, 5]}],
        "uses": [{"name": "conv", "op": "conv2d", "tensor": "W", "rule": {"kind": "reshape", "shape": [1, 1, 10, 5]}}],
    }
    check_rejected(
        data, r"use 'conv': op 'conv2d' reads images \(height, width, channels\).*input_reshape, e\.g\. \[1, 1, 10\]"
    )


def test_malformed_json_is_a_value_error_with_the_position():
    with pytest.raises(ValueError, match=r"spec JSON could not be parsed: .*line 1 column"):
        ModelSpec.from_json('{"input_shape": [10], ')


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match=r"unknown preset 'nope'\. Choose one of: seed-dense, seed-conv"):
        sharecore.preset("nope")
