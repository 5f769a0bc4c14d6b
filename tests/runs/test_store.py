"""The run store: every field of a run comes back, workspaces stay apart, caps evict as they say, damage is survived."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import sharecore
from sharecore import TrainConfig
from sharecore.core.results import TrainResult
from sharecore.runs.codec import STORED_FIELDS
from sharecore.runs.store import (
    MAX_LABEL_CHARS,
    ROW_BYTES,
    RunStore,
    StoreUnavailable,
    UnknownRun,
    clean_label,
    new_key,
)
from tests.support.store import assert_results_equal, assert_same, hand_made
from tests.support.users import UNPRIVILEGED_UID, run_unprivileged

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- results to keep
@pytest.fixture(scope="module")
def trained(tiny_run) -> TrainResult:
    """A real run: 5 steps of seed-dense (shared with any other file that trains the same)."""
    return tiny_run("seed-dense", steps=5)


@pytest.fixture
def open_store(store_where) -> Callable[..., RunStore]:
    """`open_store(**caps)`: this test's store (SQLite or PostgreSQL, tests/runs/conftest.py), opened again with these caps."""
    return lambda **caps: RunStore(store_where, **caps)


@pytest.fixture
def store(open_store) -> RunStore:
    return open_store()


def saved_in_order(store: RunStore, workspace: str, labels: list[str], result: TrainResult) -> list[str]:
    ids = []
    for label in labels:
        ids.append(store.save(workspace, result, label).run_id)
        time.sleep(0.002)  # distinct timestamps, so "oldest" is unambiguous
    return ids


# ----------------------------------------------------------------------------- round trip
def test_the_hand_made_result_sets_every_field_away_from_its_default():
    # Otherwise a field that the store forgot would come back as its default and still compare equal.
    result = hand_made()
    for f in dataclasses.fields(TrainResult):
        if f.default is not dataclasses.MISSING:
            assert getattr(result, f.name) != f.default, f"set {f.name} in hand_made()"
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
            value = getattr(result, f.name)
            same = value.equals(default) if isinstance(default, pd.DataFrame) else value == default
            assert not same, f"set {f.name} in hand_made()"


def test_every_field_of_train_result_has_a_place_in_the_store():
    assert sorted(STORED_FIELDS) == sorted(f.name for f in dataclasses.fields(TrainResult))


def test_every_field_of_a_hand_made_result_comes_back_equal(store):
    ws = new_key()
    original = hand_made()
    report = store.save(ws, original, "awkward", preset="seed-mixed")
    kept = store.load(report.run_id)
    assert_results_equal(original, kept.result)
    assert (kept.id, kept.workspace, kept.label, kept.pinned, kept.preset) == (
        report.run_id,
        ws,
        "awkward",
        False,
        "seed-mixed",
    )
    assert abs(kept.created - time.time()) < 60


def test_a_trained_run_comes_back_equal_and_can_continue(store, trained):
    report = store.save(new_key(), trained, "first")
    back = store.load(report.run_id).result
    assert_results_equal(trained, back)
    assert trained.state is None or back.state.steps_done == trained.steps_done


def test_a_result_without_state_comes_back_without_state(store):
    original = dataclasses.replace(hand_made(), state=None)
    back = store.load(store.save(new_key(), original, "no state").run_id).result
    assert back.state is None
    assert_results_equal(original, back)


# ----------------------------------------------------------------------------- lists and workspaces
def test_runs_lists_a_workspace_newest_first_with_its_final_losses(store, trained):
    ws, other = new_key(), new_key()
    ids = saved_in_order(store, ws, ["one", "two", "three"], trained)
    store.save(other, trained, "someone else's")
    listed = store.runs(ws)
    assert [r.label for r in listed] == ["three", "two", "one"]
    assert [r.id for r in listed] == ids[::-1]
    last = trained.history[trained.history.step == trained.history.step.max()]
    expected = dict(zip(last.variant, last.loss, strict=True))
    info = listed[0]
    assert info.final_loss == pytest.approx(expected)
    assert (info.spec_name, info.steps_done, info.dataset) == ("seed-dense", 5, trained.dataset)
    assert store.total_bytes() == 4 * info.bytes + 6 * ROW_BYTES and info.bytes > 0  # 4 runs, 4 entries, 2 lists
    assert info.can_continue == (trained.state is not None) and not info.adopted and not info.pinned
    assert [r.label for r in store.runs(other)] == ["someone else's"]
    assert store.runs(new_key()) == []


