"""`python -m sharecore inspect`: a saved model's shared weights, counts and gradient split, and the files it refuses.

In this process (`cli.main`), as tests/cli/test_cli.py runs most commands; refusals that need no
TensorFlow run under the guard that fails a test which loads it.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
import zipfile

import keras
import numpy as np
import pytest

import sharecore as sc
from tests.support import ROOT
from tests.support.cli import main


def assert_one_error(status: int, stderr: str, *phrases: str) -> None:
    """Exit 2 and one `sharecore: error:` line that says each of `phrases`: never a traceback."""
    assert status == 2, stderr
    assert "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    assert stderr.startswith("sharecore: error: "), stderr
    for phrase in phrases:
        assert phrase in stderr, stderr


@pytest.fixture
def saved(tmp_path):
    """A functional model that calls one Dense twice, saved; and the model."""
    dense = keras.layers.Dense(3, activation="tanh", name="block")
    inp = keras.Input((3,))
    model = keras.Model(inp, dense(dense(inp)))
    path = tmp_path / "chain.keras"
    model.save(path)
    return str(path), model


def test_inspect_prints_the_shared_weights_the_counts_and_the_split(capsys, saved):
    path, model = saved
    status, out, err = main(capsys, "inspect", path)
    assert status == 0 and err == "", err
    assert "shared block/kernel (3, 3) (9 parameters): 2 uses: block#0, block#1" in out
    assert "shared block/bias (3,) (3 parameters): 2 uses: block#0, block#1" in out
    assert "stored: 12 parameters   untied: 24   sharing saves 12" in out
    assert "note: no x given: a seeded random batch" in out and "mean_squared_error" in out


def test_inspect_on_a_data_file_prints_the_numbers_of_sharecore_inspect_on_that_batch(capsys, saved, tmp_path):
    path, model = saved
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 3)).astype("float32"), rng.standard_normal((5, 3)).astype("float32")
    np.savez(tmp_path / "batch.npz", x=x, y=y)
    status, out, err = main(capsys, "inspect", path, "--data", str(tmp_path / "batch.npz"), "--loss", "mse")
    assert status == 0 and err == "", err
    expected = sc.inspect(model, x, y, loss="mse").gradients
    printed = [line.split() for line in out.splitlines() if line.startswith("  block/")]
    assert [(p[0], p[1]) for p in printed] == list(zip(expected.tensor, expected.use))
    np.testing.assert_allclose([float(p[2]) for p in printed], expected.grad_norm, rtol=1e-3)
    assert "no x given" not in out


def test_a_model_with_a_lambda_layer_is_refused_by_safe_mode_in_one_line(capsys, tmp_path):
    inp = keras.Input((3,))
    keras.Model(inp, keras.layers.Lambda(lambda t: t * 2.0)(inp)).save(tmp_path / "lambda.keras")
    status, out, err = main(capsys, "inspect", str(tmp_path / "lambda.keras"))
    assert_one_error(
        status, err, "lambda.keras", "refused to load", "in safe mode", "Lambda", "sharecore.inspect(model)"
    )
    assert "safe_mode=False" not in err and "enable_unsafe_deserialization" not in err  # advice inspection refuses
    assert out == ""


def test_a_file_that_is_not_a_keras_zip_is_refused_before_tensorflow_loads(capsys, tmp_path, without_tensorflow):
    path = tmp_path / "model.keras"
    path.write_text("not a zip archive")
    status, _, err = main(capsys, "inspect", str(path))
    assert_one_error(status, err, "is not a Keras model file")


def test_a_missing_model_file_is_refused_before_tensorflow_loads(capsys, tmp_path, without_tensorflow):
    status, _, err = main(capsys, "inspect", str(tmp_path / "missing.keras"))
    assert_one_error(status, err, "missing.keras", "No such file")


def test_a_zip_that_is_not_a_keras_file_is_refused_before_tensorflow_loads(capsys, tmp_path, without_tensorflow):
    path = tmp_path / "notes.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "no model here")
    status, _, err = main(capsys, "inspect", str(path))
    assert_one_error(status, err, "is a zip archive but not a Keras model file", "no config.json", "model.save")


def test_a_keras_file_keras_cannot_rebuild_is_refused_with_what_would_fix_it(capsys, tmp_path):
    path = tmp_path / "custom.keras"
    with zipfile.ZipFile(path, "w") as archive:  # a config naming a class this Python does not have
        archive.writestr("config.json", '{"module": "my_models", "class_name": "MyLM", "config": {}}')
        archive.writestr("metadata.json", '{"keras_version": "3.15.1"}')
    status, _, err = main(capsys, "inspect", str(path))
    assert_one_error(status, err, "Keras could not load", "register_keras_serializable", "sharecore.inspect(model)")


@pytest.mark.parametrize("kind", ["text", "no y", "pickled"])
def test_a_bad_data_file_is_refused_before_tensorflow_loads(capsys, tmp_path, without_tensorflow, kind):
    model = tmp_path / "model.keras"
    with zipfile.ZipFile(model, "w") as archive:  # passes the zip check; never loaded, the data is refused first
        archive.writestr("config.json", "{}")
    data = tmp_path / "batch.npz"
    if kind == "text":
        data.write_text("x,y\n1,2\n")
    elif kind == "no y":
        np.savez(data, x=np.zeros((2, 3)))
    else:
        np.savez(data, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    status, _, err = main(capsys, "inspect", str(model), "--data", str(data))
    phrase = {
        "text": "is not an .npz file (np.savez",
        "no y": "needs arrays named 'x' and 'y'",
        "pickled": "is not an .npz file NumPy can read safely",
    }[kind]
    assert_one_error(status, err, phrase)
    assert "unsafely" not in err  # NumPy's advice to unpickle a file is not ours to give


def test_a_real_process_prints_the_report_and_nothing_of_tensorflows_start_up_on_stderr(saved):
    """TensorFlow's C++ start-up lines go straight to fd 2; only a process shows that none get through."""
    path, _ = saved
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_ENABLE_ONEDNN_OPTS": "1"}
    ran = subprocess.run(
        [sys.executable, "-m", "sharecore", "inspect", path], capture_output=True, text=True, env=env, timeout=300
    )
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    assert "2 uses: block#0, block#1" in ran.stdout


