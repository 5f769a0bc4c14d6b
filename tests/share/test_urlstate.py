"""The experiment in a URL: round trips, and every kind of bad link falls back with a warning."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import zlib

import pytest

from sharecore import preset, presets
from sharecore.core.config import TrainConfig
from sharecore.core.limits import Limits
from sharecore.core.spec import ModelSpec
from sharecore.share import urlstate


@pytest.fixture(autouse=True)
def _clean_keras_session():
    """Overrides conftest's Keras reset: link decoding never touches Keras, and the reset costs 0.4 s a test."""
    yield


def _pack(data: bytes) -> str:
    return base64.urlsafe_b64encode(zlib.compress(data)).decode().rstrip("=")


def _edited(name: str = "tied-autoencoder") -> ModelSpec:
    spec = preset(name)
    tensor = dataclasses.replace(spec.tensors[0], initializer="he_normal")
    return dataclasses.replace(spec, tensors=(tensor,), name="custom", description="edited")


@pytest.mark.parametrize("name", presets())
def test_every_preset_round_trips_through_the_spec_encoding(name):
    spec = preset(name)
    assert urlstate.decode_spec(urlstate.encode_spec(spec)) == spec


def test_encoded_spec_is_url_safe_and_compact():
    text = urlstate.encode_spec(preset("siamese-digits"))
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(text) < len(preset("siamese-digits").to_json(indent=None)) / 2


def test_unchanged_preset_is_written_as_its_name_only():
    assert urlstate.encode_state("albert-mlp", preset("albert-mlp"), TrainConfig()) == {"preset": "albert-mlp"}


def test_edited_spec_and_changed_settings_round_trip_through_the_whole_state():
    spec = _edited()
    config = TrainConfig(steps=7, batch_size=8, optimizer="sgd", learning_rate=0.0123, seed=5, record_every=2)
    params = urlstate.encode_state("tied-autoencoder", spec, config)
    assert params["preset"] == "tied-autoencoder"
    assert {"spec", "steps", "batch", "opt", "lr", "seed", "every"} <= set(params)
    assert "device" not in params and "data" not in params  # defaults are left out
    state = urlstate.read_state(params)
    assert state == urlstate.UrlState("tied-autoencoder", spec, config, ())


def test_query_values_given_as_lists_use_the_last_one():
    state = urlstate.read_state({"preset": ["seed-dense", "seed-conv"], "steps": ["3", "9"]})
    assert state.preset == "seed-conv" and state.config.steps == 9 and state.warnings == ()


def test_empty_query_gives_the_default_experiment_without_warnings():
    state = urlstate.read_state({})
    assert state == urlstate.UrlState(urlstate.DEFAULT_PRESET, preset(urlstate.DEFAULT_PRESET), TrainConfig(), ())


def test_digits_dataset_round_trips():
    params = urlstate.encode_state("siamese-digits", preset("siamese-digits"), TrainConfig(dataset="digits"))
    assert params == {"preset": "siamese-digits", "data": "digits"}
    assert urlstate.read_state(params).config.dataset == "digits"


BAD_SPECS = {
    "not base64": "abc$%^",
    "not zlib": base64.urlsafe_b64encode(b"plain bytes, not deflate").decode(),
    "cut short": urlstate.encode_spec(preset("albert-mlp"))[:-12],
    "not JSON": _pack(b"{not json"),
    "not UTF-8": _pack(b"\xff\xfe\x00"),
    "JSON but not a spec": _pack(b"[1, 2, 3]"),
    "unknown key": _pack(json.dumps({"input_shape": [10], "uses": [], "evil": 1}).encode()),
    "invalid model": _pack(
        json.dumps(
            {
                "input_shape": [10],
                "tensors": [{"name": "W", "shape": [10, 5]}],
                "uses": [{"name": "a", "op": "dense", "tensor": "W"}, {"name": "b", "op": "dense", "tensor": "W"}],
            }
        ).encode()
    ),
    "too many parameters": _pack(
        json.dumps(
            {
                "input_shape": [10],
                "tensors": [{"name": "W", "shape": [10, 3000000]}],
                "uses": [{"name": "a", "op": "dense", "tensor": "W"}],
            }
        ).encode()
    ),
    "deeply nested": _pack(b"[" * 100_000 + b"]" * 100_000),
    "zip bomb": _pack(b" " * 50_000_000),
    "too long": "A" * (urlstate.MAX_PARAM_CHARS + 1),
    "empty": "",
}


@pytest.mark.parametrize("case", BAD_SPECS)
def test_a_tampered_spec_raises_value_error_with_a_message(case):
    with pytest.raises(ValueError, match="the spec in the link"):
        urlstate.decode_spec(BAD_SPECS[case])


@pytest.mark.parametrize("case", BAD_SPECS)
def test_a_tampered_spec_falls_back_to_the_preset_with_a_warning(case):
    state = urlstate.read_state({"preset": "seed-conv", "spec": BAD_SPECS[case], "steps": "12"})
    assert state.spec == preset("seed-conv")
    assert state.config.steps == 12
    assert len(state.warnings) == 1 and "Could not restore the model" in state.warnings[0]


