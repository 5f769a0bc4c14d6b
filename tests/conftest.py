"""Shared test setup: every test starts from a clean Keras session and fixed seeds.

The suite is laid out like the code: tests/core, nn, viz, runs, teach, share and cli test the
library's layers and its command line; tests/app drives the pages through AppTest; tests/browser
drives a real server in Chromium (its fixtures: tests/browser/conftest.py); tests/project checks the
repository as a whole. Helpers that several files use are in tests/support/ (a test module never
imports another). `make test` runs everything but the measurements marked `long`, which `make
test-long` runs; see the README's Development section.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.support import ROOT
from tests.support.cli import without_tensorflow  # noqa: F401  (a fixture: fails a test that loads TensorFlow)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Kept runs go to a store of the test session's own (servers started by browser tests inherit it),
# never into the working copy's .sharecore-data.
os.environ.setdefault("SHARECORE_DATA_DIR", tempfile.mkdtemp(prefix="sharecore-test-runs-"))
# Nor into a database server the shell names: a test that wants PostgreSQL starts its own (tests/support/postgres.py).
os.environ.pop("SHARECORE_DATABASE_URL", None)
# Under pytest-xdist (`make test` runs two workers) each worker inherits the store set above by
# the controller; it gets a folder of its own in it, so no test sees another worker's kept runs.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["SHARECORE_DATA_DIR"] = os.path.join(os.environ["SHARECORE_DATA_DIR"], os.environ["PYTEST_XDIST_WORKER"])


BROWSER_TESTS = "tests/browser/"  # the files whose every test drives Chromium


def _file_of(nodeid: str) -> str:
    """The test file part of a test id ("tests/app/test_pages.py::test_x[1]" -> "tests/app/test_pages.py")."""
    return nodeid.split("::", 1)[0]


def _is_browser_file(file: str) -> bool:
    return file.replace(os.sep, "/").startswith(BROWSER_TESTS)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook; plain pytest never calls it
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadfile` (`make test`), with every browser file in one unit.

    Each file is one unit, run whole by one worker, so a module-scoped fixture (a browser file's
    Streamlit server, test_distribute's worker process) is made once. The browser files are one unit
    together: they are the slowest part of the suite, and they run one after another as in a serial
    run (two Chromiums and servers at once would only race each other for two cores) while the other
    worker takes the remaining files one by one. (`--dist loadgroup` cannot do this with pytest 9.2:
    pytest-xdist 3.8.0 writes the group into `item._nodeid`, which pytest no longer reads.)
    """
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class BrowserFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = _file_of(nodeid)
            return "browser files" if _is_browser_file(file) else file

    return BrowserFilesTogether(config, log)


# The files that take longest besides the browser files (seconds of one file on a busy 2-core machine,
# `make test`'s --durations, December 2026). They start right after the browser files, so that none of
# them starts last and keeps one worker busy while the other has nothing left: the rest follow in
# collection order. A file missing here only starts later; nothing else depends on this list.
HEAVY_FIRST = (
    "tests/nn/test_distribute.py",  # 250 s: a fresh process on two logical CPUs, and two CLI runs
    "tests/nn/test_properties.py",  # 190 s: generated specs built, saved and trained
    "tests/nn/test_continue.py",  # 150 s
    "tests/app/test_hostile_workshop.py",  # 130 s
    "tests/app/test_lab.py",  # 80 s
    "tests/nn/test_embedding.py",  # 75 s
    "tests/app/test_user_text.py",  # 65 s
)


def _order(item: pytest.Item) -> tuple[int, int]:
    file = _file_of(item.nodeid).replace(os.sep, "/")
    if _is_browser_file(file):
        return (0, 0)
    if file in HEAVY_FIRST:
        return (1, HEAVY_FIRST.index(file))
    return (2, 0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a pytest-xdist worker, the browser files first: the longest unit starts at once; then
    HEAVY_FIRST, then the rest (with `--no-loadscope-reorder` the workers take the units in this order)."""
    if hasattr(config, "workerinput"):
        items.sort(key=_order)  # stable: collection order within each group


@pytest.fixture(autouse=True)
def _clean_keras_session():
    import keras

    # free_memory=False: the default runs a full gc.collect(), which walks TensorFlow's ~400k objects
    # in 0.5-0.6 s, before every one of the suite's ~1,000 tests (minutes of `make test`). Python's
    # own collector still frees the tests' models; tests that measure memory collect for themselves.
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    random.seed(1234)
    np.random.seed(1234)
    yield


# ----------------------------------------------------------------------------- the checkout stays as it was
# `make test` must leave a clone as it found it: screenshots go to SHARECORE_SCREENSHOTS only when it is
# set, never over the README's in docs/. The folders tests and tools could write into are checked;
# the sources are not, since a developer may edit them while the tests run.
WATCHED = ("docs", "bench")


def _tracked_files() -> dict[str, str]:
    """Tracked files under WATCHED, as path -> sha1 of their content (a file that is gone: '')."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", *WATCHED], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout.decode()
    except (OSError, subprocess.SubprocessError):
        return {}  # not a git checkout (an unpacked archive): nothing to compare
    files = {}
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        files[name] = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else ""
    return files


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput") and not os.environ.get("SHARECORE_SCREENSHOTS"):
        session.config.stash[_BEFORE] = _tracked_files()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, None)
    if before is None:
        return
    after = _tracked_files()
    changed = sorted(name for name in before if after.get(name) != before[name])
    if changed:
        session.config.get_terminal_writer().line(
            f"The tests changed tracked files, so a fresh clone would be left dirty: {', '.join(changed)}. "
            "A test must write under tmp_path (or SHARECORE_SCREENSHOTS when it is set).",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BEFORE = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def tiny_run():
    """`tiny_run(preset, **config) -> TrainResult`: a tiny real run, trained once per test process and
    shared by every file that trains the same one (tests/support/runs.py). Do not change the result."""
    from tests.support.runs import tiny_run

    return tiny_run


@pytest.fixture
def open_tmp_path():
    """An empty folder that any user may enter (pytest's tmp_path lies in a folder only its owner may enter)."""
    folder = Path(tempfile.mkdtemp(prefix="sharecore-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
