"""`python -m sharecore train ... --logdir DIR`: the run's TensorBoard logs beside its CSVs, read back with
TensorFlow's own event reader, and the folders it refuses before TensorFlow loads."""

from __future__ import annotations

import types
from pathlib import Path

import pandas as pd
import pytest

from sharecore.core.results import VARIANTS
from tests.support.cli import main
from tests.support.events import assert_scalars_equal, expected_scalars, read_events

TRAIN = ("train", "tied-lm", "--dataset", "tokens", "--steps", "3", "--batch-size", "8")


def assert_refused(status: int, stdout: str, stderr: str, *phrases: str) -> None:
    """Exit 2, one line on stderr that says each phrase, and nothing trained."""
    assert status == 2 and "Traceback" not in stderr, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("sharecore: error: "), stderr
    assert all(phrase in stderr for phrase in phrases), stderr
    assert stdout == ""  # refused before training: not even the 'training ...' line


def test_logdir_writes_a_run_folder_per_variant_whose_events_equal_the_csvs(tmp_path, capsys):
    out, logdir = tmp_path / "run", tmp_path / "logs" / "lr0.01"

    status, stdout, stderr = main(capsys, *TRAIN, "--out", str(out), "--logdir", str(logdir))

    assert status == 0 and stderr == "", stderr
    assert f"and TensorBoard logs to {logdir}/" in stdout
    assert sorted(p.name for p in logdir.iterdir()) == ["tied", "untied"]
    records = types.SimpleNamespace(
        **{name: pd.read_csv(out / f"{name}.csv") for name in ("history", "heldout", "gradients", "divergence")}
    )
    for variant in VARIANTS:
        events = read_events(logdir / variant)
        assert_scalars_equal(events.scalars(), expected_scalars(records, variant))
        histograms = sorted(tag for tag, plugin in events.plugins.items() if plugin == "histograms")
        assert histograms == (
            ["weights/E", "weights/block"]
            if variant == "tied"
            else ["weights/block", "weights/embed", "weights/logits"]
        )
        assert all(sorted(events.values[tag]) == [0, 3] for tag in histograms)


def test_without_logdir_no_logs_are_written(tmp_path, capsys):
    status, stdout, _ = main(capsys, *TRAIN[:4], "--steps", "1", "--out", str(tmp_path / "run"))

    assert status == 0 and "TensorBoard" not in stdout
    assert not list(tmp_path.rglob("*tfevents*"))


@pytest.mark.parametrize(
    ("where", "reason"),
    [("a_file", "(it is a file)"), ("a_file/sub", "(Not a directory)"), ("/dev/null", "(it is not a folder)")],
)
def test_a_logdir_that_is_not_a_folder_is_refused_in_one_line_before_tensorflow_loads(
    where, reason, tmp_path, capsys, without_tensorflow
):
    (tmp_path / "a_file").write_text("not a folder")
    logdir = tmp_path / where  # an absolute `where` stays itself

    status, stdout, stderr = main(capsys, *TRAIN, "--out", str(tmp_path / "run"), "--logdir", str(logdir))

    assert_refused(status, stdout, stderr, f"the TensorBoard log folder '{logdir}' {reason}", "--logdir")
    assert not (tmp_path / "run" / "history.csv").exists()


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_logdir_is_refused_not_taken_as_the_current_folder(empty, tmp_path, capsys, without_tensorflow):
    status, stdout, stderr = main(capsys, *TRAIN, "--out", str(tmp_path / "run"), "--logdir", empty)
    assert_refused(status, stdout, stderr, "--logdir is empty")
    assert not (tmp_path / "run" / "history.csv").exists() and not Path("tied").exists()


def test_logs_that_cannot_be_written_after_training_leave_the_csvs_and_say_so(tmp_path, capsys):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (logdir / "tied").write_text("in the way")  # the folder check passes; the variant's folder cannot be made

    status, _, stderr = main(capsys, *TRAIN, "--out", str(tmp_path / "run"), "--logdir", str(logdir))

    assert status == 2 and "Traceback" not in stderr
    first, second = stderr.splitlines()
    assert f"could not write the TensorBoard logs to '{logdir}'" in first
    assert "wrote history.csv, gradients.csv, divergence.csv, heldout.csv, summary.json" in second
    assert "not written: TensorBoard logs" in second
    assert len(pd.read_csv(tmp_path / "run" / "history.csv")) == 6
