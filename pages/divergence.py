"""Divergence: how far the untied copies of a shared tensor drift apart, with tied as the zero line."""

import streamlit as st

from sharecore.viz.divergence_charts import pairs_left_out
from ui import figures, keys, training, widgets
from ui.routing import frame
from ui.text import plain

frame()  # before anything else: see ui/routing.py

st.title("Divergence")
st.markdown(
    "Both models start with every use reading the same numbers. The tied model has one variable, so "
    "its uses can never differ (the zero line). The untied copies each follow their own gradient: "
    "the relative distance ‖W_a − W_b‖ / ‖W₀‖ grows and their cosine falls as they drift apart."
)

res = training.pick_result(keys.DIVERGENCE_RUN)
if res is not None:
    tensor = widgets.tensor_picker(res.spec, key=keys.DIVERGENCE_TENSOR, min_uses=2)
    if tensor is None:
        st.info("No shared tensor of this run's model has two or more uses, so there are no copies to compare.")
    else:
        compared, apart = pairs_left_out(res.spec, tensor)
        if apart:
            # Divergence is measured on the entries both uses read; these pairs read none in common.
            names = plain(", ".join(f"{a} and {b}" for a, b in apart))
            st.info(
                f"Not compared: {names} read no common entry of {plain(tensor)} (their slices lie side by side), so "
                "there is nothing on which their weights could differ. They are left out of the chart and "
                "of the divergence CSV.",
                icon=":material/info:",
            )
        if compared:
            widgets.chart(figures.divergence_chart(res.divergence, tensor, res.spec), key=keys.DIVERGENCE_CHART)
        if len(compared) >= 2 and widgets.uses_of(res.spec, tensor) >= 3:
            steps = sorted(int(s) for s in res.divergence["step"].unique())
            step = st.select_slider("Step", steps, value=steps[-1], key=keys.DIVERGENCE_STEP)
            widgets.chart(
                figures.divergence_heatmap(res.divergence, tensor, step, res.spec), key=keys.DIVERGENCE_HEATMAP
            )
    st.subheader("Weights before and after training")
    names = [t.name for t in res.spec.tensors] + [u.name for u in res.spec.uses if u.tensor is None]
    name = st.selectbox("Weights", [None, *names], key=keys.DIVERGENCE_WEIGHTS, format_func=lambda n: n or "all")
    widgets.chart(figures.weight_histograms(res, name), key=keys.DIVERGENCE_HISTOGRAMS)
