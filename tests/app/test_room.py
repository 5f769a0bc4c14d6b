"""The Room page through AppTest: a facilitator opens a room from an exercise, a participant joins by its link
and hands in a trained run from Compare, the board shows it with its true figures and the participant's
name as written; hide, project, withdraw and close do what they say, and neither link leaks the other."""

from __future__ import annotations

import numpy as np

from tests.support.apptest import charts, click_and_wait, go, open_app
from ui.text import plain

HOSTILE = "<img src=x onerror=alert(1)>**bold**"


def _facilitator():
    at = open_app("exercises")
    at.button(key="exercises.room.untied-drift").click().run()
    assert not at.exception
    token = at.session_state["room.board"]
    go(at, "room")
    assert not at.exception
    return at, token


def _board(at):
    at.run()
    tables = [t.value for t in at.dataframe]
    return tables[0] if tables else None


def test_a_room_from_an_exercise_takes_a_participants_run_onto_the_board_with_its_true_figures():
    host, token = _facilitator()
    code = host.metric[0].value
    assert token in str(host.query_params["board"]), "the facilitator's own link stays in the address bar"
    assert _board(host) is None, "no hand-ins yet"

    guest = open_app("room", room=code)
    assert guest.text_input(key="room.join.code").value == code, "the link fills in the code"
    assert token not in str(guest.query_params) and not any(token in m.value for m in guest.markdown)
    guest.text_input(key="room.join.name").input(HOSTILE)
    guest.button(key="room.join").click().run()
    assert guest.session_state["spec"].name == "seed-dense", "joining loads the room's starting experiment"
    go(guest, "lab")
    click_and_wait(guest, "lab.train")
    run_id = guest.session_state["current_run_id"]
    result = guest.session_state["result"]
    go(guest, "compare")
    guest.button(key=f"room.hand_in.{run_id}").click().run()
    assert not guest.exception

    table = _board(host)
    assert list(table["name"]) == [HOSTILE], "the name as written, not markup"
    final = result.history[result.history.step == result.history.step.max()].set_index("variant")["loss"]
    assert np.isclose(table["loss tied"].iloc[0], final["tied"], rtol=1e-6)
    assert np.isclose(table["loss untied"].iloc[0], final["untied"], rtol=1e-6)
    assert table["differs from the start"].iloc[0] == "nothing"
    assert table["shows the claim"].iloc[0] == "yes", "60 steps of seed-dense show the untied drift"
    assert host.session_state["workspace"] != guest.session_state["workspace"]

    # On a projector the board is an HTML table (the grid keeps 14 px), its rows picked by name to overlay.
    host.sidebar.toggle(key="sidebar.presenter").set_value(True).run()
    assert not host.exception and not host.dataframe, "no canvas grid in presenter mode"
    (shown,) = [t.value for t in host.table]
    assert [c.replace("\\", "") for c in shown.columns[:3]] == ["name", "loss tied", "loss untied"]
    assert list(shown["name"]) == [plain(HOSTILE)], "the name as written (escaped), not markup"
    assert shown["loss tied"].iloc[0] == f"{final['tied']:.4g}"
    before = len(charts(host))
    host.multiselect(key="room.picked").set_value([run_id]).run()
    assert not host.exception and len(charts(host)) > before, "the picked hand-in is overlaid"
    host.sidebar.toggle(key="sidebar.presenter").set_value(False).run()

    # The participant sees no board until it is projected.
    go(guest, "room")
    assert not guest.dataframe
    host.toggle(key="room.project").set_value(True).run()
    guest.run()
    assert list(guest.dataframe[0].value["name"]) == [HOSTILE]

    host.multiselect(key="room.hide").set_value([run_id]).run()
    assert _board(host) is None
    host.multiselect(key="room.hide").set_value([]).run()
    assert len(_board(host)) == 1

    guest.button(key=f"room.withdraw.{run_id}").click().run()
    assert _board(host) is None
    host.button(key="room.close").click().run()
    go(guest, "compare")
    guest.button(key=f"room.hand_in.{run_id}").click().run()
    assert any("is closed" in e.value for e in guest.error), [e.value for e in guest.error]


def test_a_wrong_code_or_facilitator_link_says_so_and_opens_nothing():
    at = open_app("room", board="A" * 24)
    assert any("opens no room" in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key="room.join.code").input("ACDEFG")
    at.text_input(key="room.join.name").input("Ann")
    at.button(key="room.join").click().run()
    assert any("No room has the code ACDEFG" in e.value for e in at.error), [e.value for e in at.error]
    assert at.session_state["room.code"] is None
