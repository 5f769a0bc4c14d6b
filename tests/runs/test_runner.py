"""The dashboard's background training run: it trains, reports progress, stops on request and never leaks a thread."""

from __future__ import annotations

import threading
import time

import pandas as pd

from sharecore import preset, train
from sharecore.core.config import TrainConfig
from sharecore.runs import runner
from sharecore.runs.runner import BackgroundRun


def _trainer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sharecore-train"]


def test_background_run_gives_the_same_result_as_training_directly():
    spec, config = preset("seed-dense"), TrainConfig(steps=5, batch_size=8)
    run = BackgroundRun(spec, config).start()
    assert run.wait(120)
    assert run.error is None and run.result is not None
    direct = train(spec, config)
    assert run.result.history["loss"].tolist() == direct.history["loss"].tolist()
    assert run.result.steps_done == 5 and run.result.stop_reason is None
    assert run.fraction == 1.0 and not run.running and run.done


def test_progress_reaches_the_last_step_and_the_joined_history_is_the_results():
    run = BackgroundRun(preset("tied-autoencoder"), TrainConfig(steps=8, batch_size=4)).start()
    run.wait(120)
    assert run.progress is not None and run.progress.step == 8 and run.progress.total == 8
    # Each report hands over only its new rows; joined, they are the result's history, row for row.
    assert len(run.progress.new_history) < 16
    pd.testing.assert_frame_equal(run.history, run.result.history)


def test_stop_ends_the_thread_and_keeps_what_was_recorded():
    run = BackgroundRun(preset("seed-dense"), TrainConfig(steps=5000, batch_size=8)).start()
    deadline = time.monotonic() + 120
    while run.progress is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.stop()
    assert not run.running and not _trainer_threads()
    result = run.result
    assert result is not None and 0 < result.steps_done < 5000
    assert result.stop_reason == f"stopped by request after step {result.steps_done}"
    assert result.history["step"].max() == result.steps_done


def test_an_impossible_setting_becomes_an_error_message_not_an_exception():
    run = BackgroundRun(preset("seed-dense"), TrainConfig(steps=2, dataset="digits")).start()
    run.wait(120)
    assert run.result is None
    assert run.error is not None and "dataset 'digits' needs a model input of 64 values" in run.error


def test_a_run_that_was_never_started_is_neither_running_nor_done():
    run = BackgroundRun(preset("seed-dense"), TrainConfig(steps=2))
    assert not run.running and not run.done and run.fraction == 0.0
    assert run.wait(0.01) is False


def test_two_sessions_train_at_once_without_mixing_their_results():
    a = BackgroundRun(preset("seed-dense"), TrainConfig(steps=6, batch_size=8, seed=1)).start()
    b = BackgroundRun(preset("tied-autoencoder"), TrainConfig(steps=4, batch_size=8, seed=2)).start()
    assert a.wait(120) and b.wait(120)
    assert a.result.spec.name == "seed-dense" and a.result.steps_done == 6
    assert b.result.spec.name == "tied-autoencoder" and b.result.steps_done == 4
    alone = train(preset("tied-autoencoder"), TrainConfig(steps=4, batch_size=8, seed=2))
    assert b.result.history["loss"].tolist() == alone.history["loss"].tolist()


def test_active_runs_counts_live_workers_only():
    from sharecore.runs.runner import active_runs

    assert active_runs() == 0
    run = BackgroundRun(preset("seed-dense"), TrainConfig(steps=5000, batch_size=8)).start()
    assert active_runs() == 1
    run.stop()
    assert active_runs() == 0


def test_a_run_of_many_reports_keeps_its_history_in_a_few_parts_whole_and_in_order():
    run = BackgroundRun(preset("seed-dense"), TrainConfig(steps=80, batch_size=4))  # not started: fed below
    result = train(
        preset("seed-dense"), TrainConfig(steps=80, batch_size=4), progress_every=1, on_progress=run._on_progress
    )
    assert len(run._history) <= runner.HISTORY_PARTS
    pd.testing.assert_frame_equal(run.history, result.history)
