"""Lab: the what-if loop on one screen. Change a rule, a shape or a setting, train, and read the new
run against the ones before it, without leaving the page."""

from __future__ import annotations

import dataclasses
from typing import Any

import streamlit as st

import sharecore
import ui
from sharecore.core.config import OPTIMIZERS
from sharecore.core.limits import Limits
from sharecore.core.spec import ModelSpec
from sharecore.core.text import parse_ints
from sharecore.share import urlstate

ui.frame()  # before anything else: see ui.frame

ss = st.session_state
spec = ui.spec()
config = ui.config()
run = ui.active_run()
limits = Limits.from_env()

# Rules the Lab edits in place; a composed rule is edited on the Build page.
LAB_RULES = ("identity", "transpose", "reshape", "slice", "rot90", "flip")
STEP_CHOICES = (1, 5, 10, 20, 30, 60, 100, 200, 300, 500, 1000, 2000, 5000)
DATASET_HELP = (
    "teacher: imitate a random network of this model (any model). digits: 8x8 handwritten digits "
    "(64 or 128 inputs). tokens: the next token of a random Markov chain (language models)."
)


# ----------------------------------------------------------------------------- model: rules and shapes
def ints_text(values: Any) -> str:
    return ", ".join(str(v) for v in values or ())


def key(*parts: object) -> str:
    # The Build editor's version: a spec loaded from anywhere else gives the Lab fresh widgets.
    return ".".join(["lab", "model", str(ss[ui.DRAFT_VERSION]), *map(str, parts)])


def held(k: str, initial: Any) -> str:
    """The widget key `k`, holding `initial` until the user changes it."""
    ss.setdefault(k, initial)
    return k


def tensor_edit(t) -> tuple[str, Any, Any]:
    """One shared tensor's shape field. Returns (field, wanted change or ValueError, error slot)."""
    text = st.text_input(
        f"Tensor {t.name}: shape", key=held(key("tensor", t.name), ints_text(t.shape)), help="Whole numbers, e.g. 8, 4."
    )
    slot = st.empty()
    shape = parse_ints(text)
    if shape is None:
        return f"tensor {t.name}", ValueError(f"write whole numbers, e.g. 8, 4. Received: {text[:40]!r}"), slot
    return f"tensor {t.name}", ("tensor", t.name, {"shape": shape}), slot


def use_edit(u) -> tuple[str, Any, Any]:
    """One use's rule: its kind and numbers. Returns (field, wanted change or ValueError, error slot)."""
    rule = u.rule.to_dict()
    field = f"use {u.name}"
    if rule["kind"] not in LAB_RULES:
        st.markdown(f"**{ui.plain(u.name)}** reads {ui.plain(u.tensor)} as {ui.plain(u.rule.describe())}")
        st.caption("A composed rule: edit it on the Build page.")
        return field, None, st.empty()
    kind_col, detail_col = st.columns(2)
    kind = kind_col.selectbox(
        f"{u.name} reads {u.tensor} as", LAB_RULES, key=held(key("use", u.name, "kind"), rule["kind"])
    )
    new: dict[str, Any] = {"kind": kind}
    problem = None
    with detail_col:
        if kind == "reshape":
            text = st.text_input("to shape", key=held(key("use", u.name, "shape"), ints_text(rule.get("shape"))))
            new["shape"] = parse_ints(text)
            if new["shape"] is None:
                problem = f"reshape needs whole numbers, e.g. 4, 16. Received: {text[:40]!r}"
        elif kind == "slice":
            begin = st.text_input("begin", key=held(key("use", u.name, "begin"), ints_text(rule.get("begin"))))
            size = st.text_input("size", key=held(key("use", u.name, "size"), ints_text(rule.get("size"))))
            new["begin"], new["size"] = parse_ints(begin), parse_ints(size)
            if new["begin"] is None or new["size"] is None:
                problem = (
                    "slice needs whole numbers for begin and size, e.g. 0, 0 and 4, 8. "
                    f"Received: begin={begin[:30]!r}, size={size[:30]!r}"
                )
        elif kind == "rot90":
            new["k"] = st.selectbox("quarter turns", (0, 1, 2, 3), key=held(key("use", u.name, "k"), rule.get("k", 1)))
        elif kind == "flip":
            new["axis"] = int(
                st.number_input(
                    "axis", min_value=-8, max_value=7, step=1, key=held(key("use", u.name, "axis"), rule.get("axis", 0))
                )
            )
        elif kind == "transpose" and rule.get("perm"):
            new["perm"] = rule["perm"]  # keep a stored axis order; the Build page edits it
    slot = st.empty()
    if problem:
        return field, ValueError(problem), slot
    return field, ("use", u.name, {"rule": new}), slot


