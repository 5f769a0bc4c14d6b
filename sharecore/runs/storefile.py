"""The run store's SQLite file: opening it, checking its schema, permissions and damage, and what to say when it fails.

A file that is damaged (not this schema, or failing SQLite's quick check) is set aside and a new
store started; a file removed while the server runs is started anew; a file this server may read
but not write is opened read-only; one it may not read is left as it is. Every failure is a
`StoreUnavailable` (a ValueError) that says whose file it is and how to fix it.
`sharecore.runs.store.RunStore` keeps its runs in a `StoreFile` (or, with ``SHARECORE_DATABASE_URL``, in
the same tables on a PostgreSQL server: `sharecore.runs.storeserver`). Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

DATA_DIR_VARIABLE = "SHARECORE_DATA_DIR"
FILE_NAME = "runs.sqlite3"
SCHEMA_VERSION = 2  # PRAGMA user_version of a store this module wrote (1: before rooms)
BUSY_TIMEOUT_SECONDS = 30.0
# What a page waits for a store another process holds locked while it draws (reads, and the writes a page
# makes as it loads): a page then draws without its kept runs and says why, instead of freezing for 30 s.
PAGE_TIMEOUT_SECONDS = 2.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,            -- the workspace that saved it
    label TEXT NOT NULL,            -- the label it was saved with
    created REAL NOT NULL,          -- unix seconds
    preset TEXT NOT NULL,
    spec_name TEXT NOT NULL,
    steps_done INTEGER NOT NULL,
    dataset TEXT NOT NULL,
    final_loss TEXT NOT NULL,       -- JSON: variant -> last recorded training loss
    can_continue INTEGER NOT NULL,  -- 1 if the state was kept
    bytes INTEGER NOT NULL,         -- what the row's data takes
    device TEXT NOT NULL,
    stop_reason TEXT,
    seconds REAL NOT NULL,
    compile_seconds REAL NOT NULL,
    spec TEXT NOT NULL,             -- JSON
    config TEXT NOT NULL,           -- JSON
    params TEXT NOT NULL,           -- JSON
    history BLOB NOT NULL,          -- Parquet
    gradients BLOB NOT NULL,
    divergence BLOB NOT NULL,
    heldout BLOB NOT NULL,
    weights BLOB,                   -- npz with a JSON index of phase/variant/name; NULL when dropped
    state BLOB                      -- npz with the state's arrays, steps_done and rng; NULL when None or dropped
);
CREATE TABLE IF NOT EXISTS entries (
    workspace TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    pinned INTEGER NOT NULL DEFAULT 0,
    added REAL NOT NULL,            -- unix seconds; the newest comes first in a list
    PRIMARY KEY (workspace, run_id)
);
CREATE INDEX IF NOT EXISTS entries_by_run ON entries(run_id);
CREATE TABLE IF NOT EXISTS workspaces (
    key TEXT PRIMARY KEY,
    last_used REAL NOT NULL
);
"""
# Version 2 adds workshop rooms (`sharecore.runs.rooms`); a version-1 store gains these tables, runs kept.
# One statement each: the upgrade runs them inside its own transaction.
ROOMS_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS rooms (
    code TEXT PRIMARY KEY,          -- what participants type to join
    token TEXT NOT NULL UNIQUE,     -- the facilitator's link
    facilitator TEXT NOT NULL,      -- the workspace that opened it
    exercise TEXT NOT NULL,         -- the exercise id it starts from, or ''
    preset TEXT NOT NULL,           -- the starting experiment: its preset, spec and settings (JSON)
    spec TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL NOT NULL,          -- unix seconds
    expires REAL NOT NULL,          -- unix seconds: then the room and its hand-ins are removed
    closed INTEGER NOT NULL,        -- 1: no more joining or handing in
    projected INTEGER NOT NULL      -- 1: participants see the board
)""",
    """