def tiny_lm(vocab: int = 50) -> keras.Model:
    """Token ids in, one score per token out, the table shared by the embedding and the output."""
    inp = keras.Input((6,), dtype="int32")
    table = keras.layers.ReversibleEmbedding(vocab, 8, tie_weights=True, name="tok")
    hidden = keras.layers.Dense(8, activation="relu", name="mix")(table(inp))
    return keras.Model(inp, table(hidden, reverse=True), name="tiny_lm")


def test_a_saved_language_model_is_split_with_the_loss_it_was_compiled_with_and_quietly(capsys, tmp_path):
    model = tiny_lm()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(tmp_path / "lm.keras")  # compiled, never trained: Keras warns of its unbuilt optimizer on load
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, out, err = main(capsys, "inspect", str(tmp_path / "lm.keras"))
    assert status == 0 and err == "", err
    assert [str(w.message) for w in caught] == []
    assert "shared tok/embeddings (50, 8) (400 parameters): 2 uses: tok#embed, tok#reverse" in out
    assert f"stored: {model.count_params():,} parameters   untied: {model.count_params() + 400:,}" in out
    assert "(loss sparse_categorical_crossentropy on logits)" in out and "is not compiled" not in out


def test_an_uncompiled_language_model_is_split_with_cross_entropy_on_token_targets(capsys, tmp_path):
    tiny_lm().save(tmp_path / "lm.keras")
    status, out, err = main(capsys, "inspect", str(tmp_path / "lm.keras"))
    assert status == 0 and err == "", err
    assert "(loss sparse_categorical_crossentropy on logits)" in out
    assert "scores every token of its vocabulary: a language model" in out


def test_a_probability_cross_entropy_by_name_on_a_language_models_logits_gets_a_note(capsys, tmp_path):
    tiny_lm().save(tmp_path / "lm.keras")
    status, out, err = main(capsys, "inspect", str(tmp_path / "lm.keras"), "--loss", "sparse_categorical_crossentropy")
    assert status == 0 and err == "", err
    assert "(loss sparse_categorical_crossentropy)" in out
    assert "reads the outputs as probabilities" in out and "from_logits=True" in out


@pytest.mark.parametrize("kind", ["ids past the vocabulary", "strings", "a float x of another shape"])
def test_a_batch_the_model_cannot_run_on_is_refused_in_one_line_saying_what_to_check(capsys, tmp_path, kind):
    tiny_lm().save(tmp_path / "lm.keras")
    x = {
        "ids past the vocabulary": np.full((4, 6), 1042, "int32"),
        "strings": np.array([["a"] * 6] * 4),
        "a float x of another shape": np.zeros((4, 3), "float32"),
    }[kind]
    np.savez(tmp_path / "batch.npz", x=x, y=np.zeros((4, 6), "int32"))
    status, out, err = main(capsys, "inspect", str(tmp_path / "lm.keras"), "--data", str(tmp_path / "batch.npz"))
    assert_one_error(status, err, "could not be run on the batch", "x fits the model's inputs")
    assert "\x1b" not in err and "internal error" not in err and out == ""


def test_a_model_with_two_inputs_takes_x0_and_x1_from_the_data_file(capsys, tmp_path):
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="enc")], name="encoder")
    a, b = keras.Input((4,)), keras.Input((4,))
    siamese = keras.Model([a, b], keras.layers.Subtract()([encoder(a), encoder(b)]))
    siamese.save(tmp_path / "siamese.keras")
    rng = np.random.default_rng(0)
    x0, x1, y = (rng.standard_normal((5, n)).astype("float32") for n in (4, 4, 3))
    np.savez(tmp_path / "pairs.npz", x0=x0, x1=x1, y=y)
    status, out, err = main(
        capsys, "inspect", str(tmp_path / "siamese.keras"), "--data", str(tmp_path / "pairs.npz"), "--loss", "mse"
    )
    assert status == 0 and err == "", err
    loaded = keras.saving.load_model(tmp_path / "siamese.keras")  # the same weights, under the names a load gives
    expected = sc.inspect(loaded, [x0, x1], y, loss="mse").gradients
    assert len(expected) == 4  # kernel and bias, each read by enc#0 and enc#1
    printed = [line.split() for line in out.splitlines() if line.startswith("  ") and "#" in line]
    assert [(p[0], p[1]) for p in printed] == list(zip(expected.tensor, expected.use))
    np.testing.assert_allclose([float(p[2]) for p in printed], expected.grad_norm, rtol=1e-3)
