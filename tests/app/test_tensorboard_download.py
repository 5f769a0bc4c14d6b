"""The Compare page's TensorBoard download: made on click, a folder per run whose name is never a path,
and events that read back as the runs' records."""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from sharecore.core.results import VARIANTS
from sharecore.nn.tensorboard import run_folders
from sharecore.runs.compare import unique_labels
from sharecore.runs.entries import clean_label
from tests.support.apptest import go, open_app
from tests.support.events import assert_run_logged
from tests.support.hostile import PATH_LABELS
from ui import kept as ui_kept
from ui.keys import SHOWN

ZIP_NAME = "comparison_tensorboard.zip"


def _storable(label: str) -> bool:
    try:
        return clean_label(label) == label
    except ValueError:
        return False


# The path labels a person can keep a run under (the store refuses empty and over-long ones), and markup.
LABELS = [label for label in PATH_LABELS if _storable(label)] + ["<b>x</b> ../../%{x} :red[x]"]


@pytest.fixture
def deferred(monkeypatch) -> dict[str, object]:
    """File name -> the callable of every download button made on click (what a click would run)."""
    made: dict[str, object] = {}
    original = MediaFileManager.add_deferred

    def recording(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        made[file_name] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", recording)
    return made


def test_compare_offers_the_runs_tensorboard_logs_as_a_zip_with_a_safe_folder_per_label(tiny_run, deferred, tmp_path):
    result = tiny_run("tied-lm", steps=4, dataset="tokens", batch_size=8, record_every=2)
    at = open_app()
    store, workspace = ui_kept.run_store(), at.session_state["workspace"]
    ids = [store.save(workspace, result, label).run_id for label in LABELS]
    at.session_state[SHOWN] = ids

    go(at, "compare")

    assert not at.exception, at.exception
    assert ZIP_NAME in deferred, sorted(deferred)
    data = deferred[ZIP_NAME]()  # what a click runs, on a thread of the server
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path)
    folders = run_folders(unique_labels(LABELS))
    assert sorted({PurePosixPath(n).parts[0] for n in names}) == sorted(folders)
    for name in names:
        folder, variant, file = PurePosixPath(name).parts
        assert folder.isascii() and not folder.startswith((".", "-")) and ".." not in folder, name
        assert variant in VARIANTS and file.startswith("events.out.tfevents.")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(folders), "nothing outside the zip's root"
    for folder in folders:
        assert_run_logged(tmp_path / folder, result)
