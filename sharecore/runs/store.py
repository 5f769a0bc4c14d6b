"""A run store: finished training runs kept on the server, so that a workshop can compare and share them.

Runs live in one SQLite file (``runs.sqlite3`` in ``SHARECORE_DATA_DIR``), or, when
``SHARECORE_DATABASE_URL`` names one, in a PostgreSQL database that several server processes share.
A *workspace* is one browser's list of runs, named by an unguessable key (`new_key`); a run is
named by an unguessable id too, and whoever has the id may `load` it (a share link), while only the
workspaces that list a run may rename, pin or delete it. A run listed by several workspaces
(`adopt`) is stored once.

How a `TrainResult` becomes a row is `sharecore.runs.codec`'s (the spec and settings as JSON, the
tidy frames as Parquet, the weights and state as ``.npz``); where the rows live is
`sharecore.runs.storetables`'s (the SQLite file's schema, permissions, damage and messages are
`sharecore.runs.storefile`'s, the PostgreSQL server's `sharecore.runs.storeserver`'s): the SQL here
is written once and runs on both. The list view (`RunStore.runs`) reads only small columns.

Caps keep a small server's disk in bounds: a workspace keeps at most ``max_runs_per_workspace``
runs (its oldest unpinned run goes), the whole store at most ``max_bytes`` (the oldest unpinned
runs of the least recently used workspaces go first), and one run at most ``max_run_bytes`` (a
larger run is kept without its weights and state, so it cannot be continued).

Plain Python (and, through the codec, pandas, pyarrow and NumPy): no TensorFlow, no Streamlit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sharecore.core import settings
from sharecore.core.limits import env_variable
from sharecore.core.results import TrainResult
from sharecore.runs.codec import decode, decode_final_loss, encode
from sharecore.runs.entries import (
    MAX_LABEL_CHARS,
    RunInfo,
    SaveReport,
    StoredRun,
    UnknownRun,
    check_run_id,
    check_workspace,
    clean_label,
    is_key,
    new_key,
    unknown_run,
)
from sharecore.runs.storefile import DATA_DIR_VARIABLE, FILE_NAME, StoreUnavailable
from sharecore.runs.storeserver import DATABASE_URL_VARIABLE, is_database_url, shown_url
from sharecore.runs.storetables import Connection, StoreTables, reporting_store_errors

MB = 2**20
# runs() marks its workspace as used at most this often, so that listing stays a read.
_TOUCH_EVERY_SECONDS = 60.0


class RunStore(StoreTables):
    """Finished runs in one SQLite file or PostgreSQL database, in workspaces, with caps on count and size.

    The tables are `StoreTables`. Safe to share between threads and processes: every call uses its own
    connection, readers never wait for a writer (the file is in WAL mode) and a save with its evictions
    is one transaction, one writer at a time.
    Every public method raises `StoreUnavailable` (a ValueError) when the store cannot be used (locked
    past the busy timeout, read-only, a database server that is away); a file removed or damaged while
    in use is replaced by a new store (on a server: tables removed are made anew).

    Only damage sets a file aside. A file this server may not read (a backup restored as root with
    mode 0600) stays where it is and opening it raises `StoreUnavailable`, saying whose file it is and
    its mode; a file it may read but not write (or in a folder it may not write: a read-only volume)
    is opened read-only: its runs are listed and loaded, and every change raises `StoreUnavailable`.

    Attributes:
        path: the SQLite file; None on a PostgreSQL server.
        where: the file or server as messages name it (never a password).
        problem: a message for the user when a damaged store was set aside at start, or when the store
            can only be read (`read_only`); else None.
        read_only: why this server may not write the store, when it may only read it; else None.
    """

    def __init__(
        self,
        where: str | Path,
        *,
        max_runs_per_workspace: int = 30,
        max_bytes: int = 300 * MB,
        max_run_bytes: int = 8 * MB,
    ) -> None:
        """Opens (or creates) the store at `where`: a SQLite file (its folder is created if missing) or a database.

        Args:
            where: the SQLite file, e.g. ``.sharecore-data/runs.sqlite3``, or a PostgreSQL server's URL,
                ``postgresql://USER@HOST:PORT/DATABASE`` (its tables are made if missing).
            max_runs_per_workspace: runs one workspace keeps; its oldest unpinned run makes room.
            max_bytes: bytes all runs may take together; the least recently used workspaces'
                oldest unpinned runs make room.
            max_run_bytes: bytes one run may take; a larger run is kept without weights and state.

        Raises:
            ValueError: for a cap that is not a whole number >= 1.
            StoreUnavailable: (a ValueError) for a folder that cannot be made or written, or a database server
                that cannot be reached or used, saying how to fix it.
        """
        for name, value in (
            ("max_runs_per_workspace", max_runs_per_workspace),
            ("max_bytes", max_bytes),
            ("max_run_bytes", max_run_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RunStore {name} must be a whole number >= 1. Received: {name}={value!r}")
        self.max_runs_per_workspace = max_runs_per_workspace
        self.max_bytes = max_bytes
        self.max_run_bytes = max_run_bytes
        self._touched: dict[str, float] = {}
        super().__init__(where)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RunStore:
        """The store on ``$SHARECORE_DATABASE_URL`` if set, else in ``$SHARECORE_DATA_DIR`` (default
        ``./.sharecore-data``), caps from the environment.

        ``SHARECORE_KEPT_RUNS`` sets the runs one workspace keeps (default 30) and
        ``SHARECORE_STORE_MB`` the MiB all runs may take (default 300).

        Raises:
            ValueError: naming the variable whose value is not a whole number >= 1, or not a PostgreSQL URL.
            StoreUnavailable: (a ValueError) for a folder the server may not write, or a database it cannot
                use, saying how to fix it.
        """
        url = str(settings.read(DATABASE_URL_VARIABLE, environ))
        if url and not is_database_url(url):
            raise ValueError(
                f"environment variable {DATABASE_URL_VARIABLE} must be a PostgreSQL URL, "
                f"postgresql://USER@HOST:PORT/DATABASE, or unset for the SQLite file. Received: {shown_url(url)!r}"
            )
        return cls(
            url or Path(str(settings.read(DATA_DIR_VARIABLE, environ))) / FILE_NAME,
            max_runs_per_workspace=int(settings.read("SHARECORE_KEPT_RUNS", environ)),
            max_bytes=int(settings.read("SHARECORE_STORE_MB", environ)) * MB,
        )

    # ------------------------------------------------------------------ saving
    @reporting_store_errors
    def save(self, workspace: str, result: TrainResult, label: str, *, preset: str = "") -> SaveReport:
        """Keeps `result` in `workspace`'s list, making room under the caps.

        Args:
            workspace: the saving browser's key (`new_key`).
            result: the finished run.
            label: what the run tried, e.g. from `sharecore.runs.whatif.preset_label`; cleaned and cut
                to `MAX_LABEL_CHARS`.
            preset: the preset the spec came from, if any.

        Returns:
            A `SaveReport` with the new run's id and what was removed or dropped to keep it.

        Raises:
            ValueError: for an empty label, a run too large to keep even without its weights, or a
                workspace whose kept runs are all pinned.
        """
        workspace = check_workspace(workspace)
        if not isinstance(result, TrainResult):
            raise ValueError(f"RunStore.save keeps a TrainResult. Received: {type(result).__name__}")
        label = clean_label(label, truncate=True)
        preset = clean_label(preset, truncate=True) if preset.strip() else ""
        try:
            row = encode(result, keep_weights=True)
        except (ValueError, TypeError, OverflowError) as err:
            raise ValueError(f"This run could not be encoded for the run store: {err}") from None
        notes: list[str] = []
        dropped = False
        if row["bytes"] > self.max_run_bytes:
            full = row["bytes"]
            row = encode(result, keep_weights=False)
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
        run_id = new_key()
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

    def _make_room_in_workspace(self, db: Connection, workspace: str) -> None:
        """Refuses a new run when the workspace is full of pinned runs."""
        count, unpinned = db.execute(
            "SELECT count(*), coalesce(sum(CASE WHEN pinned = 0 THEN 1 ELSE 0 END), 0) FROM entries WHERE workspace = ?",
            (workspace,),
        ).fetchone()
        if count >= self.max_runs_per_workspace and unpinned == 0:
            raise ValueError(
                f"This workspace keeps at most {self.max_runs_per_workspace} runs and all {count} are "
                "pinned, so the new run was not kept. Unpin or delete one, then save again."
            )

    def _evict_in_workspace(self, db: Connection, workspace: str, keep: str) -> list[tuple[str, str]]:
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

    def _evict_for_bytes(self, db: Connection, workspace: str, keep: str) -> list[tuple[str, str]]:
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
    def _remove_entry(db: Connection, workspace: str, run_id: str) -> None:
        """Removes one workspace's entry, and the run itself once no workspace lists it."""
        db.execute("DELETE FROM entries WHERE workspace = ? AND run_id = ?", (workspace, run_id))
        db.execute(
            "DELETE FROM runs WHERE id = ? AND NOT EXISTS (SELECT 1 FROM entries WHERE run_id = ?)", (run_id, run_id)
        )

    def _touch(self, db: Connection, workspace: str, now: float) -> None:
        db.execute(
            "INSERT INTO workspaces (key, last_used) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET last_used = excluded.last_used",
            (workspace, now),
        )
        with self._lock:
            self._touched[workspace] = now

    @reporting_store_errors
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
        workspace = check_workspace(workspace)
        run_id = check_run_id(run_id)
        now = time.time()
        with self._write() as db:
            run = db.execute("SELECT label FROM runs WHERE id = ?", (run_id,)).fetchone()
            if run is None:
                raise unknown_run(run_id)
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
    @reporting_store_errors
    def runs(self, workspace: str) -> list[RunInfo]:
        """The workspace's runs, newest first (by when each joined this list), without loading their records.

        Raises:
            ValueError: for a malformed workspace key.
        """
        workspace = check_workspace(workspace)
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
            except self.database.driver_errors:
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
                final_loss=decode_final_loss(row["final_loss"]),
                bytes=row["bytes"],
                can_continue=bool(row["can_continue"]),
                adopted=bool(row["adopted"]),
            )
            for row in rows
        ]

    @reporting_store_errors
    def load(self, run_id: str, workspace: str | None = None) -> StoredRun:
        """The kept run with this id, from any workspace (whoever has the id may see it).

        Args:
            run_id: the run's id, e.g. from a share link.
            workspace: whose label and pin to report. A workspace that does not list the run gets
                the label its owner gives it now (`rename`), never the one another list gives it;
                by default (None), the label and pin of the workspace that saved it.

        Raises:
            UnknownRun: for a malformed id or one that no kept run has.
            ValueError: if the run is kept but its records cannot be read.
        """
        run_id = check_run_id(run_id)
        with self._read() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise unknown_run(run_id)
            # A label is its list's own: a rename by another list than the owner's never shows here.
            entry = db.execute(
                "SELECT workspace, label, pinned FROM entries WHERE workspace = ? AND run_id = ?",
                (row["owner"] if workspace is None else workspace, run_id),
            ).fetchone()
        try:
            result = decode(row)
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

    @reporting_store_errors
    def total_bytes(self) -> int:
        """What all kept runs take, as the size cap counts it."""
        with self._read() as db:
            return db.execute("SELECT coalesce(sum(bytes), 0) FROM runs").fetchone()[0]

    # ------------------------------------------------------------------ changing a list
    @reporting_store_errors
    def rename(self, workspace: str, run_id: str, label: str) -> None:
        """Gives the run a new label in this workspace's list.

        The owner's rename is the run's own label: a share link opened elsewhere, and a list that adopted
        the run and has not renamed it, show it from now on. Another list's rename is that list's alone.

        Raises:
            UnknownRun: if the workspace does not list this run.
            ValueError: for an empty or too long label.
        """
        label = clean_label(label)
        self._change(
            workspace,
            run_id,
            "UPDATE entries SET label = ? WHERE workspace = ? AND run_id = ?",
            label,
            then=(
                # Lists that still show the owner's old label follow it; the run's own row is what a link reads.
                (
                    "UPDATE entries SET label = ? WHERE run_id = ? AND workspace != ? AND label = "
                    "(SELECT label FROM runs WHERE id = ? AND owner = ?)",
                    (label, run_id, workspace, run_id, workspace),
                ),
                ("UPDATE runs SET label = ? WHERE id = ? AND owner = ?", (label, run_id, workspace)),
            ),
        )

    @reporting_store_errors
    def pin(self, workspace: str, run_id: str, pinned: bool = True) -> None:
        """Pins (or unpins) the run: a pinned run is never removed to make room.

        Raises:
            UnknownRun: if the workspace does not list this run.
        """
        self._change(
            workspace, run_id, "UPDATE entries SET pinned = ? WHERE workspace = ? AND run_id = ?", int(bool(pinned))
        )

    @reporting_store_errors
    def delete(self, workspace: str, run_id: str) -> None:
        """Removes the run from this workspace's list (and from the server once no list holds it).

        Raises:
            UnknownRun: if the workspace does not list this run.
        """
        self._change(workspace, run_id, None, None)

    def _change(
        self, workspace: str, run_id: str, sql: str | None, value: Any, then: tuple[tuple[str, tuple], ...] = ()
    ) -> None:
        """Runs `sql` with (value, workspace, run_id), or removes the entry (`sql` None), then the statements
        `then`, in one transaction, if the workspace lists the run."""
        workspace = check_workspace(workspace)
        run_id = check_run_id(run_id)
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
            for statement, params in then:
                db.execute(statement, params)
            self._touch(db, workspace, time.time())


def _quoted(labels: Any) -> str:
    return ", ".join(f"'{label}'" for label in labels)


__all__ = [
    "DATA_DIR_VARIABLE",
    "FILE_NAME",
    "MAX_LABEL_CHARS",
    "MB",
    "RunInfo",
    "RunStore",
    "SaveReport",
    "StoreUnavailable",
    "StoredRun",
    "UnknownRun",
    "clean_label",
    "is_key",
    "new_key",
]
