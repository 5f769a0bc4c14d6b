"""Workshop rooms in the run store: codes and tokens, handing in and withdrawing, hiding and closing, expiry,
what each side may see, the caps, the schema upgrade of an older store, and the board's figures."""

from __future__ import annotations

import json
import math
import sqlite3
import sys
import time
from pathlib import Path

import pytest

import sharecore
from sharecore.runs.rooms import (
    BOARD_COLUMNS,
    CODE_ALPHABET,
    CODE_LENGTH,
    Rooms,
    UnknownRoom,
    board,
    board_names,
    normal_code,
)
from sharecore.runs.store import ROW_BYTES, RunStore, new_key
from sharecore.runs.storefile import SCHEMA_VERSION
from tests.support import ROOT
from tests.support.store import hand_made
from tests.support.users import run_unprivileged


@pytest.fixture
def store(store_where) -> RunStore:
    """A new store on each back end (tests/runs/conftest.py): rooms live in SQLite and PostgreSQL alike."""
    return RunStore(store_where)


@pytest.fixture
def rooms(store) -> Rooms:
    return Rooms(store)


def _open(rooms: Rooms, exercise: str = "untied-drift"):
    spec = sharecore.preset("seed-dense")
    return rooms.open(new_key(), spec, sharecore.TrainConfig(), preset="seed-dense", exercise=exercise)


def _participant(store: RunStore, n: int = 1, label: str = "my run"):
    """A new workspace with `n` kept runs; returns (workspace, [run ids])."""
    ws = new_key()
    return ws, [store.save(ws, hand_made(i), f"{label} {i}").run_id for i in range(n)]


# ----------------------------------------------------------------------------- codes and tokens
def test_a_room_code_is_six_unambiguous_characters_and_its_token_a_separate_secret(rooms):
    codes = set()
    for _ in range(20):
        room = _open(rooms)
        assert len(room.code) == CODE_LENGTH and set(room.code) <= set(CODE_ALPHABET)
        assert not set(room.code) & set("0O1IL2Z5S8BUV")
        assert len(room.token) == 24 and room.code not in room.token
        codes.add(room.code)
    assert len(codes) == 20
    found = rooms.find(room.code.lower()[:3] + "-" + room.code.lower()[3:])  # as a person types it
    assert found.code == room.code and found.token == "", "the code never hands out the facilitator's token"
    assert rooms.by_token(room.token).code == room.code
    assert found.spec == sharecore.preset("seed-dense") and found.exercise == "untied-drift"


@pytest.mark.parametrize("text", ["", "ABC", "ABCDE0", "ABCDEFG", "<b>x</b>", None])
def test_a_code_that_cannot_be_one_says_what_a_code_looks_like(text):
    with pytest.raises(UnknownRoom, match="is not a room code: a code is 6 letters and digits"):
        normal_code(text)


def test_an_unknown_code_or_token_is_refused_with_a_message(rooms):
    with pytest.raises(UnknownRoom, match="No room has the code ACDEFG now"):
        rooms.find("ACDEFG")
    for token in (new_key(), "not-a-token", None):
        with pytest.raises(UnknownRoom, match="This facilitator link opens no room"):
            rooms.by_token(token)


# ----------------------------------------------------------------------------- hand-ins
def test_a_hand_in_carries_the_name_and_the_label_the_participant_gives_it(store, rooms):
    room = _open(rooms)
    ws, (run,) = _participant(store)
    store.rename(ws, run, "Alice: my run")
    rooms.hand_in(room.code, ws, run, "  Alice  ")
    [h] = rooms.handins(room)
    assert (h.name, h.label, h.run_id, h.hidden) == ("Alice", "Alice: my run", run, False)
    rooms.hand_in(room.code, ws, run, "Alice B")  # again: the new name, not a second row
    assert [(h.name, h.label) for h in rooms.handins(room)] == [("Alice B", "Alice: my run")]


def test_only_a_run_of_ones_own_list_can_be_handed_in(store, rooms):
    room = _open(rooms)
    _, (alices,) = _participant(store)
    mallory = new_key()
    with pytest.raises(ValueError, match="is not in your kept runs"):
        rooms.hand_in(room.code, mallory, alices, "Mallory")
    assert rooms.handins(room) == []


@pytest.mark.parametrize("name", ["", "   ", "x" * 41])
def test_an_empty_or_long_display_name_is_refused(store, rooms, name):
    room = _open(rooms)
    ws, (run,) = _participant(store)
    with pytest.raises(ValueError, match="display name"):
        rooms.hand_in(room.code, ws, run, name)


def test_a_participant_withdraws_only_their_own_hand_in(store, rooms):
    room = _open(rooms)
    alice, (a,) = _participant(store)
    bob, (b,) = _participant(store)
    rooms.hand_in(room.code, alice, a, "Alice")
    rooms.hand_in(room.code, bob, b, "Bob")
    rooms.withdraw(room.code, bob, a)  # not Bob's: nothing happens
    assert [h.name for h in rooms.handins(room)] == ["Alice", "Bob"]
    rooms.withdraw(room.code, alice, a)
    assert [h.name for h in rooms.handins(room)] == ["Bob"]
    assert store.runs(alice)[0].id == a, "withdrawing keeps the run in the participant's list"


