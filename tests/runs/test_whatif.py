"""What-if labels name what a run changed; settings_diff names what differs among runs."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from sharecore import TrainConfig, preset
from sharecore.core.spec import Rule, SharedTensor
from sharecore.runs.store import MAX_LABEL_CHARS, clean_label
from sharecore.runs.whatif import change_label, settings_diff, settings_values

DENSE = preset("seed-dense")
BASE = TrainConfig()


def with_use(spec, name, **changes):
    """`spec` with use `name` changed."""
    return replace(spec, uses=tuple(replace(u, **changes) if u.name == name else u for u in spec.uses))


def test_a_first_run_is_named_by_its_preset_optimizer_and_steps():
    assert change_label(None, (DENSE, BASE), preset="seed-dense") == "seed-dense, adam lr 0.01, 60 steps"
    conv = preset("seed-conv")
    assert change_label(None, (conv, replace(BASE, optimizer="sgd", learning_rate=0.1, steps=200))) == (
        "seed-conv, sgd lr 0.1, 200 steps"
    )
    assert (
        change_label(None, (DENSE, replace(BASE, dataset="digits")))
        == "seed-dense, adam lr 0.01, 60 steps, data digits"
    )


@pytest.mark.parametrize(
    ("change", "label"),
    [
        ({"learning_rate": 0.1}, "lr 0.1 (was 0.01)"),
        ({"learning_rate": 1e-4}, "lr 0.0001 (was 0.01)"),
        ({"learning_rate": 3e-7}, "lr 3e-07 (was 0.01)"),
        ({"optimizer": "sgd"}, "optimizer sgd (was adam)"),
        ({"steps": 200}, "steps 200 (was 60)"),
        ({"seed": 3}, "seed 3 (was 0)"),
        ({"dataset": "digits"}, "data digits (was teacher)"),
        ({"batch_size": 64}, "batch 64 (was 32)"),
        ({"record_every": 5}, "record every 5 (was 1)"),
        ({"optimizer": "sgd", "learning_rate": 0.1}, "optimizer sgd (was adam), lr 0.1 (was 0.01)"),
    ],
)
def test_a_changed_training_setting_is_named_with_its_old_value(change, label):
    assert change_label((DENSE, BASE), (DENSE, replace(BASE, **change))) == label


def test_a_changed_teacher_is_named():
    assert change_label((DENSE, BASE), (DENSE, replace(BASE, teacher="tied"))) == "teacher tied (was untied)"


def test_a_changed_rule_is_named_by_its_use():
    transposed = with_use(DENSE, "dense_2", rule=Rule(kind="transpose"))
    assert change_label((DENSE, BASE), (transposed, BASE)) == "dense_2 rule transpose (was identity)"
    reshaped = with_use(DENSE, "dense_2", rule=Rule(kind="reshape", shape=(1, 1, 10, 10)))
    assert change_label((transposed, BASE), (reshaped, BASE)) == "dense_2 rule reshape (was transpose)"
    # The same kind of rule with other options names the options.
    other_shape = with_use(DENSE, "dense_2", rule=Rule(kind="reshape", shape=(100,)))
    assert change_label((reshaped, BASE), (other_shape, BASE)) == (
        "dense_2 rule reshape (100,) (was reshape (1, 1, 10, 10))"
    )


def test_changed_uses_and_tensor_shapes_are_named():
    relu = with_use(DENSE, "dense_2", activation="relu")
    assert change_label((DENSE, BASE), (relu, BASE)) == "dense_2 activation relu (was linear)"
    own = with_use(DENSE, "dense_2", tensor=None, kernel_shape=(10, 10))
    assert change_label((DENSE, BASE), (own, BASE)) == (
        "dense_2 tensor own kernel (was W), dense_2 kernel shape (10, 10) (was none)"
    )
    wider = replace(DENSE, tensors=(SharedTensor("W", (10, 20)),))
    assert change_label((DENSE, BASE), (wider, BASE)) == "W shape (10, 20) (was (10, 10))"


def test_another_model_is_named_by_its_preset_or_name():
    conv = preset("seed-conv")
    assert change_label((DENSE, BASE), (conv, BASE), preset="seed-conv") == "preset seed-conv"
    assert change_label((DENSE, BASE), (conv, BASE)) == "model seed-conv"
    assert change_label((DENSE, BASE), (conv, replace(BASE, seed=3)), preset="seed-conv") == (
        "preset seed-conv, seed 3 (was 0)"
    )
    renamed = replace(DENSE, name="my copy")
    assert change_label((DENSE, BASE), (renamed, BASE)) == "model my copy"


def test_the_same_settings_say_so():
    assert change_label((DENSE, BASE), (DENSE, BASE)) == "same settings"


def test_many_changes_are_cut_to_fit_with_a_count_of_the_rest():
    after = replace(BASE, optimizer="sgd", learning_rate=0.1, steps=200, seed=3, batch_size=64)
    assert change_label((DENSE, BASE), (DENSE, after)) == (
        "optimizer sgd (was adam), lr 0.1 (was 0.01), steps 200 (was 60) +2 more"
    )


def test_every_label_fits_the_run_store_unchanged():
    long_name = replace(DENSE, name="a very long model name " * 3)
    changes = [
        {"learning_rate": 0.123456789},
        {"optimizer": "sgd"},
        {"steps": 4999},
        {"seed": 123456},
        {"batch_size": 512},
        {"dataset": "digits"},
        {"record_every": 7},
    ]
    specs = [DENSE, long_name, with_use(DENSE, "dense_2", rule=Rule(kind="reshape", shape=(1, 1, 10, 10)))]
    for before, after, n in itertools.product(specs, specs, range(len(changes) + 1)):
        config = replace(BASE, **{k: v for c in changes[:n] for k, v in c.items()})
        for label in (change_label((before, BASE), (after, config)), change_label(None, (after, config))):
            assert len(label) <= MAX_LABEL_CHARS
            assert clean_label(label) == label


def test_settings_diff_names_what_differs_among_runs():
    transposed = with_use(DENSE, "dense_2", rule=Rule(kind="transpose"))
    runs = [(DENSE, BASE), (transposed, replace(BASE, learning_rate=0.1)), (DENSE, BASE)]
    assert settings_diff(runs) == ["use dense_2 rule", "train.learning_rate"]
    assert settings_diff(runs[:1]) == []
    assert settings_diff([(DENSE, BASE), (DENSE, BASE)]) == []


def test_settings_diff_of_different_models_names_their_structure_not_each_use():
    diff = settings_diff([(DENSE, BASE), (preset("seed-conv"), BASE)])
    assert {"spec.name", "spec.tensors", "spec.uses"} <= set(diff)
    assert not any(path.startswith("use ") for path in diff)  # the two have no use in common


def test_each_differing_path_has_a_value_that_differs():
    transposed = with_use(DENSE, "dense_2", rule=Rule(kind="transpose"), activation="relu")
    runs = [(DENSE, BASE), (transposed, replace(BASE, optimizer="sgd"))]
    values = [settings_values(spec, config) for spec, config in runs]
    diff = settings_diff(runs)
    assert diff == ["use dense_2 rule", "use dense_2 activation", "train.optimizer"]
    assert [(values[0][p], values[1][p]) for p in diff] == [
        ("identity", "transpose"),
        ("linear", "relu"),
        ("adam", "sgd"),
    ]
    assert values[0]["train.learning_rate"] == "0.01" and values[0]["tensor W shape"] == "(10, 10)"
    # Every path that is not listed has one value in all runs.
    assert all(values[0][p] == values[1][p] for p in values[0] if p not in diff)