def test_another_workspace_cannot_rename_pin_or_delete_a_run(store, trained):
    ws, intruder = new_key(), new_key()
    run_id = store.save(ws, trained, "mine").run_id
    for change in (
        lambda: store.rename(intruder, run_id, "hijacked"),
        lambda: store.pin(intruder, run_id, True),
        lambda: store.delete(intruder, run_id),
    ):
        with pytest.raises(UnknownRun, match="not in this workspace's list"):
            change()
    [info] = store.runs(ws)
    assert (info.label, info.pinned) == ("mine", False)
    assert store.runs(intruder) == []


def test_the_owner_renames_pins_and_deletes_its_run(store, trained):
    ws = new_key()
    keep, drop = saved_in_order(store, ws, ["keep", "drop"], trained)
    store.rename(ws, keep, "  ünïcødé 🧪\tlabel\x1b[31m ")
    store.pin(ws, keep, True)
    store.delete(ws, drop)
    [info] = store.runs(ws)
    assert (info.id, info.label, info.pinned) == (keep, "ünïcødé 🧪 label [31m", True)
    with pytest.raises(UnknownRun, match="deleted or evicted"):
        store.load(drop)
    store.pin(ws, keep, False)
    assert not store.runs(ws)[0].pinned


def test_a_shared_id_loads_from_any_workspace_and_adopting_it_stores_no_copy(store, trained):
    owner, friend = new_key(), new_key()
    run_id = store.save(owner, trained, "look at this").run_id
    assert store.load(run_id).label == "look at this"
    before = store.total_bytes()
    store.adopt(friend, run_id)
    store.adopt(friend, run_id)  # twice changes nothing
    assert store.total_bytes() == before + 2 * ROW_BYTES  # the friend's entry and list, not a copy
    [info] = store.runs(friend)
    assert (info.id, info.label, info.adopted) == (run_id, "look at this", True)
    store.rename(friend, run_id, "their idea")
    assert store.load(run_id, workspace=friend).label == "their idea"
    assert store.load(run_id).label == "look at this"  # the owner's label is the owner's
    store.delete(owner, run_id)
    assert store.load(run_id).workspace == owner  # still kept: the friend lists it
    store.delete(friend, run_id)
    assert store.total_bytes() == 0
    with pytest.raises(UnknownRun):
        store.adopt(friend, run_id)


def test_the_owners_rename_travels_with_the_run_and_a_viewers_rename_stays_the_viewers(store):
    owner, viewer, other = new_key(), new_key(), new_key()
    run_id = store.save(owner, hand_made(), "saved label").run_id
    store.rename(owner, run_id, "Alice: my run")
    # A share link opened in another browser shows the owner's name for the run, and adopting keeps it.
    assert store.load(run_id).label == store.load(run_id, viewer).label == "Alice: my run"
    store.adopt(viewer, run_id)
    store.adopt(other, run_id)
    assert store.runs(viewer)[0].label == "Alice: my run"
    store.rename(viewer, run_id, "the viewer's name")
    store.rename(owner, run_id, "renamed again")
    # A list that has not renamed the run follows the owner; one that has keeps its own name.
    assert store.load(run_id, other).label == store.runs(other)[0].label == "renamed again"
    assert store.load(run_id, viewer).label == store.runs(viewer)[0].label == "the viewer's name"
    assert store.load(run_id, owner).label == store.load(run_id, new_key()).label == "renamed again"
    # A viewer's rename never reaches the owner or a link.
    store.rename(other, run_id, "other's name")
    assert store.load(run_id).label == store.load(run_id, new_key()).label == "renamed again"