def apply(data: dict, change: tuple) -> dict:
    """`data` (a spec dict) with one change applied."""
    what, name, values = change
    out = {**data, "tensors": [dict(t) for t in data["tensors"]], "uses": [dict(u) for u in data["uses"]]}
    items = out["tensors"] if what == "tensor" else out["uses"]
    for item in items:
        if item["name"] == name:
            item.update(values)
    return out


def candidate(data: dict) -> ModelSpec:
    new = ModelSpec.from_dict(data)
    ui.check_spec(new)
    return new


def model_editor() -> None:
    """The shared tensors' shapes and the shared uses' rules. A change that makes a valid model is
    applied at once; one that does not shows why under its own field and leaves the model as it was."""
    fields: list[tuple[str, Any, Any]] = []
    for t in spec.tensors:
        fields.append(tensor_edit(t))
    for u in spec.uses:
        if u.tensor is not None:
            fields.append(use_edit(u))
    current = spec.to_dict()
    accepted, errors, changes = current, {}, []
    for field, change, _ in fields:
        if change is None:
            continue
        if isinstance(change, ValueError):
            errors[field] = str(change)
            continue
        tried = apply(accepted, change)
        if tried == accepted:
            continue
        changes.append((field, change))
        try:
            candidate(tried)
        except ValueError as err:
            errors[field] = str(err)
            continue
        accepted = tried
    if errors and changes:  # two edits that only work together (a tensor's shape and a reshape)
        together = current
        for _, change in changes:
            together = apply(together, change)
        try:
            candidate(together)
            accepted, errors = together, {f: e for f, e in errors.items() if f not in dict(changes)}
        except ValueError:
            pass
    if accepted != current:
        ui.set_spec(candidate(accepted), reload_editor=True)
        st.rerun()
    for field, _, slot in fields:
        if field in errors:
            slot.error(ui.plain(f"Not applied: {errors[field]}"), icon=":material/error:")


# ----------------------------------------------------------------------------- training settings
def _set(field: str, k: str) -> None:
    if k not in ss:  # a preset load or Reset in the same rerun replaced the experiment (and this key) first
        return
    value = ss[k]
    try:
        new = dataclasses.replace(ui.config(), **{field: value})
        ui.check_spec(ui.spec(), new)
    except ValueError as err:
        ss["lab.setting_error"] = (field, str(err))
        return
    ss["lab.setting_error"] = None
    ui.set_config(new)


def setting(field: str, widget, label: str, options=None, **kwargs: Any) -> Any:
    k = f"lab.cfg.{field}"
    ss[k] = getattr(config, field)  # the widgets show the experiment; their callbacks change it
    if options is not None:
        kwargs["options"] = options
    return widget(label, key=k, on_change=_set, args=(field, k), disabled=run is not None, **kwargs)


def settings_editor() -> None:
    data_col, opt_col = st.columns([3, 2])
    with data_col:
        datasets = list(urlstate.datasets_for(spec))
        if config.dataset not in datasets:
            datasets.append(config.dataset)
        setting("dataset", st.selectbox, "Data", datasets, help=DATASET_HELP)
    with opt_col:
        setting("optimizer", st.selectbox, "Optimizer", OPTIMIZERS)
    if config.dataset == "teacher" and hasattr(config, "teacher"):
        setting(
            "teacher",
            st.segmented_control,
            "Teacher network",
            ("untied", "tied"),
            help="The teacher data set's targets come from a random network of this model: untied (every use its "
            "own tensor) or tied. Whichever it is, that variant is the 'right' model.",
        )
    lr_col, steps_col = st.columns(2)
    with lr_col:
        k = "lab.cfg.learning_rate"
        ss[k] = config.learning_rate  # the picker shows the experiment; its callback changes it
        ui.learning_rate_picker(
            k, config.learning_rate, disabled=run is not None, on_change=_set, args=("learning_rate", k)
        )
    with steps_col:
        steps = sorted({*(s for s in STEP_CHOICES if s <= limits.max_steps), config.steps})
        setting("steps", st.select_slider, "Steps", steps)
    problem = ss.get("lab.setting_error")
    if problem:
        st.error(ui.plain(f"{problem[0]} not changed: {problem[1]}"), icon=":material/error:")


# ----------------------------------------------------------------------------- actions
def _load_preset() -> None:
    name = ss.get("lab.preset")
    if name:
        ui.reset_to_preset(name)
    ss["lab.preset"] = None


