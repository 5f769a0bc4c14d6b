"""bench.sessions (a Streamlit session spoken over the websocket) and bench.capacity's load test."""

from __future__ import annotations

import asyncio

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench.sessions import Session


def _msgs(*parts: tuple) -> list[ForwardMsg]:
    out = []
    for kind, *args in parts:
        msg = ForwardMsg()
        if kind == "new_session":
            msg.new_session.name = "app"
        elif kind == "button":
            (path, label) = args
            msg.metadata.delta_path[:] = path
            msg.delta.new_element.button.label = label
            msg.delta.new_element.button.id = f"id-{label}"
        elif kind == "metric":
            (path, label, body) = args
            msg.metadata.delta_path[:] = path
            msg.delta.new_element.metric.label = label
            msg.delta.new_element.metric.body = body
        elif kind == "auto_rerun":
            msg.auto_rerun.fragment_id, msg.auto_rerun.interval = args[0], 60.0
        elif kind == "finished":
            msg.script_finished = args[0]
        out.append(msg)
    return out


def test_a_full_run_replaces_the_page_a_fragment_run_updates_it_and_unregistered_fragments_stop_polling():
    async def scenario() -> None:
        session = Session("http://127.0.0.1:1")
        full, fragment = ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
        for msg in _msgs(
            ("new_session",),
            ("button", [0, 1], "Train"),
            ("metric", [0, 2], "Steps", "0 / 60"),
            ("auto_rerun", "live"),
            ("finished", full),
        ):
            session._take(msg)
        assert session.page.find("button", "Train") is not None and set(session._timers) == {"live"}
        for msg in _msgs(("new_session",), ("metric", [0, 2], "Steps", "30 / 60"), ("finished", fragment)):
            session._take(msg)
        assert session.page.find("metric", "Steps").message.body == "30 / 60"
        assert session.page.find("button", "Train") is not None  # a fragment run leaves the rest drawn
        timer = session._timers["live"]
        for msg in _msgs(("new_session",), ("metric", [0, 3], "Final loss, tied", "0.2959"), ("finished", full)):
            session._take(msg)
        assert session.page.find("button", "Train") is None  # the full run did not draw it
        assert session.page.find("metric", "Final loss, tied").message.body == "0.2959"
        await asyncio.sleep(0)
        assert session._timers == {} and timer.cancelled()  # the fragment was not drawn again
        assert session._runs == 2

    asyncio.run(scenario())


@pytest.mark.long
def test_load_test_trains_every_participant_and_keeps_each_run_in_its_own_workspace():
    from bench.capacity import load_test

    report = load_test(3, 2.0)
    assert report["errors"] == []
    assert report["finished"] == 3 and len(report["waits_s"]) == 3
    assert report["lost"] == [] and report["mixed"] == [] and report["more_than_one"] == []
    url = report["servers"][0]
    assert report["rss_peak_mb"][url] >= report["rss_start_mb"][url] > 0
