"""The generated Keras scripts build the same models as sharecore.build, and run on their own.

Most tests exec the script in this process (TensorFlow is imported once); re-running a
script re-registers `weight_sharing>SharedKernel`, which Keras allows and which is harmless
because every script defines the same class. One test runs every script in a fresh Python
that cannot import sharecore at all.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import sharecore
from sharecore.core.plan import plan
from sharecore.core.spec import ModelSpec
from sharecore.nn.data import random_inputs
from sharecore.share.codegen import keras_code
from tests.support.codegen import assert_ruff_clean, exec_script

# Names that are Python keywords, builtins or names the script itself uses; a use named
# like a shared tensor; quotes and code in the spec's name, a newline in its description
# (the spec refuses control characters in a name; tests/app/test_user_text.py forces them in).
TRICKY = ModelSpec.from_dict(
    {
        "name": 'it\'s "tricky" import os',
        "description": "First line.\nimport os # not code",
        "input_shape": [6, 6, 2],
        "tensors": [
            {"name": "np", "shape": [3, 3, 2, 2], "initializer": "he_normal"},
            {"name": "W", "shape": [8, 4]},
        ],
        "uses": [
            {"name": "class", "op": "conv2d", "tensor": "np", "activation": "relu", "bias": "shared"},
            {
                "name": "print",
                "op": "conv2d",
                "tensor": "np",
                "rule": {"kind": "transpose", "perm": [1, 0, 2, 3]},
                "strides": 2,
                "padding": "valid",
                "bias": "shared",
            },
            {"name": "x", "op": "dense", "tensor": "W", "input_reshape": [8], "bias": "own"},
            {
                "name": "W",
                "op": "dense",
                "tensor": "W",
                "rule": {"kind": "slice", "begin": [0, 0], "size": [4, 4]},
                "input_slice": [0, 4],
                "activation": "elu",
            },
            {"name": "model", "op": "dense", "kernel_shape": [4, 3], "bias": "own", "activation": "gelu"},
        ],
        "outputs": ["input", "print", "model"],
    }
)

SPECS = {name: sharecore.preset(name) for name in sharecore.presets()} | {"tricky-names": TRICKY}
CASES = [
    pytest.param(name, tied, id=f"{name}-{'tied' if tied else 'untied'}") for name in SPECS for tied in (True, False)
]


def _printed_count(printed: str) -> int:
    return int(re.search(r"^count_params: (\d+)$", printed, re.MULTILINE).group(1))


def _random_batch(spec: ModelSpec, seed: int = 1) -> np.ndarray:
    return random_inputs(spec, 5, np.random.default_rng(seed))


@pytest.mark.parametrize(("name", "tied"), CASES)
def test_generated_script_builds_the_sharecore_model(name: str, tied: bool) -> None:
    """Prints the param report's count; same weights as sharecore.build and, once copied, same outputs."""
    spec = SPECS[name]
    report = sharecore.param_report(spec)
    reference = sharecore.build(spec, tied, seed=0)

    code = keras_code(spec, tied)
    namespace, printed = exec_script(code)

    count = report.tied_total if tied else report.untied_total
    assert _printed_count(printed) == count
    assert f"model.count_params())  # {count}\n" in code
    weights = len(reference.trainable_weights)
    assert f"trainable weights: {weights}\n" in printed
    assert f"len(model.trainable_weights))  # {weights}\n" in code
    assert f"output shape: {(4, *plan(spec).output_shape)}\n" in printed
    model = namespace["model"]
    # Same layer and weight names as sharecore, so the weights match by path.
    by_path = {v.path: v for v in reference.weights}
    assert sorted(v.path for v in model.weights) == sorted(by_path)
    for variable in model.weights:
        variable.assign(by_path[variable.path])
    batch = _random_batch(spec)
    np.testing.assert_allclose(np.asarray(model(batch)), np.asarray(reference(batch)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["seed-mixed", "siamese-digits", "tied-autoencoder", "tricky-names"])
def test_saved_tied_model_loads_in_safe_mode_and_keeps_the_tie(name: str, tmp_path: Path) -> None:
    spec = SPECS[name]
    model = exec_script(keras_code(spec, tied=True))[0]["model"]
    path = tmp_path / "model.keras"

    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)

    assert len(loaded.trainable_weights) == len(model.trainable_weights)
    assert loaded.count_params() == sharecore.param_report(spec).tied_total
    batch = _random_batch(spec)
    np.testing.assert_allclose(np.asarray(loaded(batch)), np.asarray(model(batch)), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_generated_scripts_run_in_a_fresh_python_that_cannot_import_sharecore(tmp_path: Path) -> None:
    # The in-process tests cover every case; these three use every kind of generated line.
    cases = [("siamese-digits", True), ("seed-mixed", False), ("tricky-names", True)]
    paths, expected = [], []
    for i, (name, tied) in enumerate(cases):
        spec = SPECS[name]
        path = tmp_path / f"script_{i}.py"
        path.write_text(keras_code(spec, tied))
        paths.append(str(path))
        report = sharecore.param_report(spec)
        expected.append(report.tied_total if tied else report.untied_total)
    # One interpreter for all scripts: importing TensorFlow costs seconds, a script does not.
    runner = (
        "import runpy, sys\n"
        "sys.modules['sharecore'] = None  # any 'import sharecore' now fails\n"
        "for path in sys.argv[1:]:\n"
        "    runpy.run_path(path, run_name='__main__')\n"
    )

    result = subprocess.run(
        [sys.executable, "-I", "-c", runner, *paths],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
    )

    assert result.returncode == 0, result.stderr[-3000:]
    counts = [int(c) for c in re.findall(r"^count_params: (\d+)$", result.stdout, re.MULTILINE)]
    assert counts == expected


def test_generated_code_compiles_and_imports_only_keras_tensorflow_and_numpy() -> None:
    for name, spec in SPECS.items():
        for tied in (True, False):
            code = keras_code(spec, tied)

            compile(code, f"<keras_code {name}>", "exec")
            imported = set()
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.Import):
                    imported |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom):
                    imported.add(node.module)
            assert imported == {"keras", "numpy", "tensorflow"}, name
            assert "sharecore" not in code, name


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed")
def test_generated_code_is_ruff_formatted_and_lint_clean_at_88_columns(tmp_path: Path) -> None:
    assert_ruff_clean(SPECS, tmp_path)