def test_an_unknown_preset_falls_back_to_the_default_with_a_warning():
    state = urlstate.read_state({"preset": "no-such-model"})
    assert state.preset == urlstate.DEFAULT_PRESET
    assert "no-such-model" in state.warnings[0]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("steps", "-3"),
        ("steps", "ten"),
        ("steps", "0"),
        ("batch", "1e9"),
        ("lr", "nan"),
        ("lr", "inf"),
        ("lr", "-1"),
        ("lr", "1e400"),
        ("opt", "rmsprop"),
        ("device", "tpu"),
        ("data", "imagenet"),
        ("teacher", "shared"),
        ("teacher", "Tied"),
        ("seed", "99999999999"),
        ("every", "0"),
    ],
)
def test_a_bad_training_setting_keeps_its_default_and_warns(key, value):
    state = urlstate.read_state({"steps": "7", key: value} if key != "steps" else {key: value})
    field = urlstate.TRAIN_KEYS[key]
    assert getattr(state.config, field) == getattr(TrainConfig(), field)
    assert len(state.warnings) == 1 and f"'{key}'" in state.warnings[0]
    if key != "steps":
        assert state.config.steps == 7  # the good values in the same link are kept


LIMITS = Limits.from_env()


@pytest.mark.parametrize(
    ("query", "field", "used", "said"),
    [
        ({"lr": "1e-9"}, "learning_rate", urlstate.MIN_LEARNING_RATE, "Changed 'lr' in the link from 1e-09 to 1e-05"),
        ({"lr": "500"}, "learning_rate", urlstate.MAX_LEARNING_RATE, "Changed 'lr' in the link from 500.0 to 10.0"),
        ({"steps": "99999999"}, "steps", LIMITS.max_steps, f"from 99999999 to {LIMITS.max_steps}"),
        ({"batch": "99999"}, "batch_size", LIMITS.max_batch_size, f"from 99999 to {LIMITS.max_batch_size}"),
        ({"every": "999999"}, "record_every", 60, "Changed 'every' in the link from 999999 to 60"),
        ({"steps": "7", "every": "9"}, "record_every", 7, "from 9 to 7"),
        ({"data": "digits"}, "dataset", "teacher", "Changed 'data' in the link from 'digits' to 'teacher'"),
    ],
)
def test_a_setting_out_of_range_becomes_the_nearest_allowed_value_and_says_so(query, field, used, said):
    state = urlstate.read_state(query)
    assert getattr(state.config, field) == used
    assert len(state.warnings) == 1 and said in state.warnings[0]
    assert urlstate.fit_config(state.spec, state.config) == (state.config, ())  # what it uses is in range


def test_every_above_capped_steps_follows_the_cap():
    state = urlstate.read_state({"steps": "99999999", "every": "99999999"})
    assert state.config.steps == state.config.record_every == LIMITS.max_steps
    assert len(state.warnings) == 2


def test_settings_in_range_are_kept_as_they_are():
    for name in presets():
        spec = preset(name)
        config = TrainConfig(
            steps=LIMITS.max_steps,
            batch_size=LIMITS.max_batch_size,
            learning_rate=urlstate.MIN_LEARNING_RATE,
            record_every=LIMITS.max_steps,
            dataset="digits" if urlstate.digits_fits(spec) else "teacher",
        )
        assert urlstate.fit_config(spec, config) == (config, ())


@pytest.mark.parametrize("shape", [(64,), (8, 8, 1), (128,), (2, 64), (10,), (63,), (8, 8, 2), (16, 16, 1)])
def test_digits_fits_exactly_the_models_the_digits_data_set_can_feed(shape):
    from sharecore.nn.data import digits_dataset  # the oracle: the data set training would build

    size = math.prod(shape)
    use = {"name": "out", "op": "dense", "kernel_shape": [size, 2], "input_reshape": [size]}
    spec = ModelSpec.from_dict({"input_shape": list(shape), "uses": [use]})
    try:
        digits_dataset(spec, seed=0)
        builds = True
    except ValueError:
        builds = False
    assert urlstate.digits_fits(spec) is builds
    assert builds is (shape in [(64,), (8, 8, 1), (128,), (2, 64), (8, 8, 2)])  # 64 or 128 values


def test_a_tied_teacher_round_trips_and_the_default_is_left_out():
    params = urlstate.encode_state("albert-mlp", preset("albert-mlp"), TrainConfig(teacher="tied", steps=9))
    assert params == {"preset": "albert-mlp", "steps": "9", "teacher": "tied"}
    state = urlstate.read_state(params)
    assert state.config == TrainConfig(teacher="tied", steps=9) and state.warnings == ()
    assert "teacher" not in urlstate.encode_state("albert-mlp", preset("albert-mlp"), TrainConfig(teacher="untied"))


def test_a_teacher_choice_survives_a_link_to_another_data_set():
    # The choice only labels the teacher data set; kept, so that switching back keeps it.
    state = urlstate.read_state({"preset": "siamese-digits", "data": "digits", "teacher": "tied"})
    assert state.config == TrainConfig(dataset="digits", teacher="tied") and state.warnings == ()


def test_digits_on_a_model_it_fits_is_kept():
    state = urlstate.read_state({"preset": "siamese-digits", "data": "digits"})
    assert state.config.dataset == "digits" and state.warnings == ()


def test_unknown_keys_in_a_link_are_named_in_one_warning():
    state = urlstate.read_state({"stpes": "9", "Lr": "0.1", "embed": "true", "steps": "5"})
    assert state.config == TrainConfig(steps=5)
    assert state.warnings == (
        "Ignored 'stpes', 'Lr' in the link: not a setting this app reads. "
        "Settings: preset, spec, steps, batch, opt, lr, seed, device, every, data, teacher.",
    )
    many = urlstate.read_state({f"k{i}": "1" for i in range(100)})
    assert len(many.warnings) == 1 and many.warnings[0].startswith("Ignored 'k0', 'k1', 'k2', 'k3', 'k4' and 95 more")
