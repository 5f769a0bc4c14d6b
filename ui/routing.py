"""Routing: the router's last step, the first call of every page (`frame`), and the count of script runs."""

from __future__ import annotations

import threading

import streamlit as st

from ui import kept, room, sidebar, startup, state, sweep, training
from ui.keys import SCRIPT_RUNS
from ui.sitemap import navigation_pages

# Why every page starts with `frame()`, and why the sidebar is drawn there.
#
# The design card puts the pages in a top-level `pages/` folder. Streamlit 1.67 treats a
# `pages/` folder beside the entry file as its older multipage layout: until some run in the
# process has called `st.navigation`, every run is routed by Streamlit itself, which runs the
# requested page file alone (`/train` runs pages/train.py without streamlit_app.py) or, for
# `/`, runs streamlit_app.py as a page of its own. Calling `st.navigation` switches the
# whole process to the router for good (the documented behaviour); AppTest starts every
# run in the older mode again.
#
# * A page file that runs without the router (a fresh server's first deep link) calls
#   `st.navigation` and `st.rerun()`: the rerun repeats the same page and query string
#   through streamlit_app.py, so the visitor sees the full app. `_ROUTED` tells the two
#   cases apart; it is per thread because each session's script runs in its own thread.
# * The sidebar is drawn inside the page's run, not in the router's body. Streamlit makes
#   widget ids from the running page's hash, which is the same in both modes for a page
#   (its URL path), while the router's own body has another hash in each mode. Drawn in the
#   router, a fresh server's first visitor of `/` would lose their first sidebar change.
_ROUTED = threading.local()


def run_page(page: st.Page) -> None:
    """The router's last step: runs the page `st.navigation` picked, marked as routed."""
    _ROUTED.active = True
    try:
        page.run()
        startup.warm_up_charts()  # the run's last element: after everything the page shows
    finally:
        _ROUTED.active = False
        sidebar.end_of_run()
    startup.start_loading_tensorflow()  # after the first page is drawn; at once on every later run
    sweep.start()


def frame() -> None:
    """The first call of every page: hands a page that runs alone to the router, then draws
    what every page shares (session state, the sidebar and the link's warnings)."""
    if not getattr(_ROUTED, "active", False):
        st.navigation(navigation_pages())
        st.rerun()
    startup.ignore_unusable_settings()  # before anything reads them
    state.init_state()  # on a session's first run, the experiment from the URL
    kept.init_session()
    training.init_session()
    training.take_over_orphaned_run()
    training.collect_run()
    room.init_session()  # before sync_url: a room's link is read from the URL
    state.sync_url(keep_share_link=True)
    kept.remember_workspace()
    sidebar.draw()
    _count_script_run()
    startup.show_setting_problems()
    state.show_url_warnings()
    kept.show_store_problem()


def _count_script_run() -> None:
    """Writes this session's count of full script runs into the page, invisibly, at the end of the sidebar.

    A browser test knows an input's rerun has ended when the count has moved on and the app is idle:
    Streamlit's own running state still says 'not running' between a click and the server's answer,
    so a check right after an input can pass before its rerun has begun (a shape typed into a field the
    rerun was about to replace). The number is ours, never user text.
    """
    ss = st.session_state
    ss[SCRIPT_RUNS] = ss.get(SCRIPT_RUNS, 0) + 1
    st.sidebar.html(f'<span class="sharecore-script-run" data-run="{int(ss[SCRIPT_RUNS])}" hidden></span>')
