"""`python -m sharecore`: real subprocesses, checked against the library's own numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import sharecore

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "sharecore", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_presets_lists_every_preset_with_its_counts():
    out = run("presets")
    assert out.returncode == 0, out.stderr
    for name in sharecore.presets():
        report = sharecore.param_report(sharecore.preset(name))
        line = next(row for row in out.stdout.splitlines() if row.startswith(name + " "))
        assert line.split()[1:3] == [str(report.tied_total), str(report.untied_total)]


def test_params_json_of_a_spec_file_matches_the_built_models(tmp_path):
    spec = sharecore.preset("siamese-digits")
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json())
    out = run("params", str(path), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["tied"] == sharecore.build(spec, True).count_params() == 4680
    assert data["untied"] == sharecore.build(spec, False).count_params() == 9360


def test_train_writes_the_three_csvs_and_a_summary(tmp_path):
    out = run("train", "seed-mixed", "--steps", "6", "--seed", "2", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "run"
    history = pd.read_csv(run_dir / "history.csv")
    gradients = pd.read_csv(run_dir / "gradients.csv")
    divergence = pd.read_csv(run_dir / "divergence.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(history) == 12 and set(history.variant) == {"tied", "untied"}
    assert set(gradients.use) == {"dense", "conv"}
    assert divergence.step.min() == 0
    assert summary["steps_done"] == 6 and summary["train"]["seed"] == 2
    assert summary["params"] == {"tied": 50, "untied": 100}
    assert summary["final_loss"]["tied"] == pytest.approx(
        history[(history.step == 6) & (history.variant == "tied")].loss.iloc[0]
    )
    # Same seed, same numbers: the in-process library reproduces the CLI's run.
    again = sharecore.train(sharecore.preset("seed-mixed"), sharecore.TrainConfig(steps=6, seed=2))
    pd.testing.assert_series_equal(again.history.loss, history.loss, check_exact=False, rtol=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("params", "nope"), "'nope' is neither a preset"),
        (("train", "seed-dense", "--steps", "0"), "train.steps: must be >= 1. Received: 0"),
        (("train", "seed-dense", "--lr", "abc"), "argument --lr: invalid float value: 'abc'"),
        (("train", "seed-dense", "--optimizer", "rmsprop"), "train.optimizer: must be one of 'sgd', 'adam'"),
        (
            ("train", "seed-conv", "--dataset", "digits", "--steps", "1"),
            "dataset 'digits' needs a model input of 64 values",
        ),
        (("frob",), "invalid choice: 'frob'"),
    ],
)
def test_bad_input_is_one_line_on_stderr_with_exit_2(args, message, tmp_path):
    out = run(*args, "--out", str(tmp_path)) if args[0] == "train" else run(*args)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("sharecore: error: ") and message in out.stderr


def test_an_invalid_spec_file_names_the_use(tmp_path):
    data = sharecore.preset("seed-dense").to_dict()
    data["tensors"][0]["shape"] = [10, 5]
    bad, broken = tmp_path / "bad.json", tmp_path / "broken.json"
    bad.write_text(json.dumps(data))
    broken.write_text("{not json")
    out = run("params", str(bad))
    assert out.returncode == 2 and "use 'dense_2' needs a kernel with 5 input rows" in out.stderr
    out = run("params", str(broken))
    assert out.returncode == 2 and "spec JSON could not be parsed" in out.stderr
    assert out.stderr.count("\n") == 1
