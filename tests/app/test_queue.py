"""The dashboard's queue for trainers: each waiting session is told its place, and the places move up."""

from __future__ import annotations

import time

from sharecore import preset
from sharecore.core.config import TrainConfig
from sharecore.runs import runner
from sharecore.runs.runner import BackgroundRun
from tests.support.apptest import go, open_app

TIMEOUT = 120


def until(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def waiting_text(at) -> list[str]:
    """What the page (not the sidebar) says about waiting for a trainer."""
    return [el.value for el in [*at.main.info, *at.main.caption] if "Waiting for a free trainer" in el.value]


def test_each_waiting_session_sees_its_place_in_the_queue_and_moves_up(monkeypatch):
    monkeypatch.setattr(runner, "MAX_CONCURRENT_RUNS", 1)
    monkeypatch.setenv("SHARECORE_MAX_STEPS", "1000000")
    first = open_app("train", steps="20")
    until(lambda: runner.active_runs() == 0, "the server's warm-up run has ended")
    # Someone else's long run holds the only trainer.
    blocker = BackgroundRun(preset("seed-dense"), TrainConfig(steps=1_000_000, batch_size=4, record_every=1000)).start()
    second = None
    try:
        until(lambda: blocker.progress is not None, "the long run trains")
        first.button(key="train.start").click().run()
        assert not first.exception
        assert waiting_text(first) == ["Waiting for a free trainer: you are number 1 in the queue (1 run training)."]
        assert ":material/hourglass: Waiting for a free trainer." in [c.value for c in first.sidebar.caption]

        second = open_app("train", steps="20")
        second.button(key="train.start").click().run()
        assert waiting_text(second) == ["Waiting for a free trainer: you are number 2 in the queue (1 run training)."]
        go(second, "gradients")  # pages that wait for results say it too
        assert not second.exception
        assert waiting_text(second) == [
            ":material/hourglass: Waiting for a free trainer: you are number 2 in the queue (1 run training)."
        ]

        first.button(key="train.stop").click().run()  # leaving the queue moves the next one up
        assert first.session_state["run"] is None
        assert "stopped while waiting for a free trainer" in first.session_state["run_error"]
        go(second, "train")
        assert waiting_text(second) == ["Waiting for a free trainer: you are number 1 in the queue (1 run training)."]

        blocker.stop()
        run = second.session_state["run"]
        assert run.wait(TIMEOUT)
        second.run()
        assert not second.exception and not waiting_text(second)
        assert second.session_state["result"].steps_done == 20
    finally:
        blocker.stop()
        if second is not None and second.session_state["run"] is not None:
            second.session_state["run"].stop()


def test_a_waiting_session_sees_only_its_place_in_the_queue_not_a_step_counter_or_press_train(monkeypatch):
    monkeypatch.setattr(runner, "MAX_CONCURRENT_RUNS", 1)
    monkeypatch.setenv("SHARECORE_MAX_STEPS", "1000000")
    at = open_app("lab", steps="20")
    until(lambda: runner.active_runs() == 0, "the server's warm-up run has ended")
    blocker = BackgroundRun(preset("seed-dense"), TrainConfig(steps=1_000_000, batch_size=4, record_every=1000)).start()
    try:
        until(lambda: blocker.progress is not None, "the long run trains")
        at.button(key="lab.train").click().run()
        for page in ("lab", "train", "gradients"):
            go(at, page)
            assert not at.exception, at.exception
            assert len(waiting_text(at)) == 1, page
            said = [el.value for el in [*at.main.info, *at.main.caption]]
            assert not [text for text in said if "Press Train" in text or "No results yet" in text], (page, said)
            assert not at.main.get("progress"), f"{page}: a waiting run shows no step counter"
    finally:
        blocker.stop()
        if at.session_state["run"] is not None:
            at.session_state["run"].stop()
