"""The server's settings: every SHARECORE_* variable is read by one parser, with one message style."""

from __future__ import annotations

import dataclasses

import pytest

from sharecore.core import settings
from sharecore.core.limits import Limits
from sharecore.runs.store import MB, RunStore


def test_every_cap_of_limits_is_a_setting_with_the_caps_default():
    caps = {f.name: f.default for f in dataclasses.fields(Limits)}
    for name, default in caps.items():
        assert settings.read(f"SHARECORE_{name.upper()}", {}) == default


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SHARECORE_MAX_STEPS", "2_000", 2000),
        ("SHARECORE_KEPT_RUNS", " 12 ", 12),
        ("SHARECORE_WARM_UP", "0", False),
        ("SHARECORE_TF32", "1", True),
        ("SHARECORE_DATA_DIR", "/srv/runs", "/srv/runs"),
        ("SHARECORE_DATA_DIR", "", ".sharecore-data"),  # set but empty, as `SHARECORE_DATA_DIR= make run` does
    ],
)
def test_a_usable_value_is_read_as_its_kind(variable, value, expected):
    assert settings.read(variable, {variable: value}) == expected


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SHARECORE_MAX_CONCURRENT_RUNS", "two", "must be a whole number >= 1, e.g. 2. Received: 'two'"),
        ("SHARECORE_KEPT_RUNS", "0", "must be a whole number >= 1, e.g. 30. Received: '0'"),
        ("SHARECORE_STORE_MB", "1e3", "must be a whole number >= 1, e.g. 300. Received: '1e3'"),
        ("SHARECORE_WARM_UP", "yes", "must be 0 or 1. Received: 'yes'"),
        ("SHARECORE_MAX_PARAMS", "-5", "must be a whole number >= 1, e.g. 1000000. Received: '-5'"),
    ],
)
def test_a_value_that_cannot_be_used_names_the_variable_what_it_must_be_and_what_was_received(variable, value, message):
    with pytest.raises(ValueError, match=f"^environment variable {variable} {message}$".replace("(", r"\(")):
        settings.read(variable, {variable: value})
    assert settings.problems({variable: value, "SHARECORE_TF32": "1"}) == {
        variable: f"environment variable {variable} {message}"
    }
    assert settings.value_or_default(variable, {variable: value}) == settings.SETTINGS[variable].default


def test_the_caps_the_store_and_the_runner_read_their_variables_through_the_settings(tmp_path):
    env = {"SHARECORE_MAX_STEPS": "77", "SHARECORE_DATA_DIR": str(tmp_path), "SHARECORE_KEPT_RUNS": "4"}
    assert Limits.from_env(env).max_steps == 77
    store = RunStore.from_env({**env, "SHARECORE_STORE_MB": "9"})
    assert (store.path.parent, store.max_runs_per_workspace, store.max_bytes) == (tmp_path, 4, 9 * MB)
    with pytest.raises(ValueError, match="environment variable SHARECORE_STORE_MB must be a whole number >= 1"):
        RunStore.from_env({**env, "SHARECORE_STORE_MB": "many"})
