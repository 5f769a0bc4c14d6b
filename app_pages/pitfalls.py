"""Pitfalls: three ways weight sharing silently breaks in Keras, measured live beside the sharecore way."""

import pandas as pd
import streamlit as st

import ui


def shown(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def label(name: str) -> str:
    return name.replace("_", " ")


st.title("Pitfalls")
st.markdown(
    "Each demonstration below builds a tiny model both ways and measures it when this page runs: "
    "the broken recipe on the left, the sharecore way on the right."
)
for i, pit in enumerate(ui.all_pitfalls(ui.config().seed)):
    st.subheader(f"{i + 1}. {pit.title}")
    st.markdown(pit.explanation)
    differ = [k for k in pit.broken if k in pit.sharecore and pit.broken[k] != pit.sharecore[k]][:4]
    broken_col, sharecore_col = st.columns(2)
    for col, heading, values in (
        (broken_col, "Broken recipe", pit.broken),
        (sharecore_col, "sharecore", pit.sharecore),
    ):
        with col:
            st.markdown(f"**{heading}**")
            metric_cols = st.columns(max(1, len(differ)))
            for metric_col, k in zip(metric_cols, differ):
                metric_col.metric(label(k), shown(values[k]))
    names = list(dict.fromkeys([*pit.broken, *pit.sharecore]))
    table = pd.DataFrame(
        {
            "measurement": [label(k) for k in names],
            "broken": [shown(pit.broken.get(k, "")) for k in names],
            "sharecore": [shown(pit.sharecore.get(k, "")) for k in names],
        }
    )
    with st.expander("All measurements and the code"):
        st.dataframe(table, hide_index=True, width="stretch")
        code_broken, code_sharecore = st.columns(2)
        code_broken.code(pit.broken_code, language="python")
        code_sharecore.code(pit.sharecore_code, language="python")
