"""Shared test setup: every test starts from a clean Keras session and fixed seeds."""

from __future__ import annotations

import os
import random
import shutil

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(autouse=True)
def _clean_keras_session():
    import keras

    keras.backend.clear_session()
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
