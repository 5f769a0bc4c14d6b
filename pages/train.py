"""Train: the tied and untied models side by side, with a live loss chart and a Stop button."""

from __future__ import annotations

import json

import streamlit as st

import sharecore
import ui
from sharecore import plots
from sharecore.limits import Limits
from sharecore.spec import OPTIMIZERS, TrainConfig

ui.frame()  # before anything else: see ui.frame

ss = st.session_state
spec = ui.spec()
config = ui.config()
run = ui.active_run()
limits = Limits.from_env()  # the server's caps: environment over secrets.toml over defaults

DATASET_LABELS = {
    "teacher": "teacher: match a random untied network of the same shape",
    "digits": "digits: 8x8 handwritten digits",
}


def settings(config: TrainConfig) -> TrainConfig | None:
    """The settings widgets; returns the settings they hold, or None after showing why they are invalid."""
    datasets = ["teacher", "digits"] if ui.digits_allowed(spec) else ["teacher"]
    initial = {
        "train.dataset": config.dataset if config.dataset in datasets else "teacher",
        "train.optimizer": config.optimizer,
        "train.learning_rate": float(config.learning_rate),
        "train.steps": config.steps,
        "train.batch_size": config.batch_size,
        "train.record_every": config.record_every,
    }
    for k, value in initial.items():
        ss.setdefault(k, value)
    if ss["train.dataset"] not in datasets:
        ss["train.dataset"] = "teacher"
    disabled = run is not None
    data_col, opt_col, lr_col = st.columns([3, 1, 1])
    with data_col:
        dataset = st.radio("Dataset", datasets, key="train.dataset", format_func=DATASET_LABELS.get, disabled=disabled)
        if "digits" not in datasets:
            st.caption(
                f"digits needs a model input of 64 values (one 8x8 image) or 128 (two side by side); "
                f"this model's input {list(spec.input_shape)} holds another number. Try preset 'siamese-digits'."
            )
    with opt_col:
        optimizer = st.selectbox("Optimizer", OPTIMIZERS, key="train.optimizer", disabled=disabled)
    with lr_col:
        learning_rate = st.number_input(
            "Learning rate",
            min_value=1e-5,
            max_value=10.0,
            step=0.001,
            format="%.4g",
            key="train.learning_rate",
            disabled=disabled,
        )
    steps_col, batch_col, every_col = st.columns(3)
    with steps_col:
        steps = st.number_input(
            "Steps", min_value=1, max_value=limits.max_steps, step=10, key="train.steps", disabled=disabled
        )
    with batch_col:
        batch_size = st.number_input(
            "Batch size",
            min_value=1,
            max_value=limits.max_batch_size,
            step=8,
            key="train.batch_size",
            disabled=disabled,
        )
    with every_col:
        record_every = st.number_input(
            "Record every (steps)",
            min_value=1,
            max_value=limits.max_steps,
            step=1,
            key="train.record_every",
            help="Gradients and divergence are recorded every k steps (and at the first and last step).",
            disabled=disabled,
        )
    try:
        new = TrainConfig(
            steps=int(steps),
            batch_size=int(batch_size),
            optimizer=optimizer,
            learning_rate=float(learning_rate),
            seed=config.seed,
            device=config.device,
            record_every=int(record_every),
            dataset=dataset,
        )
        ui.check_spec(spec, new)
    except ValueError as err:
        st.error(str(err), icon=":material/error:")
        return None
    return new


def live_panel() -> None:
    """Polls the background run twice a second; a full rerun shows the result when it ends."""

    @st.fragment(run_every=0.5)
    def live() -> None:
        if not run.running:
            st.rerun()
        progress = run.progress
        if run.stop_event.is_set():
            st.info("Stopping: the run ends after its current chunk of steps.", icon=":material/stop_circle:")
        elif run.queued:
            st.info("Waiting for a free trainer: other runs on this server come first.", icon=":material/hourglass:")
        step = progress.step if progress else 0
        st.progress(run.fraction, text=f"Training tied and untied: step {step} of {run.config.steps}")
        if progress is not None:
            ui.chart(plots.loss_chart(progress.history, total_steps=run.config.steps), key="train.live_loss")

    live()


