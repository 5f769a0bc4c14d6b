"""A run store: finished training runs kept on the server, so that a workshop can compare and share them.

Runs live in one SQLite file (``runs.sqlite3`` in ``SHARECORE_DATA_DIR``). A *workspace* is one
browser's list of runs, named by an unguessable key (`new_key`); a run is named by an
unguessable id too, and whoever has the id may `load` it (a share link), while only the
workspaces that list a run may rename, pin or delete it. A run listed by several workspaces
(`adopt`) is stored once.

How a `TrainResult` is kept: the spec and settings as JSON, the tidy frames as Parquet, the
weights and the state a run continues from as compressed NumPy ``.npz`` archives, and the
scalars as columns; the list view (`RunStore.runs`) reads only small columns.

Caps keep a small server's disk in bounds: a workspace keeps at most ``max_runs_per_workspace``
runs (its oldest unpinned run goes), the whole store at most ``max_bytes`` (the oldest unpinned
runs of the least recently used workspaces go first), and one run at most ``max_run_bytes`` (a
larger run is kept without its weights and state, so it cannot be continued).

Plain Python, pandas, pyarrow and NumPy: no TensorFlow, no Streamlit.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sharecore.core import settings
from sharecore.core.config import TrainConfig
from sharecore.core.limits import env_variable
from sharecore.core.results import RECORD_COLUMNS, TrainResult, TrainState
from sharecore.core.spec import ModelSpec
from sharecore.core.text import NOT_IN_A_LINE

DATA_DIR_VARIABLE = "SHARECORE_DATA_DIR"
FILE_NAME = "runs.sqlite3"
MB = 2**20
MAX_LABEL_CHARS = 80
SCHEMA_VERSION = 1  # PRAGMA user_version of a store this module wrote
# new_key() and run ids: secrets.token_urlsafe(18) is 24 characters of [A-Za-z0-9_-] (144 random bits).
_TOKEN_BYTES = 18
_TOKEN = re.compile(r"[A-Za-z0-9_-]{24}")  # what new_key() makes: workspace keys and run ids alike
# Control characters, line and paragraph separators and lone surrogates: a label is one line of text.
# Bidirectional embeddings, overrides and isolates: one left open in a label turns the text drawn after
# it (' · tied' in a legend, the rest of a message) backwards. Right-to-left text needs none of them.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_BUSY_TIMEOUT_SECONDS = 30.0
# runs() marks its workspace as used at most this often, so that listing stays a read.
_TOUCH_EVERY_SECONDS = 60.0
FRAMES = tuple(RECORD_COLUMNS)  # history, gradients, divergence, heldout: each kept as Parquet
# Every field of TrainResult and where it is kept; tests/runs/test_store.py checks this covers them all.
STORED_FIELDS = (
    *("spec", "config", "device", "steps_done", "stop_reason", "seconds", "dataset", "params", "compile_seconds"),
    *FRAMES,
    "weights",
    "state",
)

_SCHEMA = """
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
_EXPECTED_TABLES = {
    "runs": [
        *("id", "owner", "label", "created", "preset", "spec_name", "steps_done", "dataset", "final_loss"),
        *("can_continue", "bytes", "device", "stop_reason", "seconds", "compile_seconds", "spec", "config"),
        *("params", "history", "gradients", "divergence", "heldout", "weights", "state"),
    ],
    "entries": ["workspace", "run_id", "label", "pinned", "added"],
    "workspaces": ["key", "last_used"],
}


class UnknownRun(KeyError):
    """No run with this id is kept, or it is not in this workspace's list."""

    def __str__(self) -> str:
        # KeyError's own str() quotes its message as a repr.
        return str(self.args[0]) if self.args else "unknown run"


class StoreUnavailable(ValueError):
    """The store's file cannot be used now: locked by another process, read-only, or damaged."""


# SQLite errors that say nothing is wrong with the file's content: waiting or permissions may fix them.
_NOT_DAMAGE = re.compile(r"locked|busy|readonly|read-only|disk I/O|unable to open|full", re.IGNORECASE)


