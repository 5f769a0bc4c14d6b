"""The AppTest files share one rule: no training thread outlives its test."""

from __future__ import annotations

import pytest

from tests.support.apptest import trainer_threads


@pytest.fixture(autouse=True)
def no_training_left_behind():
    yield
    for thread in trainer_threads():
        thread.join(60)
    assert not trainer_threads(), "a training thread outlived its test"
