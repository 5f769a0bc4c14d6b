"""The queue of training runs on a shared server: first come first served, places that add up,
runs whose owner has gone end and free their trainer, and every run has a wall-clock cap."""

from __future__ import annotations

import threading
import time

import pytest

from sharecore import preset, train
from sharecore.core.config import TrainConfig
from sharecore.core.limits import Limits
from sharecore.runs import runner
from sharecore.runs.runner import BackgroundRun, training_runs

LONG = 1_000_000  # steps: a run that only ends when it is stopped (tiny model, minutes long)
TIMEOUT = 120  # seconds any wait below may take on a busy machine before the test fails


@pytest.fixture
def one_trainer(monkeypatch):
    """One trainer per process, and runs long enough to queue behind."""
    monkeypatch.setattr(runner, "MAX_CONCURRENT_RUNS", 1)
    monkeypatch.setenv("SHARECORE_MAX_STEPS", str(LONG))
    runs: list[BackgroundRun] = []

    def start(steps: int = LONG, **kwargs) -> BackgroundRun:
        # Long runs record every 1000th step, within max_recorded_rows.
        config = TrainConfig(steps=steps, batch_size=4, record_every=max(1, steps // 1000))
        run = BackgroundRun(preset("seed-dense"), config, **kwargs).start()
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop(TIMEOUT)
    assert runner.active_runs() == 0


def until(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def test_waiting_runs_know_their_place_and_start_in_arrival_order(one_trainer):
    first = one_trainer()
    until(lambda: first.progress is not None, "the first run trains")
    assert first.queue_place is None and not first.queued and training_runs() == 1
    second, third, fourth = one_trainer(), one_trainer(), one_trainer()
    assert [r.queue_place for r in (second, third, fourth)] == [1, 2, 3]
    assert all(r.queued for r in (second, third, fourth))

    third.stop()  # a waiting run that is stopped leaves the queue; the ones behind move up
    assert third.done and third.result is None and "stopped while waiting" in third.error
    assert [second.queue_place, fourth.queue_place] == [1, 2]

    first.stop()
    until(lambda: not second.queued, "the second run gets the trainer")
    assert fourth.queued and fourth.queue_place == 1 and training_runs() == 1
    second.stop()
    until(lambda: not fourth.queued, "the fourth run gets the trainer")
    fourth.stop()
    assert first.result.steps_done > 0 and second.result is not None and fourth.result is not None


def test_a_run_whose_owner_has_gone_ends_and_frees_its_trainer_for_the_next_in_line(one_trainer):
    here = threading.Event()
    here.set()
    gone = one_trainer(alive=here.is_set, gone_after=0.5)
    next_in_line = one_trainer(steps=30)
    until(lambda: gone.progress is not None, "the first run trains")
    assert next_in_line.queue_place == 1

    here.clear()  # the tab is closed
    left = time.monotonic()
    assert gone.wait(TIMEOUT), "the run of a closed tab kept training"
    ended = time.monotonic() - left
    assert next_in_line.wait(TIMEOUT)
    print(f"owner gone -> run ended in {ended:.2f} s (grace 0.5 s)")

    assert gone.abandoned and gone.error is None
    kept = gone.result
    assert 0 < kept.steps_done < LONG
    assert "was closed or lost its connection" in kept.stop_reason
    assert kept.history["step"].max() == kept.steps_done and len(kept.history) == 2 * kept.steps_done
    # The next run trained in full, exactly as it would alone.
    assert next_in_line.error is None and next_in_line.result.steps_done == 30
    alone = train(preset("seed-dense"), TrainConfig(steps=30, batch_size=4))
    assert next_in_line.result.history["loss"].tolist() == alone.history["loss"].tolist()


def test_a_waiting_run_whose_owner_has_gone_leaves_the_queue_untrained(one_trainer):
    first = one_trainer()
    until(lambda: first.progress is not None, "the first run trains")
    here = threading.Event()
    here.set()
    gone = one_trainer(alive=here.is_set, gone_after=0.2)
    behind = one_trainer()
    assert [gone.queue_place, behind.queue_place] == [1, 2]
    here.clear()
    assert gone.wait(TIMEOUT)
    assert gone.abandoned and gone.result is None and "closed while it waited" in gone.error
    assert behind.queue_place == 1


def test_a_run_whose_owner_stays_or_whose_check_fails_trains_to_the_end(one_trainer):
    def broken() -> bool:
        raise RuntimeError("the check itself failed")

    stays = one_trainer(steps=40, alive=lambda: True, gone_after=0.05)
    unsure = one_trainer(steps=40, alive=broken, gone_after=0.05)
    assert stays.wait(TIMEOUT) and unsure.wait(TIMEOUT)
    for run in (stays, unsure):
        assert not run.abandoned and run.result.steps_done == 40 and run.result.stop_reason is None


def test_the_wall_clock_cap_stops_a_run_and_keeps_what_it_recorded():
    spec = preset("seed-dense")
    train(spec, TrainConfig(steps=1, batch_size=4))  # compiles the trainer, so the cap times training
    limits = Limits(max_steps=LONG, max_run_seconds=1, max_recorded_rows=10**9)  # the time cap ends it
    capped = train(spec, TrainConfig(steps=LONG, batch_size=4), limits=limits)

    n = capped.steps_done
    assert 0 < n < LONG
    assert capped.stop_reason == (
        f"the run reached this server's time limit of 1 s (max_run_seconds) after step {n} of {LONG}; "
        "training stopped and kept what was recorded. Train fewer steps, or raise the limit with the "
        "environment variable SHARECORE_MAX_RUN_SECONDS or in .streamlit/secrets.toml under [sharecore] "
        "max_run_seconds."
    )
    # What was kept is the start of the same run: equal to training those n steps alone.
    assert sorted(capped.history["step"].unique()) == list(range(1, n + 1))
    alone = train(spec, TrainConfig(steps=n, batch_size=4), limits=Limits(max_steps=LONG, max_recorded_rows=10**9))
    assert alone.stop_reason is None
    assert capped.history["loss"].tolist() == pytest.approx(alone.history["loss"].tolist(), rel=1e-6)
    print(f"1 s cap: {n} steps kept ({capped.seconds:.2f} s of training)")


def test_max_run_seconds_is_read_from_the_environment_like_the_other_limits():
    assert Limits().max_run_seconds == 300
    assert Limits.from_env({"SHARECORE_MAX_RUN_SECONDS": "900"}).max_run_seconds == 900
    with pytest.raises(ValueError, match="SHARECORE_MAX_RUN_SECONDS must be a whole number >= 1"):
        Limits.from_env({"SHARECORE_MAX_RUN_SECONDS": "0"})
