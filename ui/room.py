"""Workshop rooms in a session: the room it joined (code and display name) or runs (the facilitator's token),
handing runs in and taking them back, and what the board needs (the hand-ins' runs and whether each shows
the exercise's claim). Rooms live in the run store (`sharecore.runs.rooms`); this module only remembers
which room a session is in.

Two links name a room: ``/room?room=CODE`` (a participant's, safe to project) and ``/room?board=<token>``
(the facilitator's, secret). Every run writes the experiment into the URL (`ui.state.sync_url`), so the
Room page puts its own parameter back after it; no other page ever carries the token.
"""

from __future__ import annotations

import streamlit as st

from sharecore.runs.rooms import HandIn, Room, Rooms
from ui import kept, state
from ui.keys import ROOM_ASKED, ROOM_BOARD, ROOM_CODE, ROOM_NAME, ROOM_NOTES, ROOM_RESULTS

# How often the board (and a participant's page) asks the store whether the hand-ins changed.
REFRESH_SECONDS = 3.0


def rooms() -> Rooms:
    """The rooms of the process's run store. A setting that cannot be used gives its default (`ui.startup` says
    so on every page).

    Raises:
        StoreUnavailable: (a ValueError) while the run store cannot be opened (the page's top message says why).
    """
    from sharecore.core import settings
    from sharecore.runs.store import StoreUnavailable

    if not kept.store_open():
        raise StoreUnavailable("Rooms live in the run store, which cannot be opened now (see the message above).")
    store = kept.run_store()
    return Rooms(
        store,
        hours=int(settings.value_or_default("SHARECORE_ROOM_HOURS")),
        max_rooms=int(settings.value_or_default("SHARECORE_MAX_ROOMS")),
        max_handins=int(settings.value_or_default("SHARECORE_ROOM_HANDINS")),
    )


def init_session() -> None:
    """On a session's first run: the room a link names (``?room=CODE`` to offer joining, ``?board=<token>`` to
    run its board). Call it before `ui.state.sync_url` rewrites the URL."""
    ss = st.session_state
    if ROOM_NOTES in ss:
        return
    ss[ROOM_NOTES] = []
    ss[ROOM_RESULTS] = {}
    ss[ROOM_CODE] = ss[ROOM_NAME] = None
    ss[ROOM_ASKED] = st.query_params.get("room") or None
    ss[ROOM_BOARD] = st.query_params.get("board") or None


def notes() -> list[tuple[str, str]]:
    """What the last room actions did, (kind, message) with kind 'ok' or 'error', once: the list empties."""
    found, st.session_state[ROOM_NOTES] = st.session_state[ROOM_NOTES], []
    return found


def _note(kind: str, message: str) -> None:
    st.session_state[ROOM_NOTES].append((kind, message))


# ----------------------------------------------------------------------------- the facilitator
def board_token() -> str | None:
    return st.session_state[ROOM_BOARD]


def facilitated_room() -> Room | None:
    """The room whose board this session runs, or None (no link, or one that opens no room: said once)."""
    token = board_token()
    if token is None:
        return None
    try:
        return rooms().by_token(token)
    except (KeyError, ValueError) as err:  # UnknownRoom, StoreUnavailable
        st.session_state[ROOM_BOARD] = None
        _note("error", str(err))
        return None


def open_room(exercise_id: str | None) -> None:
    """Opens a room (a button's callback): from the exercise's first set-up, which becomes this session's
    experiment too, or from the current experiment; this session runs its board."""
    if exercise_id:
        from sharecore.teach.exercises import exercise

        first = exercise(exercise_id).setups[0]
        state.load_experiment(first.spec, first.config, first.preset)
    try:
        room = rooms().open(
            kept.workspace(), state.spec(), state.config(), preset=state.preset_name(), exercise=exercise_id or ""
        )
    except ValueError as err:
        _note("error", str(err))
        return
    st.session_state[ROOM_BOARD] = room.token


def close_room(token: str) -> None:
    _act(lambda: rooms().close(token), "The room is closed: nobody joins or hands in any more.")


def project(token: str, key: str) -> None:
    """The "project the board" toggle's callback."""
    _act(lambda: rooms().project(token, bool(st.session_state[key])), None)


def set_hidden(token: str, handins: list[HandIn], key: str) -> None:
    """The "take off the board" picker's callback: exactly the picked hand-ins are hidden."""
    hidden = set(st.session_state[key])

    def apply() -> None:
        for h in handins:
            if h.hidden != (h.run_id in hidden):
                rooms().hide(token, h.run_id, h.run_id in hidden)

    _act(apply, None)