@pytest.mark.parametrize(
    "bad_id",
    ["not-an-id", "", "A" * 23, "A" * 25, "A" * 1000, "'; DROP TABLE runs; --", "abc\u202edef" * 3, None, 42],
)
def test_a_mistyped_id_says_the_link_may_be_mistyped(store, trained, bad_id):
    run_id = store.save(new_key(), trained, "kept").run_id
    with pytest.raises(UnknownRun, match="No run with id .* is kept on this server: the link may be mistyped") as err:
        store.load(bad_id)
    assert len(str(err.value)) < 300
    assert store.load(run_id).label == "kept"  # nothing was dropped


def test_a_well_formed_unknown_id_is_an_unknown_run(store):
    unknown = new_key()
    with pytest.raises(KeyError) as err:
        store.load(unknown)
    assert str(err.value).startswith(f"No run with id '{unknown}' is kept on this server")


def test_a_malformed_workspace_key_is_refused_with_a_message(store, trained):
    with pytest.raises(ValueError, match="A workspace key is 24 letters"):
        store.save("../../etc", trained, "x")


# ----------------------------------------------------------------------------- labels
def test_labels_are_one_line_of_text_and_never_empty():
    assert clean_label("lr 0.1 (was 0.01)") == "lr 0.1 (was 0.01)"
    assert clean_label("a\nb\u2028c\x00d") == "a b c d"
    assert clean_label("日本語 ✓") == "日本語 ✓"
    for empty in ("", "   ", "\x00\n\t"):
        with pytest.raises(ValueError, match="cannot be empty"):
            clean_label(empty)
    with pytest.raises(ValueError, match=f"at most {MAX_LABEL_CHARS} characters"):
        clean_label("x" * (MAX_LABEL_CHARS + 1))
    cut = clean_label("y" * 200, truncate=True)
    assert len(cut) == MAX_LABEL_CHARS and cut.endswith("…")


def test_a_label_that_looks_like_sql_is_kept_as_text(store, trained):
    ws = new_key()
    label = "x'); DELETE FROM runs; --"
    run_id = store.save(ws, trained, label).run_id
    store.rename(ws, run_id, label + " 2")
    assert [r.label for r in store.runs(ws)] == [label + " 2"]
    assert store.total_bytes() > 0


def test_rename_refuses_an_empty_label_and_keeps_the_old_one(store, trained):
    ws = new_key()
    run_id = store.save(ws, trained, "old").run_id
    with pytest.raises(ValueError, match="cannot be empty"):
        store.rename(ws, run_id, " \n ")
    assert store.runs(ws)[0].label == "old"


# ----------------------------------------------------------------------------- caps
def test_the_workspace_cap_evicts_the_oldest_unpinned_run_and_says_which(open_store, trained):
    store = open_store(max_runs_per_workspace=3)
    ws, other = new_key(), new_key()
    store.save(other, trained, "other")
    first, second, _ = saved_in_order(store, ws, ["first", "second", "third"], trained)
    store.pin(ws, first, True)
    report = store.save(ws, trained, "fourth")
    assert report.evicted == ("second",) and report.evicted_elsewhere == 0
    assert "'second' was removed" in report.notes[0]
    assert [r.label for r in store.runs(ws)] == ["fourth", "third", "first"]
    with pytest.raises(UnknownRun):
        store.load(second)
    assert [r.label for r in store.runs(other)] == ["other"]


def test_a_workspace_full_of_pinned_runs_refuses_a_new_run_and_says_how_to_make_room(open_store, trained):
    store = open_store(max_runs_per_workspace=2)
    ws = new_key()
    for run_id in saved_in_order(store, ws, ["a", "b"], trained):
        store.pin(ws, run_id, True)
    bytes_before = store.total_bytes()
    with pytest.raises(ValueError, match="all 2 are pinned.*Unpin or delete one"):
        store.save(ws, trained, "c")
    assert [r.label for r in store.runs(ws)] == ["b", "a"] and store.total_bytes() == bytes_before