def result_panel(res: sharecore.TrainResult) -> None:
    if res.stop_reason:
        st.warning(res.stop_reason, icon=":material/stop_circle:")
    if res.spec != spec or res.config != config:
        st.caption("These results are from the last run; the model or settings have changed since.")
    summary = res.summary()
    device_col, steps_col, speed_col, tied_col, untied_col = st.columns(5)
    device_col.metric("Device", res.device.split("device:")[-1])
    steps_col.metric("Steps", f"{res.steps_done} / {res.config.steps}")
    speed_col.metric("Steps per second", f"{res.steps_per_second:,.1f}", help=f"{res.seconds:.2f} s in all")
    for col, variant in ((tied_col, "tied"), (untied_col, "untied")):
        loss = summary["final_loss"].get(variant)
        col.metric(f"Final loss, {variant}", "–" if loss is None else f"{loss:.4g}")
    counts = ", ".join(f"{variant} {n:,}" for variant, n in res.params.items())
    st.caption(f"Data: {res.dataset}. Parameters: {counts}.")
    ui.chart(ui.loss_chart(res.history, res.config.steps), key="train.loss")
    st.page_link(ui.PAGES["gradients"], label="See the gradient flow", icon=":material/call_split:")
    st.page_link(ui.PAGES["divergence"], label="See how far the copies drift", icon=":material/compare_arrows:")
    st.markdown("**Downloads**")
    cols = st.columns(5)
    downloads = [
        ("Spec (JSON)", res.spec.to_json(), f"{res.spec.name}.json", "application/json"),
        ("Loss history (CSV)", res.history.to_csv(index=False), f"{res.spec.name}_history.csv", "text/csv"),
        ("Gradients (CSV)", res.gradients.to_csv(index=False), f"{res.spec.name}_gradients.csv", "text/csv"),
        ("Divergence (CSV)", res.divergence.to_csv(index=False), f"{res.spec.name}_divergence.csv", "text/csv"),
        ("Summary (JSON)", json.dumps(summary, indent=2), f"{res.spec.name}_summary.json", "application/json"),
    ]
    for col, (label, data, file_name, mime) in zip(cols, downloads):
        col.download_button(
            label,
            data,
            file_name=file_name,
            mime=mime,
            on_click="ignore",
            icon=":material/download:",
            key=f"train.dl.{label}",
        )


st.title("Train")
st.caption(
    f"Model '{spec.name}': the tied and the untied model start from the same numbers (seed {config.seed}) "
    "and see the same batches."
)
new = settings(config)
if new is not None and new != config:
    ui.set_config(new)
    config = new

train_col, stop_col, device_col = st.columns([1, 1, 4], vertical_alignment="center")
train_col.button(
    "Train",
    type="primary",
    icon=":material/play_arrow:",
    on_click=ui.start_training,
    disabled=run is not None or new is None,
    key="train.start",
    width="stretch",
)
stop_col.button(
    "Stop",
    icon=":material/stop:",
    on_click=ui.stop_training,
    disabled=run is None,
    key="train.stop",
    width="stretch",
)
with device_col:
    try:
        st.caption(f"Trains on {ui.device_name(config.device)}.")
    except ValueError as err:
        st.error(str(err), icon=":material/error:")

if ss[ui.RUN_ERROR]:
    st.error(ss[ui.RUN_ERROR], icon=":material/error:")
if run is not None:
    live_panel()
elif ui.result() is not None:
    result_panel(ui.result())
else:
    st.info("Press Train: the defaults finish in a few seconds on a laptop CPU.", icon=":material/info:")