def test_participants_see_only_their_own_hand_ins(store, rooms):
    room = _open(rooms)
    alice, (a1, a2) = _participant(store, 2)
    bob, (b,) = _participant(store)
    for run in (a1, a2):
        rooms.hand_in(room.code, alice, run, "Alice")
    rooms.hand_in(room.code, bob, b, "Bob")
    assert [h.run_id for h in rooms.handed_in(room.code, alice)] == [a1, a2]
    assert [h.run_id for h in rooms.handed_in(room.code, bob)] == [b]


def test_hand_ins_do_not_join_the_facilitators_list(store, rooms):
    facilitator = new_key()
    own = store.save(facilitator, hand_made(9), "mine").run_id
    room = rooms.open(facilitator, sharecore.preset("seed-dense"), sharecore.TrainConfig())
    for _ in range(3):
        ws, (run,) = _participant(store)
        rooms.hand_in(room.code, ws, run, "P")
    assert [info.id for info in store.runs(facilitator)] == [own]
    assert len(rooms.handins(room)) == 3


def test_a_run_deleted_from_every_list_leaves_the_board(store, rooms):
    room = _open(rooms)
    ws, (run,) = _participant(store)
    rooms.hand_in(room.code, ws, run, "Alice")
    store.delete(ws, run)
    assert rooms.handins(room) == []


# ----------------------------------------------------------------------------- the facilitator
def test_a_hidden_hand_in_leaves_the_board_and_comes_back(store, rooms):
    room = _open(rooms)
    ws, (run,) = _participant(store)
    rooms.hand_in(room.code, ws, run, "Alice")
    rooms.hide(room.token, run)
    assert rooms.handins(room) == [] and [h.hidden for h in rooms.handins(room, hidden=True)] == [True]
    rooms.hide(room.token, run, hidden=False)
    assert [h.name for h in rooms.handins(room)] == ["Alice"]
    with pytest.raises(UnknownRoom):
        rooms.hide(new_key(), run)  # the code's holders cannot hide: only the token can
    with pytest.raises(KeyError, match="is not handed in"):
        rooms.hide(room.token, new_key())


def test_a_closed_room_takes_no_hand_ins_but_its_board_stays(store, rooms):
    room = _open(rooms)
    alice, (a,) = _participant(store)
    rooms.hand_in(room.code, alice, a, "Alice")
    rooms.close(room.token)
    bob, (b,) = _participant(store)
    with pytest.raises(ValueError, match="is closed"):
        rooms.hand_in(room.code, bob, b, "Bob")
    assert rooms.find(room.code).closed
    assert [h.name for h in rooms.handins(rooms.by_token(room.token))] == ["Alice"]


def test_projecting_is_a_flag_the_participants_room_shows(rooms):
    room = _open(rooms)
    assert not rooms.find(room.code).projected
    rooms.project(room.token)
    assert rooms.find(room.code).projected
    rooms.project(room.token, False)
    assert not rooms.find(room.code).projected


# ----------------------------------------------------------------------------- expiry and caps
def test_a_room_expires_with_its_hand_ins_after_its_hours(store, rooms, monkeypatch):
    room = _open(rooms)
    ws, (run,) = _participant(store)
    rooms.hand_in(room.code, ws, run, "Alice")
    later = time.time() + rooms.hours * 3600 + 1
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(UnknownRoom, match="rooms expire 8 h after"):
        rooms.find(room.code)
    with pytest.raises(UnknownRoom):
        rooms.by_token(room.token)
    assert rooms.purge() == 1
    with store._read() as db:
        assert db.execute("SELECT count(*) FROM handins").fetchone()[0] == 0
    assert store.runs(ws)[0].id == run, "the run stays in its list"


def test_the_server_holds_at_most_max_rooms_open_rooms(store):
    rooms = Rooms(store, max_rooms=2)
    first = _open(rooms)
    _open(rooms)
    with pytest.raises(ValueError, match="at most 2 open rooms"):
        _open(rooms)
    rooms.close(first.token)
    _open(rooms)  # a closed room frees its place


def test_a_room_holds_at_most_max_handins(store):
    rooms = Rooms(store, max_handins=2)
    room = _open(rooms)
    ws, runs = _participant(store, 3)
    rooms.hand_in(room.code, ws, runs[0], "A")
    rooms.hand_in(room.code, ws, runs[1], "A")
    with pytest.raises(ValueError, match="at most 2 hand-ins and is full"):
        rooms.hand_in(room.code, ws, runs[2], "A")
    rooms.hand_in(room.code, ws, runs[1], "B")  # a hand-in again is no new one


def test_the_caps_come_from_the_environment(store):
    rooms = Rooms.from_env(store, {"SHARECORE_ROOM_HOURS": "2", "SHARECORE_MAX_ROOMS": "3"})
    assert (rooms.hours, rooms.max_rooms, rooms.max_handins) == (2, 3, 300)
    with pytest.raises(ValueError, match="SHARECORE_ROOM_HOURS must be a whole number >= 1"):
        Rooms.from_env(store, {"SHARECORE_ROOM_HOURS": "0"})


