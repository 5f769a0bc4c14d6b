"""Exercises: guided what-ifs. Each asks a question, sets up its experiment in one click, says where to
look, and keeps what you should see folded away until the class has guessed."""

from __future__ import annotations

import streamlit as st

from sharecore.teach.exercises import EXERCISES, Exercise
from ui import exercise, keys, room
from ui.routing import frame
from ui.sitemap import PAGES

frame()  # before anything else: see ui/routing.py

if (page := exercise.take_page()) is not None:
    st.switch_page(PAGES[page])


def _open_room(exercise_id: str) -> None:
    """An "Open a room" button's callback: a workshop room on this exercise, whose board the Room page shows."""
    room.open_room(exercise_id)
    exercise.ask_page("room")


def show(number: int, ex: Exercise) -> None:
    """One exercise: question, Set up, where to look, what to change next, and the folded answer."""
    with st.container(border=True):
        st.subheader(f"{number}. {ex.title}")
        st.markdown(ex.question)
        first = ex.setups[0]
        look = ex.looks[0]
        buttons = st.container(horizontal=True)
        buttons.button(
            "Set up",
            key=keys.of(keys.EXERCISES_SET_UP, ex.id),
            on_click=exercise.set_up,
            args=(ex.id,),
            icon=":material/science:",
            help=f"Loads {first.label} (preset {first.preset}) with its training settings and opens "
            f"the {look.page.replace('_', ' ').title()} page{f' on its {look.tab} tab' if look.tab else ''}.",
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
        st.markdown("**What to look at**")
        exercise.looks(ex)
        if ex.then:
            st.markdown(f"**Then.** {ex.then}")
        with st.expander("What you should see"):
            st.markdown(ex.expect)


st.title("Exercises")
st.markdown(
    "Guided what-ifs about tied and untied weights. Read the question and guess, press **Set up** "
    "(it loads the experiment and opens the page it names), train, look where it says, and only "
    "then open **What you should see**. The Lab keeps the exercise's question beside your work. Every "
    "claim there is checked by a test that trains the same set-ups on seeds 0, 1 and 2."
)
for number, ex in enumerate(EXERCISES, 1):
    show(number, ex)
