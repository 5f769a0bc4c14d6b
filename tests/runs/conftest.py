"""The stores' back ends as one parametrized fixture: each test that asks for `store_where` runs twice,
on a SQLite file and on a PostgreSQL schema of its own (tests/support/postgres.py; skipped without
PostgreSQL, except in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def store_where(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where this test's new, empty store lives: a SQLite file's path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "runs.sqlite3"
    return postgres.cluster().new_url()
