"""The exercise a participant has set up: Set up itself, and a compact panel that keeps its question,
where to look and what to expect in view on the pages where the participant works."""

from __future__ import annotations

import streamlit as st

from sharecore.teach.exercises import EXERCISES, Exercise, Look, exercise
from ui import keys, state
from ui.sitemap import PAGES


def set_up(exercise_id: str) -> None:
    """A Set up button's callback: loads the first set-up, makes the exercise the active one, and asks
    for its first look's page (`take_page`) and the tab that look names (`take_tab`)."""
    ex = exercise(exercise_id)
    first = ex.setups[0]
    state.load_experiment(first.spec, first.config, first.preset)
    st.session_state[keys.EXERCISE_ACTIVE] = ex.id
    look = ex.looks[0]
    st.session_state[keys.EXERCISE_TAB] = (look.element, look.tab) if look.tab else None
    ask_page(look.page)


def ask_page(page: str) -> None:
    """Asks the Exercises page to open `page` (a key of ui.sitemap.PAGES) on the run a click starts."""
    st.session_state[keys.EXERCISES_OPEN] = page


def take_page() -> str | None:
    """The page Set up asked for (a key of ui.sitemap.PAGES), once; None when it asked for none."""
    return st.session_state.pop(keys.EXERCISES_OPEN, None)


def take_tab(tabs_key: str) -> str | None:
    """The tab Set up asked the tabs keyed `tabs_key` to open, once; the page that owns those tabs sets it."""
    asked = st.session_state.get(keys.EXERCISE_TAB)
    if not asked or asked[0] != tabs_key:
        return None
    st.session_state[keys.EXERCISE_TAB] = None
    return asked[1]


def active() -> Exercise | None:
    """The exercise set up last, until the participant closes it (None: none)."""
    ex_id = st.session_state.get(keys.EXERCISE_ACTIVE)
    return next((ex for ex in EXERCISES if ex.id == ex_id), None)


def _close() -> None:
    st.session_state[keys.EXERCISE_ACTIVE] = None


def number(ex: Exercise) -> int:
    """The exercise's number on the Exercises page (1-based)."""
    return EXERCISES.index(ex) + 1


def where(look: Look) -> str:
    """The part of the page a look names, as Markdown: 'tab **Parameters**', 'panel **held-out**'."""
    parts = [f"tab **{look.tab}**" if look.tab else "", f"panel **{look.panel}**" if look.panel else ""]
    return ", ".join(p for p in parts if p)


def looks(ex: Exercise, *, compact: bool = False) -> None:
    """The exercise's looks in order: a link to each page, then where on it and what to read."""
    for i, look in enumerate(ex.looks, 1):
        link, text = st.columns([2, 5] if compact else [1, 5], vertical_alignment="center")
        link.page_link(PAGES[look.page], label=None)
        part = where(look)
        text.markdown(f"{i}. {part + ': ' if part else ''}{look.what}")


def panel() -> None:
    """The active exercise, compact: its question; folded, where to look and what you should see (the
    Lab's controls column is short of height on a projector)."""
    ex = active()
    if ex is None:
        return
    with st.container(border=True, key=keys.EXERCISE_PANEL):
        head, close = st.columns([5, 1], vertical_alignment="center")
        head.markdown(f"**Exercise {number(ex)}: {ex.title}**")
        close.button("", icon=":material/close:", key=keys.EXERCISE_CLOSE, on_click=_close, help="Close the exercise")
        st.markdown(ex.question)
        with st.expander("Where to look"):
            looks(ex, compact=True)
            if ex.then:
                st.markdown(f"**Then.** {ex.then}")
        with st.expander("What you should see"):
            st.markdown(ex.expect)