def test_the_byte_cap_takes_the_savers_own_oldest_run_first_then_the_least_recently_used_list(tmp_path, open_store):
    result = hand_made()
    probe = RunStore(tmp_path / "probe.sqlite3")
    probe.save(new_key(), result, "x")
    size = probe.total_bytes()  # one run, its entry and its list
    # Room for three lists of one run each: a fourth run makes one go.
    store = open_store(max_bytes=3 * size + size // 2)
    stale, pinned_ws, fresh, newcomer = new_key(), new_key(), new_key(), new_key()
    saved_in_order(store, stale, ["stale old"], result)
    store.pin(pinned_ws, store.save(pinned_ws, result, "pinned").run_id, True)
    time.sleep(0.01)
    saved_in_order(store, fresh, ["fresh old"], result)
    report = store.save(fresh, result, "fresh new")
    # The saver makes room from its own list: nobody else loses a run to it.
    assert report.evicted == ("fresh old",) and report.evicted_elsewhere == 0
    assert "'fresh old'" in report.notes[0] and "its own browser's oldest unpinned runs first" in report.notes[0]
    assert [r.label for r in store.runs(stale)] == ["stale old"]
    # A saver with nothing of its own to give: of two equal lists, the one used least recently gives; never a pin.
    report = store.save(newcomer, result, "newcomer")
    assert report.evicted == () and report.evicted_elsewhere == 1
    assert "none of yours" in report.notes[0]
    assert store.runs(stale) == []
    assert [r.label for r in store.runs(fresh)] == ["fresh new"]
    assert [r.label for r in store.runs(pinned_ws)] == ["pinned"]
    assert store.total_bytes() == 3 * size  # the emptied list's row went too


def test_the_byte_cap_with_only_pinned_runs_refuses_and_changes_nothing(open_store):
    result = hand_made()
    store = open_store(max_bytes=1)
    with pytest.raises(ValueError, match="the new run was not kept"):
        store.save(new_key(), result, "too much")
    assert store.total_bytes() == 0
    roomy = open_store()
    ws = new_key()
    roomy.pin(ws, roomy.save(ws, result, "pinned").run_id, True)
    tight = open_store(max_bytes=roomy.total_bytes() + 10)
    with pytest.raises(ValueError, match=r"pinned runs already take .* Unpin or delete a run"):
        tight.save(new_key(), result, "one more")
    assert [r.label for r in tight.runs(ws)] == ["pinned"]


def test_a_run_over_the_run_cap_is_kept_without_weights_or_refused(open_store):
    big = hand_made(weight_values=100_000)  # 1.2 MB of incompressible float32 weights
    store = open_store(max_run_bytes=2**20)
    report = store.save(new_key(), big, "big")
    assert report.weights_dropped and "kept without weights" in report.notes[0]
    assert "cannot be continued" in report.notes[0]
    back = store.load(report.run_id).result
    assert back.weights == {} and back.state is None
    assert_same(big.history, back.history)
    [info] = store.runs(store.load(report.run_id).workspace)
    assert not info.can_continue and info.bytes < 2**20
    tiny = open_store(max_run_bytes=1000)
    with pytest.raises(ValueError, match="more than the .* MiB one kept run may take, so it was not kept"):
        tiny.save(new_key(), big, "big")


# ----------------------------------------------------------------------------- damage and set-up
def _make_other_schema(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO notes (body) VALUES ('not a run store')")


def _make_wrong_columns(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, blob BLOB)")
        db.execute("PRAGMA user_version = 1")


def _truncate_a_real_store(path: Path) -> None:
    store = RunStore(path)
    for i in range(8):
        store.save(new_key(), hand_made(i, weight_values=2000), f"run {i}")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"this is not a database\x00" * 400),
        lambda p: p.write_bytes(os.urandom(10_000)),
        _truncate_a_real_store,
        _make_other_schema,
        _make_wrong_columns,
    ],
    ids=["garbage text", "random bytes", "truncated", "another schema", "wrong columns"],
)
def test_an_unreadable_store_is_set_aside_and_a_new_one_starts(tmp_path, damage):
    path = tmp_path / "runs.sqlite3"
    damage(path)
    damaged = path.read_bytes()
    store = RunStore(path)
    [aside] = [
        p
        for p in tmp_path.iterdir()
        if p.name.startswith("runs.sqlite3.corrupt-") and not p.name.endswith(("-wal", "-shm"))
    ]
    assert aside.read_bytes() == damaged  # the old runs are still there for someone to rescue
    assert store.problem is not None
    assert "could not be read" in store.problem and str(aside) in store.problem
    assert "Earlier runs are in that file" in store.problem
    ws = new_key()
    run_id = store.save(ws, hand_made(), "after the damage").run_id
    assert store.load(run_id).label == "after the damage"
    assert RunStore(path).problem is None  # the new store opens cleanly


