"""The run store when its disk or its lock fails: a full disk says what to do and deleting still makes room;
a store another process holds locked answers a page within seconds, with a message."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sharecore.runs.store import RunStore, StoreUnavailable, new_key
from sharecore.runs.storefile import PAGE_TIMEOUT_SECONDS
from tests.support.store import hand_made

ROOT = Path(__file__).resolve().parents[2]

# In a process of its own (the limit is the process's): a store of four runs, then no file may grow past its
# size (RLIMIT_FSIZE, as a full disk would refuse the write): saves until one is refused, then a delete; then
# the limit goes (space was freed) and a save is kept again.
_FULL_DISK = """
import json, os, resource, signal, sys
sys.path.insert(0, {root!r})
from tests.support.store import hand_made
from sharecore.runs.store import RunStore, new_key
store = RunStore({path!r})
ws = new_key()
ids = [store.save(ws, hand_made(i, weight_values=20_000), f"run {{i}}").run_id for i in range(4)]
limit = os.path.getsize({path!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
out = {{}}
def attempt(name, call):
    try:
        call()
        out[name] = "ok"
    except ValueError as err:
        out[name] = str(err)
def fill():
    for i in range(20):
        store.save(ws, hand_made(10 + i, weight_values=20_000), "more")
attempt("save", fill)
attempt("delete", lambda: store.delete(ws, ids[0]))
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
attempt("save with room again", lambda: store.save(ws, hand_made(5, weight_values=20_000), "after"))
out["labels"] = sorted(r.label for r in store.runs(ws))
print(json.dumps(out))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ as Linux has them")
def test_a_full_disk_says_what_to_do_and_deleting_a_run_still_makes_room(tmp_path):
    path = tmp_path / "runs.sqlite3"
    script = _FULL_DISK.format(root=str(ROOT), path=str(path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    refused = out["save"]
    assert "refused a write" in refused and "free space" in refused and "SHARECORE_DATA_DIR" in refused, refused
    assert "Restart the server: it sets" not in refused
    assert out["delete"] == "ok", out["delete"]
    assert out["save with room again"] == "ok", out["save with room again"]
    assert "run 0" not in out["labels"] and "after" in out["labels"] and "run 3" in out["labels"], out["labels"]


@pytest.fixture
def locked_store(tmp_path):
    """A store with one run, then held locked by another connection (as another process or a backup would)."""
    store = RunStore(tmp_path / "runs.sqlite3")
    ws = new_key()
    run_id = store.save(ws, hand_made(), "kept").run_id
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")  # in WAL mode, readers wait only for this
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE workspaces SET last_used = last_used")
    yield store, ws, run_id
    holder.execute("ROLLBACK")
    holder.close()


def test_a_locked_store_answers_a_read_within_the_page_timeout_with_a_message(locked_store):
    store, ws, run_id = locked_store
    assert PAGE_TIMEOUT_SECONDS <= 2
    for read in (lambda: store.runs(ws), lambda: store.load(run_id), lambda: store.adopt(new_key(), run_id)):
        with pytest.raises(StoreUnavailable, match="Another process holds it locked.*try again in a moment") as caught:
            read()
        assert "Restart" not in str(caught.value)


def test_a_deleted_runs_room_is_used_again_without_the_file_growing(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    ws = new_key()
    ids = [store.save(ws, hand_made(i, weight_values=20_000), f"run {i}").run_id for i in range(4)]
    size = store.path.stat().st_size  # every call's connection closes: SQLite has folded its journal in
    store.delete(ws, ids[0])
    report = store.save(ws, hand_made(9, weight_values=20_000), "in its place")
    run_bytes = next(r.bytes for r in store.runs(ws) if r.id == report.run_id)
    # A page or two for the list's own rows, not the run's ~250 kB again.
    assert store.path.stat().st_size - size < run_bytes // 10, (size, store.path.stat().st_size, run_bytes)
