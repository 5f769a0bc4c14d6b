"""A run keeps itself: the runner hands every finished or stopped run to the store, whatever became of
the page that started it, and a new page of the same browser takes over a run its reloaded page left."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from sharecore import preset, train
from sharecore.core.config import TrainConfig
from sharecore.runs import runner
from sharecore.runs.keeping import KeepPlan, keep, numbered, run_label
from sharecore.runs.runner import BackgroundRun, orphaned_runs
from sharecore.runs.store import RunStore, new_key

TIMEOUT = 120  # seconds any wait below may take on a busy machine before the test fails


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs.sqlite3")


def until(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


class Page:
    """A stand-in for a browser tab: `here` says whether it is still connected."""

    def __init__(self) -> None:
        self.here = True

    def __call__(self) -> bool:
        return self.here


def test_a_run_is_kept_by_its_runner_when_nobody_collects_it(store):
    workspace = new_key()
    config = TrainConfig(steps=6, batch_size=8)
    plan = KeepPlan(store, workspace, "first try", "seed-dense")
    run = BackgroundRun(preset("seed-dense"), config, owner=workspace, on_result=plan).start()
    assert run.wait(TIMEOUT)
    (info,) = store.runs(workspace)
    assert run.kept.run_id == info.id and info.label == "first try" and info.steps_done == 6
    kept = store.load(info.id, workspace).result
    # The kept records are the run's own numbers, and those of the library called directly.
    direct = train(preset("seed-dense"), config)
    np.testing.assert_allclose(kept.history.loss, direct.history.loss, rtol=1e-5)


def test_a_run_whose_page_is_gone_for_good_stops_and_is_kept_as_a_stopped_run_that_can_continue(store, monkeypatch):
    monkeypatch.setenv("SHARECORE_MAX_STEPS", "1000000")
    workspace, page = new_key(), Page()
    config = TrainConfig(steps=1_000_000, batch_size=4, record_every=1000)
    plan = KeepPlan(store, workspace, "left running", "seed-dense")
    run = BackgroundRun(preset("seed-dense"), config, alive=page, gone_after=0.5, owner=workspace, on_result=plan)
    run.start()
    until(lambda: run.progress is not None, "the run trains")
    page.here = False  # the tab was closed
    assert run.wait(TIMEOUT), "a run whose page has gone ends"
    (info,) = store.runs(workspace)
    assert info.label == f"left running (stopped at {info.steps_done})"
    assert info.can_continue and 0 < info.steps_done < config.steps
    assert "closed or lost its connection" in store.load(info.id, workspace).result.stop_reason


def test_a_new_page_of_the_same_browser_takes_over_a_run_its_reloaded_page_left(store, monkeypatch):
    monkeypatch.setenv("SHARECORE_MAX_STEPS", "1000000")
    workspace, old_page, new_page = new_key(), Page(), Page()
    config = TrainConfig(steps=400, batch_size=4, record_every=100)
    plan = KeepPlan(store, workspace, "reloaded", "seed-dense")
    run = BackgroundRun(preset("seed-dense"), config, alive=old_page, gone_after=30.0, owner=workspace, on_result=plan)
    run.start()
    until(lambda: run.progress is not None, "the run trains")
    assert orphaned_runs(workspace) == [], "a run whose page is still there is nobody's orphan"
    old_page.here = False  # the reload: the old session's connection is gone
    assert orphaned_runs(workspace) == [run]
    assert orphaned_runs(new_key()) == [], "another browser never sees it"
    assert run.reattach(new_page) is True
    assert orphaned_runs(workspace) == []
    assert run.wait(TIMEOUT)
    assert run.result.steps_done == 400 and run.result.stop_reason is None, "the run went on to its last step"
    (info,) = store.runs(workspace)
    assert (info.label, info.steps_done) == ("reloaded", 400)


def test_a_continued_run_takes_the_place_label_and_pin_of_the_run_it_continues(store):
    workspace = new_key()
    spec = preset("seed-dense")
    first = train(spec, TrainConfig(steps=4, batch_size=8))
    parent = keep(KeepPlan(store, workspace, "seed-dense: lr 0.1", "seed-dense"), first).run_id
    store.pin(workspace, parent, True)
    label = run_label((spec, first.config), (spec, first.config), continued=store.load(parent, workspace).label)
    longer = train(spec, TrainConfig(steps=8, batch_size=8), resume=first)
    kept = keep(KeepPlan(store, workspace, label, "seed-dense", continues=parent), longer)
    (info,) = store.runs(workspace)
    assert (info.id, info.label, info.pinned, info.steps_done) == (kept.run_id, "seed-dense: lr 0.1", True, 8)
    assert kept.continues == parent


def test_a_repeated_label_is_kept_with_the_next_number_so_every_view_names_the_run_alike(store):
    workspace, other = new_key(), new_key()
    spec = preset("seed-dense")
    done = train(spec, TrainConfig(steps=4, batch_size=8))
    stopped = threading.Event()
    stopped.set()  # stops after the first chunk
    cut = train(spec, TrainConfig(steps=200, batch_size=8), stop=stopped, progress_every=2)
    assert cut.steps_done < 200
    plan = KeepPlan(store, workspace, "seed-dense", "seed-dense")
    for result in (done, cut, done):
        keep(plan, result)
    keep(KeepPlan(store, workspace, "seed-dense: lr 0.1", "seed-dense"), done)
    keep(KeepPlan(store, other, "seed-dense", "seed-dense"), done)  # another browser's list numbers its own runs
    labels = [info.label for info in reversed(store.runs(workspace))]
    assert labels == [
        "seed-dense",
        f"seed-dense (2) (stopped at {cut.steps_done})",
        "seed-dense (3)",
        "seed-dense: lr 0.1",
    ]
    assert [info.label for info in store.runs(other)] == ["seed-dense"]
    # A number the user typed counts too, and a label at the store's limit keeps its number.
    assert numbered("x", ["x (7)"]) == "x (8)"
    long = "y" * 80
    assert numbered(long, [long]) == "y" * 75 + "… (2)"


def test_a_continued_pinned_run_keeps_its_pin_when_the_pinned_cap_holds_one_run(tmp_path):
    spec = preset("seed-dense")
    first = train(spec, TrainConfig(steps=4, batch_size=8))
    longer = train(spec, TrainConfig(steps=8, batch_size=8), resume=first)
    probe = RunStore(tmp_path / "probe.sqlite3")
    size = max(info.bytes for info in [probe.runs(ws)[0] for ws in _saved(probe, first, longer)])
    store = RunStore(tmp_path / "runs.sqlite3", max_pinned_bytes=size + size // 2)  # room for one pinned run
    workspace = new_key()
    parent = keep(KeepPlan(store, workspace, "first", "seed-dense"), first).run_id
    store.pin(workspace, parent, True)
    kept = keep(KeepPlan(store, workspace, "first", "seed-dense", continues=parent), longer)
    (info,) = store.runs(workspace)
    assert (info.id, info.pinned, info.steps_done) == (kept.run_id, True, 8), kept.notes


def _saved(store: RunStore, *results) -> list[str]:
    """Saves each result in a list of its own; returns the lists."""
    lists = [new_key() for _ in results]
    for ws, result in zip(lists, results, strict=True):
        store.save(ws, result, "probe")
    return lists


def test_a_stopped_runs_label_keeps_its_stopped_note_even_when_long_and_loses_it_when_continued(store):
    workspace = new_key()
    spec = preset("seed-dense")
    stopped = threading.Event()
    stopped.set()  # stops after the first chunk
    result = train(spec, TrainConfig(steps=200, batch_size=8), stop=stopped, progress_every=5)
    assert result.steps_done < 200
    long = "x" * 80
    kept = keep(KeepPlan(store, workspace, long, "seed-dense"), result)
    (info,) = store.runs(workspace)
    assert info.id == kept.run_id and len(info.label) == 80
    assert info.label.endswith(f"… (stopped at {result.steps_done})")
    assert (
        run_label((spec, result.config), (spec, result.config), continued=info.label)
        == info.label.split(" (stopped")[0]
    )


def test_a_run_the_store_refuses_is_not_kept_and_says_why(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3", max_runs_per_workspace=1)
    workspace = new_key()
    result = train(preset("seed-dense"), TrainConfig(steps=2, batch_size=8))
    first = keep(KeepPlan(store, workspace, "pinned", "seed-dense"), result)
    store.pin(workspace, first.run_id, True)
    refused = keep(KeepPlan(store, workspace, "second", "seed-dense"), result)
    assert refused.run_id is None
    assert refused.notes and "could not be kept" in refused.notes[0] and "pinned" in refused.notes[0]


def test_every_live_run_is_stopped_and_handed_on_at_exit(store, monkeypatch):
    monkeypatch.setenv("SHARECORE_MAX_STEPS", "1000000")
    workspace = new_key()
    config = TrainConfig(steps=1_000_000, batch_size=4, record_every=1000)
    run = BackgroundRun(
        preset("seed-dense"), config, owner=workspace, on_result=KeepPlan(store, workspace, "at exit")
    ).start()
    until(lambda: run.progress is not None, "the run trains")
    runner._stop_runs_at_exit(TIMEOUT)
    assert run.done and run.kept is not None and run.kept.run_id is not None
    assert store.runs(workspace)[0].label.startswith("at exit (stopped at ")
