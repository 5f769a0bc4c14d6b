"""The training-settings editor of the Lab and the Train page: one set of widgets, one way to change the settings.

Drawn compact in the Lab (data, teacher, optimizer, learning rate, steps) and full on the Train page
(also batch size and how often to record). Every widget shows the experiment's setting: its key
(`keys.SETTING`) is set from `state.config()` on every run, so a preset load, Reset or kept run loaded
needs no widget reset, and a change that arrives in the same rerun as one of them still finds its key.
Every change takes one path, `_changed` -> `state.change_setting`: the value is brought into this
server's range (`urlstate.fit_config`), the run is checked once against the spec and the limits, and the
experiment's TrainConfig is written once. A value brought into range is said once, on the run of the
change; one that cannot be used leaves the settings as they were, and says why while the experiment
stays the same.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from sharecore.core.config import OPTIMIZERS, TEACHERS
from sharecore.core.limits import Limits
from sharecore.share import urlstate
from ui import state
from ui.keys import SETTING, SETTINGS_ADJUSTED, SETTINGS_REFUSED
from ui.text import plain
from ui.training import active_run
from ui.widgets import learning_rate_picker

# What the messages call each setting (and the Train page's labels).
LABELS = {
    "dataset": "Dataset",
    "teacher": "Teacher",
    "optimizer": "Optimizer",
    "learning_rate": "Learning rate",
    "steps": "Steps",
    "batch_size": "Batch size",
    "record_every": "Record every (steps)",
}
DATASET_LABELS = {
    "teacher": "teacher: match a random network of the same shape",
    "digits": "digits: 8x8 handwritten digits",
    "tokens": "tokens: predict the next token of a random Markov chain",
}
DATASET_HELP = (
    "teacher: imitate a random network of this model (any model). digits: 8x8 handwritten digits "
    "(64 or 128 inputs). tokens: the next token of a random Markov chain (language models)."
)
TEACHER_HELP = {
    "compact": "The teacher data set's targets come from a random network of this model: untied (every use its "
    "own tensor) or tied. Whichever it is, that variant is the 'right' model.",
    "full": "untied: every use of a shared tensor has its own random copy, which a tied model cannot "
    "always match. tied: the model's own tied network, which it can. Drawn at the seed + 7919.",
}
STEP_CHOICES = (1, 5, 10, 20, 30, 60, 100, 200, 300, 500, 1000, 2000, 5000)  # the Lab's steps slider


def _changed(field: str) -> None:
    """A settings widget's callback: the one way a widget changes the experiment's TrainConfig."""
    ss = st.session_state
    try:
        ss[SETTINGS_ADJUSTED] = state.change_setting(field, ss[SETTING[field]])
    except ValueError as err:
        ss[SETTINGS_REFUSED] = (field, str(err), state.spec(), state.config())
        return
    ss[SETTINGS_REFUSED] = None


def _say(a: urlstate.Adjustment) -> None:
    st.warning(
        plain(f"{LABELS[a.field]} {a.asked!r} cannot be used: {a.reason} Using {a.used!r}."), icon=":material/tune:"
    )


def _widget_args(field: str, disabled: bool) -> dict[str, Any]:
    return {"key": SETTING[field], "on_change": _changed, "args": (field,), "disabled": disabled}


def _learning_rate(value: float, disabled: bool) -> None:
    learning_rate_picker(
        SETTING["learning_rate"], value, disabled=disabled, on_change=_changed, args=("learning_rate",)
    )


def _compact(datasets: list[str], disabled: bool) -> None:
    """The Lab's settings: data and optimizer, the teacher, then learning rate and steps."""
    config = state.config()
    data_col, opt_col = st.columns([3, 2])
    with data_col:
        st.selectbox("Data", datasets, help=DATASET_HELP, **_widget_args("dataset", disabled))
    with opt_col:
        st.selectbox("Optimizer", OPTIMIZERS, **_widget_args("optimizer", disabled))
    if config.dataset == "teacher":
        st.segmented_control(
            "Teacher network", TEACHERS, help=TEACHER_HELP["compact"], **_widget_args("teacher", disabled)
        )
    lr_col, steps_col = st.columns(2)
    with lr_col:
        _learning_rate(config.learning_rate, disabled)
    with steps_col:
        steps = sorted({*(s for s in STEP_CHOICES if s <= Limits.from_env().max_steps), config.steps})
        st.select_slider("Steps", steps, **_widget_args("steps", disabled))


