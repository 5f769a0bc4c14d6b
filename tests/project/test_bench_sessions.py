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
def test_load_test_trains_every_participant_and_keeps_each_run_in_its_own_workspace_and_on_the_board():
    from bench.capacity import load_test

    report = load_test(3, 2.0, room=True)
    assert report["errors"] == []
    assert report["finished"] == 3 and len(report["waits_s"]) == 3 and report["handed_in"] == 3
    assert report["lost"] == [] and report["mixed"] == [] and report["more_than_one"] == []
    url = report["servers"][0]
    assert report["rss_peak_mb"][url] >= report["rss_start_mb"][url] > 0


def test_typing_and_entering_send_one_rerun_with_the_widgets_value():
    from streamlit.proto.BackMsg_pb2 import BackMsg

    class Socket:
        def __init__(self) -> None:
            self.sent: list[BackMsg] = []

        async def send(self, data: bytes) -> None:
            self.sent.append(BackMsg.FromString(data))

    async def scenario() -> list[BackMsg]:
        session = Session("http://127.0.0.1:1")
        session._ws = socket = Socket()
        session.page_name, session.query = "room", "room=K7MQ4X"
        await session._send(widget=("id-name", lambda state: setattr(state, "string_value", "Ada")))
        await session._send(widget=("id-seed", lambda state: setattr(state, "int_value", 1007)))
        return socket.sent

    name, seed = asyncio.run(scenario())
    assert name.rerun_script.page_name == "room" and name.rerun_script.query_string == "room=K7MQ4X"
    (state,) = name.rerun_script.widget_states.widgets
    assert (state.id, state.string_value) == ("id-name", "Ada")
    (state,) = seed.rerun_script.widget_states.widgets
    assert (state.id, state.int_value) == ("id-seed", 1007)


def test_judge_finds_a_lost_hand_in_and_a_hand_in_of_someone_elses_run():
    from types import SimpleNamespace

    from bench.capacity import Participant, judge
    from sharecore.runs.rooms import HandIn

    people = [
        Participant(i, "http://s", seed=1000 + i, workspace=f"w{i}", click_at=0.0, name=f"P{i}", shown_loss="0.5")
        for i in range(4)
    ]
    runs = {f"w{i}": [SimpleNamespace(id=f"run{i}")] for i in range(4)}
    seeds = {"run0": 1000, "run1": 1001, "run2": 1002, "run3": 9}  # run3 trained another seed

    def load(run_id: str, workspace: str) -> SimpleNamespace:
        result = SimpleNamespace(
            config=SimpleNamespace(seed=seeds[run_id]), summary=lambda: {"final_loss": {"tied": 0.5}}
        )
        return SimpleNamespace(result=result)

    def handin(who: int, run_id: str, name: str) -> HandIn:
        return HandIn(run_id, name, "label", f"w{who}", hidden=False, added=0.0)

    # 0 hands in its own run; 1 hands in 0's run; 2 hands in nothing; 3's run has another seed.
    board = [handin(0, "run0", "P0"), handin(1, "run0", "P1"), handin(3, "run3", "P3")]
    verdict = judge(people, runs, load, board, "K7MQ4X")
    assert verdict == {"lost": [2], "mixed": [1, 3], "more_than_one": []}
    # Without a room only the runs count: 2 kept its run.
    assert judge(people, runs, load, [], None) == {"lost": [], "mixed": [3], "more_than_one": []}
