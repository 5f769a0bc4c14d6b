"""Limits: exact boundaries (at the limit passes, one over fails), messages, env and secrets."""

from __future__ import annotations

import math
import time
from types import MappingProxyType

import pytest

import sharecore as sc
from sharecore.core.config import TrainConfig
from sharecore.core.limits import (
    MB,
    Limits,
    activation_bytes,
    activation_values,
    check_limits,
    check_spec_size,
    embedding_bytes,
    recorded_rows,
    recorded_steps,
    rows_per_recorded_step,
    tied_params,
    untied_params,
)
from sharecore.core.spec import ModelSpec


@pytest.fixture(autouse=True)
def _clean_keras_session():
    """Overrides conftest's Keras reset: these tests never touch Keras, and clear_session's
    gc.collect() (about 0.3 s) per test would be most of the run time."""
    yield


LIMIT_NAMES = [
    "max_params",
    "max_activation_mb",
    "max_steps",
    "max_batch_size",
    "max_input_size",
    "max_uses",
    "max_spec_bytes",
    "max_model_mb",
    "max_run_seconds",
]


def own_dense(inputs: int, units: int) -> ModelSpec:
    """One dense use with its own (inputs, units) kernel: exactly inputs * units parameters."""
    return ModelSpec.from_dict(
        {"input_shape": [inputs], "uses": [{"name": "big", "op": "dense", "kernel_shape": [inputs, units]}]}
    )


def chain(uses: int) -> ModelSpec:
    """`uses` dense uses in a chain, all reading one (2, 2) tensor."""
    return ModelSpec.from_dict(
        {
            "input_shape": [2],
            "tensors": [{"name": "W", "shape": [2, 2]}],
            "uses": [{"name": f"d{i}", "op": "dense", "tensor": "W"} for i in range(uses)],
        }
    )


# ----------------------------------------------------------------------------- defaults
def test_defaults_fit_a_small_hosted_server():
    limits = Limits()
    assert (limits.max_params, limits.max_activation_mb, limits.max_steps) == (1_000_000, 224, 5000)
    assert (limits.max_batch_size, limits.max_input_size, limits.max_uses) == (512, 65536, 16)
    assert limits.max_recorded_rows == 400_000
    assert limits.max_spec_bytes == 200_000
    assert limits.max_model_mb == 50


@pytest.mark.parametrize("name", sc.presets())
def test_every_preset_passes_the_default_limits_at_default_and_largest_settings(name):
    check_limits(sc.preset(name), TrainConfig(), Limits())
    check_limits(sc.preset(name), TrainConfig(steps=5000), Limits())
    if name == "seed-conv":
        # Two seed-conv runs at batch 256 measured about 410-425 MiB each over the server's baseline:
        # more than a hosted server's budget holds. Batch 32 (the default) is allowed, 64 is not.
        with pytest.raises(ValueError, match=r"seed-conv' needs about 795 MiB.*limit of 224 MiB"):
            check_limits(sc.preset(name), TrainConfig(batch_size=256), Limits())
    else:
        check_limits(sc.preset(name), TrainConfig(steps=5000, batch_size=256), Limits())


@pytest.mark.parametrize("name", sc.presets())
def test_tied_and_untied_params_equal_the_param_report(name):
    spec = sc.preset(name)
    report = sc.param_report(spec)
    assert (tied_params(sc.plan(spec)), untied_params(sc.plan(spec))) == (report.tied_total, report.untied_total)


# ----------------------------------------------------------------------------- boundaries
def test_params_at_the_limit_pass_and_one_over_fails():
    spec = sc.preset("seed-dense")  # untied: two (10, 10) copies = 200 parameters
    check_limits(spec, limits=Limits(max_params=200))
    with pytest.raises(ValueError, match=r"limit of 199 parameters \(untied model: 200\)"):
        check_limits(spec, limits=Limits(max_params=199))


def test_params_message_says_the_limit_the_value_and_how_to_raise_it():
    with pytest.raises(ValueError) as err:
        check_limits(own_dense(1000, 5300), limits=Limits())
    message = str(err.value)
    assert "spec 'custom' exceeds the limit of 1,000,000 parameters (untied model: 5,300,000)." in message
    assert (
        "raise the limit with the environment variable SHARECORE_MAX_PARAMS or in "
        ".streamlit/secrets.toml under [sharecore] max_params"
    ) in message


def test_params_limit_counts_untied_copies_not_the_tied_model():
    spec = chain(3)  # tied: 4 parameters; untied: 12
    check_limits(spec, limits=Limits(max_params=12))
    with pytest.raises(ValueError, match=r"\(untied model: 12\)"):
        check_limits(spec, limits=Limits(max_params=11))