def _full(datasets: list[str], disabled: bool) -> None:
    """The Train page's settings: the data set on a row of its own (beside it, the optimizer and learning rate
    were too narrow on a projector), then optimizer and learning rate, then steps, batch size and records."""
    config, spec = state.config(), state.spec()
    data_col = st.container()
    opt_col, lr_col = st.columns([1, 2])
    with data_col:
        st.radio(LABELS["dataset"], datasets, format_func=DATASET_LABELS.get, **_widget_args("dataset", disabled))
        # The teacher choice labels only the teacher data set; hidden, it keeps its value.
        if config.dataset == "teacher":
            st.radio(
                LABELS["teacher"],
                TEACHERS,
                horizontal=True,
                help=TEACHER_HELP["full"],
                **_widget_args("teacher", disabled),
            )
        if "digits" not in datasets and not spec.input_vocab:
            st.caption(
                f"digits needs a model input of 64 values (one 8x8 image) or 128 (two side by side); "
                f"this model's input {list(spec.input_shape)} holds another number. Try preset 'siamese-digits'."
            )
    with opt_col:
        st.selectbox(LABELS["optimizer"], OPTIMIZERS, **_widget_args("optimizer", disabled))
    with lr_col:
        _learning_rate(config.learning_rate, disabled)
    steps_col, batch_col, every_col = st.columns(3)
    with steps_col:
        # No max_value: above it the browser silently keeps the old value (99999 showed and 60
        # trained); the server's cap is applied by urlstate.fit_config, with a warning.
        st.number_input(LABELS["steps"], min_value=1, step=10, **_widget_args("steps", disabled))
    with batch_col:
        # No max_value, as for the steps.
        st.number_input(LABELS["batch_size"], min_value=1, step=8, **_widget_args("batch_size", disabled))
    with every_col:
        st.number_input(
            LABELS["record_every"],
            min_value=1,  # at most the steps: urlstate.fit_config (no max_value, as for the steps)
            step=1,
            help="Gradients and divergence are recorded every k steps (and at the first and last step).",
            **_widget_args("record_every", disabled),
        )


def draw(*, full: bool) -> bool:
    """The settings editor, compact (the Lab) or `full` (the Train page).

    Returns:
        Whether the experiment can train as it now is; if not, the editor has said why.
    """
    ss = st.session_state
    # What the last change had to bring into range, and settings the spec no longer takes (a preset or a
    # Build edit changed it since): each said once, on the run it happens.
    for adjustment in (*ss.pop(SETTINGS_ADJUSTED, ()), *state.fit_settings()):
        _say(adjustment)
    config, spec = state.config(), state.spec()
    for field, key in SETTING.items():
        ss[key] = getattr(config, field)  # the widgets show the experiment; their callbacks change it
    ss[SETTING["learning_rate"]] = float(config.learning_rate)  # a float widget needs a float
    datasets = list(urlstate.datasets_for(spec))
    if config.dataset not in datasets:  # fit_settings leaves none out; kept visible all the same
        datasets.append(config.dataset)
    disabled = active_run() is not None
    (_full if full else _compact)(datasets, disabled)
    refused = ss.get(SETTINGS_REFUSED)
    if refused and refused[2:] == (spec, config):
        st.error(plain(f"{LABELS[refused[0]]} not changed: {refused[1]}"), icon=":material/error:")
    problem = state.run_problem()
    if problem:
        st.error(plain(problem), icon=":material/error:")
    return problem is None
