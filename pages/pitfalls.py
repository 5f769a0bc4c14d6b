"""Pitfalls: three ways weight sharing silently breaks in Keras, measured live beside the sharecore way."""

import pandas as pd
import streamlit as st

from ui import figures, startup, state, widgets
from ui.routing import frame

frame()  # before anything else: see ui/routing.py


def shown(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def label(name: str) -> str:
    return name.replace("_", " ")


st.title("Pitfalls")
st.markdown(
    "Each demonstration builds a tiny model both ways and measures it when this page runs: "
    "the broken recipe on the left, the sharecore way on the right."
)
results = figures.all_pitfalls(state.config().seed) if startup.tensorflow_or_status("the demonstrations") else []
for i, pit in enumerate(results):
    st.subheader(f"{i + 1}. {pit.title}")
    st.markdown(pit.explanation)
    # The two measurements that differ first are the headline; the table has them all.
    headline = [k for k in pit.broken if k in pit.sharecore and pit.broken[k] != pit.sharecore[k]][:2]
    broken_col, sharecore_col = st.columns(2)
    for col, heading, values, code in (
        (broken_col, ":red[Broken recipe]", pit.broken, pit.broken_code),
        (sharecore_col, ":green[The sharecore way]", pit.sharecore, pit.sharecore_code),
    ):
        with col:
            st.markdown(f"**{heading}**")
            for metric_col, k in zip(st.columns(max(1, len(headline))), headline):
                metric_col.metric(label(k), shown(values[k]))
            st.code(code, language="python")
    names = list(dict.fromkeys([*pit.broken, *pit.sharecore]))
    table = pd.DataFrame(
        {
            "measurement": [label(k) for k in names],
            "broken": [shown(pit.broken.get(k, "")) for k in names],
            "sharecore": [shown(pit.sharecore.get(k, "")) for k in names],
        }
    )
    widgets.data_table(table)
