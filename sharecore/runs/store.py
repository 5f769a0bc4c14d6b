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

The caps on what one browser and the whole store keep, and which runs make room, are
`sharecore.runs.storecaps`'s.

The owner of a run may `revoke` its share link: the run gets a new id, and every other list loses it.

Plain Python (and, through the codec, pandas, pyarrow and NumPy): no TensorFlow, no Streamlit.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from sharecore.core.limits import Limits, env_variable
from sharecore.core.results import TrainResult
from sharecore.runs.codec import TooLarge, check_state, check_unpacked_sizes, decode, decode_final_loss, encode
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
from sharecore.runs.storecaps import DAY, MB, ROW_BYTES, StoreCaps, quoted_labels
from sharecore.runs.storefile import DATA_DIR_VARIABLE, FILE_NAME, PAGE_TIMEOUT_SECONDS, StoreUnavailable
from sharecore.runs.storetables import Connection, reporting_store_errors

# runs() marks its workspace as used at most this often, so that listing stays a read.
_TOUCH_EVERY_SECONDS = 60.0


class RunStore(StoreCaps):
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
            ValueError: for a label without a visible character, a run too large to keep even without its
                weights, or a workspace whose pinned runs leave no room for it.
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
        if row["bytes"] > self.max_workspace_bytes:
            raise ValueError(
                f"This run takes {row['bytes'] / MB:.1f} MiB, more than the {self.max_workspace_bytes / MB:.1f} MiB "
                f"one browser's runs may take together, so it was not kept. Record less often, or raise the cap "
                f"with {env_variable('workspace_mb')}."
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
            over_quota = self._evict_for_quota(db, workspace, keep=run_id)
            self._touch(db, workspace, now)
            self._expire(db, now)
            elsewhere = self._evict_for_bytes(db, workspace, keep=run_id)
            self._drop_empty_lists(db)  # lists the eviction emptied
        mine = [label for ws, label in [*evicted, *over_quota, *elsewhere] if ws == workspace]
        others = sum(1 for ws, _ in elsewhere if ws != workspace)
        if evicted:
            notes.append(
                f"This workspace keeps {self.max_runs_per_workspace} runs, so its oldest unpinned run "
                f"{quoted_labels(label for _, label in evicted)} was removed. Pin a run to keep it."
            )
        if over_quota:
            notes.append(self._quota_note(over_quota))
        if elsewhere:
            notes.append(
                f"The server keeps {self.max_bytes / MB:.0f} MiB of runs, so {len(elsewhere)} older unpinned "
                f"run(s) were removed ({quoted_labels(label for ws, label in elsewhere if ws == workspace) or 'none of yours'}): "
                "a save makes room from its own browser's oldest unpinned runs first."
            )
        return SaveReport(
            run_id=run_id,
            evicted=tuple(mine),
            evicted_elsewhere=others,
            weights_dropped=dropped,
            notes=tuple(notes),
        )

    @reporting_store_errors
    def adopt(self, workspace: str, run_id: str, label: str | None = None) -> SaveReport:
        """Adds a shared run to `workspace`'s list (a reference: the run is stored once).

        Args:
            workspace: the adopting browser's key.
            run_id: the shared run's id.
            label: its label in this list; defaults to the label it was saved with.

        The run counts against this workspace's `max_workspace_bytes` as its own runs do (this list keeps
        it alive), and its entry against `max_bytes` as `ROW_BYTES`.

        Returns:
            A `SaveReport` (what the caps removed); adopting a run already listed changes nothing.

        Raises:
            UnknownRun: if no run has this id.
            ValueError: if the workspace's pinned runs leave no room for it.
        """
        workspace = check_workspace(workspace)
        run_id = check_run_id(run_id)
        now = time.time()
        with self._write(timeout=PAGE_TIMEOUT_SECONDS) as db:  # a share link's page waits on it as it loads
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
            over_quota = self._evict_for_quota(db, workspace, keep=run_id)
            self._touch(db, workspace, now)
            self._expire(db, now)
            elsewhere = self._evict_for_bytes(db, workspace, keep=run_id)
            self._drop_empty_lists(db)  # lists the eviction emptied
        notes = []
        if evicted:
            notes.append(
                f"This workspace keeps {self.max_runs_per_workspace} runs, so its oldest unpinned run "
                f"{quoted_labels(label for _, label in evicted)} was removed. Pin a run to keep it."
            )
        if over_quota:
            notes.append(self._quota_note(over_quota))
        mine = [label for ws, label in [*evicted, *over_quota, *elsewhere] if ws == workspace]
        others = sum(1 for ws, _ in elsewhere if ws != workspace)
        if elsewhere:
            notes.append(
                f"The server keeps {self.max_bytes / MB:.0f} MiB of runs, so {len(elsewhere)} older unpinned "
                f"run(s) were removed."
            )
        return SaveReport(run_id=run_id, evicted=tuple(mine), evicted_elsewhere=others, notes=tuple(notes))

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
            check_unpacked_sizes(row, Limits.from_env())
        except TooLarge as err:
            raise ValueError(
                f"Run {run_id!r} ('{row['label']}') is kept, but {err}. It was probably altered in the store, or "
                "kept by a server with higher caps. Delete it from your list; other runs are not affected."
            ) from None
        except ValueError as err:  # metadata that cannot be read: damage, never unpacked to find out more
            raise ValueError(
                f"Run {run_id!r} ('{row['label']}') is kept but its records could not be read ({str(err)[:200]}). "
                "Delete it from your list; other runs are not affected."
            ) from None
        try:
            result = decode(row)
        except Exception as err:  # any damage to a row's data: Parquet, zip, JSON or the spec's checks
            raise ValueError(
                f"Run {run_id!r} ('{row['label']}') is kept but its records could not be read "
                f"({type(err).__name__}: {str(err)[:200]}). Delete it from your list; other runs are not affected."
            ) from None
        problem = None
        if result.state is not None:
            try:
                check_state(result.state, result.steps_done)
            except ValueError as err:
                result = dataclasses.replace(result, state=None)
                problem = (
                    f"Run '{row['label']}' opens, but cannot be continued: {err}. Its state was probably altered in "
                    "the store; train it again from the start to carry it on."
                )
        return StoredRun(
            id=run_id,
            workspace=entry["workspace"] if entry else row["owner"],
            label=entry["label"] if entry else row["label"],
            pinned=bool(entry["pinned"]) if entry else False,
            created=row["created"],
            preset=row["preset"],
            result=result,
            problem=problem,
        )

    @reporting_store_errors
    def total_bytes(self) -> int:
        """What the store takes as the size cap counts it: every run's bytes, and `ROW_BYTES` per list entry and workspace."""
        with self._read() as db:
            return self._used_bytes(db)

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

        A workspace's pinned runs take at most `max_pinned_bytes`, and the pinned runs of all workspaces
        at most half of `max_bytes`: the other half always has room for new runs.

        Raises:
            UnknownRun: if the workspace does not list this run.
            ValueError: if pinning it would go over either cap.
        """
        self._change(
            workspace,
            run_id,
            "UPDATE entries SET pinned = ? WHERE workspace = ? AND run_id = ?",
            int(bool(pinned)),
            check=self._check_pin if pinned else None,
        )

    @reporting_store_errors
    def delete(self, workspace: str, run_id: str) -> None:
        """Removes the run from this workspace's list (and from the server once no list holds it).

        Raises:
            UnknownRun: if the workspace does not list this run.
        """
        self._change(workspace, run_id, None, None)

    @reporting_store_errors
    def revoke(self, workspace: str, run_id: str) -> str:
        """Withdraws the run's share link: the run gets a new id, and every other list that added it loses it.

        A share link is a loan, not a copy: a viewer's list holds a reference to the owner's run, so
        revoking takes the run out of every list but the owner's. A viewer's page that has the run open
        keeps drawing it until that session ends; the old link finds nothing from then on.

        Args:
            workspace: the workspace that saved the run (and still lists it).
            run_id: the run's current id.

        Returns:
            The run's new id (its new share link, for the owner to hand out again if they wish).

        Raises:
            UnknownRun: if `workspace` did not save this run or no longer lists it.
        """
        workspace = check_workspace(workspace)
        run_id = check_run_id(run_id)
        new_id = new_key()
        with self._write() as db:
            run = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            listed = db.execute(
                "SELECT 1 FROM entries WHERE workspace = ? AND run_id = ?", (workspace, run_id)
            ).fetchone()
            if run is None or run["owner"] != workspace or listed is None:
                raise UnknownRun(
                    f"Run {run_id!r} was not saved by this browser (or is no longer in its list), so its link cannot "
                    "be revoked here: only the browser that saved a run may revoke its share link."
                )
            # Every column but the id (and PostgreSQL's stand-in for SQLite's rowid, which it numbers itself).
            columns = [name for name in run.keys() if name not in ("id", "rowid")]  # noqa: SIM118 - a row iterates values
            db.execute(
                f"INSERT INTO runs (id, {', '.join(columns)}) VALUES (?, {', '.join('?' * len(columns))})",
                (new_id, *(run[name] for name in columns)),
            )
            db.execute("UPDATE entries SET run_id = ? WHERE workspace = ? AND run_id = ?", (new_id, workspace, run_id))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))  # the other lists' entries go with it (cascade)
            self._drop_empty_lists(db)
            self._touch(db, workspace, time.time())
        return new_id

    def _change(
        self,
        workspace: str,
        run_id: str,
        sql: str | None,
        value: Any,
        then: tuple[tuple[str, tuple], ...] = (),
        check: Callable[[Connection, str, str], None] | None = None,
    ) -> None:
        """Runs `sql` with (value, workspace, run_id), or removes the entry (`sql` None), then the statements
        `then`, in one transaction, if the workspace lists the run and `check(db, workspace, run_id)` passes."""
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
            if check is not None:
                check(db, workspace, run_id)
            now = time.time()
            if sql is None:
                self._remove_entry(db, workspace, run_id)
            else:
                db.execute(sql, (value, workspace, run_id))
            for statement, params in then:
                db.execute(statement, params)
            self._touch(db, workspace, now)
            if sql is None:
                self._expire(db, now)  # a list left empty holds nothing: its row goes now


__all__ = [
    "DATA_DIR_VARIABLE",
    "DAY",
    "FILE_NAME",
    "MAX_LABEL_CHARS",
    "MB",
    "ROW_BYTES",
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
