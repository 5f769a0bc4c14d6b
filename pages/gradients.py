"""Gradient flow: how much each use contributes to its shared tensor's gradient, and whether they agree."""

import streamlit as st

from ui import figures, keys, training, widgets
from ui.routing import frame

frame()  # before anything else: see ui/routing.py

st.title("Gradient flow")
st.markdown(
    "In the **tied** model one tensor gets one gradient: the sum of what each use contributes. "
    "The left panel shows each use's contribution with the sum drawn thick; the untied panel beside it "
    "shows each copy's own gradient. The cosine chart says whether a use pushes the tensor the same "
    "way as the other uses (above zero: they agree) or against them (below zero: they conflict)."
)

res = training.pick_result(keys.GRADIENTS_RUN)
if res is not None:
    tensor = widgets.tensor_picker(res.spec, key=keys.GRADIENTS_TENSOR)
    if tensor is None:
        st.info("This run's model shares no tensor, so there is no gradient to split between uses.")
    else:
        flow, cosine = figures.gradient_figures(res.gradients, tensor)
        widgets.chart(flow, key=keys.GRADIENTS_FLOW)
        widgets.chart(cosine, key=keys.GRADIENTS_COSINE)
        st.caption(f"Recorded every {res.config.record_every} step(s) over {res.steps_done} steps on {res.device}.")
