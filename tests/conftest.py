"""Shared test setup: every test starts from a clean Keras session and fixed seeds."""

from __future__ import annotations

import os
import random
import shutil
import tempfile

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Kept runs go to a store of the test session's own (servers started by browser tests inherit it),
# never into the working copy's .sharecore-data.
os.environ.setdefault("SHARECORE_DATA_DIR", tempfile.mkdtemp(prefix="sharecore-test-runs-"))

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


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


def require_chromium() -> str:
    """The Chromium path; skips without one on a user's machine, fails in CI."""
    if CHROMIUM:
        return CHROMIUM
    if CI:
        pytest.fail("Chromium is required in CI (CI=true) but was not found; .ci/run installs it with apt.")
    pytest.skip("Chromium not installed (apt-get install chromium); browser tests run in CI.")
