"""Train: the tied and untied models side by side, with a live loss chart and a Stop button."""

from __future__ import annotations

import json

import streamlit as st

import sharecore
from sharecore.core.text import csv_text, safe_file_name
from ui import figures, kept, keys, settings_editor, startup, state, training, widgets
from ui.routing import frame
from ui.sitemap import PAGES
from ui.text import plain

frame()  # before anything else: see ui/routing.py

spec = state.spec()
run = training.active_run()


def log_scale_toggle() -> bool:
    return st.toggle(
        "Log scale for the loss",
        key=keys.TRAIN_LOG_Y,
        help="Equal steps on the axis are equal factors: a loss that falls from 1 to 0.001 stays readable.",
    )


def live_panel() -> None:
    """Polls the background run twice a second (once a second while it waits in the queue); a full
    rerun shows the result when it ends, and switches to the faster poll when it starts training.

    A waiting run's place changes only when a run ends, and a workshop server with two trainers
    and ten waiting tabs polling twice a second had no time left to answer the next Train click
    (27 s for the eleventh tab, over 150 s for the twelfth).
    """
    queued = run.queued

    @st.fragment(run_every=1.0 if queued else 0.5)
    def live() -> None:
        if not run.running or run.queued != queued:
            st.rerun()
        progress = run.progress
        if run.stop_event.is_set():
            st.info("Stopping: the run ends after its current chunk of steps.", icon=":material/stop_circle:")
        elif waiting := training.queue_text(run):  # read once: the place can change between two reads
            st.info(waiting, icon=":material/hourglass:")
            return  # the queue state alone: no step counter nor chart yet
        step = progress.step if progress else 0
        st.progress(run.fraction, text=f"Training tied and untied: step {step} of {run.config.steps}")
        history = run.history
        if history is not None:
            log_y = log_scale_toggle()
            widgets.chart(figures.loss_chart(history, run.config.steps, log_y=log_y), key=keys.TRAIN_LIVE_LOSS)

    live()


def result_panel(res: sharecore.TrainResult) -> None:
    if res.stop_reason:
        st.warning(plain(res.stop_reason), icon=":material/stop_circle:")
    training.training_warnings(res)
    if res.spec != spec or res.config != config:
        st.caption("These results are from the last run; the model or settings have changed since.")
    summary = res.summary()
    # A row that wraps, so no value is cut on a narrow screen.
    device_col = steps_col = speed_col = tied_col = untied_col = st.container(horizontal=True, gap="medium")
    device_col.metric("Device", res.device.split("device:")[-1], width="content")
    steps_col.metric("Steps", f"{res.steps_done} / {res.config.steps}", width="content")
    speed_col.metric(
        "Steps per second", f"{res.steps_per_second:,.1f}", help=f"{res.seconds:.2f} s in all", width="content"
    )
    for col, variant in ((tied_col, "tied"), (untied_col, "untied")):
        loss = summary["final_loss"].get(variant)
        col.metric(f"Final loss, {variant}", "–" if loss is None else f"{loss:.4g}", width="content")
    counts = ", ".join(f"{variant} {n:,}" for variant, n in res.params.items())
    st.caption(f"Data: {res.dataset}. Parameters: {counts}.")
    log_y = log_scale_toggle()
    widgets.chart(figures.loss_chart(res.history, res.config.steps, res.heldout, log_y=log_y), key=keys.TRAIN_LOSS)
    st.page_link(PAGES["gradients"], label="See the gradient flow", icon=":material/call_split:")
    st.page_link(PAGES["divergence"], label="See how far the copies drift", icon=":material/compare_arrows:")
    st.markdown("**Downloads**")
    row = st.container(horizontal=True)
    cols = [row] * 5
    downloads = [
        ("Spec (JSON)", res.spec.to_json(), ".json", "application/json"),
        ("Loss history (CSV)", csv_text(res.history), "_history.csv", "text/csv"),
        ("Gradients (CSV)", csv_text(res.gradients), "_gradients.csv", "text/csv"),
        ("Divergence (CSV)", csv_text(res.divergence), "_divergence.csv", "text/csv"),
        ("Summary (JSON)", json.dumps(summary, indent=2), "_summary.json", "application/json"),
    ]
    for col, (label, data, suffix, mime) in zip(cols, downloads):
        col.download_button(
            label,
            data,
            file_name=safe_file_name(res.spec.name, suffix),  # the name is the user's: never a path
            mime=mime,
            on_click="ignore",
            icon=":material/download:",
            key=keys.of(keys.TRAIN_DOWNLOAD, label),
        )


st.title("Train")
st.caption(
    f"Model '{plain(spec.name)}': the tied and the untied model start from the same numbers "
    f"(seed {state.config().seed}) and see the same batches."
)
trainable = settings_editor.draw(full=True)
config = state.config()  # as the editor left it

# One row that wraps: in fixed columns the buttons were cut ("T..") on a projector's 1024 px.
train_col = stop_col = device_col = st.container(horizontal=True, vertical_alignment="center")
train_col.button(
    "Train",
    type="primary",
    icon=":material/play_arrow:",
    on_click=training.start_training,
    disabled=run is not None or not trainable,
    key=keys.TRAIN_START,
)
stop_col.button(
    "Stop",
    icon=":material/stop:",
    on_click=training.stop_training,
    disabled=run is None,
    key=keys.TRAIN_STOP,
)
with device_col:
    if startup.tensorflow_or_status("the device list"):
        try:
            st.caption(f"Trains on {figures.device_name(config.device)}.")
        except ValueError as err:
            st.error(plain(str(err)), icon=":material/error:")

if training.run_error():
    st.error(plain(training.run_error()), icon=":material/error:")
if run is not None:
    live_panel()
elif kept.result() is not None:
    result_panel(kept.result())
else:
    st.info("Press Train: the defaults finish in a few seconds on a laptop CPU.", icon=":material/info:")
