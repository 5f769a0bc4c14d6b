"""sharecore dashboard: the router. Page config, then the page the user picked.

The shared sidebar is drawn by `frame()` (ui/routing.py), the first call of every page in pages/; why it
lives there and not here is explained in ui/routing.py, beside `frame()`.
"""

import streamlit as st

from ui.routing import run_page
from ui.sitemap import navigation_pages

st.set_page_config(page_title="sharecore: tied vs untied weights", page_icon="🔗", layout="wide")
run_page(st.navigation(navigation_pages()))
