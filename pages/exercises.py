"""Exercises: guided what-ifs. Each asks a question, sets up its experiment in one click, says where to
look, and keeps what you should see folded away until the class has guessed."""

from __future__ import annotations

import streamlit as st

from sharecore.teach.exercises import EXERCISES, Exercise, exercise
from ui import keys, room, state
from ui.routing import frame
from ui.sitemap import PAGES

frame()  # before anything else: see ui/routing.py

ss = st.session_state

if (page := ss.pop(keys.EXERCISES_OPEN, None)) is not None:
    st.switch_page(PAGES[page])


def _set_up(exercise_id: str) -> None:
    """A Set up button's callback: runs before the page, so the sidebar and Lab widgets re-read the experiment."""
    ex = exercise(exercise_id)
    first = ex.setups[0]
    state.load_experiment(first.spec, first.config, first.preset)
    ss[keys.EXERCISES_OPEN] = ex.page


def _open_room(exercise_id: str) -> None:
    """An "Open a room" button's callback: a workshop room on this exercise, whose board the Room page shows."""
    room.open_room(exercise_id)
    ss[keys.EXERCISES_OPEN] = "room"


def show(number: int, ex: Exercise) -> None:
    """One exercise: question, Set up, where to look, what to change next, and the folded answer."""
    with st.container(border=True):
        st.subheader(f"{number}. {ex.title}")
        st.markdown(ex.question)
        first = ex.setups[0]
        buttons = st.container(horizontal=True)
        buttons.button(
            "Set up",
            key=keys.of(keys.EXERCISES_SET_UP, ex.id),
            on_click=_set_up,
            args=(ex.id,),
            icon=":material/science:",
            help=f"Loads {first.label} (preset {first.preset}) with its training settings and opens "
            f"the {ex.page.title()} page.",
        )
        buttons.button(
            "Open a room",
            key=keys.of(keys.EXERCISES_ROOM, ex.id),
            on_click=_open_room,
            args=(ex.id,),
            icon=":material/groups:",
            help="For a facilitator: a workshop room on this exercise. Participants join with its code and "
            "hand in runs; you see them all on one board.",
        )
        st.markdown(f"**What to look at.** {ex.look_at}")
        if ex.then:
            st.markdown(f"**Then.** {ex.then}")
        with st.expander("What you should see"):
            st.markdown(ex.expect)


st.title("Exercises")
st.markdown(
    "Guided what-ifs about tied and untied weights. Read the question and guess, press **Set up** "
    "(it loads the experiment and opens the page to train it on), train, look where it says, and only "
    "then open **What you should see**. Every claim there is checked by a test that trains the same "
    "set-ups on seeds 0, 1 and 2."
)
for number, ex in enumerate(EXERCISES, 1):
    show(number, ex)