def test_rooms_and_hand_ins_count_under_the_stores_cap(store, rooms):
    ws, (run,) = _participant(store)
    before = store.total_bytes()
    room = _open(rooms)
    assert store.total_bytes() - before == ROW_BYTES
    rooms.hand_in(room.code, ws, run, "A")
    assert store.total_bytes() - before == 2 * ROW_BYTES


def test_a_hand_in_through_one_store_is_on_the_board_of_another_on_the_same_database(store_where):
    """Two server processes share one store (a PostgreSQL URL, or a file on one machine): what a participant
    hands in through one is on the board that the other serves."""
    one, other = RunStore(store_where), RunStore(store_where)
    room = _open(Rooms(one))
    ws, (run,) = _participant(other)
    Rooms(other).hand_in(room.code, ws, run, "Bob")
    assert [(h.name, h.run_id) for h in Rooms(one).handins(Rooms(one).by_token(room.token))] == [("Bob", run)]


# ----------------------------------------------------------------------------- the schema
def test_a_store_from_before_rooms_is_upgraded_and_keeps_its_runs(tmp_path):
    path = tmp_path / "runs.sqlite3"
    ws = new_key()
    run = RunStore(path).save(ws, hand_made(0), "old run").run_id
    with sqlite3.connect(path) as db:  # back to version 1: no rooms tables
        db.execute("DROP TABLE handins")
        db.execute("DROP TABLE rooms")
        db.execute("PRAGMA user_version = 1")
    for _ in range(2):  # upgrading twice is safe
        store = RunStore(path)
        assert store.problem is None
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [info.id for info in store.runs(ws)] == [run]
    room = _open(Rooms(store))
    Rooms(store).hand_in(room.code, ws, run, "Old")
    assert [h.label for h in Rooms(store).handins(room)] == ["old run"]


def test_a_store_from_before_rooms_that_the_server_may_only_read_still_lists_its_runs(open_tmp_path):
    folder = open_tmp_path / "data"
    folder.mkdir(mode=0o755)  # root's: the server may not write beside the store (a read-only volume)
    path = folder / "runs.sqlite3"
    ws = new_key()
    RunStore(path).save(ws, hand_made(0), "old run")
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE handins")
        db.execute("DROP TABLE rooms")
        db.execute("PRAGMA user_version = 1")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.chmod(0o644)
    before = path.read_bytes()
    snippet = (
        "import json, sys; from sharecore.runs.store import RunStore; store = RunStore(sys.argv[1]); "
        "print(json.dumps([bool(store.read_only), [r.label for r in store.runs(sys.argv[2])]]))"
    )
    out = run_unprivileged([sys.executable, "-c", snippet, str(path), ws], env={"PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout) == [True, ["old run"]]
    assert path.read_bytes() == before, "a store this server may only read is never changed"


# ----------------------------------------------------------------------------- the board
def test_the_board_lists_each_hand_ins_figures_and_what_it_changed_from_the_start(tiny_run, store, rooms):
    start = tiny_run("seed-dense", steps=5)
    faster = tiny_run("seed-dense", steps=5, learning_rate=0.1)
    room = rooms.open(new_key(), start.spec, start.config, preset="seed-dense")
    handins = []
    for name, res in (("Ann", start), ("Ben", faster), ("Ann", start)):
        ws = new_key()
        run = store.save(ws, res, "same label").run_id
        rooms.hand_in(room.code, ws, run, name)
        handins.append(rooms.handins(room)[-1])
    results = {h.run_id: store.load(h.run_id).result for h in handins}
    frame = board(room, handins, results)
    assert list(frame["name"]) == ["Ann", "Ben", "Ann"]
    assert list(frame["differs from the start"]) == ["nothing", "lr 0.1", "nothing"]
    last = faster.history[faster.history.step == faster.history.step.max()].set_index("variant")["loss"]
    assert math.isclose(frame.loc[1, "loss tied"], last["tied"], rel_tol=1e-6)
    assert math.isclose(frame.loc[1, "loss untied"], last["untied"], rel_tol=1e-6)
    held = faster.heldout[faster.heldout.step == faster.heldout.step.max()].set_index("variant")["loss"]
    assert math.isclose(frame.loc[1, "held-out loss untied"], held["untied"], rel_tol=1e-6)
    div = faster.divergence[(faster.divergence.step == faster.divergence.step.max())]
    assert math.isclose(
        frame.loc[1, "final divergence untied"], div[div.variant == "untied"].relative_distance.mean(), rel_tol=1e-6
    )
    assert board_names(handins) == ["Ann: same label", "Ben: same label", "Ann: same label (2)"]
    # A hand-in whose run is gone (deleted meanwhile) is left out, not drawn empty.
    assert list(board(room, handins, {h.run_id: results[h.run_id] for h in handins[1:]})["name"]) == ["Ben", "Ann"]


def test_a_board_of_no_hand_ins_is_an_empty_frame_with_its_columns(rooms):
    room = _open(rooms)
    frame = board(room, [], {})
    assert frame.empty and list(frame.columns) == BOARD_COLUMNS