CREATE TABLE IF NOT EXISTS handins (
    room TEXT NOT NULL REFERENCES rooms(code) ON DELETE CASCADE,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    participant TEXT NOT NULL,      -- the handing-in workspace
    name TEXT NOT NULL,             -- the display name the participant chose
    label TEXT NOT NULL,            -- the run's label in the participant's list when handed in
    hidden INTEGER NOT NULL,        -- 1: the facilitator took it off the board
    added REAL NOT NULL,
    PRIMARY KEY (room, run_id)
)""",
    "CREATE INDEX IF NOT EXISTS handins_by_run ON handins(run_id)",
)
EXPECTED_TABLES = {
    "runs": [
        *("id", "owner", "label", "created", "preset", "spec_name", "steps_done", "dataset", "final_loss"),
        *("can_continue", "bytes", "device", "stop_reason", "seconds", "compile_seconds", "spec", "config"),
        *("params", "history", "gradients", "divergence", "heldout", "weights", "state"),
    ],
    "entries": ["workspace", "run_id", "label", "pinned", "added"],
    "workspaces": ["key", "last_used"],
}
EXPECTED_TABLES_V1 = dict(EXPECTED_TABLES)
EXPECTED_TABLES["rooms"] = [
    *("code", "token", "facilitator", "exercise", "preset", "spec", "config", "created", "expires"),
    *("closed", "projected"),
]
EXPECTED_TABLES["handins"] = ["room", "run_id", "participant", "name", "label", "hidden", "added"]


class StoreUnavailable(ValueError):
    """The store's file cannot be used now: locked by another process, read-only, or damaged."""


# SQLite errors that say nothing is wrong with the file's content: waiting or permissions may fix them.
_NOT_DAMAGE = re.compile(r"locked|busy|readonly|read-only|disk I/O|unable to open|full", re.IGNORECASE)


def _server_user() -> str:
    """Who this server runs as, for a message: 'uid 10001' (with a name where the system has one)."""
    if not hasattr(os, "geteuid"):  # Windows: permissions are not uids and modes
        return "this server's user"
    uid = os.geteuid()
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _ownership(path: Path) -> str:
    """'belongs to uid 0 (root) with mode 0755' (and 'is on a read-only file system'): what a fix needs to know."""
    try:
        info = path.stat()
    except OSError as err:
        return f"cannot be examined ({err.strerror or type(err).__name__})"
    owner = f"uid {info.st_uid}"
    try:
        import pwd

        owner += f" ({pwd.getpwuid(info.st_uid).pw_name})"
    except (ImportError, KeyError):
        pass
    text = f"belongs to {owner} with mode {stat.S_IMODE(info.st_mode):04o}"
    if _read_only_file_system(path):
        text += " on a read-only file system"
    return text


def _read_only_file_system(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):  # no statvfs on Windows
        return False


def _may_write_folder(folder: Path) -> bool:
    """Whether this process may create files in `folder` (SQLite makes the -wal and -shm files beside the store)."""
    # os.access answers for the real uid, which is the server's; it says no on a read-only file system too.
    return os.access(folder, os.W_OK | os.X_OK)


