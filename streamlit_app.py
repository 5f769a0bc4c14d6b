"""sharecore dashboard: the router. Page config, then the page the user picked.

The shared sidebar is drawn by `ui.frame()`, the first call of every page in pages/; why it
lives there and not here is explained in ui/routing.py, beside `frame()`.
"""

import streamlit as st

import ui

st.set_page_config(page_title="sharecore: tied vs untied weights", page_icon="🔗", layout="wide")
ui.run_page(st.navigation(ui.navigation_pages()))