def test_params_limit_caps_the_tied_model_when_a_slice_makes_it_the_larger():
    # A (10, 1000) tensor of which the use reads a (10, 4) slice: untied stores 40, tied 10,000.
    spec = ModelSpec.from_dict(
        {
            "input_shape": [10],
            "tensors": [{"name": "W", "shape": [10, 1000]}],
            "uses": [
                {
                    "name": "narrow",
                    "op": "dense",
                    "tensor": "W",
                    "rule": {"kind": "slice", "begin": [0, 0], "size": [10, 4]},
                    "bias": "shared",
                }
            ],
        }
    )
    report = sc.param_report(spec)
    assert (report.tied_total, report.untied_total) == (10_004, 44)
    check_limits(spec, limits=Limits(max_params=10_004))
    with pytest.raises(ValueError, match=r"limit of 10,003 parameters \(tied model: 10,004\)"):
        check_limits(spec, limits=Limits(max_params=10_003))


def test_params_count_biases():
    spec = ModelSpec.from_dict(
        {"input_shape": [3], "uses": [{"name": "d", "op": "dense", "kernel_shape": [3, 4], "bias": "own"}]}
    )
    check_limits(spec, limits=Limits(max_params=16))
    with pytest.raises(ValueError, match="max_params"):
        check_limits(spec, limits=Limits(max_params=15))


def test_steps_at_the_limit_pass_and_one_over_fails():
    spec = sc.preset("seed-dense")
    check_limits(spec, TrainConfig(steps=5000), Limits())
    with pytest.raises(ValueError, match=r"limit of 5,000 steps \(steps asked for: 5,001\).*SHARECORE_MAX_STEPS"):
        check_limits(spec, TrainConfig(steps=5001), Limits())


def test_batch_size_at_the_limit_passes_and_one_over_fails():
    spec = sc.preset("seed-dense")
    check_limits(spec, TrainConfig(batch_size=512), Limits())
    with pytest.raises(ValueError, match=r"limit of 512 samples per batch \(batch_size: 513\).*max_batch_size"):
        check_limits(spec, TrainConfig(batch_size=513), Limits())


@pytest.mark.parametrize("shape", [[65536], [256, 256, 1], [16, 64, 64]])
def test_input_size_at_the_limit_passes(shape):
    spec = ModelSpec.from_dict(
        {"input_shape": shape, "uses": [{"name": "d", "op": "dense", "kernel_shape": [shape[-1], 1]}]}
    )
    check_limits(spec, TrainConfig(batch_size=1, dataset="digits"), Limits(max_activation_mb=10**6))


@pytest.mark.parametrize("shape", [[65537], [257, 256, 1]])
def test_input_size_one_over_fails_before_plan(shape):
    # The kernel does not even fit the input: the size cap answers first, without plan().
    spec = ModelSpec.from_dict({"input_shape": shape, "uses": [{"name": "d", "op": "dense", "kernel_shape": [1, 1]}]})
    size = math.prod(shape)
    with pytest.raises(ValueError, match=rf"limit of 65,536 values per input sample .*: {size:,}\).*max_input_size"):
        check_limits(spec, limits=Limits())


def test_uses_at_the_limit_pass_and_one_over_fails():
    check_limits(chain(16), limits=Limits())
    with pytest.raises(ValueError, match=r"limit of 16 uses \(uses in the spec: 17\).*SHARECORE_MAX_USES"):
        check_limits(chain(17), limits=Limits())


def test_declared_tensors_beyond_the_uses_limit_are_refused_before_plan():
    spec = ModelSpec.from_dict(
        {
            "input_shape": [2],
            "tensors": [{"name": f"T{i}", "shape": [2, 2]} for i in range(40)],
            "uses": [{"name": "d", "op": "dense", "tensor": "T0"}],
        }
    )
    with pytest.raises(ValueError, match=r"shared tensors declared: 40"):
        check_limits(spec, limits=Limits())


def test_activation_estimate_of_a_dense_net_is_values_per_sample_times_4_bytes_times_batch_and_pool():
    p = sc.plan(sc.preset("albert-mlp"))
    values = 16 + 3 * (32 + 16)  # the input; per block, up (32) and down (16)
    assert activation_values(p) == values
    assert activation_bytes(p, TrainConfig(batch_size=32)) == values * 4 * (3 * 32 + 512)
    assert activation_bytes(p, TrainConfig(batch_size=32, dataset="digits")) == values * 4 * 3 * 32


