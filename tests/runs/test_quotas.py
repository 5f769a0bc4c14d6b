"""The run store's fairness: no one browser can empty other lists or lock the store, visitors leave nothing
behind for good, labels are visible, and an owner can take a share link back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sharecore.runs.store import DAY, ROW_BYTES, RunStore, UnknownRun, clean_label, new_key
from tests.support.store import hand_made

# The default caps' proportions (300 MiB in all, 40 per list, 16 pinned per list), scaled to runs of a
# few kB: the attack needed about 41 runs of the largest kind to fill the real store.
RUNS_IN_THE_STORE = 41


@pytest.fixture(scope="module")
def run_bytes(tmp_path_factory) -> int:
    """What one hand-made run takes in a store."""
    probe = RunStore(tmp_path_factory.mktemp("probe") / "runs.sqlite3")
    probe.save(new_key(), hand_made(), "probe")
    return probe.total_bytes() - 2 * ROW_BYTES  # without its entry and its list


def scaled_store(where: str | Path, run_bytes: int, **caps: int) -> RunStore:
    """A store with the default caps' proportions, holding `RUNS_IN_THE_STORE` runs."""
    total = RUNS_IN_THE_STORE * run_bytes
    defaults = {"max_bytes": total, "max_workspace_bytes": total * 40 // 300, "max_pinned_bytes": total * 16 // 300}
    return RunStore(where, **{**defaults, **caps})


def pin_or_refused(store: RunStore, workspace: str, run_id: str) -> str | None:
    """None if the run was pinned, else the store's message."""
    try:
        store.pin(workspace, run_id, True)
    except ValueError as err:
        return str(err)
    return None


def held(store: RunStore, workspace: str, *, pinned: bool | None = None) -> int:
    return sum(r.bytes for r in store.runs(workspace) if pinned is None or r.pinned == pinned)


# ----------------------------------------------------------------------------- the attack from the issue
def test_sixteen_pinned_runs_of_one_browser_remove_no_other_run_and_block_no_save(store_where, run_bytes):
    store = scaled_store(store_where, run_bytes)
    result = hand_made()
    users = [new_key() for _ in range(6)]
    for i, user in enumerate(users):
        store.save(user, result, f"user {i}")
    attacker = new_key()
    refusals = []
    for i in range(16):
        report = store.save(attacker, result, f"attack {i}")
        assert report.evicted_elsewhere == 0, f"save {i} of the attacker removed another browser's run"
        refusals.append(pin_or_refused(store, attacker, report.run_id))
    # Every other list is whole, and the attacker holds no more than its quota, its pins no more than theirs.
    for i, user in enumerate(users):
        assert [r.label for r in store.runs(user)] == [f"user {i}"]
    assert held(store, attacker) <= store.max_workspace_bytes
    assert held(store, attacker, pinned=True) <= store.max_pinned_bytes
    refused = [message for message in refusals if message]
    assert refused and "pinned runs may take" in refused[0] and "SHARECORE_PINNED_MB" in refused[0], refused
    # Everyone else can still save, and loses nothing to do so.
    for i, user in enumerate(users):
        report = store.save(user, result, f"user {i} again")
        assert report.evicted == () and report.evicted_elsewhere == 0
    assert store.total_bytes() <= store.max_bytes


def test_pinned_runs_of_many_browsers_never_lock_the_store(store_where, run_bytes):
    # Sixteen fresh browsers (no cookie costs nothing), one pinned run each: pins stop at half the store.
    store = scaled_store(store_where, run_bytes, max_bytes=12 * run_bytes + 40 * ROW_BYTES)
    result = hand_made()
    refusals = []
    for i in range(16):
        ws = new_key()
        refusals.append(pin_or_refused(store, ws, store.save(ws, result, f"attack {i}").run_id))
    pinned = [message for message in refusals if message is None]
    assert len(pinned) == 6  # six runs take half of twelve runs' room
    assert all("half of the" in message for message in refusals if message), refusals
    # A new browser's save still finds room.
    newcomer = new_key()
    report = store.save(newcomer, result, "mine")
    assert [r.label for r in store.runs(newcomer)] == ["mine"] and report.evicted == ()
    assert store.total_bytes() <= store.max_bytes


# ----------------------------------------------------------------------------- quotas
def test_a_browser_over_its_quota_gives_its_own_oldest_unpinned_runs(store_where, run_bytes):
    store = RunStore(store_where, max_workspace_bytes=3 * run_bytes + 3 * ROW_BYTES)
    ws, other = new_key(), new_key()
    store.save(other, hand_made(), "other")
    first = store.save(ws, hand_made(), "first").run_id
    store.pin(ws, first, True)
    for label in ("second", "third"):
        store.save(ws, hand_made(), label)
        time.sleep(0.002)
    report = store.save(ws, hand_made(), "fourth")
    assert report.evicted == ("second",) and report.evicted_elsewhere == 0
    assert "may take" in report.notes[0] and "'second'" in report.notes[0]
    assert [r.label for r in store.runs(ws)] == ["fourth", "third", "first"]
    assert [r.label for r in store.runs(other)] == ["other"]


def test_a_browser_whose_pins_fill_its_quota_is_refused_and_told_how_to_make_room(store_where, run_bytes):
    store = RunStore(store_where, max_workspace_bytes=2 * run_bytes + 2 * ROW_BYTES)
    ws = new_key()
    for label in ("a", "b"):
        store.pin(ws, store.save(ws, hand_made(), label).run_id, True)
    before = store.total_bytes()
    with pytest.raises(
        ValueError, match=r"pinned\), so the run was not kept\. Unpin or delete a run.*SHARECORE_WORKSPACE_MB"
    ):
        store.save(ws, hand_made(), "c")
    assert sorted(r.label for r in store.runs(ws)) == ["a", "b"] and store.total_bytes() == before


def test_a_run_larger_than_one_browsers_quota_is_refused_naming_the_variable(store_where, run_bytes):
    store = RunStore(store_where, max_workspace_bytes=run_bytes // 2)
    with pytest.raises(ValueError, match="one browser's runs may take together.*SHARECORE_WORKSPACE_MB"):
        store.save(new_key(), hand_made(), "big")
    assert store.total_bytes() == 0


def test_an_adopted_run_counts_against_the_adopting_browsers_quota(store_where, run_bytes):
    store = RunStore(store_where, max_workspace_bytes=2 * run_bytes + 2 * ROW_BYTES)
    owner, friend = new_key(), new_key()
    shared = store.save(owner, hand_made(), "shared").run_id
    store.save(friend, hand_made(), "friend old")
    time.sleep(0.002)
    store.save(friend, hand_made(), "friend new")
    report = store.adopt(friend, shared)
    assert report.evicted == ("friend old",)
    assert [r.label for r in store.runs(friend)] == ["shared", "friend new"]
    assert [r.label for r in store.runs(owner)] == ["shared"]


# ----------------------------------------------------------------------------- rows a visitor creates
def _age(store: RunStore, workspace: str, days: float) -> None:
    """Marks `workspace` as last used `days` ago (what waiting that long would do)."""
    with store._write() as db:
        db.execute("UPDATE workspaces SET last_used = ? WHERE key = ?", (time.time() - days * DAY, workspace))


def test_a_list_of_share_link_visits_expires_unused_and_an_emptied_list_at_once(store_where, run_bytes):
    store = RunStore(store_where, visitor_days=7)
    owner, visitor, keeper, recent = new_key(), new_key(), new_key(), new_key()
    shared = store.save(owner, hand_made(), "shared").run_id
    for ws in (visitor, keeper, recent):
        store.adopt(ws, shared)
    store.pin(keeper, shared, True)  # a pin is a choice to keep: it never expires
    for ws in (owner, visitor, keeper):
        _age(store, ws, 8)
    _age(store, recent, 6)
    store.save(new_key(), hand_made(), "anyone's save sweeps")
    assert store.runs(visitor) == []
    assert [r.id for r in store.runs(keeper)] == [shared] and [r.id for r in store.runs(recent)] == [shared]
    assert [r.id for r in store.runs(owner)] == [shared]  # a list with runs of its own never expires
    with store._read() as db:
        lists = {row[0] for row in db.execute("SELECT key FROM workspaces").fetchall()}
    assert visitor not in lists and {owner, keeper, recent} <= lists
    # A list emptied by its own delete leaves no row behind.
    store.delete(recent, shared)
    with store._read() as db:
        assert db.execute("SELECT count(*) FROM workspaces WHERE key = ?", (recent,)).fetchone()[0] == 0


def test_share_link_visits_without_a_cookie_count_against_the_cap_and_never_pass_it(store_where, run_bytes):
    store = RunStore(store_where, max_bytes=3 * run_bytes)
    owner, other = new_key(), new_key()
    shared = store.save(owner, hand_made(), "shared").run_id
    store.save(other, hand_made(), "other")
    before = store.total_bytes()
    store.adopt(new_key(), shared)
    assert store.total_bytes() == before + 2 * ROW_BYTES  # an entry and a list: not free
    visitors = [new_key() for _ in range(run_bytes // ROW_BYTES)]  # enough visits to take a whole run's room
    for visitor in visitors:
        store.adopt(visitor, shared)
        assert store.total_bytes() <= store.max_bytes
    # The flood made room from itself, the oldest visits first: no one's run went.
    assert [r.label for r in store.runs(other)] == ["other"] and [r.label for r in store.runs(owner)] == ["shared"]
    assert store.runs(visitors[0]) == [] and [r.id for r in store.runs(visitors[-1])] == [shared]


# ----------------------------------------------------------------------------- labels
@pytest.mark.parametrize("invisible", ["\u200b", "\ufeff", "\u200b\ufeff\u200b", " \u200b ", "\u2060\u200d"])
def test_a_label_of_invisible_characters_only_is_refused_with_their_code_points(invisible):
    with pytest.raises(ValueError, match="at least one visible character.*U\\+"):
        clean_label(invisible)


def test_a_label_with_a_visible_character_keeps_its_invisible_ones():
    assert clean_label("a\u200bb") == "a\u200bb"
    assert clean_label("👩\u200d🔬 run") == "👩\u200d🔬 run"


def test_renaming_to_an_invisible_label_is_refused_and_the_old_label_stays(store_where):
    store = RunStore(store_where)
    ws = new_key()
    run_id = store.save(ws, hand_made(), "old").run_id
    with pytest.raises(ValueError, match="visible character"):
        store.rename(ws, run_id, "\u200b\u200b")
    assert store.runs(ws)[0].label == "old"


# ----------------------------------------------------------------------------- revoking a share link
def test_the_owner_revokes_a_link_a_viewer_opened_and_the_link_stops_working(store_where):
    store = RunStore(store_where)
    owner, viewer, later = new_key(), new_key(), new_key()
    old_id = store.save(owner, hand_made(), "mine").run_id
    store.pin(owner, old_id, True)
    store.adopt(viewer, old_id)
    store.pin(viewer, old_id, True)
    new_id = store.revoke(owner, old_id)
    assert new_id != old_id
    for ws in (viewer, later):  # the old link opens nothing, for a viewer who had it and for anyone new
        with pytest.raises(UnknownRun):
            store.load(old_id, ws)
        with pytest.raises(UnknownRun):
            store.adopt(ws, old_id)
    # The viewer's list held a reference, not a copy: it goes. The owner keeps the run, its label and pin.
    assert store.runs(viewer) == []
    [info] = store.runs(owner)
    assert (info.id, info.label, info.pinned) == (new_id, "mine", True)
    assert store.load(new_id).result.config == hand_made().config
    assert store.total_bytes() == info.bytes + 2 * ROW_BYTES  # one run, stored once


def test_only_the_browser_that_saved_a_run_may_revoke_its_link(store_where):
    store = RunStore(store_where)
    owner, viewer = new_key(), new_key()
    run_id = store.save(owner, hand_made(), "mine").run_id
    store.adopt(viewer, run_id)
    with pytest.raises(UnknownRun, match="only the browser that saved a run may revoke"):
        store.revoke(viewer, run_id)
    assert [r.id for r in store.runs(viewer)] == [run_id]
