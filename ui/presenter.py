"""Presenter mode, for every page at once: the sidebar folds away, every text is sized for the back of
a room, and every text meets a contrast of 4.5:1 on its background.

One switch (the sidebar's toggle, `PRESENTER` in the session) and one stylesheet: `style()` runs on
every page's first call (`ui.sidebar.draw`), so a new page is presented without code of its own. The
charts grow their text in `ui.widgets.chart` (`sharecore.viz.style.apply_presenter`); the HTML tables
(`ui.widgets.figures_table`) grow with the page's text, which Streamlit sizes in rem, and the model
diagram is drawn larger here.

On every page and in either mode, a narrow window (a phone) hides the charts' toolbar, which covered
their titles.
"""

from __future__ import annotations

import streamlit as st

from ui.keys import LAB_CONTROLS, LAB_TRAIN_ROW, LAB_VIEW, PRESENTER, WARM_UP_CHART

# The page's root font size in presenter mode. Streamlit sizes text, widgets, spacing and its HTML
# tables in rem, so this one number enlarges them all by 22 px / 16 px: body text 22 px, captions,
# labels and table cells 19 px, from a projector's 1024 px across the back of a room. (A grid drawn
# on a canvas, st.dataframe and st.data_editor, keeps its 14 px: in presenter mode the pages draw HTML
# tables instead, `ui.widgets.figures_table` and `data_table`, and fold the kept runs' editable grid
# beneath theirs, `ui.kept_views.kept_runs_editor`.)
ROOT_FONT_PX = 22
# The smallest text presenter mode draws outside canvas grids, in CSS px (tests/browser/test_presenter.py
# checks it): chart ticks and legends (12 px x `PRESENTER_SCALE`), captions and table cells (0.875 rem).
MIN_TEXT_PX = 18
# Graphviz's points are 4/3 px: its 10-11 pt labels at this zoom are 18.7-20.5 px.
DIAGRAM_ZOOM = 1.4
# Streamlit draws captions at 60 % opacity (3.9:1 on white); this grey, opaque, is 8.4:1.
TEXT_SOFT = "#4a4d57"

PICKED = "#1d4fa8"

_STYLE = f"""<style>
html {{ font-size: {ROOT_FONT_PX}px; }}
/* The room Streamlit keeps around a wide page (5 rem a side, 6 rem on top) goes to the content. */
[data-testid="stMainBlockContainer"] {{ padding: 3rem 1rem 4rem 1rem; max-width: none; }}
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p {{ color: {TEXT_SOFT}; opacity: 1; }}
/* Inline code is 0.75 em of its text: 16.5 px in a paragraph, under the smallest size. */
[data-testid="stMarkdownContainer"] code {{ font-size: max(0.85em, {MIN_TEXT_PX}px); }}
/* Code blocks: the highlighting theme's pale greys, greens and reds (3-3.8:1) become ink; comments grey. */
[data-testid="stCode"] pre span {{ color: #31333f !important; }}
[data-testid="stCode"] pre .token.comment {{ color: {TEXT_SOFT} !important; }}
[data-testid="stTable"] th {{ color: {TEXT_SOFT}; }}
/* An uploaded file's size, beside its name, is 0.75 rem (16.5 px); the uploader's "add" button is
   drawn at 60 % opacity (3.8:1). */
[data-testid="stFileChipName"] ~ * {{ font-size: {MIN_TEXT_PX}px; }}
[data-testid="stFileUploader"] button, [data-testid="stFileUploader"] button * {{ color: {TEXT_SOFT}; }}
/* A picked pill or segment: the theme's blue on its own 10 % tint is 4.1:1; a darker blue, 7:1. */
button[data-selected="true"], button[data-selected="true"] * {{ color: {PICKED}; }}
h1 {{ font-size: 2rem !important; padding: 0 0 0.5rem 0 !important; }}
/* The model diagram: Streamlit fits Graphviz's drawing to the column, which shrank its labels to 9-13 px.
   Here it is drawn at its own size, {DIAGRAM_ZOOM} times larger (11 pt labels at 20 px); a wide model
   scrolls sideways inside its box, never past the page. */
[data-testid="stGraphVizChart"] {{ overflow-x: auto; max-width: 100%; }}
[data-testid="stGraphVizChart"] svg {{
    width: auto !important; height: auto !important; max-width: none !important; zoom: {DIAGRAM_ZOOM}; }}
/* The Lab on one screen: the controls and the charts side by side (the narrow-window stacking is
   for a laptop with the sidebar open), Train at the top of the controls, the charts above the diagram. */
@media (min-width: 900px) {{
  .stMain [data-testid="stHorizontalBlock"]:has(.st-key-{LAB_VIEW}) {{ flex-direction: row !important; flex-wrap: nowrap !important; }}
  .stMain [data-testid="stHorizontalBlock"]:has(.st-key-{LAB_VIEW}) > [data-testid="stColumn"] {{
      width: auto !important; min-width: 0 !important; flex: 5 1 0 !important; }}
  .stMain [data-testid="stHorizontalBlock"]:has(.st-key-{LAB_VIEW}) > [data-testid="stColumn"]:has(.st-key-{LAB_VIEW}) {{
      flex: 8 1 0 !important; order: 0 !important; }}
}}
.st-key-{LAB_CONTROLS} > :has(.st-key-{LAB_TRAIN_ROW}) {{ order: -1; }}
.st-key-{LAB_VIEW} > :has([data-testid="stGraphVizChart"]) {{ order: 1; }}
</style>"""


def on() -> bool:
    """Whether the sidebar's presenter toggle is on in this session."""
    return bool(st.session_state.get(PRESENTER, False))


# Plotly shows its toolbar over a chart's top right corner; on a phone's 390 px that is the title. The
# start-up's chart (`ui.startup.warm_up_charts`) is never shown.
_ALWAYS = f"""<style>
@media (max-width: 640px) {{ [data-testid="stPlotlyChart"] .modebar-container {{ display: none; }} }}
.st-key-{WARM_UP_CHART.replace(".", "-")} {{ display: none; }}
</style>"""


def style() -> None:
    """Presents the page when presenter mode is on: the sidebar folds (its chevron at the top left opens
    it again), the stylesheet above applies. Off, the sidebar is Streamlit's default (open on a wide
    window) again."""
    # Streamlit folds or opens the sidebar when this setting changes, so a participant who opens it
    # during a presentation keeps it open across reruns.
    st.set_page_config(initial_sidebar_state="collapsed" if on() else "auto")
    st.html(_ALWAYS)
    if on():
        st.html(_STYLE)
