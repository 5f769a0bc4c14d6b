"""Lab: the what-if loop on one screen. Change a rule, a shape or a setting, train, and read the new
run against the ones before it, without leaving the page."""

from __future__ import annotations

from typing import Any

import streamlit as st

import sharecore
from sharecore.core.spec import ModelSpec
from sharecore.core.text import parse_ints
from ui import exercise, figures, kept, kept_views, keys, settings_editor, state, training, widgets
from ui.routing import frame
from ui.text import plain

frame()  # before anything else: see ui/routing.py

ss = st.session_state
spec = state.spec()
config = state.config()
run = training.active_run()

# Rules the Lab edits in place; a composed rule is edited on the Build page.
LAB_RULES = ("identity", "transpose", "reshape", "slice", "rot90", "flip")


# ----------------------------------------------------------------------------- model: rules and shapes
def ints_text(values: Any) -> str:
    return ", ".join(str(v) for v in values or ())


def key(*parts: object) -> str:
    # The Build editor's version: a spec loaded from anywhere else gives the Lab fresh widgets.
    return keys.of(keys.LAB_MODEL, state.draft_version(), *parts)


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
        st.markdown(f"**{plain(u.name)}** reads {plain(u.tensor)} as {plain(u.rule.describe())}")
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
    state.check_spec(new)
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
        state.set_spec(candidate(accepted), reload_editor=True)
        st.rerun()
    for field, _, slot in fields:
        if field in errors:
            slot.error(plain(f"Not applied: {errors[field]}"), icon=":material/error:")


# ----------------------------------------------------------------------------- actions
def _load_preset() -> None:
    name = ss.get(keys.LAB_PRESET)
    if name:
        state.reset_to_preset(name)
    ss[keys.LAB_PRESET] = None


def actions(trainable: bool) -> None:
    """Play, pause, continue, step: in rows that wrap, so no label is cut on a projector."""
    res = kept.result()
    blocked = training.continue_problem()
    busy = run is not None
    row = st.container(horizontal=True, key=keys.LAB_TRAIN_ROW)
    row.button(
        "Train",
        type="primary",
        icon=":material/play_arrow:",
        on_click=training.start_training,
        disabled=busy or not trainable,
        key=keys.LAB_TRAIN,
        help="A new run with these settings, from the first step.",
    )
    row.button(
        "Stop",
        icon=":material/pause:",
        on_click=training.stop_training,
        disabled=not busy,
        key=keys.LAB_STOP,
        help="Pause: the run ends after its current chunk of steps, is kept, and can be continued.",
    )
    row.button(
        f"+{config.steps} steps",
        icon=":material/fast_forward:",
        on_click=training.continue_training,
        args=(config.steps,),
        disabled=busy or blocked is not None,
        key=keys.LAB_CONTINUE,
        help=blocked
        or f"Continue this run for {config.steps} more steps: weights, optimizer state and records carry on.",
    )
    row.button(
        f"+{config.record_every} step{'s' if config.record_every > 1 else ''}",
        icon=":material/skip_next:",
        on_click=training.continue_training,
        args=(config.record_every,),
        disabled=busy or blocked is not None,
        key=keys.LAB_STEP,
        help=blocked or "Step: train up to the next recorded step and look.",
    )
    if res is not None and not busy:
        st.caption(
            f"The last run ended at step {res.steps_done}; the + buttons carry it on."
            if blocked is None
            else plain(f"The + buttons are off: {blocked}")
        )
    if training.run_error():
        st.error(plain(training.run_error()), icon=":material/error:")
    for note in kept.keep_notes():
        st.info(plain(note), icon=":material/inventory_2:")
    if res is not None and not busy:
        training.training_warnings(res)
        if res.dataset:
            st.caption(f"Data: {plain(res.dataset)}.")


# ----------------------------------------------------------------------------- charts and kept runs
def live() -> None:
    queued = run.queued

    @st.fragment(run_every=1.0 if queued else 0.5)
    def panel() -> None:
        if not run.running or run.queued != queued:
            st.rerun()
        if waiting := training.queue_text(run):
            st.info(waiting, icon=":material/hourglass:")
            return  # the queue state alone: no step counter nor chart yet
        progress = run.progress
        step = progress.step if progress else 0
        st.progress(run.fraction, text=f"Training tied and untied: step {step} of {run.config.steps}")
        history = run.history
        if history is not None:
            widgets.chart(figures.loss_chart(history, run.config.steps), key=keys.LAB_LIVE_LOSS)

    panel()


def charts() -> None:
    runs, problems = kept.overlay_runs(with_unkept_result=True)
    for problem in problems:
        st.warning(plain(problem), icon=":material/link_off:")
    if not runs:
        if run is None:  # a run waiting or training says so above
            st.info(
                "Press Train. Each run is kept below; change one thing and train again to compare.",
                icon=":material/info:",
            )
        return
    kept_views.compare_charts(runs, key=keys.LAB_RUNS, tensor=None)


def runs_table() -> None:
    st.markdown("**Kept runs**: tick *show* to overlay a run; rename or pin it here.")
    kept_views.kept_runs_editor(key=keys.LAB_RUNS)


st.title("Lab", anchor=False)
st.caption("Change one thing, train, and read the new run against the ones before it.")
# Below 1200 px of window (a projector, a laptop with the sidebar open) the controls and the charts
# beside them were too narrow for their labels: there they stack, charts first (as on Build).
widgets.stack_columns_when_narrow(keys.LAB_VIEW)
controls, view = st.columns([5, 8], gap="medium")
with controls.container(key=keys.LAB_CONTROLS):
    exercise.panel()  # the exercise set up last, beside the charts it asks about
    picker, reset = st.columns([3, 2], vertical_alignment="bottom")
    picker.selectbox(
        "Load a preset",
        sharecore.presets(),
        index=None,
        key=keys.LAB_PRESET,
        placeholder=f"{state.preset_name()}{' (edited)' if spec != sharecore.preset(state.preset_name()) else ''}",
        on_change=_load_preset,
        help="Loads the preset with its default settings, also when it is the one you have.",
    )
    reset.button(
        "Reset",
        icon=":material/restart_alt:",
        on_click=state.reset_to_preset,
        args=(state.preset_name(),),
        key=keys.LAB_RESET,
        width="stretch",
        help="Back to the preset and its default settings (kept runs stay).",
    )
    model_editor()
    trainable = settings_editor.draw(full=False)
    config = state.config()  # as the editor left it (a setting that no longer fitted the model changes)
    actions(trainable)
with view.container(key=keys.LAB_VIEW):
    st.graphviz_chart(figures.model_dot(spec, tied=True), width="stretch")
    if run is not None:
        live()
    charts()
runs_table()