def test_a_folder_where_the_file_should_be_is_not_set_aside_and_says_so(tmp_path):
    (tmp_path / "runs.sqlite3").mkdir()
    with pytest.raises(StoreUnavailable, match="is a folder, where the store's file should be"):
        RunStore(tmp_path / "runs.sqlite3")
    assert [p.name for p in tmp_path.iterdir()] == ["runs.sqlite3"] and (tmp_path / "runs.sqlite3").is_dir()


# Run by another user than the store's owner (tests/support/users.py's UNPRIVILEGED_UID): opens the store,
# lists and loads what it can, tries to keep a run, and prints what happened as JSON.
_OPEN_AS_ANOTHER_USER = """
import json, sys
from sharecore.runs.store import RunStore, StoreUnavailable
from tests.support.store import assert_results_equal, hand_made
path, workspace, run_ids = sys.argv[1], sys.argv[2], sys.argv[3:]
try:
    store = RunStore(path)
except StoreUnavailable as err:
    print(json.dumps({"opened": False, "error": str(err)}))
    sys.exit(0)
for i, run_id in enumerate(run_ids):
    assert_results_equal(hand_made(i), store.load(run_id).result)
out = {"opened": True, "problem": store.problem, "read_only": store.read_only}
out["labels"] = [run.label for run in store.runs(workspace)]
for change, call in [
    ("save", lambda: store.save(workspace, hand_made(), "kept by another user")),
    ("rename", lambda: store.rename(workspace, run_ids[0], "renamed by another user")),
]:
    try:
        call()
        out[change] = "done"
    except StoreUnavailable as err:
        out[change] = str(err)
print(json.dumps(out))
"""


def open_as_another_user(path: Path, workspace: str, run_ids: list[str]) -> dict:
    out = run_unprivileged(
        [sys.executable, "-c", _OPEN_AS_ANOTHER_USER, str(path), workspace, *run_ids], env={"PYTHONPATH": str(ROOT)}
    )
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stdout + out.stderr
    return json.loads(out.stdout)


def kept_by_root(folder: Path) -> tuple[Path, str, list[str]]:
    """A store of two hand-made runs made by this process (root, when the tests that call it run)."""
    path = folder / "runs.sqlite3"
    store = RunStore(path)
    workspace = new_key()
    run_ids = []
    for i, label in enumerate(["first", "second"]):
        run_ids.append(store.save(workspace, hand_made(i), label).run_id)  # the snippet compares with hand_made(i)
        time.sleep(0.002)  # distinct timestamps: the list's order is known
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the file itself, as after a clean shutdown
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path, workspace, run_ids


