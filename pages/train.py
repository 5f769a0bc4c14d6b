"""Train: the tied and untied models side by side, with a live loss chart and a Stop button."""

from __future__ import annotations

import dataclasses
import json

import streamlit as st

import sharecore
from sharecore.core.config import OPTIMIZERS, TEACHERS, TrainConfig
from sharecore.core.limits import Limits
from sharecore.core.text import csv_text, safe_file_name
from sharecore.share import urlstate
from ui import figures, kept, keys, startup, state, training, widgets
from ui.routing import frame
from ui.sitemap import PAGES
from ui.text import plain

frame()  # before anything else: see ui/routing.py

ss = st.session_state
spec = state.spec()
config = state.config()
run = training.active_run()
limits = Limits.from_env()  # the server's caps: environment over secrets.toml over defaults


DATASET_LABELS = {
    "teacher": "teacher: match a random network of the same shape",
    "digits": "digits: 8x8 handwritten digits",
    "tokens": "tokens: predict the next token of a random Markov chain",
}
# The settings widgets' labels, by TrainConfig field (their keys: keys.TRAIN_SETTINGS).
SETTING_KEYS = {key: name for name, key in keys.TRAIN_SETTINGS.items()}
SETTING_LABELS = {
    "dataset": "Dataset",
    "teacher": "Teacher",
    "optimizer": "Optimizer",
    "learning_rate": "Learning rate",
    "steps": "Steps",
    "batch_size": "Batch size",
    "record_every": "Record every (steps)",
}


def settings(config: TrainConfig) -> TrainConfig | None:
    """The settings widgets; returns the settings they hold, or None after showing why they are invalid.

    The widgets' bounds are urlstate's ranges. Streamlit silently resets a value outside a
    widget's bounds, so the held values are first brought into range by `urlstate.fit_config`,
    and each change is shown.
    """
    for key, name in SETTING_KEYS.items():
        ss.setdefault(key, getattr(config, name))
    held = dataclasses.replace(config, **{name: ss[key] for key, name in SETTING_KEYS.items()})
    _, adjustments = urlstate.fit_config(spec, held, limits)
    for a in adjustments:
        ss[keys.TRAIN_SETTINGS[a.field]] = a.used
        st.warning(
            plain(f"{SETTING_LABELS[a.field]} {a.asked!r} cannot be used: {a.reason} Using {a.used!r}."),
            icon=":material/tune:",
        )
    lr_key = keys.TRAIN_SETTINGS["learning_rate"]
    ss[lr_key] = float(ss[lr_key])  # a float widget needs a float
    datasets = list(urlstate.datasets_for(spec))
    disabled = run is not None
    # The data set on a row of its own: beside it, the optimizer and learning rate were too narrow on a projector.
    data_col = st.container()
    opt_col, lr_col = st.columns([1, 2])
    with data_col:
        dataset = st.radio(
            SETTING_LABELS["dataset"],
            datasets,
            key=keys.TRAIN_SETTINGS["dataset"],
            format_func=DATASET_LABELS.get,
            disabled=disabled,
        )
        # The teacher choice labels only the teacher data set; hidden, it keeps its value.
        teacher = ss[keys.TRAIN_SETTINGS["teacher"]]
        if dataset == "teacher":
            teacher = st.radio(
                SETTING_LABELS["teacher"],
                TEACHERS,
                key=keys.TRAIN_SETTINGS["teacher"],
                horizontal=True,
                disabled=disabled,
                help="untied: every use of a shared tensor has its own random copy, which a tied model cannot "
                "always match. tied: the model's own tied network, which it can. Drawn at the seed + 7919.",
            )
        if "digits" not in datasets and not spec.input_vocab:
            st.caption(
                f"digits needs a model input of 64 values (one 8x8 image) or 128 (two side by side); "
                f"this model's input {list(spec.input_shape)} holds another number. Try preset 'siamese-digits'."
            )
    with opt_col:
        optimizer = st.selectbox(
            SETTING_LABELS["optimizer"], OPTIMIZERS, key=keys.TRAIN_SETTINGS["optimizer"], disabled=disabled
        )
    with lr_col:
        learning_rate = widgets.learning_rate_picker(lr_key, ss[lr_key], disabled=disabled)
    steps_col, batch_col, every_col = st.columns(3)
    with steps_col:
        steps = st.number_input(
            SETTING_LABELS["steps"],
            min_value=1,
            # No max_value: above it the browser silently keeps the old value (99999 showed and 60
            # trained); the server's cap is applied by urlstate.fit_config above, with a warning.
            step=10,
            key=keys.TRAIN_SETTINGS["steps"],
            disabled=disabled,
        )
    with batch_col:
        batch_size = st.number_input(
            SETTING_LABELS["batch_size"],
            min_value=1,
            step=8,  # no max_value, as for the steps
            key=keys.TRAIN_SETTINGS["batch_size"],
            disabled=disabled,
        )
    with every_col:
        record_every = st.number_input(
            SETTING_LABELS["record_every"],
            min_value=1,  # at most the steps: urlstate.fit_config (no max_value, as for the steps)
            step=1,
            key=keys.TRAIN_SETTINGS["record_every"],
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
            teacher=teacher,
        )
        state.check_spec(spec, new)
    except ValueError as err:
        st.error(plain(str(err)), icon=":material/error:")
        return None
    return new


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
        step = progress.step if progress else 0
        st.progress(run.fraction, text=f"Training tied and untied: step {step} of {run.config.steps}")
        if progress is not None:
            log_y = log_scale_toggle()
            widgets.chart(figures.loss_chart(progress.history, run.config.steps, log_y=log_y), key=keys.TRAIN_LIVE_LOSS)

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
    f"Model '{plain(spec.name)}': the tied and the untied model start from the same numbers (seed {config.seed}) "
    "and see the same batches."
)
new = settings(config)
if new is not None and new != config:
    state.set_config(new)
    config = new

# One row that wraps: in fixed columns the buttons were cut ("T..") on a projector's 1024 px.
train_col = stop_col = device_col = st.container(horizontal=True, vertical_alignment="center")
train_col.button(
    "Train",
    type="primary",
    icon=":material/play_arrow:",
    on_click=training.start_training,
    disabled=run is not None or new is None,
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
