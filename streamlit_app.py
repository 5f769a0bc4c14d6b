"""sharecore dashboard: the router. Page config, the shared sidebar, then the page the user picked."""

import streamlit as st

import ui

st.set_page_config(page_title="sharecore: tied vs untied weights", page_icon="🔗", layout="wide")
ui.init_state()
ui.sidebar()
ui.show_url_warnings()

st.navigation(
    [
        st.Page(ui.PAGES["home"], title="Home", icon=":material/home:", default=True),
        st.Page(ui.PAGES["build"], title="Build", icon=":material/construction:"),
        st.Page(ui.PAGES["train"], title="Train", icon=":material/play_arrow:"),
        st.Page(ui.PAGES["gradients"], title="Gradient flow", icon=":material/call_split:"),
        st.Page(ui.PAGES["divergence"], title="Divergence", icon=":material/compare_arrows:"),
        st.Page(ui.PAGES["pitfalls"], title="Pitfalls", icon=":material/warning:"),
    ]
).run()
