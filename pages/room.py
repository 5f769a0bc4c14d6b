"""Room: a workshop's meeting point. A facilitator opens a room and watches the board of hand-ins; a
participant joins with the room's code and a display name, and hands in kept runs.

Three views: no room (join one, or open one), a participant's (their own hand-ins; the board only while the
facilitator projects it), and the facilitator's (the board: every hand-in's figures, overlaid on the
Compare charts). Names and labels are the participants' text: tables, legends and downloads show them as
written, never as markup.
"""

from __future__ import annotations

import time

import streamlit as st

from sharecore.core.text import csv_text, safe_file_name
from sharecore.runs.compare import LabelledRun
from sharecore.runs.rooms import BOARD_COLUMNS, Room, board, board_names
from sharecore.teach.exercises import EXERCISES
from ui import kept, kept_views, keys, presenter, room
from ui.routing import frame
from ui.text import plain
from ui.widgets import figures_table

frame()  # before anything else: see ui/routing.py

EXERCISE_TITLES = {ex.id: ex.title for ex in EXERCISES}
# What the board can be sorted by: the order of hand-ins, then the figures a class compares.
SORTS = ["when handed in", "name", "loss tied", "loss untied", "held-out loss tied", "held-out loss untied"]
SORTS += ["held-out accuracy tied", "held-out accuracy untied", "final divergence untied"]
COLUMN_ORDER = ["name", "loss tied", "loss untied", "held-out loss tied", "held-out loss untied", "shows the claim"]
COLUMN_ORDER += ["final divergence untied", "held-out accuracy tied", "held-out accuracy untied"]
COLUMN_ORDER += ["differs from the start", "steps", "run"]


def show_notes() -> None:
    for kind, message in room.notes():
        if kind == "ok":
            st.success(plain(message), icon=":material/check_circle:")
        else:
            st.error(plain(message), icon=":material/error:")


def base_url() -> str:
    return (st.context.url or "").split("?")[0].rsplit("/", 1)[0]


def watch(signature: tuple, what) -> None:
    """Reruns the page when `what()` (the store's view of the room) differs from `signature`, what this run drew.

    A fragment asks every `REFRESH_SECONDS`; it draws nothing, so an unchanged room costs one small query and
    no redraw of the charts.
    """

    @st.fragment(run_every=room.REFRESH_SECONDS)
    def check() -> None:
        try:
            now = what()
        except (KeyError, ValueError):
            now = None
        if now != signature:
            st.rerun()

    check()


def starting_point(r: Room) -> str:
    title = EXERCISE_TITLES.get(r.exercise)
    start = (
        f"preset {r.preset or r.spec.name}, {r.config.optimizer} lr {r.config.learning_rate:g}, {r.config.steps} steps"
    )
    return f"exercise '{title}' ({start})" if title else start


def board_view(r: Room, handins: list) -> None:
    """The board: a sortable table of the hand-ins' figures, a download, and the picked (or all) hand-ins
    overlaid on the Compare charts."""
    results = room.handin_results(handins)
    frame_ = board(r, handins, results)
    if frame_.empty:
        st.info(
            "No hand-ins on the board yet. They appear here as participants hand in runs.", icon=":material/hourglass:"
        )
        return
    frame_.insert(3, "shows the claim", room.claims(r.exercise, list(frame_["run_id"]), results))
    sort_box, all_box = st.columns([3, 2], vertical_alignment="bottom")
    order = sort_box.selectbox(
        "Sort the board by", SORTS, key=keys.ROOM_SORT, help="A click on a column's header sorts too."
    )
    everyone = all_box.toggle("Overlay all hand-ins", key=keys.ROOM_ALL)
    if order != SORTS[0]:
        frame_ = frame_.sort_values(order, kind="stable", na_position="last", ignore_index=True)
    table = frame_.drop(columns=["run_id"])
    if presenter.on():
        # On a projector an HTML table, whose text grows with the page's (the grid below is drawn on a
        # canvas at 14 px); rows to overlay are picked by name beside it.
        figures_table(table, first=COLUMN_ORDER)
        ids = list(frame_["run_id"])
        names = dict(zip(ids, (f"{i + 1}. {name}" for i, name in enumerate(table["name"]))))
        # A hand-in withdrawn or hidden since the last run leaves the picks (a pick must be an option).
        st.session_state[keys.ROOM_PICKED] = [i for i in st.session_state.get(keys.ROOM_PICKED, []) if i in names]
        chosen = st.multiselect("Overlay these hand-ins", ids, format_func=names.__getitem__, key=keys.ROOM_PICKED)
        picked_rows = [ids.index(i) for i in chosen]
    else:
        picked_rows = _board_grid(table)
    st.download_button(
        "The board (CSV)",
        csv_text(table),
        file_name=safe_file_name(f"room-{r.code}", ".csv"),
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key=keys.ROOM_CSV,
    )
    rows = list(range(len(table))) if everyone else sorted(picked_rows)
    if not rows:
        st.caption("Tick rows of the table, or overlay all hand-ins, to draw their curves.")
        return
    shown = [h for h in handins if h.run_id in results]
    names = dict(zip([h.run_id for h in shown], board_names(shown)))
    ids = [frame_["run_id"].iloc[i] for i in rows]
    runs = [LabelledRun(names[i], results[i], i) for i in ids]
    kept_views.compare_charts(runs, key=keys.ROOM_CHARTS)