def _act(action, done: str | None) -> None:
    try:
        action()
    except (KeyError, ValueError) as err:
        _note("error", str(err))
        return
    if done:
        _note("ok", done)


# ----------------------------------------------------------------------------- participants
def asked_code() -> str | None:
    """The code a ``?room=CODE`` link brought, to fill the join field with."""
    return st.session_state[ROOM_ASKED]


def joined() -> tuple[str, str] | None:
    """(code, display name) of the room this session joined, or None."""
    code = st.session_state[ROOM_CODE]
    return None if code is None else (code, st.session_state[ROOM_NAME])


def joined_room() -> Room | None:
    """The room this session joined, as its code shows it; None when it joined none or it expired (said once)."""
    if (seat := joined()) is None:
        return None
    try:
        return rooms().find(seat[0])
    except (KeyError, ValueError) as err:
        leave()
        _note("error", str(err))
        return None


def join(code_key: str, name_key: str) -> None:
    """The Join button's callback: checks the code and the name, and makes the room's starting experiment this
    session's, so a participant trains what the room compares."""
    from sharecore.runs.rooms import clean_name

    ss = st.session_state
    try:
        room = rooms().find(ss.get(code_key) or "")
        name = clean_name(ss.get(name_key) or "")
    except (KeyError, ValueError) as err:  # UnknownRoom, a bad name, StoreUnavailable
        _note("error", str(err))
        return
    if room.closed:
        _note("error", f"Room {room.code} is closed: ask the facilitator for the code of an open room.")
        return
    ss[ROOM_CODE], ss[ROOM_NAME], ss[ROOM_ASKED] = room.code, name, None
    state.load_experiment(room.spec, room.config, room.preset or state.preset_name())
    _note("ok", f"You joined room {room.code}. Train in the Lab, then hand in a kept run.")


def leave() -> None:
    st.session_state[ROOM_CODE] = st.session_state[ROOM_NAME] = None


def my_handins() -> list[HandIn]:
    """This session's hand-ins to the room it joined (none when it joined none or the store fails)."""
    if (seat := joined()) is None:
        return []
    try:
        return rooms().handed_in(seat[0], kept.workspace())
    except (KeyError, ValueError):
        return []


def hand_in(run_id: str) -> None:
    """Hands in a kept run of this browser's list under the session's display name (a button's callback)."""
    if (seat := joined()) is None:
        _note("error", "Join a room on the Room page first: then a kept run can be handed in.")
        return
    code, name = seat
    _act(lambda: rooms().hand_in(code, kept.workspace(), run_id, name), f"Handed in to room {code}.")


def withdraw(run_id: str) -> None:
    """Takes back a run this session handed in (a button's callback)."""
    if (seat := joined()) is not None:
        _act(lambda: rooms().withdraw(seat[0], kept.workspace(), run_id), "Withdrawn: the board no longer shows it.")


# ----------------------------------------------------------------------------- the board's data
def handin_results(handins: list[HandIn]) -> dict:
    """run id -> TrainResult of each hand-in whose run can be read, read once per session (without joining
    this browser's list: a facilitator's own kept runs are not touched)."""
    cache = st.session_state[ROOM_RESULTS]
    for h in handins:
        if h.run_id not in cache:
            try:
                cache[h.run_id] = kept.run_store().load(h.run_id).result
            except (KeyError, ValueError):  # deleted meanwhile, or unreadable: left off the board
                continue
    return {h.run_id: cache[h.run_id] for h in handins if h.run_id in cache}


def claims(exercise_id: str, run_ids: list[str], results: dict) -> list[str]:
    """For each run, whether it shows the exercise's claim: 'yes', 'no', or '–' where one run cannot say
    (no exercise, a claim on two set-ups or on the specs alone, or a run the check cannot read)."""
    from sharecore.teach.exercises import exercise

    if not exercise_id:
        return ["–"] * len(run_ids)
    try:
        ex = exercise(exercise_id)
    except ValueError:
        return ["–"] * len(run_ids)
    if not ex.trains or len(ex.setups) != 1:
        return ["–"] * len(run_ids)
    out = []
    for run_id in run_ids:
        try:
            out.append("yes" if ex.check([results[run_id]], ex.setups).holds else "no")
        except Exception:  # a run of another model: the check's columns or uses are not there
            out.append("–")
    return out
