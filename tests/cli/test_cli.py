"""`python -m sharecore`, checked against the library's own numbers.

Most tests call `cli.main(argv)` in this process: a real process costs a TensorFlow start (about
5 s) and is kept for what only a process shows: nothing of TensorFlow's start-up on stderr, Ctrl-C,
and spec paths whose read could hang or fill memory.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sharecore
from tests.support.cli import TensorFlowLoaded, main

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path = ROOT, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    # TF_ENABLE_ONEDNN_OPTS=1: TensorFlow's oneDNN start-up lines, which AMD CPUs get by default, on every CPU.
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_ENABLE_ONEDNN_OPTS": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "sharecore", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def assert_errors_only(status: int, stderr: str, lines: int = 1) -> None:
    """Exit 2, and only `lines` one-line errors on stderr: never a traceback."""
    assert status == 2, stderr
    assert "Traceback" not in stderr
    assert stderr.count("\n") == lines, stderr
    assert all(line.startswith("sharecore: error: ") for line in stderr.splitlines()), stderr


def test_the_guard_catches_a_tensorflow_import(without_tensorflow):
    """The guard of the tests below can fail: both ways into TensorFlow are shut."""
    with pytest.raises(TensorFlowLoaded):
        sharecore.import_tensorflow()
    with pytest.raises(ImportError):
        from sharecore.nn.training import train  # noqa: F401
    with pytest.raises(ImportError):
        import tensorflow  # noqa: F401


# ----------------------------------------------------------------------------- what a real process prints
def test_a_good_run_writes_the_csvs_and_a_summary_and_nothing_on_stderr(tmp_path):
    out = run("train", "seed-mixed", "--steps", "6", "--seed", "2", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # not even TensorFlow's start-up lines, which C++ writes to fd 2 directly
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


def test_bad_input_is_refused_in_one_line_by_a_process_that_never_loads_tensorflow(tmp_path):
    code = (
        "import sys, sharecore.cli\n"
        "status = sharecore.cli.main(sys.argv[1:])\n"
        "print('tensorflow' in sys.modules, flush=True)\n"
        "sys.exit(status)\n"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_ENABLE_ONEDNN_OPTS": "1"}
    args = ["train", "seed-dense", "--steps", "5001", "--out", str(tmp_path)]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)
    assert_errors_only(out.returncode, out.stderr)
    assert "exceeds the limit of 5,000 steps" in out.stderr
    assert out.stdout == "False\n"


# ----------------------------------------------------------------------------- in this process
def test_presets_lists_every_preset_with_its_counts(capsys, without_tensorflow):
    status, stdout, stderr = main(capsys, "presets")
    assert status == 0 and stderr == ""
    for name in sharecore.presets():
        report = sharecore.param_report(sharecore.preset(name))
        line = next(row for row in stdout.splitlines() if row.startswith(name + " "))
        assert line.split()[1:3] == [str(report.tied_total), str(report.untied_total)]


def test_params_counts_a_preset_without_tensorflow(capsys, without_tensorflow):
    status, stdout, stderr = main(capsys, "params", "seed-conv", "--json")
    assert status == 0 and stderr == ""
    data = json.loads(stdout)  # the README's published counts
    assert (data["tied"], data["untied"]) == (2736, 5040)
    assert sum(r["owned_params"] for r in data["table"] if r["variant"] == "tied") == 2736
    status, stdout, stderr = main(capsys, "params", "seed-conv")
    assert status == 0 and "tied: 2,736 parameters   untied: 5,040" in stdout


def test_params_json_of_a_spec_file_matches_the_built_models(tmp_path, capsys):
    spec = sharecore.preset("siamese-digits")
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json())
    status, stdout, stderr = main(capsys, "params", str(path), "--json")
    assert status == 0, stderr
    data = json.loads(stdout)
    assert data["tied"] == sharecore.build(spec, True).count_params() == 4680
    assert data["untied"] == sharecore.build(spec, False).count_params() == 9360


def test_train_with_a_tied_teacher_records_it_and_matches_the_library(tmp_path, capsys):
    status, _, stderr = main(capsys, "train", "seed-dense", "--teacher", "tied", "--steps", "4", "--out", str(tmp_path))
    assert status == 0 and stderr == ""
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["train"]["teacher"] == "tied"
    assert summary["dataset"].startswith("teacher: a random tied network of the same spec, drawn at seed 7919")
    heldout = pd.read_csv(tmp_path / "heldout.csv")
    again = sharecore.train(sharecore.preset("seed-dense"), sharecore.TrainConfig(steps=4, teacher="tied"))
    np.testing.assert_allclose(heldout.loss, again.heldout.loss, rtol=1e-5)
    untied = sharecore.train(sharecore.preset("seed-dense"), sharecore.TrainConfig(steps=4))
    assert not np.allclose(untied.heldout.loss, again.heldout.loss)  # the choice reached the data


def test_an_error_found_once_tensorflow_is_loaded_is_one_line_before_training(tmp_path, capsys, monkeypatch):
    """Whether there is a GPU only TensorFlow can tell; on a machine where it sees none, device 'gpu' is refused."""
    from sharecore.nn.tfimport import tf

    list_devices = tf.config.list_logical_devices
    monkeypatch.setattr(
        tf.config, "list_logical_devices", lambda kind=None: [] if kind == "GPU" else list_devices(kind)
    )
    status, stdout, stderr = main(capsys, "train", "seed-dense", "--device", "gpu", "--out", str(tmp_path))
    assert_errors_only(status, stderr)
    assert "device 'gpu' was requested, but TensorFlow sees no GPU on this machine" in stderr
    assert stdout == ""  # before the 'training ...' line


def _over_cap_spec(tmp_path: Path) -> str:
    data = sharecore.preset("seed-conv").to_dict()
    data["input_shape"] = [2000, 2000, 3]  # 12 million values per sample
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("params", "nope"), "'nope' is neither a preset"),
        (("train", "seed-dense", "--steps", "0"), "train.steps: must be >= 1. Received: 0"),
        (("train", "seed-dense", "--steps", "5001"), "the training run exceeds the limit of 5,000 steps"),
        (("train", "seed-dense", "--batch-size", "513"), "exceeds the limit of 512 samples per batch"),
        (("train", "seed-dense", "--lr", "abc"), "argument --lr: invalid float value: 'abc'"),
        (("train", "seed-dense", "--optimizer", "rmsprop"), "train.optimizer: must be one of 'sgd', 'adam'"),
        (("train", "seed-dense", "--teacher", "shared"), "train.teacher: must be one of 'untied', 'tied'"),
        (("train", "seed-dense", "--device", "tpu"), "train.device: must be one of 'auto', 'cpu', 'gpu'"),
        (
            ("train", "seed-conv", "--dataset", "digits", "--steps", "1"),
            "dataset 'digits' needs a model input of 64 values",
        ),
        (("train", "seed-dense", "--dataset", "digits"), "but spec 'seed-dense' has input shape (10,) (10 values)"),
        (("train", "tied-lm", "--dataset", "digits"), "dataset 'digits' holds images, but spec 'tied-lm' reads token"),
        (("train", "seed-dense", "--dataset", "tokens"), "dataset 'tokens' is sequences of token ids"),
        (("train", "HUGE", "--steps", "2"), "exceeds the limit of 65,536 values per input sample"),
        (
            ("train", "seed-dense", "--distribute", "mirrored", "--replicas", "3"),
            "train.batch_size: must divide evenly by the 3 replicas",
        ),
        (
            ("train", "seed-dense", "--distribute", "multi-worker"),
            "reads the cluster from the TF_CONFIG environment variable, which is not set",
        ),
        (("frob",), "invalid choice: 'frob'"),
        (("params", "two\nlines.json"), "cannot read spec file 'two\\nlines.json'"),
    ],
)
def test_bad_input_is_one_line_on_stderr_with_exit_2_before_tensorflow_loads(
    args, message, tmp_path, capsys, monkeypatch, without_tensorflow
):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    args = tuple(_over_cap_spec(tmp_path) if a == "HUGE" else a for a in args)
    out_dir = tmp_path / "out"
    status, stdout, stderr = main(capsys, *args, *(("--out", str(out_dir)) if args[0] == "train" else ()))
    assert_errors_only(status, stderr)
    assert message in stderr
    assert stdout == ""  # not even the 'training ...' line
    assert not out_dir.exists()  # refused before the output folder was made


def test_an_invalid_spec_file_names_the_use(tmp_path, capsys, without_tensorflow):
    data = sharecore.preset("seed-dense").to_dict()
    data["tensors"][0]["shape"] = [10, 5]
    bad, broken = tmp_path / "bad.json", tmp_path / "broken.json"
    bad.write_text(json.dumps(data))
    broken.write_text("{not json")
    status, _, stderr = main(capsys, "params", str(bad))
    assert_errors_only(status, stderr)
    assert "use 'dense_2' needs a kernel with 5 input rows" in stderr
    status, _, stderr = main(capsys, "params", str(broken))
    assert_errors_only(status, stderr)
    assert "spec JSON could not be parsed" in stderr


# ----------------------------------------------------------------------------- what the CLI must not read
def test_a_spec_path_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path):
    """Real processes: a read of one of these would hang or fill memory, which a test process must not."""
    fifo = tmp_path / "spec.json"
    os.mkfifo(fifo)  # opened for reading, a FIFO without a writer blocks forever
    folder = tmp_path / "folder.json"
    folder.mkdir()
    # /dev/zero never ends: a read of it grew to 3 GB before the fix. The timeout turns a hang into a failure.
    for path, kind in (
        (fifo, "a device, pipe or socket"),
        ("/dev/zero", "a device, pipe or socket"),
        (folder, "a folder"),
    ):
        out = run("params", str(path), timeout=60)
        assert_errors_only(out.returncode, out.stderr)
        assert f"is {kind}, not a file" in out.stderr


def test_a_spec_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, capsys, without_tensorflow):
    big = tmp_path / "big.json"
    with open(big, "wb") as file:
        file.truncate(50_000_000)  # sparse: 50 MB of zero bytes, which would not even parse
    status, _, stderr = main(capsys, "params", str(big))
    assert_errors_only(status, stderr)
    assert "larger than 200,000 bytes" in stderr and "SHARECORE_MAX_SPEC_BYTES" in stderr


# ----------------------------------------------------------------------------- writing the results
def test_an_output_folder_that_cannot_be_written_fails_before_training(tmp_path, capsys, without_tensorflow):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    # As root, permissions do not stop a write; a folder inside a regular file cannot exist for anyone.
    status, stdout, stderr = main(capsys, "train", "seed-dense", "--steps", "1", "--out", str(blocker / "sub"))
    assert_errors_only(status, stderr)
    assert f"cannot write to the output folder '{blocker / 'sub'}' (Not a directory)" in stderr
    assert "--out" in stderr
    assert stdout == ""  # refused before training: not even the 'training ...' line


def test_a_write_error_after_training_writes_the_other_files_and_names_the_missing_one(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "divergence.csv").mkdir(parents=True)  # the probe passes; this one file cannot be written
    status, _, stderr = main(capsys, "train", "seed-mixed", "--steps", "3", "--out", str(run_dir))
    assert_errors_only(status, stderr, lines=2)
    first, second = stderr.splitlines()
    assert f"could not write '{run_dir / 'divergence.csv'}': Is a directory." in first
    assert "wrote history.csv, gradients.csv, heldout.csv, summary.json" in second
    assert "not written: divergence.csv" in second
    history = pd.read_csv(run_dir / "history.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(history) == 6 and summary["steps_done"] == 3
    assert len(pd.read_csv(run_dir / "gradients.csv")) == 3 * 2 * 2  # steps x variants x uses
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        ["divergence.csv", "gradients.csv", "heldout.csv", "history.csv", "summary.json"]
    )  # no half-written temporary file is left behind


def test_when_no_file_can_be_written_the_cli_says_the_results_are_lost(tmp_path, capsys):
    run_dir = tmp_path / "run"
    for name in ("history.csv", "gradients.csv", "divergence.csv", "heldout.csv", "summary.json"):
        (run_dir / name).mkdir(parents=True)
    status, _, stderr = main(capsys, "train", "seed-dense", "--steps", "1", "--out", str(run_dir))
    assert_errors_only(status, stderr, lines=6)
    assert "nothing was written" in stderr.splitlines()[-1] and "--out" in stderr.splitlines()[-1]


def test_ctrl_c_writes_what_was_recorded_and_exits_130(tmp_path):
    run_dir = tmp_path / "run"
    env = {
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
        "SHARECORE_MAX_STEPS": "200000",
        "TF_ENABLE_ONEDNN_OPTS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharecore", "train", "seed-dense", "--steps", "200000", "--record-every", "100"]
        + ["--out", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # The CLI says 'training ...' once TensorFlow is loaded; seconds later it is some hundred steps
        # in (on a very busy machine perhaps still compiling), and nowhere near step 200,000.
        ready, _, _ = select.select([proc.stdout], [], [], 240)
        assert ready, "the CLI never said it was training"
        assert proc.stdout.readline().startswith("training 'seed-dense'")
        time.sleep(5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert all(line.startswith("sharecore: ") for line in stderr.splitlines()), stderr  # no traceback, no TensorFlow
    summary = json.loads((run_dir / "summary.json").read_text())
    done = summary["steps_done"]
    assert done < 200_000
    assert summary["stop_reason"] == f"interrupted by Ctrl-C after step {done}"
    assert f"interrupted by Ctrl-C after step {done}; wrote what was recorded to '{run_dir}'" in stderr
    assert f"for {done} of 200000 steps" in stdout
    history = pd.read_csv(run_dir / "history.csv")
    assert len(history) == 2 * done
    # Recorded: step 0 (before training), step 1, then every 100th step.
    assert pd.read_csv(run_dir / "divergence.csv").step.max() == ((done // 100) * 100 or min(done, 1))
    if done == 0:  # a machine so busy that the signal came before the first step: nothing more to compare
        return
    # What was written is what was trained: the library's own run of `done` steps (recording as the CLI's did: every
    # step of a run of tens of thousands would be over the recorded-rows cap) gives the same losses.
    again = sharecore.train(
        sharecore.preset("seed-dense"),
        sharecore.TrainConfig(steps=done, record_every=100),
        limits=sharecore.Limits(max_steps=200_000),
    )
    np.testing.assert_allclose(history.loss, again.history.loss, rtol=1e-5)


def test_a_second_ctrl_c_quits_at_once():
    # The handler alone, in a process that would otherwise sleep for a minute: no training, no race.
    code = (
        "import time; from sharecore.cli import _CtrlC; "
        "ctrl_c = _CtrlC().__enter__(); print('ready', flush=True); time.sleep(60); print('slept')"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGINT)
        assert b"Ctrl-C again quits" in proc.stderr.readline()
        assert proc.poll() is None  # the first Ctrl-C only asks the run to stop
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and stdout == b""
    assert stderr.startswith(b"sharecore: second Ctrl-C: quitting at once")


def test_a_reader_that_stops_early_gets_no_error_from_the_command():
    # `python -m sharecore presets | head -1`, with the reader gone before the table is printed.
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharecore", "presets"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # before Python has even started: its first write meets a closed pipe
    _, err = proc.communicate(timeout=60)
    assert err == b"", err.decode()
    assert proc.returncode == 141  # 128 + SIGPIPE, as a shell reports it
