"""The run store's caps: what one browser and the whole store may keep, and which runs make room.

`sharecore.runs.store.RunStore` is a `StoreCaps`, made by `StoreCaps.from_env` or with caps of its own; the
SQL here runs on the SQLite file and on PostgreSQL alike.

Caps keep a small server's disk in bounds, and no one browser can take the store over (a new
workspace costs nothing: a browser without the cookie is a new one):

- a workspace keeps at most ``max_runs_per_workspace`` runs and ``max_workspace_bytes`` bytes (the
  runs it lists, adopted ones too: each keeps its run alive); its own oldest unpinned runs make room;
- its pinned runs take at most ``max_pinned_bytes``, and the pinned runs of all workspaces at most
  half of ``max_bytes``, so pinning can never leave the store without room for a new run;
- the whole store takes at most ``max_bytes``, counting every row a visitor can create (each list
  entry, workspace, room and hand-in as `ROW_BYTES`). A save that goes over removes the saving workspace's own
  oldest unpinned runs first; only then the runs of the workspace that holds the most bytes,
  oldest first, never a pinned run;
- a workspace with no runs is removed, and one that only lists runs others saved (share links it
  opened), none pinned, is removed with its list after ``visitor_days`` unused;
- one run takes at most ``max_run_bytes`` (a larger run is kept without its weights and state, so it
  cannot be continued).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from sharecore.core import settings
from sharecore.core.limits import env_variable
from sharecore.runs.storefile import DATA_DIR_VARIABLE, FILE_NAME
from sharecore.runs.storeserver import DATABASE_URL_VARIABLE, is_database_url, shown_url
from sharecore.runs.storetables import Connection, StoreTables

MB = 2**20
# The condition on a workspaces row `w` of a list of share-link visits only: no run it saved, none pinned.
_VISITOR_ONLY = (
    "NOT EXISTS (SELECT 1 FROM entries e JOIN runs r ON r.id = e.run_id "
    "WHERE e.workspace = w.key AND (r.owner = w.key OR e.pinned = 1))"
)
DAY = 86_400.0
# What one list entry or workspace row counts as under `max_bytes`: its keys, label and index entries
# (about 150 bytes in SQLite), rounded up. A share link opened without a cookie costs this, not nothing.
ROW_BYTES = 256


class StoreCaps(StoreTables):
    """The tables of `StoreTables` with caps on count and size, and the evictions that keep them (see the module)."""

    def __init__(
        self,
        where: str | Path,
        *,
        max_runs_per_workspace: int = 30,
        max_bytes: int = 300 * MB,
        max_run_bytes: int = 8 * MB,
        max_workspace_bytes: int = 40 * MB,
        max_pinned_bytes: int = 16 * MB,
        visitor_days: int = 7,
    ) -> None:
        """Opens (or creates) the store at `where`: a SQLite file (its folder is created if missing) or a database.

        Args:
            where: the SQLite file, e.g. ``.sharecore-data/runs.sqlite3``, or a PostgreSQL server's URL,
                ``postgresql://USER@HOST:PORT/DATABASE`` (its tables are made if missing).
            max_runs_per_workspace: runs one workspace keeps; its oldest unpinned run makes room.
            max_bytes: bytes the store may take, runs and every entry and workspace (`ROW_BYTES`) together;
                the saving workspace's own oldest unpinned runs make room first (see the module's docstring).
            max_run_bytes: bytes one run may take; a larger run is kept without weights and state.
            max_workspace_bytes: bytes the runs one workspace lists may take; its own oldest unpinned
                runs make room.
            max_pinned_bytes: bytes the pinned runs of one workspace may take; a pin beyond it is refused.
            visitor_days: days a workspace that lists only runs others saved, none pinned, is kept unused.

        Raises:
            ValueError: for a cap that is not a whole number >= 1.
            StoreUnavailable: (a ValueError) for a folder that cannot be made or written, or a database server
                that cannot be reached or used, saying how to fix it.
        """
        for name, value in (
            ("max_runs_per_workspace", max_runs_per_workspace),
            ("max_bytes", max_bytes),
            ("max_run_bytes", max_run_bytes),
            ("max_workspace_bytes", max_workspace_bytes),
            ("max_pinned_bytes", max_pinned_bytes),
            ("visitor_days", visitor_days),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RunStore {name} must be a whole number >= 1. Received: {name}={value!r}")
        self.max_runs_per_workspace = max_runs_per_workspace
        self.max_bytes = max_bytes
        self.max_run_bytes = max_run_bytes
        self.max_workspace_bytes = max_workspace_bytes
        self.max_pinned_bytes = max_pinned_bytes
        self.visitor_seconds = visitor_days * DAY
        self._touched: dict[str, float] = {}
        super().__init__(where)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The store on ``$SHARECORE_DATABASE_URL`` if set, else in ``$SHARECORE_DATA_DIR`` (default
        ``./.sharecore-data``), caps from the environment.

        ``SHARECORE_KEPT_RUNS`` sets the runs one workspace keeps (default 30) and
        ``SHARECORE_STORE_MB`` the MiB all runs may take (default 300), ``SHARECORE_WORKSPACE_MB`` the MiB
        one workspace's runs may take (default 40), ``SHARECORE_PINNED_MB`` the MiB its pinned runs may
        take (default 16) and ``SHARECORE_VISITOR_DAYS`` how long a list of share-link visits only is
        kept unused (default 7).

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
            max_workspace_bytes=int(settings.read("SHARECORE_WORKSPACE_MB", environ)) * MB,
            max_pinned_bytes=int(settings.read("SHARECORE_PINNED_MB", environ)) * MB,
            visitor_days=int(settings.read("SHARECORE_VISITOR_DAYS", environ)),
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
        removed: list[tuple[str, str]] = []
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

    def _quota_note(self, removed: list[tuple[str, str]]) -> str:
        return (
            f"This browser's runs may take {self.max_workspace_bytes / MB:.0f} MiB together, so its oldest unpinned "
            f"run(s) {quoted_labels(label for _, label in removed)} were removed. Pin a run to keep it."
        )

    @staticmethod
    def _held_bytes(db: Connection, workspace: str, *, pinned_only: bool = False) -> int:
        """What the runs `workspace` lists take (only its pinned ones with `pinned_only`); entries as `ROW_BYTES`."""
        size, count = db.execute(
            "SELECT coalesce(sum(r.bytes), 0), count(*) FROM entries e JOIN runs r ON r.id = e.run_id "
            f"WHERE e.workspace = ?{' AND e.pinned = 1' if pinned_only else ''}",
            (workspace,),
        ).fetchone()
        return size if pinned_only else size + ROW_BYTES * count

    @staticmethod
    def _used_bytes(db: Connection) -> int:
        """What the size cap counts: every run's bytes, and every entry, workspace, room and hand-in row as
        `ROW_BYTES` (whatever a visitor can make costs room)."""
        runs, rows = db.execute(
            "SELECT (SELECT coalesce(sum(bytes), 0) FROM runs), "
            "(SELECT count(*) FROM entries) + (SELECT count(*) FROM workspaces) "
            "+ (SELECT count(*) FROM rooms) + (SELECT count(*) FROM handins)"
        ).fetchone()
        return runs + ROW_BYTES * rows

    @staticmethod
    def _oldest_unpinned(db: Connection, workspace: str, keep: str) -> Any:
        return db.execute(
            "SELECT run_id, label FROM entries WHERE workspace = ? AND pinned = 0 AND run_id != ? "
            "ORDER BY added, rowid LIMIT 1",
            (workspace, keep),
        ).fetchone()

    def _evict_for_quota(self, db: Connection, workspace: str, keep: str) -> list[tuple[str, str]]:
        """Removes the workspace's own oldest unpinned entries until its runs fit `max_workspace_bytes`."""
        removed: list[tuple[str, str]] = []
        while (held := self._held_bytes(db, workspace)) > self.max_workspace_bytes:
            oldest = self._oldest_unpinned(db, workspace, keep)
            if oldest is None:
                pinned = self._held_bytes(db, workspace, pinned_only=True)
                raise ValueError(
                    f"This browser's runs may take {self.max_workspace_bytes / MB:.1f} MiB together and they would "
                    f"take {held / MB:.1f} MiB ({pinned / MB:.1f} MiB of it pinned), so the run was not kept. "
                    f"Unpin or delete a run, then save again (or raise the cap with {env_variable('workspace_mb')})."
                )
            self._remove_entry(db, workspace, oldest["run_id"])
            removed.append((workspace, oldest["label"]))
        return removed

    def _evict_for_bytes(self, db: Connection, workspace: str, keep: str) -> list[tuple[str, str]]:
        """Makes the store fit `max_bytes`: the saving workspace's own oldest unpinned entries first, then
        whole runs that no list has pinned, those of the workspace holding the most bytes first.

        Returns (workspace, label) of each removed entry or run, the workspace being the saver's when it listed it.
        """
        removed: list[tuple[str, str]] = []
        while self._used_bytes(db) > self.max_bytes:
            own = self._oldest_unpinned(db, workspace, keep)
            if own is not None:
                self._remove_entry(db, workspace, own["run_id"])
                removed.append((workspace, own["label"]))
                continue
            # Then lists of share-link visits only (no run of their own, none pinned), least recently used first:
            # they lose nothing that the owners' lists do not keep, and a flood of visits makes room from itself.
            visitor = db.execute(
                f"SELECT w.key FROM workspaces w WHERE w.key != ? AND {_VISITOR_ONLY} ORDER BY w.last_used LIMIT 1",
                (workspace,),
            ).fetchone()
            if visitor is not None:
                db.execute("DELETE FROM entries WHERE workspace = ?", (visitor["key"],))
                db.execute("DELETE FROM workspaces WHERE key = ?", (visitor["key"],))
                continue
            # Of the others, the biggest list gives first (one browser filling its quota pays for it before
            # anyone else), the least recently used among equals, oldest run first within it.
            victim = db.execute(
                """
                WITH held AS (
                    SELECT e.workspace AS key, sum(x.bytes) AS bytes
                    FROM entries e JOIN runs x ON x.id = e.run_id GROUP BY e.workspace
                )
                SELECT r.id, r.owner, r.label,
                       (SELECT max(h.bytes) FROM entries e JOIN held h ON h.key = e.workspace
                        WHERE e.run_id = r.id) AS biggest,
                       (SELECT max(coalesce(w.last_used, 0)) FROM entries e LEFT JOIN workspaces w ON w.key = e.workspace
                        WHERE e.run_id = r.id) AS used
                FROM runs r
                WHERE r.id != ? AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.run_id = r.id AND e.pinned = 1)
                ORDER BY biggest DESC, used, r.created LIMIT 1
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
            db.execute("DELETE FROM runs WHERE id = ?", (victim["id"],))  # its entries go with it (cascade)
            removed.append((victim["owner"], victim["label"]))
        return removed

    def _expire(self, db: Connection, now: float) -> None:
        """Removes workspaces that hold nothing: those with no runs at once, and those that only list runs
        others saved, none pinned, after `visitor_seconds` unused (with their lists: share links opened
        without a cookie leave nothing behind for good)."""
        db.execute(
            f"DELETE FROM entries WHERE workspace IN (SELECT w.key FROM workspaces w WHERE w.last_used < ? AND {_VISITOR_ONLY})",
            (now - self.visitor_seconds,),
        )
        db.execute("DELETE FROM runs WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.run_id = runs.id)")
        self._drop_empty_lists(db)

    @staticmethod
    def _drop_empty_lists(db: Connection) -> None:
        db.execute(
            "DELETE FROM workspaces WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.workspace = workspaces.key)"
        )

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

    def _check_pin(self, db: Connection, workspace: str, run_id: str) -> None:
        """Refuses a pin over `max_pinned_bytes` (this workspace) or half of `max_bytes` (all workspaces)."""
        entry = db.execute(
            "SELECT e.pinned, e.label, r.bytes FROM entries e JOIN runs r ON r.id = e.run_id "
            "WHERE e.workspace = ? AND e.run_id = ?",
            (workspace, run_id),
        ).fetchone()
        if entry["pinned"]:
            return
        size, label = entry["bytes"], entry["label"]
        mine = self._held_bytes(db, workspace, pinned_only=True)
        if mine + size > self.max_pinned_bytes:
            raise ValueError(
                f"This browser's pinned runs may take {self.max_pinned_bytes / MB:.1f} MiB together; they take "
                f"{mine / MB:.1f} MiB and '{label}' takes {size / MB:.1f} MiB, so it was not pinned. Unpin another "
                f"run first (or raise the cap with {env_variable('pinned_mb')})."
            )
        everyone = db.execute(
            "SELECT coalesce(sum(bytes), 0) FROM runs WHERE id IN (SELECT run_id FROM entries WHERE pinned = 1)"
        ).fetchone()[0]
        pinned_elsewhere = db.execute("SELECT 1 FROM entries WHERE run_id = ? AND pinned = 1", (run_id,)).fetchone()
        if not pinned_elsewhere and everyone + size > self.max_bytes // 2:
            raise ValueError(
                f"Pinned runs of all browsers may take half of the {self.max_bytes / MB:.0f} MiB the server keeps, "
                f"so that new runs always have room; they take {everyone / MB:.1f} MiB, so '{label}' was not "
                f"pinned. Unpin a run of yours, or ask whoever runs the server to raise {env_variable('store_mb')}."
            )


def quoted_labels(labels: Any) -> str:
    """The labels in quotes, for a message: 'a', 'b'."""
    return ", ".join(f"'{label}'" for label in labels)