def _reporting_sqlite_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """A public `RunStore` method whose SQLite errors become a `StoreUnavailable` that says what to do.

    A file removed or damaged while the server runs is treated as at start-up (a damaged file is set
    aside, a new store started and `RunStore.problem` says so), and the call is tried once more.
    """

    @functools.wraps(method)
    def checked(self: RunStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as err:
            if not self._recover(err):
                raise self._unavailable(err) from None
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as err:
            raise self._unavailable(err) from None

    return checked


@dataclass(frozen=True)
class RunInfo:
    """One line of a workspace's list: what the compare page shows without loading a run."""

    id: str
    label: str
    pinned: bool
    created: float  # unix seconds the run was saved
    preset: str
    spec_name: str
    steps_done: int
    dataset: str
    final_loss: dict[str, float]  # variant -> last recorded training loss
    bytes: int  # what the run takes in the store
    can_continue: bool  # its state was kept, so it can be continued
    adopted: bool  # saved by another workspace and added to this list from a share link


@dataclass(frozen=True)
class StoredRun:
    """A kept run: its place in a list and the full `TrainResult`."""

    id: str
    # The workspace whose label and pin these are: the one asked for, or the one that saved it (whose saved label
    # it is when the asked workspace does not list the run, or the saver no longer does).
    workspace: str
    label: str
    pinned: bool
    created: float
    preset: str
    result: TrainResult


@dataclass(frozen=True)
class SaveReport:
    """What `RunStore.save` (or `adopt`) did beyond keeping the run."""

    run_id: str
    evicted: tuple[str, ...] = ()  # labels of this workspace's runs removed to make room
    evicted_elsewhere: int = 0  # runs of other workspaces removed to keep the store under its size cap
    weights_dropped: bool = False  # kept without weights and state: it cannot be continued
    notes: tuple[str, ...] = ()  # one sentence for each thing above, ready to show


def is_key(text: object) -> bool:
    """Whether `text` has the form of a workspace key or a run id (what `new_key` makes)."""
    return isinstance(text, str) and _TOKEN.fullmatch(text) is not None


def new_key() -> str:
    """A new workspace key: 24 unguessable URL-safe characters."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def clean_label(label: Any, *, truncate: bool = False) -> str:
    """A run label as stored: one line of text, at most `MAX_LABEL_CHARS` characters.

    Control characters, separators and bidirectional overrides are removed and runs of spaces become one.

    Args:
        label: the user's text.
        truncate: cut a longer label to fit (ending in '…') instead of refusing it.

    Returns:
        The cleaned label.

    Raises:
        ValueError: if nothing is left, or (without `truncate`) the label is too long.
    """
    if not isinstance(label, str):
        raise ValueError(f"A run label must be text. Received: {type(label).__name__}")
    text = " ".join(NOT_IN_A_LINE.sub(" ", _BIDI_CONTROLS.sub("", label)).split())
    if not text:
        raise ValueError("A run label cannot be empty. Type a few words that say what this run tried.")
    if len(text) > MAX_LABEL_CHARS:
        if not truncate:
            raise ValueError(
                f"A run label holds at most {MAX_LABEL_CHARS} characters; this one has {len(text)}. "
                f"Shorten it. Received: {text[:MAX_LABEL_CHARS]!r}…"
            )
        text = text[: MAX_LABEL_CHARS - 1].rstrip() + "…"
    return text


def _shown(value: Any) -> str:
    """An id from a link, quoted and cut short for a message."""
    text = value if isinstance(value, str) else str(type(value).__name__)
    return repr(text if len(text) <= 30 else text[:24] + "…")


def _check_run_id(run_id: Any) -> str:
    if not is_key(run_id):
        raise UnknownRun(
            f"No run with id {_shown(run_id)} is kept on this server: the link may be mistyped "
            "(a run id is 24 letters, digits, '-' and '_'), or the run was deleted or evicted."
        )
    return run_id


def _check_workspace(workspace: Any) -> str:
    if not is_key(workspace):
        raise ValueError(
            f"A workspace key is 24 letters, digits, '-' and '_', as made by runstore.new_key(). "
            f"Received: {_shown(workspace)}"
        )
    return workspace


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


# ----------------------------------------------------------------------------- encoding
def _frame_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, compression="zstd", index=True)
    return buffer.getvalue()


def _frame(blob: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(blob))


def _arrays_bytes(arrays: Mapping[str, np.ndarray], meta: Any) -> bytes:
    """An npz of `arrays` (named a0, a1, ... so any name is safe) and a JSON index of their names and `meta`."""
    names = list(arrays)
    index = json.dumps({"names": names, "meta": meta}).encode()
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        __index__=np.frombuffer(index, dtype=np.uint8),
        **{f"a{i}": np.asarray(arrays[name]) for i, name in enumerate(names)},
    )
    return buffer.getvalue()


def _arrays(blob: bytes) -> tuple[dict[str, np.ndarray], Any]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        index = json.loads(archive["__index__"].tobytes().decode())
        return {name: archive[f"a{i}"] for i, name in enumerate(index["names"])}, index["meta"]


def _weights_bytes(weights: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]) -> bytes:
    flat = {
        json.dumps([phase, variant, name]): array
        for phase, variants in weights.items()
        for variant, arrays in variants.items()
        for name, array in arrays.items()
    }
    # The nesting keeps phases and variants that hold no arrays.
    shape = {phase: list(variants) for phase, variants in weights.items()}
    return _arrays_bytes(flat, shape)


def _weights(blob: bytes) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    flat, shape = _arrays(blob)
    weights: dict[str, dict[str, dict[str, np.ndarray]]] = {
        phase: {variant: {} for variant in variants} for phase, variants in shape.items()
    }
    for key, array in flat.items():
        phase, variant, name = json.loads(key)
        weights[phase][variant][name] = array
    return weights


def _state_bytes(state: TrainState) -> bytes:
    return _arrays_bytes(state.arrays, {"steps_done": state.steps_done, "rng": state.rng})


def _state(blob: bytes) -> TrainState:
    arrays, meta = _arrays(blob)
    return TrainState(steps_done=meta["steps_done"], arrays=arrays, rng=meta["rng"])


def _final_loss(history: pd.DataFrame) -> dict[str, float]:
    if history.empty or "step" not in history or "loss" not in history:
        return {}
    last = history[history.step == history.step.max()]
    return {str(r.variant): float(r.loss) for r in last.itertuples()}


def _encode(result: TrainResult, *, keep_weights: bool) -> dict[str, Any]:
    """The columns of a run row (without its id, owner, label, created and preset)."""
    row: dict[str, Any] = {
        "spec_name": result.spec.name,
        "steps_done": int(result.steps_done),
        "dataset": result.dataset,
        "final_loss": json.dumps(_final_loss(result.history)),
        "device": result.device,
        "stop_reason": result.stop_reason,
        "seconds": float(result.seconds),
        "compile_seconds": float(result.compile_seconds),
        "spec": json.dumps(result.spec.to_dict()),
        "config": json.dumps(result.config.to_dict()),
        "params": json.dumps({str(k): int(v) for k, v in result.params.items()}),
        **{name: _frame_bytes(getattr(result, name)) for name in FRAMES},
        "weights": _weights_bytes(result.weights) if keep_weights else None,
        "state": _state_bytes(result.state) if keep_weights and result.state is not None else None,
    }
    row["can_continue"] = int(row["state"] is not None)
    row["bytes"] = sum(len(v) for v in row.values() if isinstance(v, (str, bytes)))
    return row


def _decode(row: sqlite3.Row) -> TrainResult:
    return TrainResult(
        spec=ModelSpec.from_dict(json.loads(row["spec"])),
        config=TrainConfig.from_dict(json.loads(row["config"])),
        device=row["device"],
        steps_done=row["steps_done"],
        stop_reason=row["stop_reason"],
        seconds=row["seconds"],
        dataset=row["dataset"],
        params=json.loads(row["params"]),
        compile_seconds=row["compile_seconds"],
        weights=_weights(row["weights"]) if row["weights"] is not None else {},
        state=_state(row["state"]) if row["state"] is not None else None,
        **{name: _frame(row[name]) for name in FRAMES},
    )


# ----------------------------------------------------------------------------- the store
class RunStore:
    """Finished runs in one SQLite file, in workspaces, with caps on count and size.

    Safe to share between threads and processes: every call opens its own connection, the file is
    in WAL mode (readers never wait for a writer) and a save with its evictions is one transaction.
    Every public method raises `StoreUnavailable` (a ValueError) when the file cannot be used (locked
    past the busy timeout, read-only); a file removed or damaged while in use is replaced by a new store.

    Only damage sets a file aside. A file this server may not read (a backup restored as root with
    mode 0600) stays where it is and opening it raises `StoreUnavailable`, saying whose file it is and
    its mode; a file it may read but not write (or in a folder it may not write: a read-only volume)
    is opened read-only: its runs are listed and loaded, and every change raises `StoreUnavailable`.

    Attributes:
        path: the SQLite file.
        problem: a message for the user when a damaged store was set aside at start, or when the store
            can only be read (`read_only`); else None.
        read_only: why this server may not write the store, when it may only read it; else None.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_runs_per_workspace: int = 30,
        max_bytes: int = 300 * MB,
        max_run_bytes: int = 8 * MB,
    ) -> None:
        """Opens (or creates) the store at `path`, a file; its folder is created if missing.

        Args:
            path: the SQLite file, e.g. ``.sharecore-data/runs.sqlite3``.
            max_runs_per_workspace: runs one workspace keeps; its oldest unpinned run makes room.
            max_bytes: bytes all runs may take together; the least recently used workspaces'
                oldest unpinned runs make room.
            max_run_bytes: bytes one run may take; a larger run is kept without weights and state.

        Raises:
            ValueError: for a cap that is not a whole number >= 1.
            StoreUnavailable: (a ValueError) for a folder that cannot be made or written, saying how to fix it.
        """
        for name, value in (
            ("max_runs_per_workspace", max_runs_per_workspace),
            ("max_bytes", max_bytes),
            ("max_run_bytes", max_run_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RunStore {name} must be a whole number >= 1. Received: {name}={value!r}")
        self.path = Path(path)
        self.max_runs_per_workspace = max_runs_per_workspace
        self.max_bytes = max_bytes
        self.max_run_bytes = max_run_bytes
        self.problem: str | None = None
        self.read_only: str | None = None
        self._read_uri = ""  # how a read-only store is opened (`_check_access`)
        self._touched: dict[str, float] = {}
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RunStore:
        """The store in ``$SHARECORE_DATA_DIR`` (default ``./.sharecore-data``), caps from the environment.

        ``SHARECORE_KEPT_RUNS`` sets the runs one workspace keeps (default 30) and
        ``SHARECORE_STORE_MB`` the MiB all runs may take (default 300).

        Raises:
            ValueError: naming the variable whose value is not a whole number >= 1.
            StoreUnavailable: (a ValueError) for a folder the server may not write, saying how to fix it.
        """
        return cls(
            Path(str(settings.read(DATA_DIR_VARIABLE, environ))) / FILE_NAME,
            max_runs_per_workspace=int(settings.read("SHARECORE_KEPT_RUNS", environ)),
            max_bytes=int(settings.read("SHARECORE_STORE_MB", environ)) * MB,
        )

    # ------------------------------------------------------------------ connections
    def _connect(self, timeout: float = _BUSY_TIMEOUT_SECONDS) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE for writes).
        if self.read_only is None:
            connection = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        else:
            connection = sqlite3.connect(self._read_uri, timeout=timeout, isolation_level=None, uri=True)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = NORMAL")  # safe in WAL mode; a crash loses at most the last commit
        return connection

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        connection = self._connect()
        try:
            yield connection
        finally:
            connection.close()

    @contextlib.contextmanager
    def _write(self, timeout: float = _BUSY_TIMEOUT_SECONDS) -> Iterator[sqlite3.Connection]:
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
            with self._read() as connection:
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
                        f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                    )
                    return self._check_file()
                if version != SCHEMA_VERSION or tables != _EXPECTED_TABLES:
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

    # ------------------------------------------------------------------ saving
    @_reporting_sqlite_errors
    def save(self, workspace: str, result: TrainResult, label: str, *, preset: str = "") -> SaveReport:
        """Keeps `result` in `workspace`'s list, making room under the caps.

        Args:
            workspace: the saving browser's key (`new_key`).
            result: the finished run.
            label: what the run tried, e.g. from `sharecore.runs.whatif.change_label`; cleaned and cut
                to `MAX_LABEL_CHARS`.
            preset: the preset the spec came from, if any.

        Returns:
            A `SaveReport` with the new run's id and what was removed or dropped to keep it.

        Raises:
            ValueError: for an empty label, a run too large to keep even without its weights, or a
                workspace whose kept runs are all pinned.
        """
        workspace = _check_workspace(workspace)
        if not isinstance(result, TrainResult):
            raise ValueError(f"RunStore.save keeps a TrainResult. Received: {type(result).__name__}")
        label = clean_label(label, truncate=True)
        preset = clean_label(preset, truncate=True) if preset.strip() else ""
        try:
            row = _encode(result, keep_weights=True)
        except (ValueError, TypeError, OverflowError) as err:
            raise ValueError(f"This run could not be encoded for the run store: {err}") from None
        notes: list[str] = []
        dropped = False
        if row["bytes"] > self.max_run_bytes:
            full = row["bytes"]
            row = _encode(result, keep_weights=False)
            dropped = True
            if row["bytes"] > self.max_run_bytes:
                raise ValueError(
                    f"This run's records take {row['bytes'] / MB:.1f} MiB, more than the "
                    f"{self.max_run_bytes / MB:.1f} MiB one kept run may take, so it was not kept. Record "
                    "less often (a larger record_every) or train fewer steps."
                )
            notes.append(
                f"'{label}' was kept without weights ({full / MB:.1f} MiB with them, over the "
                f"{self.max_run_bytes / MB:.1f} MiB cap): it cannot be continued."
            )
        if row["bytes"] > self.max_bytes:
            raise ValueError(
                f"This run takes {row['bytes'] / MB:.1f} MiB, more than the {self.max_bytes / MB:.1f} MiB the "
                f"server keeps for all runs, so the new run was not kept. Raise the cap with "
                f"{env_variable('store_mb')}, or record less often."
            )
        run_id = secrets.token_urlsafe(_TOKEN_BYTES)
        now = time.time()
        with self._write() as db:
            self._make_room_in_workspace(db, workspace)
            db.execute(
                f"INSERT INTO runs (id, owner, label, created, preset, {', '.join(row)}) "
                f"VALUES (?, ?, ?, ?, ?, {', '.join('?' * len(row))})",
                (run_id, workspace, label, now, preset, *row.values()),
            )
            db.execute(
                "INSERT INTO entries (workspace, run_id, label, pinned, added) VALUES (?, ?, ?, 0, ?)",
                (workspace, run_id, label, now),
            )
            evicted = self._evict_in_workspace(db, workspace, keep=run_id)
            elsewhere = self._evict_for_bytes(db, workspace, keep=run_id)
            self._touch(db, workspace, now)
        mine = [label for ws, label in [*evicted, *elsewhere] if ws == workspace]
        others = sum(1 for ws, _ in elsewhere if ws != workspace)
        if evicted:
            notes.append(
                f"This workspace keeps {self.max_runs_per_workspace} runs, so its oldest unpinned run "
                f"{_quoted(label for _, label in evicted)} was removed. Pin a run to keep it."
            )
        if elsewhere:
            notes.append(
                f"The server keeps {self.max_bytes / MB:.0f} MiB of runs, so {len(elsewhere)} older unpinned "
                f"run(s) were removed ({_quoted(label for ws, label in elsewhere if ws == workspace) or 'none of yours'})."
            )
        return SaveReport(
            run_id=run_id,
            evicted=tuple(mine),
            evicted_elsewhere=others,
            weights_dropped=dropped,
            notes=tuple(notes),
        )

    def _make_room_in_workspace(self, db: sqlite3.Connection, workspace: str) -> None:
        """Refuses a new run when the workspace is full of pinned runs."""
        count, unpinned = db.execute(
            "SELECT count(*), coalesce(sum(pinned = 0), 0) FROM entries WHERE workspace = ?", (workspace,)
        ).fetchone()
        if count >= self.max_runs_per_workspace and unpinned == 0:
            raise ValueError(
                f"This workspace keeps at most {self.max_runs_per_workspace} runs and all {count} are "
                "pinned, so the new run was not kept. Unpin or delete one, then save again."
            )

    def _evict_in_workspace(self, db: sqlite3.Connection, workspace: str, keep: str) -> list[tuple[str, str]]:
        """Removes the workspace's oldest unpinned entries over the count cap; returns (workspace, label)s."""
        removed = []
        while True:
            count = db.execute("SELECT count(*) FROM entries WHERE workspace = ?", (workspace,)).fetchone()[0]
            if count <= self.max_runs_per_workspace:
                return removed
            oldest = db.execute(
                "SELECT run_id, label FROM entries WHERE workspace = ? AND pinned = 0 AND run_id != ? "
                "ORDER BY added, rowid LIMIT 1",
                (workspace, keep),
            ).fetchone()
            if oldest is None:  # only pinned runs left: _make_room_in_workspace refused this earlier
                raise ValueError(
                    f"This workspace keeps at most {self.max_runs_per_workspace} runs and all are pinned. "
                    "Unpin or delete one, then save again."
                )
            self._remove_entry(db, workspace, oldest["run_id"])
            removed.append((workspace, oldest["label"]))

    def _evict_for_bytes(self, db: sqlite3.Connection, workspace: str, keep: str) -> list[tuple[str, str]]:
        """Removes whole runs (no pinned entry anywhere) until the store fits `max_bytes`."""
        removed = []
        while db.execute("SELECT coalesce(sum(bytes), 0) FROM runs").fetchone()[0] > self.max_bytes:
            # The run whose most recent lister was used least recently goes first, oldest first within it.
            victim = db.execute(
                """
                SELECT r.id, r.owner, r.label,
                       (SELECT max(coalesce(w.last_used, 0)) FROM entries e LEFT JOIN workspaces w ON w.key = e.workspace
                        WHERE e.run_id = r.id) AS used
                FROM runs r
                WHERE r.id != ? AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.run_id = r.id AND e.pinned = 1)
                ORDER BY used, r.created LIMIT 1
                """,
                (keep,),
            ).fetchone()
            if victim is None:
                total = db.execute("SELECT coalesce(sum(bytes), 0) FROM runs WHERE id != ?", (keep,)).fetchone()[0]
                raise ValueError(
                    f"The server keeps at most {self.max_bytes / MB:.0f} MiB of runs and the pinned runs "
                    f"already take {total / MB:.1f} MiB, so the new run was not kept. Unpin or delete a run "
                    f"(or raise the cap with {env_variable('store_mb')})."
                )
            mine = db.execute(
                "SELECT label FROM entries WHERE run_id = ? AND workspace = ?", (victim["id"], workspace)
            ).fetchone()
            owner = workspace if mine else victim["owner"]
            db.execute("DELETE FROM runs WHERE id = ?", (victim["id"],))  # its entries go with it (cascade)
            removed.append((owner, mine["label"] if mine else victim["label"]))
        return removed

    @staticmethod
    def _remove_entry(db: sqlite3.Connection, workspace: str, run_id: str) -> None:
        """Removes one workspace's entry, and the run itself once no workspace lists it."""
        db.execute("DELETE FROM entries WHERE workspace = ? AND run_id = ?", (workspace, run_id))
        db.execute(
            "DELETE FROM runs WHERE id = ? AND NOT EXISTS (SELECT 1 FROM entries WHERE run_id = ?)", (run_id, run_id)
        )

    def _touch(self, db: sqlite3.Connection, workspace: str, now: float) -> None:
        db.execute(
            "INSERT INTO workspaces (key, last_used) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET last_used = excluded.last_used",
            (workspace, now),
        )
        with self._lock:
            self._touched[workspace] = now

    @_reporting_sqlite_errors
    def adopt(self, workspace: str, run_id: str, label: str | None = None) -> SaveReport:
        """Adds a shared run to `workspace`'s list (a reference: the run is stored once).

        Args:
            workspace: the adopting browser's key.
            run_id: the shared run's id.
            label: its label in this list; defaults to the label it was saved with.

        Returns:
            A `SaveReport` (what the count cap removed); adopting a run already listed changes nothing.

        Raises:
            UnknownRun: if no run has this id.
            ValueError: if the workspace is full of pinned runs.
        """
        workspace = _check_workspace(workspace)
        run_id = _check_run_id(run_id)
        now = time.time()
        with self._write() as db:
            run = db.execute("SELECT label FROM runs WHERE id = ?", (run_id,)).fetchone()
            if run is None:
                raise self._unknown(run_id)
            if db.execute("SELECT 1 FROM entries WHERE workspace = ? AND run_id = ?", (workspace, run_id)).fetchone():
                return SaveReport(run_id=run_id)
            label = clean_label(label) if label is not None else run["label"]
            self._make_room_in_workspace(db, workspace)
            db.execute(
                "INSERT INTO entries (workspace, run_id, label, pinned, added) VALUES (?, ?, ?, 0, ?)",
                (workspace, run_id, label, now),
            )
            evicted = self._evict_in_workspace(db, workspace, keep=run_id)
            self._touch(db, workspace, now)
        notes = ()
        if evicted:
            notes = (
                f"This workspace keeps {self.max_runs_per_workspace} runs, so its oldest unpinned run "
                f"{_quoted(label for _, label in evicted)} was removed. Pin a run to keep it.",
            )
        return SaveReport(run_id=run_id, evicted=tuple(label for _, label in evicted), notes=notes)

    # ------------------------------------------------------------------ reading
    @_reporting_sqlite_errors
    def runs(self, workspace: str) -> list[RunInfo]:
        """The workspace's runs, newest first (by when each joined this list), without loading their records.

        Raises:
            ValueError: for a malformed workspace key.
        """
        workspace = _check_workspace(workspace)
        with self._read() as db:
            rows = db.execute(
                """
                SELECT r.id, e.label, e.pinned, r.created, r.preset, r.spec_name, r.steps_done, r.dataset,
                       r.final_loss, r.bytes, r.can_continue, r.owner != e.workspace AS adopted
                FROM entries e JOIN runs r ON r.id = e.run_id
                WHERE e.workspace = ? ORDER BY e.added DESC, e.rowid DESC
                """,
                (workspace,),
            ).fetchall()
        with self._lock:
            stale = time.time() - self._touched.get(workspace, 0.0) > _TOUCH_EVERY_SECONDS
        if stale and rows and self.read_only is None:
            try:
                with self._write(timeout=0.2) as db:
                    self._touch(db, workspace, time.time())
            except sqlite3.OperationalError:
                pass  # busy: being marked as used is not worth waiting for
        return [
            RunInfo(
                id=row["id"],
                label=row["label"],
                pinned=bool(row["pinned"]),
                created=row["created"],
                preset=row["preset"],
                spec_name=row["spec_name"],
                steps_done=row["steps_done"],
                dataset=row["dataset"],
                final_loss=_loss_or_empty(row["final_loss"]),
                bytes=row["bytes"],
                can_continue=bool(row["can_continue"]),
                adopted=bool(row["adopted"]),
            )
            for row in rows
        ]

    @_reporting_sqlite_errors
    def load(self, run_id: str, workspace: str | None = None) -> StoredRun:
        """The kept run with this id, from any workspace (whoever has the id may see it).

        Args:
            run_id: the run's id, e.g. from a share link.
            workspace: whose label and pin to report. A workspace that does not list the run gets
                the label the run was saved with, never the one another list gives it now; by
                default (None), the label and pin of the workspace that saved it.

        Raises:
            UnknownRun: for a malformed id or one that no kept run has.
            ValueError: if the run is kept but its records cannot be read.
        """
        run_id = _check_run_id(run_id)
        with self._read() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise self._unknown(run_id)
            # A label is its list's own: another workspace's rename never shows here.
            entry = db.execute(
                "SELECT workspace, label, pinned FROM entries WHERE workspace = ? AND run_id = ?",
                (row["owner"] if workspace is None else workspace, run_id),
            ).fetchone()
        try:
            result = _decode(row)
        except Exception as err:  # any damage to a row's data: Parquet, zip, JSON or the spec's checks
            raise ValueError(
                f"Run {run_id!r} ('{row['label']}') is kept but its records could not be read "
                f"({type(err).__name__}: {str(err)[:200]}). Delete it from your list; other runs are not affected."
            ) from None
        return StoredRun(
            id=run_id,
            workspace=entry["workspace"] if entry else row["owner"],
            label=entry["label"] if entry else row["label"],
            pinned=bool(entry["pinned"]) if entry else False,
            created=row["created"],
            preset=row["preset"],
            result=result,
        )

    @_reporting_sqlite_errors
    def total_bytes(self) -> int:
        """What all kept runs take, as the size cap counts it."""
        with self._read() as db:
            return db.execute("SELECT coalesce(sum(bytes), 0) FROM runs").fetchone()[0]

    # ------------------------------------------------------------------ changing a list
    @_reporting_sqlite_errors
    def rename(self, workspace: str, run_id: str, label: str) -> None:
        """Gives the run a new label in this workspace's list.

        Raises:
            UnknownRun: if the workspace does not list this run.
            ValueError: for an empty or too long label.
        """
        label = clean_label(label)
        self._change(workspace, run_id, "UPDATE entries SET label = ? WHERE workspace = ? AND run_id = ?", label)

    @_reporting_sqlite_errors
    def pin(self, workspace: str, run_id: str, pinned: bool = True) -> None:
        """Pins (or unpins) the run: a pinned run is never removed to make room.

        Raises:
            UnknownRun: if the workspace does not list this run.
        """
        self._change(
            workspace, run_id, "UPDATE entries SET pinned = ? WHERE workspace = ? AND run_id = ?", int(bool(pinned))
        )

    @_reporting_sqlite_errors
    def delete(self, workspace: str, run_id: str) -> None:
        """Removes the run from this workspace's list (and from the server once no list holds it).

        Raises:
            UnknownRun: if the workspace does not list this run.
        """
        self._change(workspace, run_id, None, None)

    def _change(self, workspace: str, run_id: str, sql: str | None, value: Any) -> None:
        workspace = _check_workspace(workspace)
        run_id = _check_run_id(run_id)
        with self._write() as db:
            if not db.execute(
                "SELECT 1 FROM entries WHERE workspace = ? AND run_id = ?", (workspace, run_id)
            ).fetchone():
                raise UnknownRun(
                    f"Run {run_id!r} is not in this workspace's list, so it cannot be changed here: only a "
                    "workspace that lists a run may rename, pin or delete it. It may have been deleted or "
                    "evicted; a shared run can be added to your list first."
                )
            if sql is None:
                self._remove_entry(db, workspace, run_id)
            else:
                db.execute(sql, (value, workspace, run_id))
            self._touch(db, workspace, time.time())

    def _recover(self, err: sqlite3.Error) -> bool:
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

    def _unavailable(self, err: sqlite3.Error) -> StoreUnavailable:
        text = str(err)
        if re.search("locked|busy", text, re.IGNORECASE):
            fix = "Another process holds it locked: try again in a moment."
        elif re.search("readonly|read-only|unable to open", text, re.IGNORECASE):
            fix = f"This server runs as {_server_user()}, and the file {_ownership(self.path)}. {self._fix()}"
        else:
            fix = "Restart the server: it sets an unreadable file aside and starts a new store."
        return StoreUnavailable(
            f"The run store {str(self.path)!r} could not be used ({type(err).__name__}: {text[:200]}). {fix}"
        )

    @staticmethod
    def _unknown(run_id: str) -> UnknownRun:
        return UnknownRun(
            f"No run with id {_shown(run_id)} is kept on this server: the link may be mistyped, or the run "
            "was deleted or evicted."
        )


def _quoted(labels: Any) -> str:
    return ", ".join(f"'{label}'" for label in labels)


def _loss_or_empty(text: str) -> dict[str, float]:
    try:
        value = json.loads(text)
        return {str(k): float(v) for k, v in value.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


__all__ = [
    "MAX_LABEL_CHARS",
    "RunInfo",
    "RunStore",
    "SaveReport",
    "StoreUnavailable",
    "StoredRun",
    "UnknownRun",
    "clean_label",
    "new_key",
]
