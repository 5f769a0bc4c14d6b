"""Untrusted input: whatever is pasted, uploaded or put in a URL, the answer is a ValueError
with a message, never another exception; and a run whose loss blows up stops at the step it
happens, keeping everything recorded before.

The bad inputs are grouped by kind in module-level lists (MALFORMED_JSON, HUGE, WRONG_TYPES,
UNKNOWN_KEYS, DEEP, BAD_NUMBERS); each entry is one parametrized case.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import sharecore as sc
from sharecore.core.config import TrainConfig
from sharecore.core.limits import Limits, check_spec_size
from sharecore.core.spec import ModelSpec

MESSAGE_MAX = 2000  # a message a person can read; never a copy of a huge input


@pytest.fixture(autouse=True)
def _clean_keras_session():
    """Overrides conftest's reset: the ~400 input cases here are plain Python, and
    clear_session's gc.collect() (about 0.3 s) per case would be most of the run time.
    The training tests ask for `fresh_keras` instead."""
    yield


@pytest.fixture
def fresh_keras():
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(1234)
    yield


def valid_spec() -> dict[str, Any]:
    """A valid spec that has every kind of field: tensors, rules, bias, source, slices, outputs."""
    return {
        "name": "probe",
        "description": "every field",
        "input_shape": [8],
        "tensors": [
            {"name": "W", "shape": [4, 4], "initializer": "glorot_uniform"},
            {"name": "K", "shape": [1, 1, 4, 2]},
        ],
        "uses": [
            {
                "name": "a",
                "op": "dense",
                "tensor": "W",
                "rule": {"kind": "transpose", "perm": [1, 0]},
                "activation": "tanh",
                "bias": "shared",
                "source": "input",
                "input_slice": [0, 4],
            },
            {
                "name": "b",
                "op": "conv2d",
                "tensor": "K",
                "rule": "identity",
                "bias": "own",
                "input_reshape": [1, 1, 4],
                "strides": 1,
                "padding": "same",
            },
            {"name": "c", "op": "dense", "kernel_shape": [8, 3], "source": "input"},
            {"name": "d", "op": "dense", "tensor": "W", "bias": "shared", "source": "a"},
        ],
        "outputs": ["b", "c", "d"],
    }


def valid_train() -> dict[str, Any]:
    return TrainConfig(steps=3, batch_size=4).to_dict()


def test_the_probe_spec_is_valid_and_round_trips():
    spec = ModelSpec.from_dict(valid_spec())
    sc.plan(spec)
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert TrainConfig.from_dict(valid_train()) == TrainConfig(steps=3, batch_size=4)


def check_raises_value_error(call: Callable[[], Any], *names: str, seconds: float = 5.0) -> str:
    """Runs `call`; it must raise ValueError (nothing else), quickly, with a short message naming one of `names`.

    "Quickly" is counted in this thread's CPU time, not the wall clock: what is checked is that the work
    is bounded (no quadratic walk, no hang), and a busy shared machine stretches wall time, not CPU time.
    """
    start = time.thread_time()
    try:
        call()
    except ValueError as err:
        message = str(err)
    except BaseException as err:  # noqa: BLE001 - the point is that nothing else escapes
        pytest.fail(f"{type(err).__name__} escaped instead of ValueError: {str(err)[:300]}")
    else:
        pytest.fail("no ValueError was raised")
    assert time.thread_time() - start < seconds
    assert message.strip()
    assert len(message) <= MESSAGE_MAX, f"message of {len(message)} characters"
    if names:
        assert any(n in message for n in names), f"none of {names} in: {message}"
    return message


def with_path(data: dict, path: tuple, value: Any) -> dict:
    """A deep copy of `data` with `value` set at `path` (keys and list indices)."""
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def where(path: tuple) -> str:
    """What a message must name for a bad value at `path`: the use, tensor or top-level field."""
    if path[0] == "uses" and len(path) > 1:
        if len(path) == 2 or path[2] == "name":  # before the name is known, the use is named by index
            return f"spec.uses[{path[1]}]"
        return f"use '{valid_spec()['uses'][path[1]]['name']}'"
    if path[0] == "tensors" and len(path) > 1:
        return f"spec.tensors[{path[1]}]"
    return f"spec.{path[0]}"


# ----------------------------------------------------------------------------- malformed JSON
MALFORMED_JSON = [
    "",
    " ",
    "{",
    "}",
    "[1,",
    '{"input_shape": [8],}',
    "{'input_shape': [8]}",
    '{"input_shape": [8] "uses": []}',
    "nul",
    "undefined",
    "<html></html>",
    "\x00",
    "\ufeff{}",
    '{"a": 1}{"b": 2}',
    '"unterminated',
    '{"input_shape": [0x10]}',
    "[]",
    "null",
    "1",
    '"a string"',
    "true",
    b"\xff\xfe\x00\x01",
    b"\x80abc",
    bytearray(b"{"),
    None,
    5,
    ["input_shape"],
    {"input_shape": [8]},
]


@pytest.mark.parametrize("text", MALFORMED_JSON, ids=range(len(MALFORMED_JSON)))
def test_malformed_json_raises_value_error(text):
    check_raises_value_error(lambda: ModelSpec.from_json(text), "spec")


# ----------------------------------------------------------------------------- huge inputs
TEN_MB = 10 * 2**20


def _huge_cases() -> list[tuple[str, str | bytes]]:
    spec = valid_spec()
    big = "x" * TEN_MB
    return [
        ("garbage text", big),
        ("garbage bytes", big.encode()),
        ("10 MB name", json.dumps(with_path(spec, ("name",), big))),
        ("10 MB description", json.dumps(with_path(spec, ("description",), big))),
        ("10 MB use name", json.dumps(with_path(spec, ("uses", 0, "name"), big))),
        ("10 MB activation", json.dumps(with_path(spec, ("uses", 0, "activation"), big))),
        ("10 MB rule", json.dumps(with_path(spec, ("uses", 0, "rule"), big))),
        ("10 MB unknown key", json.dumps({**spec, big: 1})),
        ("million-entry input_shape", json.dumps(with_path(spec, ("input_shape",), [1] * 1_000_000))),
        ("10 MB of open brackets", "[" * TEN_MB),
        ("100k uses", json.dumps(with_path(spec, ("uses",), [spec["uses"][2]] * 100_000))),
        ("10 MB of whitespace around a valid spec", " " * TEN_MB + json.dumps(spec)),
    ]


HUGE = _huge_cases()


@pytest.mark.parametrize(("kind", "text"), HUGE, ids=[k for k, _ in HUGE])
def test_huge_input_is_refused_by_the_size_check_before_parsing(kind, text):
    check_raises_value_error(lambda: check_spec_size(text, Limits()), "max_spec_bytes", seconds=1.0)


@pytest.mark.parametrize(("kind", "text"), HUGE[:-1], ids=[k for k, _ in HUGE[:-1]])
def test_huge_invalid_input_raises_a_short_value_error_quickly_even_unchecked(kind, text):
    # The app checks the size first; parsing and planning must still never hang or echo 10 MB back.
    check_raises_value_error(lambda: sc.plan(ModelSpec.from_json(text)), "spec", "use", seconds=10.0)


# ----------------------------------------------------------------------------- wrong types
_SPEC_WRONG = [
    (("input_shape",), [None, "8", 8, [], [8.0], [[8]], [True], {"0": 8}, [8, 8, 8, 8]]),
    (("tensors",), [None, "W", {}, 1]),
    (("uses",), [None, "a", {}, [], 1]),
    (("outputs",), [None, "b", {}, [1], [None], [["b"]]]),
    (("name",), [None, 1, [], {}, "n" * 81]),
    (("description",), [None, 1, [], "d" * 2001]),
    (("tensors", 0), [None, "W", [], 1]),
    (("tensors", 0, "name"), [None, 1, "", "1W", "W-1", "input", "W" * 41, ["W"]]),
    (("tensors", 0, "shape"), [None, "4,4", 4, [4, "4"], [4, None], [], [1, 1, 1, 1, 1]]),
    (("tensors", 0, "initializer"), [None, 1, "zeros", ["glorot_uniform"], "Glorot_Uniform"]),
    (("uses", 0), [None, "a", [], 1]),
    (("uses", 0, "name"), [None, 1, "", "a b", ["a"]]),
    (("uses", 0, "op"), [None, 1, "Dense", "conv1d", ["dense"]]),
    (("uses", 0, "tensor"), [1, "", ["W"], {"name": "W"}]),
    (("uses", 0, "rule"), [None, 1, [], "Transpose", {"kind": None}, {"kind": "transpose", "perm": "10"}]),
    (("uses", 0, "kernel_shape"), ["4,4", 4, [4, 4.0], {}]),
    (("uses", 0, "activation"), [None, 1, "ReLU", "softmax", ["tanh"]]),
    (("uses", 0, "bias"), [None, True, "shared_bias", ["own"]]),
    (("uses", 0, "source"), [1, "", ["input"], {}]),
    (("uses", 0, "input_slice"), ["0:4", [0], [0, 4, 8], [0.0, 4], {"start": 0}]),
    (("uses", 1, "input_reshape"), ["1,1,4", [1, 1, "4"], [[1, 1, 4]], {}]),
    (("uses", 1, "strides"), [None, "1", 1.0, [1], [1, 1]]),
    (("uses", 1, "padding"), [None, "SAME", "full", 1]),
]
WRONG_TYPES = [(path, value) for path, values in _SPEC_WRONG for value in values]


@pytest.mark.parametrize(
    ("path", "value"), WRONG_TYPES, ids=[f"{'.'.join(map(str, p))}={v!r:.20}" for p, v in WRONG_TYPES]
)
def test_a_wrong_type_in_any_spec_field_names_the_field(path, value):
    data = with_path(valid_spec(), path, value)
    check_raises_value_error(lambda: ModelSpec.from_dict(data), where(path))
    check_raises_value_error(lambda: ModelSpec.from_json(json.dumps(data)), where(path))


_TRAIN_WRONG = {
    "steps": [None, "60", 60.0, [60], True],
    "batch_size": [None, "32", 32.5, {}, False],
    "optimizer": [None, 1, "SGD", "rmsprop", ["adam"]],
    "learning_rate": [None, "0.01", [0.01], True, {}],
    "seed": [None, "0", 0.0, [0]],
    "device": [None, 1, "GPU", "tpu", ["cpu"]],
    "record_every": [None, "1", 1.5, []],
    "dataset": [None, 1, "mnist", ["teacher"]],
}
WRONG_TRAIN_TYPES = [(key, value) for key, values in _TRAIN_WRONG.items() for value in values]


@pytest.mark.parametrize(("key", "value"), WRONG_TRAIN_TYPES, ids=[f"{k}={v!r}" for k, v in WRONG_TRAIN_TYPES])
def test_a_wrong_type_in_any_training_setting_names_the_setting(key, value):
    check_raises_value_error(lambda: TrainConfig.from_dict({**valid_train(), key: value}), f"train.{key}")


@pytest.mark.parametrize("data", [None, [], "steps=5", 5, [("steps", 5)]], ids=range(5))
def test_training_settings_that_are_not_an_object_raise_value_error(data):
    check_raises_value_error(lambda: TrainConfig.from_dict(data), "train")


# ----------------------------------------------------------------------------- unknown keys
_UNKNOWN_AT = {
    "spec": (),
    "tensor": ("tensors", 0),
    "use": ("uses", 0),
    "rule": ("uses", 0, "rule"),
}
_UNKNOWN_KEYS = ["bogus", "Input_shape", "", " name", "__class__", "1", "uses ", "ñame"]
UNKNOWN_KEYS = [(level, key) for level in _UNKNOWN_AT for key in _UNKNOWN_KEYS]


@pytest.mark.parametrize(("level", "key"), UNKNOWN_KEYS, ids=[f"{lv}:{k!r}" for lv, k in UNKNOWN_KEYS])
def test_an_unknown_key_at_any_level_is_named(level, key):
    data = valid_spec()
    target = data
    for step in _UNKNOWN_AT[level]:
        target = target[step]
    target[key] = 1
    message = check_raises_value_error(lambda: ModelSpec.from_dict(data), "unknown key")
    assert repr(key) in message
    check_raises_value_error(lambda: ModelSpec.from_json(json.dumps(data)), "unknown key")


@pytest.mark.parametrize("key", [*_UNKNOWN_KEYS, 1, None, (1, 2)], ids=repr)
def test_an_unknown_training_setting_is_named(key):
    check_raises_value_error(lambda: TrainConfig.from_dict({**valid_train(), key: 1}), "unknown key")


def test_rule_options_that_do_not_belong_to_the_rule_kind_are_refused():
    data = with_path(valid_spec(), ("uses", 0, "rule"), {"kind": "identity", "perm": [1, 0]})
    check_raises_value_error(lambda: ModelSpec.from_dict(data), "'a'", "takes only")


def test_missing_required_keys_are_named():
    for path, key in [((), "input_shape"), ((), "uses"), (("tensors", 0), "shape"), (("uses", 0), "op")]:
        data = valid_spec()
        target = data
        for step in path:
            target = target[step]
        del target[key]
        message = check_raises_value_error(lambda data=data: ModelSpec.from_dict(data), "missing required key")
        assert key in message


# ----------------------------------------------------------------------------- deep nesting
DEPTH = 100_000


def nested_list(depth: int) -> list:
    root: list = []
    node = root
    for _ in range(depth):
        child: list = []
        node.append(child)
        node = child
    return root


def nested_dict(depth: int) -> dict:
    root: dict = {}
    node = root
    for _ in range(depth):
        child: dict = {}
        node["k"] = child
        node = child
    return root


DEEP_JSON = [
    "[" * DEPTH + "]" * DEPTH,
    '{"a":' * DEPTH + "1" + "}" * DEPTH,
    '{"input_shape": ' + "[" * DEPTH + "]" * DEPTH + ', "uses": []}',
    json.dumps(valid_spec())[:-1] + ', "outputs": ' + "[" * DEPTH + "]" * DEPTH + "}",
]
_DEEP_PATHS = [
    ("name",),
    ("input_shape",),
    ("tensors",),
    ("tensors", 0, "shape"),
    ("uses", 0, "activation"),
    ("uses", 0, "rule"),
    ("uses", 0, "rule", "kind"),
    ("uses", 0, "tensor"),
    ("uses", 1, "input_reshape"),
    ("outputs",),
]


@pytest.mark.parametrize("text", DEEP_JSON, ids=range(len(DEEP_JSON)))
def test_deeply_nested_json_raises_value_error_not_recursion_error(text):
    check_raises_value_error(lambda: ModelSpec.from_json(text), "spec")


@pytest.mark.parametrize("maker", [nested_list, nested_dict])
@pytest.mark.parametrize("path", _DEEP_PATHS, ids=lambda path: ".".join(map(str, path)))
def test_deeply_nested_values_in_any_field_raise_value_error_not_recursion_error(path, maker):
    data = with_path(valid_spec(), path, maker(DEPTH))
    message = check_raises_value_error(lambda: ModelSpec.from_dict(data))
    assert "..." in message or "Received" in message


@pytest.mark.parametrize("maker", [nested_list, nested_dict])
def test_deeply_nested_training_settings_raise_value_error(maker):
    check_raises_value_error(lambda: TrainConfig.from_dict({"steps": maker(DEPTH)}), "train.steps")


# ----------------------------------------------------------------------------- NaN, Infinity, negative numbers
_NUMBER_FIELDS = [
    ("input_shape", 0),
    ("tensors", 0, "shape", 1),
    ("uses", 0, "rule", "perm", 0),
    ("uses", 0, "input_slice", 1),
    ("uses", 1, "input_reshape", 2),
    ("uses", 1, "strides"),
    ("uses", 2, "kernel_shape", 0),
]
# As JSON text: the parser turns NaN, Infinity and 1e309 into floats that are not whole numbers.
_BAD_NUMBER_TEXT = [
    "NaN",
    "Infinity",
    "-Infinity",
    "-1",
    "-0.0",
    "0",
    "1e309",
    "1e-400",
    "4.0",
    "-2147483648",
    "2147483648",
]
BAD_NUMBERS = [(path, text) for path in _NUMBER_FIELDS for text in _BAD_NUMBER_TEXT]


@pytest.mark.parametrize(
    ("path", "text"), BAD_NUMBERS, ids=lambda v: ".".join(map(str, v)) if isinstance(v, tuple) else v
)
def test_nan_infinity_and_negative_numbers_in_json_name_the_field(path, text):
    marker = "__NUMBER__"
    data = with_path(valid_spec(), path, marker)
    document = json.dumps(data).replace(f'"{marker}"', text)
    # A 0 can pass the type checks (perm [0, 0], input_slice [0, 0]); plan() then refuses it.
    check_raises_value_error(lambda: sc.plan(ModelSpec.from_json(document)), where(path))


_BAD_TRAIN_NUMBERS = {
    "steps": [-1, 0, float("nan"), float("inf"), 2**31, 10**400],
    "batch_size": [-32, 0, float("-inf"), 2**63],
    "learning_rate": [float("nan"), float("inf"), float("-inf"), -0.01, 0, 0.0, -0.0, 10**400],
    "seed": [-1, float("nan"), 2**31],
    "record_every": [0, -1, float("inf")],
}
BAD_TRAIN_NUMBERS = [(key, value) for key, values in _BAD_TRAIN_NUMBERS.items() for value in values]


@pytest.mark.parametrize(("key", "value"), BAD_TRAIN_NUMBERS, ids=[f"{k}={v!r:.12}" for k, v in BAD_TRAIN_NUMBERS])
def test_nan_infinity_and_negative_training_numbers_name_the_setting(key, value):
    check_raises_value_error(lambda: TrainConfig.from_dict({**valid_train(), key: value}), f"train.{key}")


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "-1", "0", "1e309"])
def test_nan_and_infinity_learning_rate_from_json_text(text):
    data = json.loads(json.dumps(valid_train()).replace("0.01", text))
    check_raises_value_error(lambda: TrainConfig.from_dict(data), "train.learning_rate")


def bad_input_counts() -> dict[str, int]:
    """How many bad inputs each kind tries (quoted in the robustness report)."""
    return {
        "malformed JSON": len(MALFORMED_JSON),
        "huge (10 MB)": len(HUGE),
        "wrong types": len(WRONG_TYPES) + len(WRONG_TRAIN_TYPES) + 5,  # + training settings not an object
        "unknown keys": len(UNKNOWN_KEYS) + len(_UNKNOWN_KEYS) + 3 + 1,  # + non-string keys, a rule option
        "missing keys": 4,
        "deeply nested": len(DEEP_JSON) + 2 * len(_DEEP_PATHS) + 2,
        "NaN / Infinity / negative / out of range": len(BAD_NUMBERS) + len(BAD_TRAIN_NUMBERS) + 6,
    }


def test_every_kind_of_bad_input_is_tried_many_times():
    counts = bad_input_counts()
    assert all(n >= 4 for n in counts.values()), counts
    assert sum(counts.values()) >= 300, counts


# ----------------------------------------------------------------------------- runaway training
def test_a_blown_up_learning_rate_stops_at_the_first_non_finite_step_and_keeps_what_came_before(fresh_keras):
    spec = sc.preset("seed-dense")
    config = TrainConfig(optimizer="sgd", learning_rate=1e6, steps=50, batch_size=8, record_every=1)
    result = sc.train(spec, config)

    assert result.stop_reason is not None
    found = re.search(r"at step (\d+)", result.stop_reason)
    assert found, result.stop_reason
    bad_step = int(found.group(1))
    assert 1 < bad_step < 50
    assert re.search(r"\b(tied|untied)\b", result.stop_reason)
    assert "learning rate" in result.stop_reason

    # Everything before the bad step is kept, all finite; nothing from it or after.
    kept = list(range(1, bad_step))
    assert result.steps_done == bad_step - 1
    assert sorted(set(result.history.step)) == kept
    assert len(result.history) == 2 * len(kept)
    assert np.isfinite(result.history.loss).all()
    assert sorted(set(result.gradients.step)) == kept
    assert np.isfinite(result.gradients.grad_norm).all() and np.isfinite(result.gradients.sum_norm).all()
    assert sorted(set(result.divergence.step)) == [0, *kept]
    assert set(result.divergence.variant) == {"tied", "untied"}

    # Independently: the same run asked for one step fewer finishes with finite weights, so the
    # reported step is really the first that goes non-finite.
    before = sc.train(spec, TrainConfig(**{**config.to_dict(), "steps": bad_step - 1}))
    assert before.stop_reason is None
    assert before.steps_done == bad_step - 1
    np.testing.assert_allclose(before.history.loss, result.history.loss, rtol=1e-5)
    for variant in before.weights["end"].values():
        assert all(np.isfinite(w).all() for w in variant.values())


def test_a_sane_learning_rate_runs_every_step(fresh_keras):
    result = sc.train(sc.preset("seed-dense"), TrainConfig(optimizer="sgd", learning_rate=0.01, steps=5, batch_size=8))
    assert result.stop_reason is None and result.steps_done == 5
    assert math.isfinite(result.history.loss.iloc[-1])
