"""Home: what tied and untied mean, the one-minute path, and the current model's size."""

import streamlit as st

from ui import figures, state
from ui.routing import frame
from ui.sitemap import PAGES
from ui.text import plain

frame()  # before anything else: see ui/routing.py

st.title("Tied vs untied weights")
st.markdown(
    "**Tied** means one tensor is used by several layers: there is one variable, every use reads it, "
    "and its gradient is the sum of what each use contributes. **Untied** means each layer gets its own "
    "copy with the same starting numbers, so the copies train separately and drift apart. "
    "This app builds both versions of the same model, counts their parameters, trains them side by "
    "side on the same batches and shows where the gradients come from and how far the copies move."
)

st.subheader("Your first minute")
st.markdown("1. Pick a **preset** in the sidebar (or start from a family on the Build page).")
st.page_link(
    PAGES["build"],
    label="2. Build: see the model, its shared tensors and the Keras code",
    icon=":material/construction:",
)
st.page_link(PAGES["train"], label="3. Train: press Train and watch both losses", icon=":material/play_arrow:")
st.page_link(
    PAGES["gradients"],
    label="4. Gradient flow: which use pushes the shared tensor where",
    icon=":material/call_split:",
)
st.page_link(
    PAGES["divergence"], label="5. Divergence: how far the untied copies drift", icon=":material/compare_arrows:"
)
st.page_link(
    PAGES["pitfalls"], label="Pitfalls: three ways sharing silently breaks in Keras", icon=":material/warning:"
)

st.subheader("In a workshop")
st.page_link(
    PAGES["lab"],
    label="Lab: change one thing, train, compare with the run before, all on one screen",
    icon=":material/science:",
)
st.page_link(
    PAGES["exercises"], label="Exercises: ten guided what-ifs with one-click set-ups", icon=":material/school:"
)
st.page_link(
    PAGES["compare"],
    label="Compare runs: kept runs side by side, what differs, and a link to share one",
    icon=":material/stacked_line_chart:",
)

spec = state.spec()
report = figures.param_report(spec)
st.subheader(f"Current model: {plain(spec.name)}")
if spec.description:
    st.caption(plain(spec.description))
tied, untied, saved = st.columns(3)
tied.metric("Tied parameters", f"{report.tied_total:,}")
untied.metric("Untied parameters", f"{report.untied_total:,}")
saved.metric("Saved by tying", f"{report.saved:,}", help=f"Untied / tied = {report.ratio:.2f}x")