def test_same_spec_gives_the_same_text() -> None:
    spec = sharecore.preset("siamese-digits")

    assert keras_code(spec) == keras_code(spec)
    assert keras_code(spec, tied=True) != keras_code(spec, tied=False)


def test_header_says_tied_or_untied_and_names_the_spec_from_line_3_on() -> None:
    spec = sharecore.preset("tied-autoencoder")

    tied_header = keras_code(spec, tied=True).split("\n\n")[0].split("\n")
    untied_header = keras_code(spec, tied=False).split("\n\n")[0].split("\n")

    # Lines 1 and 2 hold no user text: Python reads an encoding cookie only there.
    assert tied_header[:3] == [
        "# Weight sharing in Keras 3: the tied model of a spec, as a standalone script.",
        "#",
        "# Spec 'tied-autoencoder'.",
    ]
    assert untied_header[0] == "# Weight sharing in Keras 3: the untied model of a spec, as a standalone script."
    assert untied_header[2] == "# Spec 'tied-autoencoder'."


def test_tied_script_calls_one_layer_per_tensor_and_untied_script_one_layer_per_use() -> None:
    spec = sharecore.preset("albert-mlp")

    tied, untied = keras_code(spec, tied=True), keras_code(spec, tied=False)

    assert tied.count("= SharedKernel(") == 2
    assert 'block3_down = W_down(block3_up, use="block3_down")  # (batch, 16)' in tied
    assert untied.count("= SharedKernel(") == 6


def test_spec_names_never_shadow_python_or_the_script() -> None:
    code = keras_code(TRICKY)

    assert 'class_out = tensor_np(inputs, use="class")  # (batch, 6, 6, 2)' in code
    assert 'W = tensor_W(x, use="W")  # (batch, 4)' in code
    assert "model = keras.Model(inputs, outputs, name=" in code


def test_invalid_spec_raises_the_plan_error() -> None:
    spec = ModelSpec.from_dict(
        {
            "input_shape": [10],
            "tensors": [{"name": "W", "shape": [10, 5]}],
            "uses": [
                {"name": "dense_1", "op": "dense", "tensor": "W"},
                {"name": "dense_2", "op": "dense", "tensor": "W"},
            ],
        }
    )
    with pytest.raises(ValueError) as expected:
        plan(spec)

    with pytest.raises(ValueError, match=re.escape(str(expected.value))):
        keras_code(spec)
