"""Gradient flow: how much each use contributes to its shared tensor's gradient, and whether they agree."""

import streamlit as st

import ui

ui.frame()  # before anything else: see ui.frame

st.title("Gradient flow")
st.markdown(
    "In the **tied** model one tensor gets one gradient: the sum of what each use contributes. "
    "The left panel shows each use's contribution with the sum drawn thick; the untied panel beside it "
    "shows each copy's own gradient. The cosine chart says whether a use pushes the tensor the same "
    "way as the other uses (above zero: they agree) or against them (below zero: they conflict)."
)

res = ui.need_result()
if res is not None:
    tensor = ui.tensor_picker(res.spec, key="gradients.tensor")
    if tensor is None:
        st.info("The trained model shares no tensor, so there is no gradient to split between uses.")
    else:
        flow, cosine = ui.gradient_figures(res.gradients, tensor)
        ui.chart(flow, key="gradients.flow")
        ui.chart(cosine, key="gradients.cosine")
        st.caption(f"Recorded every {res.config.record_every} step(s) over {res.steps_done} steps on {res.device}.")
