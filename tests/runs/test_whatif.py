"""Run labels name what a run sets otherwise than its preset; settings_diff names what differs among runs."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from sharecore import TrainConfig, preset
from sharecore.core.spec import Rule, SharedTensor
from sharecore.runs.store import MAX_LABEL_CHARS, clean_label
from sharecore.runs.whatif import preset_label, settings_diff, settings_values

DENSE = preset("seed-dense")
BASE = TrainConfig()


def with_use(spec, name, **changes):
    """`spec` with use `name` changed."""
    return replace(spec, uses=tuple(replace(u, **changes) if u.name == name else u for u in spec.uses))


PUBLISHED = (DENSE, BASE)  # seed-dense as published, with its default settings


def label(spec, config=BASE, preset="seed-dense", baseline=PUBLISHED):
    return preset_label(baseline, (spec, config), preset=preset)


def test_a_run_of_the_preset_as_published_is_named_by_the_preset_alone():
    assert label(DENSE) == "seed-dense"
    conv = preset("seed-conv")
    assert label(conv, preset="seed-conv", baseline=(conv, BASE)) == "seed-conv"


def test_a_first_run_names_every_setting_that_differs_from_the_preset():
    # The label does not depend on what ran before: a first run with teacher tied says so.
    assert label(DENSE, replace(BASE, teacher="tied")) == "seed-dense: teacher tied"
    assert label(DENSE, replace(BASE, optimizer="sgd", learning_rate=0.1, steps=200)) == (
        "seed-dense: optimizer sgd, lr 0.1, steps 200"
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"learning_rate": 0.1}, "lr 0.1"),
        ({"learning_rate": 1e-4}, "lr 0.0001"),
        ({"learning_rate": 3e-7}, "lr 3e-07"),
        ({"optimizer": "sgd"}, "optimizer sgd"),
        ({"steps": 200}, "steps 200"),
        ({"seed": 3}, "seed 3"),
        ({"dataset": "digits"}, "data digits"),
        ({"batch_size": 64}, "batch 64"),
        ({"record_every": 5}, "record every 5"),
        ({"device": "cpu"}, None),  # where a run trained is not what it tried
        ({"dataset": "digits", "learning_rate": 0.1}, "data digits, lr 0.1"),  # the data set leads
    ],
)
def test_a_setting_that_differs_from_the_preset_is_named_with_its_value(change, named):
    assert label(DENSE, replace(BASE, **change)) == (f"seed-dense: {named}" if named else "seed-dense")


def test_an_edited_model_never_keeps_the_presets_name_alone():
    transposed = with_use(DENSE, "dense_2", rule=Rule(kind="transpose"))
    assert label(transposed) == "seed-dense edited: dense_2 rule transpose"
    other_shape = with_use(DENSE, "dense_2", rule=Rule(kind="reshape", shape=(100,)))
    assert label(other_shape) == "seed-dense edited: dense_2 rule reshape"
    relu = with_use(DENSE, "dense_2", activation="relu")
    assert label(relu, replace(BASE, learning_rate=0.1)) == "seed-dense edited: dense_2 activation relu, lr 0.1"
    own = with_use(DENSE, "dense_2", tensor=None, kernel_shape=(10, 10))
    assert label(own) == "seed-dense edited: dense_2 tensor own kernel, dense_2 kernel shape (10, 10)"
    wider = replace(DENSE, tensors=(SharedTensor("W", (10, 20)),))
    assert label(wider) == "seed-dense edited: W shape (10, 20)"
    # Uses added or removed cannot be named one by one: the model's uses are.
    fewer = replace(DENSE, uses=DENSE.uses[:1])
    assert label(fewer) == f"seed-dense edited: uses {', '.join(u.name for u in DENSE.uses[:1])}"


def test_a_renamed_model_and_a_model_from_no_preset_are_named_by_their_own_name():
    renamed = replace(DENSE, name="my copy", description="mine")
    assert label(renamed) == "my copy"
    assert label(replace(renamed, input_shape=(12,)), baseline=PUBLISHED) == "my copy: input (12)"
    own = replace(DENSE, name="uploaded")
    assert label(own, replace(BASE, steps=5), preset="", baseline=(own, BASE)) == "uploaded: steps 5"


def test_the_same_settings_get_the_same_label_whatever_ran_before():
    config = replace(BASE, learning_rate=0.1)
    assert len({label(DENSE, config) for _ in range(3)}) == 1
    assert "same" not in label(DENSE) and "was" not in label(DENSE, config)


def test_many_changes_are_cut_to_fit_with_a_count_of_the_rest():
    after = replace(BASE, optimizer="sgd", learning_rate=0.1, steps=2000, seed=3, batch_size=64, record_every=7)
    long = label(replace(DENSE, name="a model with a name of forty characters!"), after)
    assert long.startswith("a model with a name of forty characters!: optimizer sgd") and long.endswith(" more")
    assert len(long) <= MAX_LABEL_CHARS


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
        for preset_name in ("seed-dense", ""):
            text = preset_label((before, BASE), (after, config), preset=preset_name)
            assert len(text) <= MAX_LABEL_CHARS
            assert clean_label(text) == text


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
