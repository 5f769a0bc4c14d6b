"""TensorBoard logs of a run (`sharecore.nn.tensorboard`), read back with TensorFlow's own event reader."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pytest

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.core.results import VARIANTS
from sharecore.nn import tensorboard, training
from tests.support.events import (
    assert_histogram_of,
    assert_run_logged,
    assert_scalars_equal,
    expected_scalars,
    read_events,
)
from tests.support.hostile import PATH_LABELS
from tests.support.store import hand_made


@pytest.fixture(scope="module")
def run(tiny_run):
    # Classes (so accuracy is logged), an own kernel beside the shared one, and a gap in the records (record_every=2).
    return tiny_run("tied-lm", steps=4, dataset="tokens", batch_size=8, record_every=2)


def test_each_variant_is_a_run_folder_of_its_own_with_one_event_file(run, tmp_path):
    paths = tensorboard.write_run(run, tmp_path)

    assert [p.parent for p in paths] == [tmp_path / v for v in VARIANTS]
    assert all(p.name.startswith("events.out.tfevents.") and p.name.endswith(".v2") for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tied", "untied"]
    assert [len(list((tmp_path / v).iterdir())) for v in VARIANTS] == [1, 1]


def test_every_record_reads_back_under_its_documented_tag_and_the_weights_as_histograms(run, tmp_path):
    tensorboard.write_run(run, tmp_path)

    assert_run_logged(tmp_path, run)
    tied, untied = (read_events(tmp_path / v) for v in VARIANTS)
    assert {"loss", "accuracy", "heldout/loss", "heldout/accuracy"} <= set(tied.values)
    assert sorted(tied.values["gradients/E/logits/grad_norm"]) == [1, 2, 4], "the steps recorded (every 2nd, and 1)"
    assert set(tied.values["loss"]) == {1, 2, 3, 4}
    assert {t for t in untied.plugins if t.startswith("weights/")} == {
        "weights/embed",
        "weights/block",
        "weights/logits",
    }
    assert {t for t in tied.plugins if t.startswith("weights/")} == {"weights/E", "weights/block"}
    assert {tied.plugins[t] for t in tied.values if not t.startswith("weights/")} == {"scalars"}


def test_the_untied_divergence_grows_from_zero_and_the_tied_one_stays_zero(run, tmp_path):
    tensorboard.write_run(run, tmp_path)

    tag = "divergence/E/embed-logits/relative_distance"
    tied, untied = (read_events(tmp_path / v).values[tag] for v in VARIANTS)
    assert float(untied[0]) == 0 and float(untied[4]) > 0
    assert {float(v) for v in tied.values()} == {0.0}


def test_train_with_a_logdir_writes_the_logs_when_the_run_ends(tmp_path):
    result = sharecore.train(sharecore.preset("tied-lm"), TrainConfig(steps=2, batch_size=8), logdir=tmp_path / "run")

    assert_run_logged(tmp_path / "run", result)


def test_train_refuses_a_logdir_it_cannot_write_before_training(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setattr(training, "make_dataset", _never)

    with pytest.raises(ValueError, match=r"cannot write TensorBoard logs to .*a_file.* \(it is a file\)"):
        sharecore.train(sharecore.preset("tied-lm"), TrainConfig(steps=2), logdir=tmp_path / "a_file")


def _never(*args, **kwargs):
    raise AssertionError("training started")


def test_a_kept_run_without_weights_writes_its_scalars_alone(run, tmp_path):
    bare = dataclasses.replace(run, weights={})

    tensorboard.write_run(bare, tmp_path)

    assert_run_logged(tmp_path, bare)
    assert not any(t.startswith("weights/") for v in VARIANTS for t in read_events(tmp_path / v).values)


def test_a_result_with_empty_frames_infinities_and_odd_weights_is_written_as_it_is(tmp_path):
    odd = hand_made()  # no divergence columns, inf and NaN, int and empty weights, a weight named 'a/b c'

    tensorboard.write_run(odd, tmp_path)

    for variant in VARIANTS:
        events = read_events(tmp_path / variant)
        assert_scalars_equal(events.scalars(), expected_scalars(odd, variant))
    assert read_events(tmp_path / "untied").values["weights/a/b c"][0][:, 2].sum() == 6
    assert read_events(tmp_path / "untied").values["weights/W"][odd.steps_done].shape == (0, 3)


def test_a_callback_writes_its_gradients_as_it_goes_into_one_file_per_variant(run, tmp_path):
    first, later = run.gradients[run.gradients.step <= 2], run.gradients[run.gradients.step > 2]

    with tensorboard.RunLog(tmp_path) as log:
        log.gradients(first)
        log.flush()
        assert_scalars_equal(read_events(tmp_path / "tied").scalars(), _gradient_scalars(run, "tied", 2))
        log.gradients(later)

    for variant in VARIANTS:
        events = read_events(tmp_path / variant)
        assert len(events.files) == 1
        assert_scalars_equal(events.scalars(), _gradient_scalars(run, variant))
    written = tensorboard.write_gradients(run.gradients, tmp_path / "again")
    assert [p.parent.name for p in written] == list(VARIANTS)


def _gradient_scalars(run, variant: str, last_step: int = 10**9) -> dict:
    return {
        (tag, step): value
        for (tag, step), value in expected_scalars(run, variant).items()
        if tag.startswith("gradients/") and step <= last_step
    }


@pytest.mark.parametrize("variant", ["../up", "/abs", "", "..", "a/b", 3])
def test_a_variant_that_would_be_a_path_is_refused(variant, tmp_path):
    frame = pd.DataFrame({"step": [1], "variant": [variant], "tag": ["loss"], "value": [1.0]})

    with pytest.raises(ValueError, match="variant names a TensorBoard run folder"):
        tensorboard.RunLog(tmp_path / "log").scalars(frame)
    assert not (tmp_path / "log").exists() and not (tmp_path / "up").exists()


def test_a_histogram_holds_every_finite_value_once():
    values = np.array([0.0, 1.0, 1.0, 2.0, np.nan, np.inf, -3.5], dtype=np.float32)

    buckets = tensorboard.histogram_buckets(values)

    assert buckets.shape == (tensorboard.HISTOGRAM_BUCKETS, 3)
    assert_histogram_of(buckets, values[np.isfinite(values)].astype(np.float64))
    assert tensorboard.histogram_buckets(np.array([2.5, 2.5]))[:, 2].sum() == 2
    assert tensorboard.histogram_buckets(np.array([np.nan])).shape == (0, 3)


def test_run_folders_are_names_never_paths_and_unique_on_a_case_insensitive_disk():
    folders = tensorboard.run_folders(PATH_LABELS)

    assert len({f.lower() for f in folders}) == len(PATH_LABELS)
    for folder in folders:
        assert _is_plain_name(folder), folder
    assert folders[PATH_LABELS.index("lr 0.1")] == "lr_0.1"
    assert folders[PATH_LABELS.index("LR 0.1")] == "LR_0.1_2"


def _is_plain_name(name: str) -> bool:
    """One path component that every system unpacks as itself: ASCII, no separators, dots or dashes first."""
    return (
        bool(name)
        and name.isascii()
        and all(c.isalnum() or c in "._-" for c in name)
        and not name.startswith((".", "-"))
        and name.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL"}
        and len(name) <= 80
    )


def test_the_zip_of_runs_with_hostile_labels_holds_one_safe_folder_per_run_whose_events_read_back(run, tmp_path):
    data = tensorboard.logs_zip((label, run) for label in PATH_LABELS)

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert archive.testzip() is None
        folders = tensorboard.run_folders(PATH_LABELS)
        for name in names:
            parts = PurePosixPath(name).parts
            assert len(parts) == 3 and "\\" not in name and not name.startswith("/"), name
            assert _is_plain_name(parts[0]) and parts[1] in VARIANTS and parts[2].startswith("events.out.tfevents.")
        assert sorted({PurePosixPath(n).parts[0] for n in names}) == sorted(folders)
        assert len(names) == 2 * len(PATH_LABELS)
        archive.extractall(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(folders), "nothing outside the zip's root"
    for folder in (folders[0], folders[-1]):
        assert_run_logged(tmp_path / folder, run)


def test_logs_of_no_runs_are_an_empty_zip():
    assert zipfile.ZipFile(io.BytesIO(tensorboard.logs_zip([]))).namelist() == []


def test_writing_leaves_no_temporary_folder_behind(run, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    tensorboard.logs_zip([("a", run)])
    assert list(Path(tmp_path).iterdir()) == []


@pytest.fixture(scope="module")
def multiplexer():
    """TensorBoard's own event loader (requirements-dev.txt installs the viewer for the tests)."""
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    return plugin_event_multiplexer


def test_tensorboards_own_reader_files_every_tag_under_its_dashboard(multiplexer, run, tmp_path):
    """A run per variant, the scalars under TensorBoard's scalar dashboard and the weights under its histograms."""
    tensorboard.write_run(run, tmp_path / "lm")

    loaded = multiplexer.EventMultiplexer()
    loaded.AddRunsFromDirectory(str(tmp_path))
    loaded.Reload()

    assert sorted(loaded.Runs()) == ["lm/tied", "lm/untied"]
    for variant in VARIANTS:
        events = read_events(tmp_path / "lm" / variant)
        for plugin in ("scalars", "histograms"):
            tags = set(loaded.PluginRunToTagToContent(plugin)[f"lm/{variant}"])
            assert tags == {tag for tag, p in events.plugins.items() if p == plugin}