def actions() -> None:
    """Play, pause, continue, step: in rows that wrap, so no label is cut on a projector."""
    res = ui.result()
    blocked = ui.continue_problem()
    busy = run is not None
    row = st.container(horizontal=True)
    row.button(
        "Train",
        type="primary",
        icon=":material/play_arrow:",
        on_click=ui.start_training,
        disabled=busy,
        key="lab.train",
        help="A new run with these settings, from the first step.",
    )
    row.button(
        "Stop",
        icon=":material/pause:",
        on_click=ui.stop_training,
        disabled=not busy,
        key="lab.stop",
        help="Pause: the run ends after its current chunk of steps, is kept, and can be continued.",
    )
    row.button(
        f"+{config.steps} steps",
        icon=":material/fast_forward:",
        on_click=ui.continue_training,
        args=(config.steps,),
        disabled=busy or blocked is not None,
        key="lab.continue",
        help=blocked
        or f"Continue this run for {config.steps} more steps: weights, optimizer state and records carry on.",
    )
    row.button(
        f"+{config.record_every} step{'s' if config.record_every > 1 else ''}",
        icon=":material/skip_next:",
        on_click=ui.continue_training,
        args=(config.record_every,),
        disabled=busy or blocked is not None,
        key="lab.step",
        help=blocked or "Step: train up to the next recorded step and look.",
    )
    if res is not None and not busy:
        st.caption(
            f"The last run ended at step {res.steps_done}; the + buttons carry it on."
            if blocked is None
            else ui.plain(f"The + buttons are off: {blocked}")
        )
    if ss[ui.RUN_ERROR]:
        st.error(ui.plain(ss[ui.RUN_ERROR]), icon=":material/error:")
    for note in ss[ui.KEEP_NOTES]:
        st.info(ui.plain(note), icon=":material/inventory_2:")
    if res is not None and not busy:
        ui.training_warnings(res)
        if res.dataset:
            st.caption(f"Data: {ui.plain(res.dataset)}.")


# ----------------------------------------------------------------------------- charts and kept runs
def live() -> None:
    queued = run.queued

    @st.fragment(run_every=1.0 if queued else 0.5)
    def panel() -> None:
        if not run.running or run.queued != queued:
            st.rerun()
        if waiting := ui.queue_text(run):
            st.info(waiting, icon=":material/hourglass:")
        progress = run.progress
        step = progress.step if progress else 0
        st.progress(run.fraction, text=f"Training tied and untied: step {step} of {run.config.steps}")
        if progress is not None:
            ui.chart(ui.loss_chart(progress.history, run.config.steps), key="lab.live_loss")

    panel()


def charts() -> None:
    runs, problems = ui.shown_runs()
    res = ui.result()
    if res is not None and ss[ui.CURRENT_RUN_ID] is None:
        # The store could not keep the last run (all runs pinned, the store failed): it is still drawn.
        from sharecore.runs.compare import LabelledRun, unique_labels

        labels = unique_labels(["this run (not kept)", *(r.label for r in runs)])
        runs = [LabelledRun(labels[0], res), *(dataclasses.replace(r, label=x) for r, x in zip(runs, labels[1:]))]
    for problem in problems:
        st.warning(ui.plain(problem), icon=":material/link_off:")
    if not runs:
        st.info(
            "Press Train. Each run is kept below; change one thing and train again to compare.", icon=":material/info:"
        )
        return
    ui.compare_charts(runs, key="lab", tensor=None)


def runs_table() -> None:
    st.markdown("**Kept runs**: tick *show* to overlay a run; rename or pin it here.")
    ui.kept_runs_editor(key="lab")


st.title("Lab", anchor=False)
st.caption("Change one thing, train, and read the new run against the ones before it.")
# Below 1200 px of window (a projector, a laptop with the sidebar open) the controls and the charts
# beside them were too narrow for their labels: there they stack, charts first (as on Build).
ui.stack_columns_when_narrow("lab-view")
controls, view = st.columns([5, 8], gap="medium")
with controls.container(key="lab-controls"):
    picker, reset = st.columns([3, 2], vertical_alignment="bottom")
    picker.selectbox(
        "Load a preset",
        sharecore.presets(),
        index=None,
        key="lab.preset",
        placeholder=f"{ui.preset_name()}{' (edited)' if spec != sharecore.preset(ui.preset_name()) else ''}",
        on_change=_load_preset,
        help="Loads the preset with its default settings, also when it is the one you have.",
    )
    reset.button(
        "Reset",
        icon=":material/restart_alt:",
        on_click=ui.reset_to_preset,
        args=(ui.preset_name(),),
        key="lab.reset",
        width="stretch",
        help="Back to the preset and its default settings (kept runs stay).",
    )
    model_editor()
    settings_editor()
    actions()
with view.container(key="lab-view"):
    st.graphviz_chart(ui.model_dot(spec, tied=True), width="stretch")
    if run is not None:
        live()
    charts()
runs_table()