class StoreFile:
    """One SQLite file of this schema, opened per call, with WAL journaling and a clear error for every failure.

    Attributes:
        path: the SQLite file.
        where: the file as messages name it.
        problem: a message for the user when a damaged store was set aside at start, or when the store
            can only be read (`read_only`); else None.
        read_only: why this server may not write the store, when it may only read it; else None.
    """

    driver_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)  # what `unavailable` turns into a message

    def __init__(self, path: str | Path) -> None:
        """Opens (or creates) the store file at `path`; its folder is created if missing.

        Raises:
            StoreUnavailable: (a ValueError) for a folder that cannot be made or written, or a file that
                cannot be read, saying how to fix it.
        """
        self.path = Path(path)
        self.where = repr(str(self.path))  # how messages name it
        self.problem: str | None = None
        self.read_only: str | None = None
        self._read_uri = ""  # how a read-only store is opened (`_check_access`)
        self._lock = threading.Lock()
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreUnavailable(
                f"The run store's folder {str(folder)!r} could not be created "
                f"({err.strerror or type(err).__name__}; this server runs as {_server_user()}). "
                f"Make the folder and let the server's user write it, or point {DATA_DIR_VARIABLE} at a "
                "folder it may write to."
            ) from None
        if not self.path.exists() and not _may_write_folder(folder):
            # Without this check SQLite's own words are 'unable to open database file'.
            raise StoreUnavailable(
                f"The run store {str(self.path)!r} cannot be created: this server runs as {_server_user()}, and "
                f"its folder {str(folder)!r} {_ownership(folder)}. {self._fix()}"
            )
        self._open_or_set_aside()

    def _fix(self) -> str:
        """How to give the server its store back: one sentence for a message."""
        folder = str(self.path.parent)
        elsewhere = f"or point {DATA_DIR_VARIABLE} at a folder this server may write to."
        if _read_only_file_system(self.path.parent):
            return f"Mount {folder!r} read-write, {elsewhere}"
        if not hasattr(os, "geteuid"):
            return f"Let the server's user write {folder!r} and the store in it, {elsewhere}"
        uid = os.geteuid()
        return f"Let uid {uid} write the folder and the store in it (e.g. chown -R {uid} {folder!r}), {elsewhere}"

    # ------------------------------------------------------------------ connections
    def _connect(self, timeout: float = BUSY_TIMEOUT_SECONDS) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE for writes).
        if self.read_only is None:
            connection = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        else:
            connection = sqlite3.connect(self._read_uri, timeout=timeout, isolation_level=None, uri=True)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = NORMAL")  # safe in WAL mode; a crash loses at most the last commit
        # Debian's SQLite zeroes every freed page (secure_delete on): deleting a run then journals all of its
        # pages, and fails on a full disk, where deleting is how room is made. FAST zeroes only pages written anyway.
        connection.execute("PRAGMA secure_delete = FAST")
        return connection

    @contextlib.contextmanager
    def _read(self, timeout: float = PAGE_TIMEOUT_SECONDS) -> Iterator[sqlite3.Connection]:
        connection = self._connect(timeout)
        try:
            yield connection
        finally:
            connection.close()

    @contextlib.contextmanager
    def _write(self, timeout: float = BUSY_TIMEOUT_SECONDS) -> Iterator[sqlite3.Connection]:
        """A connection in a write transaction, committed on success and rolled back on any error."""
        if self.read_only is not None:
            raise StoreUnavailable(self._read_only_message())
        connection = self._connect(timeout)
        try:
            connection.execute("BEGIN IMMEDIATE")  # take the write lock now, not at the first write
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def _open_or_set_aside(self) -> None:
        """Checks the file is this module's store (creating it if empty); moves a damaged one aside and starts anew.

        A file this server may not read, or not write, is never set aside (`_check_access`).
        """
        self._check_access()
        reason = self._check_file()
        if reason is None:
            self.problem = self._read_only_message() if self.read_only else None
            return
        if self.read_only is not None:
            raise StoreUnavailable(
                f"The run store {str(self.path)!r} could not be read ({reason}), and this server may not move it "
                f"aside to start a new one: {self.read_only}. {self._fix()}"
            )
        if _NOT_DAMAGE.search(reason):
            # Not damage (permissions, a folder where the file should be, a full disk): the file stays as it is.
            raise StoreUnavailable(f"The run store {str(self.path)!r} could not be opened ({reason}). {self._fix()}")
        try:
            aside = self._set_aside()
        except OSError as err:
            raise StoreUnavailable(
                f"The run store {str(self.path)!r} could not be read ({reason}), and moving it aside failed "
                f"({err.strerror or type(err).__name__}). {self._fix()}"
            ) from None
        self.problem = (
            f"The run store {str(self.path)!r} could not be read ({reason}), so it was moved to "
            f"{str(aside)!r} and a new, empty store was started. Earlier runs are in that file."
        )
        reason = self._check_file()
        if reason is not None:
            raise StoreUnavailable(f"A new run store at {str(self.path)!r} could not be started: {reason}")

    def _check_access(self) -> None:
        """Sets `read_only` from what this server may do with the file and its folder.

        Raises:
            StoreUnavailable: if the file exists and this server may not read it.
        """
        self.read_only = None
        if not self.path.exists():
            return
        if self.path.is_dir():
            raise StoreUnavailable(
                f"The run store {str(self.path)!r} is a folder, where the store's file should be. Point "
                f"{DATA_DIR_VARIABLE} at the folder that holds {FILE_NAME}, or move this folder away."
            )
        user = _server_user()
        if not os.access(self.path, os.R_OK):
            raise StoreUnavailable(
                f"The run store {str(self.path)!r} cannot be read by this server: it runs as {user}, and the file "
                f"{_ownership(self.path)}. The file was left as it is, with its runs. {self._fix()}"
            )
        if not os.access(self.path, os.W_OK):
            self.read_only = f"this server runs as {user}, and the file {_ownership(self.path)}"
        elif not _may_write_folder(self.path.parent):
            self.read_only = (
                f"this server runs as {user}, and its folder {str(self.path.parent)!r} {_ownership(self.path.parent)} "
                "(SQLite writes its journal beside the store)"
            )
        if self.read_only is None:
            return
        # Read-only; SQLite reads a WAL store through its -shm file, which it cannot make in a folder it may not
        # write: then the file is read as it is on disk (immutable), as nothing this server does can change it.
        uri = self.path.resolve().as_uri()
        for read_uri in (f"{uri}?mode=ro", f"{uri}?mode=ro&immutable=1"):
            self._read_uri = read_uri
            try:
                with self._read() as connection:
                    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return
            except sqlite3.OperationalError as err:
                if not _NOT_DAMAGE.search(str(err)):
                    return  # damage: _check_file says what

    def _read_only_message(self) -> str:
        return (
            f"The run store {str(self.path)!r} can be read but not written: {self.read_only}. The runs kept in it "
            f"are listed and open, but new runs are not kept and lists cannot be changed. {self._fix()}"
        )

    def _check_file(self) -> str | None:
        """None if the file is (or has now been made) a store of this schema, else what is wrong."""
        try:
            with self._read(timeout=BUSY_TIMEOUT_SECONDS) as connection:
                # Only reads until the file is known to be ours: a file set aside stays as it was.
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                tables = {
                    row[0]: [c[1] for c in connection.execute(f"PRAGMA table_info({row[0]!r})")]
                    for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                }
                if not tables and version == 0:
                    if self.read_only is not None:
                        return "it is empty, and this server may not write it to make a store"
                    # IF NOT EXISTS: another process may be making it at the same moment.
                    connection.executescript(
                        f"BEGIN IMMEDIATE; {SCHEMA} {'; '.join(ROOMS_SCHEMA)}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                    )
                    return self._check_file()
                if version == 1 and tables == EXPECTED_TABLES_V1 and self.read_only is None:
                    # A store from before rooms: the new tables are added, its runs stay. IF NOT EXISTS and
                    # the version check inside the transaction: another process may upgrade at the same moment.
                    connection.execute("BEGIN IMMEDIATE")
                    if connection.execute("PRAGMA user_version").fetchone()[0] == 1:
                        for statement in ROOMS_SCHEMA:
                            connection.execute(statement)
                        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    connection.execute("COMMIT")
                    return self._check_file()
                if version == 1 and tables == EXPECTED_TABLES_V1 and self.read_only is not None:
                    pass  # a store from before rooms that this server may only read: its runs are read as they are
                elif version != SCHEMA_VERSION or tables != EXPECTED_TABLES:
                    return f"it is a SQLite database of another kind or version (user_version {version}, tables {sorted(tables)})"
                problem = connection.execute("PRAGMA quick_check").fetchone()[0]
                if problem != "ok":
                    return f"SQLite found damage: {problem}"
                # WAL: readers never wait for a writer, and writers of several processes queue on the lock.
                if self.read_only is None:
                    connection.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise
            return f"{err}"
        except sqlite3.DatabaseError as err:
            return f"{err}"
        return None

    def _set_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        for suffix in ("", "-wal", "-shm"):
            # FileNotFoundError: no such companion file, or another process moved it first.
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        return aside

    def recover(self, err: BaseException) -> bool:
        """After `err`, makes a removed or damaged file a working store again; True if it did."""
        if _NOT_DAMAGE.search(str(err)):
            return False
        with self._lock:
            try:
                # sqlite3.connect made an empty file where the removed one was.
                if not self.path.exists() or self.path.stat().st_size == 0:
                    if self._check_file() is None:
                        self.problem = (
                            f"The run store {str(self.path)!r} was removed while the server ran, so a new, "
                            "empty store was started: runs kept before are gone."
                        )
                        return True
                elif self._check_file() is not None:
                    self._open_or_set_aside()
                    return True
            except (sqlite3.Error, OSError, ValueError):
                pass
        return False

    def unavailable(self, err: BaseException) -> StoreUnavailable:
        text = str(err)
        if re.search("locked|busy", text, re.IGNORECASE):
            fix = (
                "Another process holds it locked (another server process, or a backup copying it): try again in "
                "a moment. Runs train and are drawn meanwhile."
            )
        elif re.search("full|disk I/O", text, re.IGNORECASE):
            fix = (
                "The disk that holds it refused a write (full, over a quota or a file-size limit, or failing): "
                f"free space on it, or point {DATA_DIR_VARIABLE} at a folder on a "
                "bigger disk and restart the server. Deleting kept runs you no longer need makes room in the store."
            )
        elif re.search("readonly|read-only|unable to open", text, re.IGNORECASE):
            fix = f"This server runs as {_server_user()}, and the file {_ownership(self.path)}. {self._fix()}"
        else:
            fix = "Restart the server: it sets an unreadable file aside and starts a new store."
        return StoreUnavailable(
            f"The run store {str(self.path)!r} could not be used ({type(err).__name__}: {text[:200]}). {fix}"
        )