def test_a_store_file_the_server_may_not_read_stays_where_it_is_and_says_whose_it_is_and_its_mode(open_tmp_path):
    # A backup restored as root with mode 0600, in the server's own folder: today's damage path moved it aside.
    folder = open_tmp_path / "data"
    folder.mkdir()
    path, workspace, run_ids = kept_by_root(folder)
    os.chown(folder, UNPRIVILEGED_UID, UNPRIVILEGED_UID)  # the server may write the folder (and so move the file)
    path.chmod(0o600)
    before = path.read_bytes()
    got = open_as_another_user(path, workspace, run_ids)
    assert not got["opened"]
    error = got["error"]
    assert f"The run store {str(path)!r} cannot be read by this server" in error, error
    assert f"it runs as uid {UNPRIVILEGED_UID}" in error and "the file belongs to uid 0" in error, error
    assert "with mode 0600" in error and "left as it is" in error, error
    assert f"chown -R {UNPRIVILEGED_UID}" in error and "SHARECORE_DATA_DIR" in error, error
    assert sorted(p.name for p in folder.iterdir()) == ["runs.sqlite3"], "nothing was set aside or made"
    assert path.read_bytes() == before
    assert [r.label for r in RunStore(path).runs(workspace)] == ["second", "first"], "every run is still there"


@pytest.mark.parametrize("folder_writable", [True, False], ids=["own-folder", "read-only-folder"])
def test_a_store_the_server_may_read_but_not_write_lists_and_loads_its_runs_and_saving_says_why(
    open_tmp_path, folder_writable
):
    folder = open_tmp_path / "data"
    folder.mkdir(mode=0o755)
    path, workspace, run_ids = kept_by_root(folder)
    path.chmod(0o644)
    if folder_writable:  # else root's 0755 folder: a read-only volume, as far as the server can tell
        os.chown(folder, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
    before = path.read_bytes()
    got = open_as_another_user(path, workspace, run_ids)
    assert got["opened"] and got["labels"] == ["second", "first"]
    assert (
        got["read_only"]
        == f"this server runs as uid {UNPRIVILEGED_UID}, and the file belongs to uid 0 (root) with mode 0644"
    )
    assert got["problem"].startswith(f"The run store {str(path)!r} can be read but not written"), got["problem"]
    assert "new runs are not kept" in got["problem"] and f"chown -R {UNPRIVILEGED_UID}" in got["problem"]
    assert got["save"] == got["problem"] and got["rename"] == got["problem"], got
    assert path.read_bytes() == before
    assert not list(folder.glob("*.corrupt-*"))
    assert [r.label for r in RunStore(path).runs(workspace)] == ["second", "first"], "nothing was changed"


def test_a_healthy_store_reports_no_problem(store):
    assert store.problem is None


def test_a_store_in_a_folder_that_does_not_exist_yet_is_created(tmp_path, trained):
    path = tmp_path / "not" / "yet" / "runs.sqlite3"
    store = RunStore(path)
    run_id = store.save(new_key(), trained, "first").run_id
    assert path.exists() and store.load(run_id).label == "first"


def test_a_row_that_cannot_be_decoded_fails_load_clearly_and_the_list_goes_on(store):
    ws = new_key()
    good, bad = saved_in_order(store, ws, ["good", "bad"], hand_made())
    with store._write() as db:  # the store's own connection: the same SQL on either back end
        db.execute("UPDATE runs SET gradients = ?, final_loss = 'nonsense' WHERE id = ?", (b"\x00garbage", bad))
    with pytest.raises(ValueError, match=r"Run '.*' \('bad'\) is kept but its records could not be read"):
        store.load(bad)
    assert [r.label for r in store.runs(ws)] == ["bad", "good"]
    assert store.runs(ws)[0].final_loss == {}
    assert_results_equal(hand_made(), store.load(good).result)


def test_from_env_reads_the_data_folder_and_caps(tmp_path):
    env = {"SHARECORE_DATA_DIR": str(tmp_path / "data"), "SHARECORE_KEPT_RUNS": "5", "SHARECORE_STORE_MB": "12"}
    store = RunStore.from_env(env)
    assert store.path == tmp_path / "data" / "runs.sqlite3"
    assert (store.max_runs_per_workspace, store.max_bytes) == (5, 12 * 2**20)


def test_from_env_defaults_to_a_folder_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = RunStore.from_env({})
    assert store.path == Path(".sharecore-data") / "runs.sqlite3"
    assert (tmp_path / ".sharecore-data" / "runs.sqlite3").exists()
    assert (store.max_runs_per_workspace, store.max_bytes, store.max_run_bytes) == (30, 300 * 2**20, 8 * 2**20)


@pytest.mark.parametrize("value", ["0", "-3", "many", "1.5", "", "9" * 40])
def test_from_env_names_a_bad_cap_and_its_variable(tmp_path, value):
    env = {"SHARECORE_DATA_DIR": str(tmp_path), "SHARECORE_KEPT_RUNS": value}
    with pytest.raises(ValueError, match="environment variable SHARECORE_KEPT_RUNS must be a whole number >= 1"):
        RunStore.from_env(env)


# ----------------------------------------------------------------------------- concurrency
def test_four_threads_saving_at_once_lose_nothing(open_store):
    store = open_store()
    workspaces = [new_key() for _ in range(4)]
    result = hand_made()
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(ws: str) -> None:
        try:
            barrier.wait()
            for i in range(6):
                run_id = store.save(ws, result, f"run {i}").run_id
                store.rename(ws, run_id, f"renamed {i}")
                store.runs(ws)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(ws,)) for ws in workspaces]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for ws in workspaces:
        assert sorted(r.label for r in store.runs(ws)) == sorted(f"renamed {i}" for i in range(6))
    assert store.total_bytes() == 24 * store.runs(workspaces[0])[0].bytes + 28 * ROW_BYTES  # 24 entries, 4 lists