def _board_grid(table) -> list[int]:
    """The board as Streamlit's sortable grid, rows ticked to overlay; returns the ticked rows."""
    picked = st.dataframe(
        table,
        key=keys.ROOM_TABLE,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="multi-row",
        # What a class compares first: who, the losses, the claim; the long run label last.
        column_order=COLUMN_ORDER,
        column_config={
            "name": st.column_config.TextColumn(pinned=True, width=120),
            "shows the claim": st.column_config.TextColumn(
                "claim", width=64, help="Does this run show the exercise's claim?"
            ),
            **{
                c: st.column_config.NumberColumn(format="%.4g")
                for c in BOARD_COLUMNS
                if c.startswith(("loss", "held", "final"))
            },
        },
    )
    return list(picked.selection.rows)


def facilitator_view(r: Room) -> None:
    st.query_params["board"] = r.token  # ui.state.sync_url wrote the experiment over it
    handins = room.rooms().handins(r, hidden=True)
    on_board = [h for h in handins if not h.hidden]
    watch(
        (r.closed, r.projected, tuple((h.run_id, h.name, h.label, h.hidden) for h in handins)), lambda: _state(r.token)
    )
    code_box, link_box = st.columns([1, 2])
    code_box.metric("Room code", r.code)
    link_box.markdown("**Participants join at**")
    link_box.code(f"{base_url()}/room?room={r.code}", language=None)
    st.caption(
        f"Started from {plain(starting_point(r))}. {len(on_board)} hand-in(s) on the board"
        f"{f', {len(handins) - len(on_board)} hidden' if len(handins) > len(on_board) else ''}. "
        f"{'Closed: no more hand-ins. ' if r.closed else ''}"
        f"The room and its hand-ins are removed at {time.strftime('%H:%M UTC', time.gmtime(r.expires))}."
    )
    with st.expander("Your facilitator link (keep it to yourself: it opens this board)"):
        st.code(f"{base_url()}/room?board={r.token}", language=None)
    controls = st.container(horizontal=True, vertical_alignment="center")
    st.session_state[keys.ROOM_PROJECT] = r.projected
    controls.toggle(
        "Project the board to the room",
        key=keys.ROOM_PROJECT,
        on_change=room.project,
        args=(r.token, keys.ROOM_PROJECT),
        help="Participants see this board, read-only, on their Room page.",
    )
    controls.button(
        "Close the room",
        key=keys.ROOM_CLOSE,
        on_click=room.close_room,
        args=(r.token,),
        disabled=r.closed,
        icon=":material/lock:",
        help="Nobody joins or hands in any more; this board stays until the room expires.",
    )
    st.subheader("Board")
    board_view(r, on_board)
    names = dict(zip([h.run_id for h in handins], board_names(handins)))
    st.session_state[keys.ROOM_HIDE] = [h.run_id for h in handins if h.hidden]
    with st.expander("Take a hand-in off the board"):
        st.multiselect(
            "Hidden from the board",
            list(names),
            key=keys.ROOM_HIDE,
            format_func=lambda run_id: names.get(run_id, run_id),
            on_change=room.set_hidden,
            args=(r.token, handins, keys.ROOM_HIDE),
            placeholder="Pick a hand-in to take it off the board",
        )