def test_activation_estimate_of_a_conv_net_uses_the_measured_conv_factors():
    p = sc.plan(sc.preset("seed-conv"))
    values = 28 * 28 * 3 + 3 * 28 * 28 * 16  # input, stem, conv_1, conv_2
    io = 28 * 28 * 3 + 28 * 28 * 16  # what the data pool holds per sample: input and target
    assert activation_values(p) == values
    # 17 x the forward values per batch sample; 4.5 x the pool's inputs and targets (512 teacher samples).
    assert activation_bytes(p, TrainConfig(batch_size=32)) == 4 * (17 * values * 32 + 9 * io * 512 // 2)
    # seed-conv cannot take digits (the data set refuses it with its own message): no pool is counted.
    assert activation_bytes(p, TrainConfig(batch_size=32, dataset="digits")) == 4 * 17 * values * 32
    # siamese-digits takes them: 128 inputs and 32 outputs per sample, 1,797 samples.
    siamese = sc.plan(sc.preset("siamese-digits"))
    assert activation_bytes(siamese, TrainConfig(batch_size=32, dataset="digits")) == 4 * (
        17 * activation_values(siamese) * 32 + 9 * (128 + 32) * 1797 // 2
    )


def test_activation_estimate_of_a_language_model_counts_its_heldout_pass_five_times_and_its_parameters():
    spec = sc.preset("tied-lm")
    p = sc.plan(spec)
    # 8 token ids; per position: the embedding (16), the block (16) and the logits (32).
    values = 8 + 8 * 16 + 8 * 16 + 8 * 32
    assert activation_values(p) == values
    report = sc.param_report(spec)  # the counts the Build page shows, counted apart from the limits
    params = report.tied_total + report.untied_total
    assert params == (32 * 16 + 16 * 16) + (32 * 16 + 16 * 16 + 16 * 32)
    assert embedding_bytes(p) == 20 * 4 * params
    # Three copies of a training batch, five of the 128 held-out sequences.
    assert (
        activation_bytes(p, TrainConfig(batch_size=32, dataset="tokens"))
        == 4 * values * (3 * 32 + 5 * 128) + 20 * 4 * params
    )
    assert (
        embedding_bytes(sc.plan(sc.preset("albert-mlp"))) == 0
    )  # no embedding use: its parameters are not counted here


def test_activation_message_of_a_language_model_names_the_heldout_pass_and_the_parameters():
    spec = ModelSpec.from_dict(
        {
            "input_shape": [1],
            "input_vocab": 250_000,
            "tensors": [{"name": "E", "shape": [250_000, 1]}],
            "uses": [
                {"name": "embed", "op": "embedding", "tensor": "E"},
                {"name": "logits", "op": "dense", "tensor": "E", "rule": {"kind": "transpose"}, "bias": "none"},
            ],
        }
    )
    with pytest.raises(ValueError) as err:  # the case: estimated at 125 MiB before, 561 MB measured
        check_limits(spec, TrainConfig(batch_size=1, dataset="tokens"), Limits(max_activation_mb=224))
    message = str(err.value)
    assert "needs about 671 MiB" in message  # 4 x 250,002 x (3 + 5 x 128) + 20 x 4 x 750,000 bytes
    assert "5 x the 128 held-out sequences" in message and "per parameter of both models" in message


def test_activation_estimate_counts_sliced_inputs_and_concatenated_outputs():
    spec = sc.preset("siamese-digits")
    # input 128; per tower: slice copy 64, conv (6, 6, 8) = 288, embed 16; concat 32.
    assert activation_values(sc.plan(spec)) == 128 + 2 * (64 + 288 + 16) + 32


def test_activation_at_the_limit_passes_and_one_over_fails():
    spec = sc.preset("seed-conv")
    config = TrainConfig(batch_size=64)
    needed = 4 * (17 * 39984 * 64 + 9 * (2352 + 12544) * 512 // 2)
    assert needed == activation_bytes(sc.plan(spec), config)
    at_limit = math.ceil(needed / MB)  # 297 MiB
    check_limits(spec, config, Limits(max_activation_mb=at_limit))
    with pytest.raises(ValueError) as err:
        check_limits(spec, config, Limits(max_activation_mb=at_limit - 1))
    message = str(err.value)
    assert f"needs about {at_limit} MiB of activations, which exceeds the limit of {at_limit - 1} MiB" in message
    assert "a convolutional net: 39,984 values per sample" in message and "batch_size 64" in message
    assert "14,896 input and output values per sample" in message and "512-sample data pool" in message
    assert "SHARECORE_MAX_ACTIVATION_MB" in message and "[sharecore] max_activation_mb" in message


def test_activation_limit_is_in_whole_mebibytes():
    # 1 MiB of values per sample and a data set without a teacher pool: 3 MiB per sample.
    spec = ModelSpec.from_dict(
        {"input_shape": [MB // 8], "uses": [{"name": "d", "op": "dense", "kernel_shape": [MB // 8, MB // 8]}]}
    )
    limits = Limits(max_activation_mb=3, max_input_size=MB, max_params=10**12)
    check_limits(spec, TrainConfig(batch_size=1, dataset="digits"), limits)
    with pytest.raises(ValueError, match="max_activation_mb"):
        check_limits(spec, TrainConfig(batch_size=2, dataset="digits"), limits)


def test_spec_size_at_the_limit_passes_and_one_over_fails():
    check_spec_size("x" * 200_000, Limits())
    check_spec_size(b"x" * 200_000, Limits())
    with pytest.raises(ValueError, match=r"limit of 200,000 bytes \(size: 200,001\).*SHARECORE_MAX_SPEC_BYTES"):
        check_spec_size("x" * 200_001, Limits())


def test_spec_size_counts_utf8_bytes_not_characters():
    check_spec_size("é" * 5, Limits(max_spec_bytes=10))
    with pytest.raises(ValueError, match=r"size: 12"):
        check_spec_size("é" * 6, Limits(max_spec_bytes=10))


# ----------------------------------------------------------------------------- nothing allocated
def test_a_huge_spec_is_refused_in_plain_python_before_anything_is_allocated():
    # 65536 * 2**31 parameters would be half a petabyte; the check only multiplies shapes.
    spec = own_dense(65536, 2**31 - 1)
    start = time.thread_time()  # CPU time: a half-petabyte allocation would take it, a busy machine does not
    with pytest.raises(ValueError, match="max_params"):
        check_limits(spec, limits=Limits())
    assert time.thread_time() - start < 0.5


def test_an_invalid_spec_still_gets_plans_message():
    spec = ModelSpec.from_dict({"input_shape": [3], "uses": [{"name": "d", "op": "dense", "kernel_shape": [4, 2]}]})
    with pytest.raises(ValueError, match="use 'd' needs a kernel with 3 input rows"):
        check_limits(spec, limits=Limits())


# ----------------------------------------------------------------------------- configuration
def test_limits_come_from_the_environment_by_default(monkeypatch):
    monkeypatch.setenv("SHARECORE_MAX_PARAMS", "199")
    with pytest.raises(ValueError, match=r"limit of 199 parameters"):
        check_limits(sc.preset("seed-dense"))
    monkeypatch.setenv("SHARECORE_MAX_PARAMS", "200")
    check_limits(sc.preset("seed-dense"))


def test_from_env_reads_every_limit():
    env = {f"SHARECORE_{name.upper()}": str(i + 7) for i, name in enumerate(LIMIT_NAMES)}
    limits = Limits.from_env(env)
    assert [getattr(limits, name) for name in LIMIT_NAMES] == [i + 7 for i in range(len(LIMIT_NAMES))]


def test_from_env_keeps_unset_limits_and_accepts_underscores_and_spaces():
    limits = Limits.from_env({"SHARECORE_MAX_PARAMS": " 10_000_000 ", "UNRELATED": "x"})
    assert limits == Limits(max_params=10_000_000)


@pytest.mark.parametrize("value", ["", "abc", "0", "-5", "1.5", "1e6", "true", "9" * 40])
def test_a_bad_environment_value_names_the_variable(value):
    with pytest.raises(ValueError, match=r"environment variable SHARECORE_MAX_STEPS must be a whole number >= 1"):
        Limits.from_env({"SHARECORE_MAX_STEPS": value})


def test_from_mapping_reads_secrets_and_env_overrides_them():
    secrets = {"max_params": 5_000_000, "max_activation_mb": 1024.0, "max_steps": "20000"}
    limits = Limits.from_mapping(secrets)
    assert (limits.max_params, limits.max_activation_mb, limits.max_steps) == (5_000_000, 1024, 20000)
    assert limits.max_uses == 16
    both = Limits.from_env({"SHARECORE_MAX_STEPS": "7"}, base=limits)
    assert (both.max_params, both.max_steps) == (5_000_000, 7)


def test_from_mapping_accepts_any_read_only_mapping_like_st_secrets():
    # st.secrets["sharecore"] is a read-only Mapping (streamlit's AttrDict), not a dict.
    section = MappingProxyType({"max_params": 5_000_000, "max_steps": "20000"})
    assert Limits.from_mapping(section) == Limits(max_params=5_000_000, max_steps=20000)


def test_from_mapping_accepts_an_empty_section():
    assert Limits.from_mapping({}) == Limits()


@pytest.mark.parametrize(
    ("mapping", "pattern"),
    [
        ({"max_param": 10}, r"unknown limit\(s\) \['max_param'\] under \[sharecore\]"),
        ({"max_params": True}, r"\[sharecore\] max_params must be a whole number >= 1"),
        ({"max_params": 0}, r"\[sharecore\] max_params must be a whole number >= 1"),
        ({"max_params": 2.5}, r"\[sharecore\] max_params must be a whole number"),
        ({"max_params": float("nan")}, r"\[sharecore\] max_params must be a whole number"),
        ({"max_params": [1]}, r"\[sharecore\] max_params must be a whole number"),
        ({"max_params": None}, r"\[sharecore\] max_params must be a whole number"),
        ([("max_params", 1)], r"limits must be a mapping"),
    ],
)
def test_bad_secrets_raise_value_error_naming_the_setting(mapping, pattern):
    with pytest.raises(ValueError, match=pattern):
        Limits.from_mapping(mapping)


@pytest.mark.parametrize("value", [0, -1, 1.0, True, "10", None])
def test_limits_themselves_must_be_whole_numbers_of_at_least_one(value):
    with pytest.raises(ValueError, match="limit max_uses must be a whole number >= 1"):
        Limits(max_uses=value)


def test_limits_are_frozen_and_hashable():
    limits = Limits()
    with pytest.raises(AttributeError):
        limits.max_params = 1  # type: ignore[misc]
    assert hash(limits) == hash(Limits())


# ----------------------------------------------------------------------------- recorded rows
@pytest.mark.parametrize(
    ("steps", "every", "recorded"),
    [(1, 1, 1), (1, 7, 1), (5, 1, 5), (10, 5, 3), (11, 5, 4), (5000, 4, 1251), (60, 7, 10)],
)
def test_recorded_steps_are_step_one_every_kth_and_the_last(steps, every, recorded):
    # The oracle: the set the trainer records (training.py: step 1, multiples of k, the last step).
    assert recorded == len({1, steps} | set(range(every, steps + 1, every)))
    assert recorded_steps(TrainConfig(steps=steps, record_every=every)) == recorded


def test_rows_per_recorded_step_count_every_use_and_pair_of_a_shared_tensor_for_both_models():
    assert rows_per_recorded_step(sc.plan(chain(8))) == 2 * (8 + 28)
    assert rows_per_recorded_step(sc.plan(sc.preset("seed-dense"))) == 2 * (2 + 1)
    # A real run: its gradient and divergence rows, both models, step 0's divergence included.
    for steps, every in ((1, 1), (7, 3)):
        config = TrainConfig(steps=steps, record_every=every)
        result = sc.train(chain(4), config)
        assert len(result.gradients) + len(result.divergence) == recorded_rows(sc.plan(chain(4)), config)
    assert recorded_rows(sc.plan(chain(4)), TrainConfig(steps=7, record_every=3)) == 20 * 4 + 12


def test_recorded_rows_at_the_limit_pass_and_one_over_fails_with_the_record_every_that_fits():
    per_step = 2 * (16 + 120)  # 16 uses of one tensor: 272 rows per recorded step, 240 at step 0
    limits = Limits(max_recorded_rows=per_step * 1251 + 240)
    check_limits(chain(16), TrainConfig(steps=5000, record_every=4), limits)  # 1,251 recorded steps
    with pytest.raises(ValueError) as err:
        check_limits(chain(16), TrainConfig(steps=5000, record_every=3), limits)
    message = str(err.value)
    assert f"limit of {per_step * 1251 + 240:,} recorded rows (272 gradient and divergence rows" in message
    assert "x 1,668 recorded steps, and step 0's divergence: 453,936)" in message
    assert "Record every 4 steps or more (record_every is 3)" in message
    assert "SHARECORE_MAX_RECORDED_ROWS" in message
    # The suggested record_every fits.
    check_limits(chain(16), TrainConfig(steps=5000, record_every=4), limits)


def test_recorded_rows_cap_with_no_room_for_two_records_asks_for_fewer_uses():
    with pytest.raises(ValueError, match=r"Use fewer uses of the shared tensors, or raise the limit"):
        check_limits(chain(16), TrainConfig(steps=10), Limits(max_recorded_rows=300))