_PROCESS_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.support.store import hand_made
from sharecore.runs.store import RunStore
store = RunStore({where!r}, max_runs_per_workspace=3)
for i in range(5):
    store.save({own!r}, hand_made(i), f"process run {{i}}")
    store.save({shared!r}, hand_made(i), f"shared run {{i}}")
"""


def test_two_processes_saving_to_one_store_at_once_lose_nothing_and_keep_the_caps(store_where):
    # Each save counts and evicts in its own transaction: were two processes to count the shared
    # workspace at once, both would see room, and it would end over its cap of 3.
    own, shared = [new_key(), new_key()], new_key()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _PROCESS_SCRIPT.format(root=str(ROOT), where=str(store_where), own=ws, shared=shared),
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ws in own
    ]
    for p in processes:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    store = RunStore(store_where, max_runs_per_workspace=3)
    for ws in own:
        assert sorted(r.label for r in store.runs(ws)) == [f"process run {i}" for i in (2, 3, 4)]
    kept = store.runs(shared)
    assert len(kept) == 3, [r.label for r in kept]
    assert {r.label for r in kept} <= {f"shared run {i}" for i in range(5)}
    runs = [*kept, *store.runs(own[0]), *store.runs(own[1])]
    assert store.total_bytes() == sum(r.bytes for r in runs) + (len(runs) + 3) * ROW_BYTES  # 9 entries, 3 lists


# ----------------------------------------------------------------------------- size and speed
def test_a_default_seed_dense_run_takes_under_a_megabyte_and_listing_30_runs_is_fast(tmp_path):
    result = sharecore.train(sharecore.preset("seed-dense"), TrainConfig())
    store = RunStore(tmp_path / "runs.sqlite3")
    ws = new_key()
    report = store.save(ws, result, "default")
    size = store.runs(ws)[0].bytes
    print(f"\nstored bytes of a default seed-dense run: {size:,} (state kept: {result.state is not None})")
    assert size < 2**20
    assert_results_equal(result, store.load(report.run_id).result)
    for i in range(29):
        store.save(ws, result, f"run {i}")
    store.runs(ws)
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        listed = store.runs(ws)
        timings.append(time.perf_counter() - start)
    print(f"runs() with {len(listed)} runs: best {min(timings) * 1000:.1f} ms, worst {max(timings) * 1000:.1f} ms")
    assert len(listed) == 30
    assert min(timings) < 0.05
