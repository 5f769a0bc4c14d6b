"""Where a store's tables live: the SQLite file (the default) or a PostgreSQL server (``SHARECORE_DATABASE_URL``).

`StoreTables` is the seam: a store (`sharecore.runs.store.RunStore`) subclasses it and writes its
SQL once, SQLite-style (``?`` placeholders, portable to PostgreSQL), against the connections that
`_read` and `_write` give; which database answers is chosen by what the store was opened with, a
path or a ``postgresql://`` URL. `reporting_store_errors` turns either driver's errors into the
same `StoreUnavailable` messages.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from sharecore.runs.storefile import BUSY_TIMEOUT_SECONDS, StoreFile
from sharecore.runs.storeserver import StoreServer, is_database_url


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What a store's SQL runs on: ``sqlite3.Connection`` or a `ServerConnection`, rows by name and position."""

    def execute(self, sql: str, parameters: Any = ...) -> Cursor: ...


class StoreTables:
    """A store's tables in a SQLite file (`StoreFile`) or a PostgreSQL database (`StoreServer`).

    Attributes:
        database: the `StoreFile` or `StoreServer` that holds the tables.
        where: the file or server, as messages name it (never a password).
    """

    def __init__(self, where: str | Path) -> None:
        """Opens the tables at `where`: a ``postgresql://`` URL, else the path of a SQLite file.

        Raises:
            StoreUnavailable: (a ValueError) when they cannot be opened, saying how to fix it.
        """
        self.database: StoreFile | StoreServer = StoreServer(str(where)) if is_database_url(where) else StoreFile(where)
        self.where = self.database.where
        self._lock = threading.Lock()

    @property
    def path(self) -> Path | None:
        """The SQLite file; None on a PostgreSQL server."""
        return self.database.path if isinstance(self.database, StoreFile) else None

    @property
    def problem(self) -> str | None:
        """A message for the user when the store was set aside or made anew, or can only be read; else None."""
        return self.database.problem

    @property
    def read_only(self) -> str | None:
        """Why this server may not write the store, when it may only read it; else None."""
        return self.database.read_only

    def _read(self) -> AbstractContextManager[Connection]:
        """A connection for reads; each statement sees what was committed before it."""
        return self.database._read()

    def _write(self, timeout: float = BUSY_TIMEOUT_SECONDS) -> AbstractContextManager[Connection]:
        """A connection in a write transaction (one writer at a time, across processes), committed on
        success and rolled back on any error; waiting longer than `timeout` for the writer lock fails."""
        return self.database._write(timeout)


def reporting_store_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """A public method of a `StoreTables` (a `RunStore`) whose database errors become a `StoreUnavailable`
    that says what to do.

    A file removed or damaged (tables removed, on a server) while the server runs is treated as at
    start-up (a damaged file is set aside, a new store started and `problem` says so), and the call is
    tried once more.
    """

    @functools.wraps(method)
    def checked(self: StoreTables, *args: Any, **kwargs: Any) -> Any:
        database = self.database
        try:
            return method(self, *args, **kwargs)
        except database.driver_errors as err:
            if not database.recover(err):
                raise database.unavailable(err) from None
        try:
            return method(self, *args, **kwargs)
        except database.driver_errors as err:
            raise database.unavailable(err) from None

    return checked
