"""The run store when its disk, its lock or a row fails: a full disk says what to do and deleting still makes
room; a store another process holds locked answers a page within seconds, with a message; a row altered in the
file (a blob that would unpack to a gigabyte, a state that cannot be continued) is a message, never unpacked."""

from __future__ import annotations

import dataclasses
import io
import json
import sqlite3
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sharecore.runs.codec import _arrays_bytes, _frame_bytes
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


# ----------------------------------------------------------------------------- rows altered in the file
def npz_bomb(unpacked: int) -> bytes:
    """A valid .npz of one float64 array of `unpacked` bytes of zeros, deflated to about unpacked / 1000.

    Written by hand (one full-flush deflate block repeated), as compressing a gigabyte would take seconds.
    """
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (unpacked // 8,)})
    head, chunk = header.getvalue(), bytes(2**20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(chunk) + deflate.flush(
        zlib.Z_FULL_FLUSH
    )  # the same bytes for every chunk after a full flush
    data = first + block * (unpacked // len(chunk)) + deflate.flush()
    crc = zlib.crc32(head)
    for _ in range(unpacked // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    size, name = len(head) + unpacked, b"a0.npy"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0) + name
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0, 0, 0, 0, 0, 0
        )
        + name
    )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


def test_the_bomb_is_a_real_npz_of_what_it_says():
    small = npz_bomb(2**24)
    with np.load(io.BytesIO(small)) as archive:
        assert archive["a0"].nbytes == 2**24 and not archive["a0"].any()


def alter(store: RunStore, run_id: str, column: str, value: bytes) -> None:
    """Writes `value` into a run's column, as someone with the file could."""
    with sqlite3.connect(store.path) as db:
        db.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id))


def test_a_one_mib_weights_blob_that_unpacks_to_a_gib_is_refused_before_anything_is_allocated(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    ws = new_key()
    run_id = store.save(ws, hand_made(), "bombed").run_id
    bomb = npz_bomb(2**30)
    assert len(bomb) < 1.1 * 2**20
    alter(store, run_id, "weights", bomb)
    tracemalloc.start()
    try:
        with pytest.raises(
            ValueError, match=r"'bombed'\) is kept, but its weights would unpack to 1024.0 MiB, more than"
        ):
            store.load(run_id)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, peak  # the blob itself and the row, never the gigabyte
    assert [r.label for r in store.runs(ws)] == ["bombed"]  # the list goes on; the run can be deleted
    store.delete(ws, run_id)


def test_a_header_that_claims_more_than_its_member_holds_is_counted_at_its_claim(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    run_id = store.save(new_key(), hand_made(), "liar").run_id
    # 16 bytes of data under a header that says 2**27 float64s: NumPy would allocate the gigabyte first.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2**27,)})
    liar = io.BytesIO()
    with zipfile.ZipFile(liar, "w") as archive:
        archive.writestr("a0.npy", header.getvalue() + bytes(16))
    alter(store, run_id, "state", liar.getvalue())
    with pytest.raises(ValueError, match="its state would unpack to 1024.0 MiB"):
        store.load(run_id)


def test_a_record_frame_with_more_rows_than_the_caps_allow_is_refused_naming_the_caps(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARECORE_MAX_RECORDED_ROWS", "100")
    monkeypatch.setenv("SHARECORE_MAX_STEPS", "10")
    store = RunStore(tmp_path / "runs.sqlite3")
    run_id = store.save(new_key(), hand_made(), "long").run_id
    store.load(run_id)  # a run within the caps opens
    rows = 100 + 4 * 11 + 1  # one row more than max_recorded_rows + 4 x (max_steps + 1)
    frame = pd.DataFrame({"step": np.zeros(rows, np.int64), "variant": ["tied"] * rows, "loss": np.ones(rows)})
    alter(store, run_id, "history", _frame_bytes(frame))
    with pytest.raises(ValueError, match=f"its history records would unpack to {rows} rows.*\\(144 rows\\)"):
        store.load(run_id)


@pytest.mark.parametrize(
    ("tamper", "said"),
    [
        (
            lambda s: dataclasses.replace(s, rng={"bit_generator": "PCG64", "state": "rewound"}),
            "not a NumPy PCG64 state",
        ),
        (lambda s: dataclasses.replace(s, steps_done=10**9), "steps were done, but the run did 2"),
        (lambda s: dataclasses.replace(s, arrays={**s.arrays, "tied/var/0": np.array(["x"])}), "holds <U1 values"),
        (lambda s: dataclasses.replace(s, arrays={**s.arrays, "tied/var/0": np.ones(2, np.complex64)}), "complex64"),
        (lambda s: dataclasses.replace(s, arrays={"../../etc": np.ones(2)}), "not a variable's name"),
    ],
)
def test_an_altered_state_opens_the_run_without_it_and_says_why_it_cannot_be_continued(tmp_path, tamper, said):
    store = RunStore(tmp_path / "runs.sqlite3")
    original = hand_made()
    run_id = store.save(new_key(), original, "tampered").run_id
    state = tamper(original.state)
    alter(store, run_id, "state", _arrays_bytes(state.arrays, {"steps_done": state.steps_done, "rng": state.rng}))
    stored = store.load(run_id)
    assert stored.result.state is None and stored.result.history.equals(store.load(run_id).result.history)
    assert stored.problem is not None and said in stored.problem and "cannot be continued" in stored.problem
    assert store.load(store.save(new_key(), original, "intact").run_id).problem is None