def _state(token: str) -> tuple:
    r = room.rooms().by_token(token)
    handins = room.rooms().handins(r, hidden=True)
    return (r.closed, r.projected, tuple((h.run_id, h.name, h.label, h.hidden) for h in handins))


def participant_view(r: Room, name: str) -> None:
    st.query_params["room"] = r.code
    mine = room.my_handins()
    shared = room.rooms().handins(r) if r.projected else []
    signature = (
        r.closed,
        r.projected,
        tuple(h.run_id for h in mine),
        tuple((h.run_id, h.name, h.label) for h in shared),
    )
    watch(signature, lambda: _participant_state(r.code))
    st.markdown(f"You are in room **{r.code}** as **{plain(name)}**. It started from {plain(starting_point(r))}.")
    if r.closed:
        st.warning("The facilitator closed this room: it takes no more hand-ins.", icon=":material/lock:")
    st.button("Leave the room", key=keys.ROOM_LEAVE, on_click=room.leave, icon=":material/logout:")
    st.subheader("Your hand-ins")
    st.caption("Hand in from the Lab's kept runs (tick *hand in*) or from Compare runs; the facilitator sees them.")
    if not mine:
        st.caption("None yet.")
    for h in mine:
        row = st.container(horizontal=True, vertical_alignment="center")
        row.markdown(plain(h.label) + (" (hidden by the facilitator)" if h.hidden else ""), width="content")
        row.button(
            "Withdraw",
            key=keys.of(keys.ROOM_WITHDRAW, h.run_id),
            on_click=room.withdraw,
            args=(h.run_id,),
            icon=":material/undo:",
        )
    handed = {h.run_id for h in mine}
    choices = {info.id: info.label for info in kept.kept_runs() if info.id not in handed}
    if choices and not r.closed:
        pick = st.container(horizontal=True, vertical_alignment="bottom")
        chosen = pick.selectbox(
            "A kept run to hand in", list(choices), key=keys.ROOM_PICK, format_func=lambda i: choices.get(i, i)
        )
        pick.button("Hand in", key=keys.ROOM_SUBMIT, on_click=room.hand_in, args=(chosen,), icon=":material/upload:")
    if r.projected:
        st.subheader("The room's board")
        board_view(r, shared)


def _participant_state(code: str) -> tuple:
    r = room.rooms().find(code)
    mine = room.my_handins()
    shared = room.rooms().handins(r) if r.projected else []
    return (r.closed, r.projected, tuple(h.run_id for h in mine), tuple((h.run_id, h.name, h.label) for h in shared))


def lobby() -> None:
    join_box, open_box = st.columns(2, gap="large")
    with join_box.container(border=True):
        st.subheader("Join a room")
        if keys.ROOM_JOIN_CODE not in st.session_state and room.asked_code():
            st.session_state[keys.ROOM_JOIN_CODE] = room.asked_code()
        st.text_input("Room code", key=keys.ROOM_JOIN_CODE, max_chars=12, placeholder="e.g. K7MQ4X")
        st.text_input(
            "Your name on the board", key=keys.ROOM_JOIN_NAME, max_chars=40, help="Any name: the class sees it."
        )
        st.button(
            "Join",
            key=keys.ROOM_JOIN,
            on_click=room.join,
            args=(keys.ROOM_JOIN_CODE, keys.ROOM_JOIN_NAME),
            type="primary",
            icon=":material/login:",
        )
    with open_box.container(border=True):
        st.subheader("Open a room")
        st.caption("For a facilitator: participants hand in runs, you see them all on one board.")
        exercise = st.selectbox(
            "Starting exercise",
            [None, *EXERCISE_TITLES],
            key=keys.ROOM_OPEN_EXERCISE,
            format_func=lambda i: "none: the current experiment" if i is None else EXERCISE_TITLES[i],
        )
        st.button(
            "Open a room", key=keys.ROOM_OPEN, on_click=room.open_room, args=(exercise,), icon=":material/groups:"
        )


st.title("Room")
facilitated = room.facilitated_room()
joined = room.joined_room() if facilitated is None else None
show_notes()  # also why a link opened no room
if facilitated is not None:
    facilitator_view(facilitated)
elif joined is not None:
    participant_view(joined, room.joined()[1])
else:
    lobby()
