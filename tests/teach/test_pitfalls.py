"""The pitfalls' numbers, against exact expectations and an independent GradientTape reference."""

from __future__ import annotations

import ast
import dataclasses
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import sharecore
from sharecore.nn.data import teacher_dataset
from sharecore.teach import pitfalls

PLAIN = (bool, int, float, str)


# Each pitfall trains or saves real models; measure each once per module. The functions name
# their layers and set their weights explicitly, so they do not depend on Keras's global state.
@pytest.fixture(scope="module")
def raw_variable() -> pitfalls.PitfallResult:
    with pytest.warns(UserWarning, match="does not have any trainable weights"):
        return pitfalls.raw_variable_not_tracked(seed=0)


@pytest.fixture(scope="module")
def copies() -> pitfalls.PitfallResult:
    return pitfalls.copies_are_not_shared(seed=0, steps=20)


@pytest.fixture(scope="module")
def handoff() -> pitfalls.PitfallResult:
    return pitfalls.handoff_tie_lost_on_save(seed=0)


def reference_sgd(seed: int, steps: int, tied: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain-tensor SGD on out = tanh(x @ W1) @ W2, one variable (tied) or two; returns W0, W1, W2."""
    spec = sharecore.preset("seed-dense")
    w0 = sharecore.initial_values(spec, seed)["W"]
    data = teacher_dataset(spec, seed, pool_size=steps * pitfalls.BATCH_SIZE)
    w1 = tf.Variable(w0)
    w2 = w1 if tied else tf.Variable(w0)
    variables = [w1] if tied else [w1, w2]
    for i in range(steps):
        batch = slice(i * pitfalls.BATCH_SIZE, (i + 1) * pitfalls.BATCH_SIZE)
        x, y = tf.constant(data.x[batch]), tf.constant(data.y[batch])
        with tf.GradientTape() as tape:
            out = tf.matmul(tf.tanh(tf.matmul(x, w1)), w2)  # (batch, 10)
            loss = tf.reduce_mean(tf.square(out - y))
        for v, g in zip(variables, tape.gradient(loss, variables)):
            v.assign_sub(pitfalls.LEARNING_RATE * g)
    return w0, w1.numpy(), w2.numpy()


def assert_plain(result: pitfalls.PitfallResult) -> None:
    assert set(result.broken) == set(result.sharecore)
    for side in (result.broken, result.sharecore):
        for name, value in side.items():
            assert isinstance(value, PLAIN), f"{name} is a {type(value).__name__}"
    for text in (result.title, result.explanation, result.broken_code, result.sharecore_code):
        assert isinstance(text, str) and text.strip()


# ----------------------------------------------------------------------------- 1. raw tf.Variable
def test_raw_variable_is_not_tracked_and_fit_leaves_it_unchanged(raw_variable):
    broken = raw_variable.broken

    assert broken["trainable_weights"] == 0
    assert broken["count_params"] == 0
    assert broken["changed_by_fit"] is False
    assert broken["max_abs_change"] == 0.0
    assert broken["loss_after"] == broken["loss_before"]


def test_sharecore_kernel_is_tracked_once_and_moves_as_plain_sgd_predicts(raw_variable):
    result = raw_variable
    ours = result.sharecore
    w0, w1, _ = reference_sgd(seed=0, steps=pitfalls.FIT_STEPS, tied=True)

    assert ours["trainable_weights"] == 1
    assert ours["count_params"] == 100
    assert ours["fit_steps"] == pitfalls.FIT_STEPS
    assert ours["changed_by_fit"] is True
    assert ours["max_abs_change"] == pytest.approx(np.max(np.abs(w1 - w0)), rel=1e-4)
    assert ours["loss_after"] < ours["loss_before"]
    # Same start, same function: the broken model's loss before fitting is the tied model's.
    assert result.broken["loss_before"] == pytest.approx(ours["loss_before"], rel=1e-6)
    assert_plain(result)


# ----------------------------------------------------------------------------- 2. copies
def test_copied_values_are_two_variables_that_drift_apart_as_plain_sgd_predicts(copies):
    broken = copies.broken
    w0, w1, w2 = reference_sgd(seed=0, steps=20, tied=False)

    assert broken["count_params"] == 200
    assert broken["trainable_weights"] == 2
    assert broken["kernel_variables"] == 2
    assert broken["steps"] == 20
    assert broken["relative_distance_before"] == 0.0
    assert broken["relative_distance_after"] > 0.0
    expected = np.linalg.norm(w1 - w2) / np.linalg.norm(w0)
    assert broken["relative_distance_after"] == pytest.approx(expected, rel=1e-3)
    assert broken["uses_equal_after"] is False


def test_tied_kernel_is_one_variable_whose_uses_stay_exactly_equal(copies):
    result = copies
    ours = result.sharecore

    assert ours["count_params"] == 100
    assert ours["trainable_weights"] == 1
    assert ours["kernel_variables"] == 1
    assert ours["relative_distance_before"] == 0.0
    assert ours["relative_distance_after"] == 0.0
    assert ours["uses_equal_after"] is True
    assert_plain(result)


def test_copies_pitfall_is_deterministic_for_a_seed_and_differs_across_seeds():
    first = pitfalls.copies_are_not_shared(seed=1, steps=5)
    again = pitfalls.copies_are_not_shared(seed=1, steps=5)
    other = pitfalls.copies_are_not_shared(seed=2, steps=5)

    assert first == again
    assert first.broken["relative_distance_after"] != other.broken["relative_distance_after"]


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_copies_pitfall_rejects_a_step_count_that_is_not_a_positive_integer(steps):
    with pytest.raises(ValueError, match="positive integer"):
        pitfalls.copies_are_not_shared(steps=steps)


# ----------------------------------------------------------------------------- 3. save / load
def test_handed_over_variable_is_one_kernel_until_save_and_two_after_load(handoff):
    broken = handoff.broken
    w0, w1, w2 = reference_sgd(seed=0, steps=1, tied=False)

    assert broken["count_params_before_save"] == 100
    assert broken["kernel_variables_before_save"] == 1
    assert broken["tied_after_step_before_save"] is True
    assert broken["count_params_after_load"] == 200
    assert broken["kernel_variables_after_load"] == 2
    assert broken["uses_equal_after_load"] is True
    assert broken["tied_after_step_after_load"] is False
    # The loaded model behaves exactly like two independent copies of W0.
    assert broken["max_abs_gap_after_step_after_load"] == pytest.approx(np.max(np.abs(w1 - w2)), rel=1e-4)


def test_sharecore_tie_survives_save_and_load(handoff):
    result = handoff
    ours = result.sharecore

    assert ours["count_params_before_save"] == 100
    assert ours["kernel_variables_before_save"] == 1
    assert ours["tied_after_step_before_save"] is True
    assert ours["count_params_after_load"] == 100
    assert ours["kernel_variables_after_load"] == 1
    assert ours["uses_equal_after_load"] is True
    assert ours["tied_after_step_after_load"] is True
    assert ours["max_abs_gap_after_step_after_load"] == 0.0
    assert_plain(result)


def test_saved_files_kept_in_workdir_load_with_the_counts_reported(tmp_path):
    result = pitfalls.handoff_tie_lost_on_save(seed=0, workdir=str(tmp_path))

    handed_over = keras.models.load_model(tmp_path / "handed_over_0.keras")
    tied = keras.models.load_model(tmp_path / "sharecore_tied_0.keras")
    assert handed_over.count_params() == result.broken["count_params_after_load"] == 200
    assert len(handed_over.trainable_weights) == 2
    assert tied.count_params() == result.sharecore["count_params_after_load"] == 100
    assert len(tied.trainable_weights) == 1


def test_temporary_directory_is_removed_when_no_workdir_is_given(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    pitfalls.handoff_tie_lost_on_save(seed=0)

    assert os.listdir(tmp_path) == []


def test_handoff_pitfall_rejects_a_workdir_that_does_not_exist(tmp_path):
    with pytest.raises(ValueError, match="existing directory"):
        pitfalls.handoff_tie_lost_on_save(workdir=str(tmp_path / "missing"))


# ----------------------------------------------------------------------------- all
def test_all_pitfalls_returns_the_three_in_page_order(raw_variable, copies, handoff):
    with pytest.warns(UserWarning, match="does not have any trainable weights"):
        results = pitfalls.all_pitfalls(seed=0)

    # all_pitfalls uses the default step count, which the `copies` fixture spells out.
    assert results == [raw_variable, copies, handoff]


def test_pitfall_result_is_frozen():
    result = pitfalls.PitfallResult("t", "e", {}, {}, "b", "s")

    with pytest.raises(dataclasses.FrozenInstanceError):
        result.title = "changed"


def test_pitfalls_module_does_not_import_streamlit():
    tree = ast.parse(Path(pitfalls.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}

    assert not any(name.split(".")[0] == "streamlit" for name in imported)
