"""Build: edit the model spec with live validation; see its diagram, tensors, parameters and Keras code."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import streamlit as st

import sharecore
from sharecore.core.limits import check_spec_size
from sharecore.core.spec import ACTIVATIONS, BIAS_POLICIES, INITIALIZERS, INPUT_NODE, OPS, PADDINGS, RULES, ModelSpec
from sharecore.core.symmetry import symmetric_uses
from sharecore.core.text import parse_ints, safe_file_name
from ui import exercise, figures, kept, keys, startup, state, widgets
from ui.routing import frame
from ui.text import plain

frame()  # before anything else: see ui/routing.py

OWN = "(own kernel)"  # a use that reads no shared tensor
PREVIOUS = "(previous use)"  # a use that reads the node before it

ss = st.session_state
version = state.draft_version()
# The views' tabs, in order (Set up may open one); a spec with turned or flipped uses gets one more.
BUILD_TABS = ("Diagram", "Shared tensors", "Parameters", "Keras code", "Spec JSON")
EQUIVARIANCE_TAB = "Equivariance"
# Starting points: the simplest preset of each family of ops.
FAMILIES = {
    "dense": "seed-dense",
    "conv": "seed-conv",
    "mixed": "seed-mixed",
    "language model": "tied-lm",
    "autoencoder": "conv-autoencoder",
}


# ----------------------------------------------------------------------------- small widget helpers
MAX_STRIDES = 64  # the strides input's upper bound (a larger loaded value raises it)


def key(*parts: object) -> str:
    """Widget keys carry the draft version, so reloading the editor gives fresh widgets."""
    return keys.of(keys.BUILD_EDITOR, version, *parts)


def shape_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return ", ".join(str(v) for v in value)


def parse_shape(text: str, where: str, optional: bool = False) -> list[int] | str | None:
    """Parses '10, 5', '[10, 5]' or '28x28x3'; records a message and keeps the text if it is not one."""
    text = text.strip()
    if not text and optional:
        return None
    numbers = parse_ints(text)
    if numbers is not None:
        return numbers
    errors.append(
        f"{where}: write whole numbers separated by commas, e.g. 10, 5"
        f"{' (or leave it empty)' if optional else ''}. Received: {text[:60]!r}"
    )
    return text


def text(label: str, k: str, initial: str, **kwargs: Any) -> str:
    ss.setdefault(k, initial)
    return st.text_input(label, key=k, **kwargs)


def select(label: str, options: list[str] | tuple[str, ...], k: str, initial: Any, **kwargs: Any) -> Any:
    options = list(options)
    ss.setdefault(k, initial)
    if ss[k] not in options:  # e.g. a renamed tensor: keep the choice visible so validation can name it
        options.append(ss[k])
    return st.selectbox(label, options, key=k, **kwargs)


def unique(prefix: str, taken: list[str]) -> str:
    n = 1
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"


# ----------------------------------------------------------------------------- editor callbacks
def add_tensor() -> None:
    def change(d: dict) -> None:
        d["tensors"].append({"name": unique("T", [t.get("name") for t in d["tensors"]]), "shape": [4, 4]})

    state.edit_draft(change)


def remove_tensor(i: int) -> None:
    state.edit_draft(lambda d: d["tensors"].pop(i))


def add_use() -> None:
    def change(d: dict) -> None:
        names = [u.get("name") for u in d["uses"]]
        tensor = d["tensors"][0]["name"] if d["tensors"] else None
        use = {"name": unique("use_", names), "op": "dense", "tensor": tensor}
        if tensor is None:
            use["kernel_shape"] = [4, 4]
        d["uses"].append(use)

    state.edit_draft(change)


def remove_use(i: int) -> None:
    def change(d: dict) -> None:
        name = d["uses"].pop(i).get("name")
        d["outputs"] = [o for o in d.get("outputs", []) if o != name]

    state.edit_draft(change)


def load_json_text(raw: str | bytes, where: str) -> None:
    """Loads a pasted or uploaded spec; any problem becomes a message, never an exception."""
    ss[keys.BUILD_LOAD_ERROR] = None
    try:
        check_spec_size(raw)
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{where} is not UTF-8 text; a spec is a JSON file.") from None
        loaded = ModelSpec.from_json(raw)
        state.check_spec(loaded)
    except Exception as err:  # ValueError from the core; anything else is still just a bad file
        message = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
        ss[keys.BUILD_LOAD_ERROR] = f"Could not load the {where}: {message}"
        return
    if loaded.name in sharecore.presets() and loaded == sharecore.preset(loaded.name):
        state.load_preset(loaded.name)
    else:
        state.set_spec(loaded, reload_editor=True)


def on_paste() -> None:
    load_json_text(ss.get(keys.BUILD_PASTE, ""), "pasted JSON")


def on_upload() -> None:
    upload = ss.get(keys.BUILD_UPLOAD)
    if upload is not None:
        load_json_text(upload.getvalue(), f"file '{upload.name}'")


# ----------------------------------------------------------------------------- the editor
def tensor_editor(draft: dict) -> list[dict]:
    tensors = []
    for i, t in enumerate(draft["tensors"]):
        name_col, shape_col, init_col, remove_col = st.columns([2, 2, 3, 1], vertical_alignment="bottom")
        with name_col:
            name = text("Name", key("tensor", i, "name"), t.get("name", ""))
        with shape_col:
            shape = parse_shape(
                text("Shape", key("tensor", i, "shape"), shape_text(t.get("shape"))), f"tensor '{name}' shape"
            )
        with init_col:
            init = select("Initializer", INITIALIZERS, key("tensor", i, "init"), t.get("initializer", "glorot_uniform"))
        with remove_col:
            st.button(
                "",
                icon=":material/delete:",
                key=key("tensor", i, "remove"),
                on_click=remove_tensor,
                args=(i,),
                help=plain(f"Remove {name}"),
            )
        tensors.append({"name": name, "shape": shape, "initializer": init})
    st.button("Add shared tensor", icon=":material/add:", key=key("tensor", "add"), on_click=add_tensor)
    return tensors


def rule_editor(u: dict, i: int, tensor_shape: Any) -> dict:
    rule = u.get("rule") or {"kind": "identity"}
    if isinstance(rule, str):
        rule = {"kind": rule}
    kind = select(
        "Reshape rule",
        RULES,
        key("use", i, "rule"),
        rule.get("kind", "identity"),
        help="How this use turns the shared tensor into its kernel: as it is, transposed, reshaped, a slice, "
        "turned by quarter turns, flipped, or several of these in order (compose).",
    )
    out: dict[str, Any] = {"kind": kind}
    base = tensor_shape if isinstance(tensor_shape, list) else []
    name = u.get("name")
    if kind == "reshape":
        out["shape"] = parse_shape(
            text("Target shape", key("use", i, "rule_shape"), shape_text(rule.get("shape", base))),
            f"use '{name}' reshape target",
        )
    elif kind == "transpose":
        perm = parse_shape(
            text(
                "Axis order",
                key("use", i, "rule_perm"),
                shape_text(rule.get("perm")),
                placeholder="empty = reverse the axes",
            ),
            f"use '{name}' transpose axis order",
            optional=True,
        )
        if perm is not None:
            out["perm"] = perm
    elif kind == "rot90":
        k = key("use", i, "rule_k")
        ss.setdefault(k, int(rule.get("k", 1)) % 4)
        # 0 too: a link may hold k=4 (kept as 0), and a value missing from the options would silently become 1.
        out["k"] = st.selectbox(
            "Quarter turns", [0, 1, 2, 3], key=k, help="Turns the kernel's first two (spatial) axes by k x 90 degrees."
        )
    elif kind == "flip":
        k = key("use", i, "rule_axis")
        ss.setdefault(k, int(rule.get("axis", 0)))
        out["axis"] = st.number_input("Flip axis", min_value=-8, max_value=7, step=1, key=k)
    elif kind == "compose":
        steps = rule.get("rules", [{"kind": "identity"}])
        raw = text(
            "Steps, applied in order (JSON)",
            key("use", i, "rule_steps"),
            json.dumps(steps),
            placeholder='e.g. [{"kind": "slice", "begin": [0, 0], "size": [4, 4]}, "transpose"]',
        )
        try:
            out["rules"] = json.loads(raw)
        except (ValueError, RecursionError) as err:  # RecursionError: thousands of nested brackets
            errors.append(f"use '{name}' composed rule: the steps are not valid JSON ({err}). Received: {raw[:200]!r}")
            out["rules"] = steps
    elif kind == "slice":
        begin_col, size_col = st.columns(2)
        with begin_col:
            out["begin"] = parse_shape(
                text("Begin", key("use", i, "rule_begin"), shape_text(rule.get("begin", [0] * len(base)))),
                f"use '{name}' slice begin",
            )
        with size_col:
            out["size"] = parse_shape(
                text("Size", key("use", i, "rule_size"), shape_text(rule.get("size", base))),
                f"use '{name}' slice size",
            )
    return out


def use_editor(u: dict, i: int, tensors: list[dict], earlier: list[str]) -> dict:
    # Draft names are what the user typed, valid or not: shown as text, never as Markdown.
    label = plain(f"{i + 1}. {u.get('name')}: {u.get('op')} reading {u.get('tensor') or 'its own kernel'}")
    with st.expander(label, expanded=i < 2):
        name_col, op_col, tensor_col = st.columns(3)
        with name_col:
            name = text("Name", key("use", i, "name"), u.get("name", ""))
        with op_col:
            op = select("Op", OPS, key("use", i, "op"), u.get("op", "dense"))
        with tensor_col:
            names = [t["name"] for t in tensors]
            tensor = select("Reads tensor", [*names, OWN], key("use", i, "tensor"), u.get("tensor") or OWN)
        out: dict[str, Any] = {"name": name, "op": op}
        tensor_shape = None
        if tensor == OWN:
            out["kernel_shape"] = parse_shape(
                text("Own kernel shape", key("use", i, "kernel_shape"), shape_text(u.get("kernel_shape") or [4, 4])),
                f"use '{name}' kernel shape",
            )
        else:
            out["tensor"] = tensor
            tensor_shape = next((t["shape"] for t in tensors if t["name"] == tensor), None)
        out["rule"] = rule_editor(u, i, tensor_shape)
        act_col, bias_col, source_col = st.columns(3)
        with act_col:
            out["activation"] = select(
                "Activation", ACTIVATIONS, key("use", i, "activation"), u.get("activation", "linear")
            )
        with bias_col:
            out["bias"] = select("Bias", BIAS_POLICIES, key("use", i, "bias"), u.get("bias", "none"))
        with source_col:
            source = select(
                "Reads node", [PREVIOUS, INPUT_NODE, *earlier], key("use", i, "source"), u.get("source") or PREVIOUS
            )
        if source != PREVIOUS:
            out["source"] = source
        slice_col, reshape_col = st.columns(2)
        with slice_col:
            out["input_slice"] = parse_shape(
                text(
                    "Input slice",
                    key("use", i, "input_slice"),
                    shape_text(u.get("input_slice")),
                    placeholder="start, stop",
                ),
                f"use '{name}' input slice",
                optional=True,
            )
        with reshape_col:
            out["input_reshape"] = parse_shape(
                text(
                    "Input reshape",
                    key("use", i, "input_reshape"),
                    shape_text(u.get("input_reshape")),
                    placeholder="e.g. 8, 8, 1",
                ),
                f"use '{name}' input reshape",
                optional=True,
            )
        if op in ("conv2d", "conv2d_transpose"):
            strides_col, padding_col = st.columns(2)
            with strides_col:
                k = key("use", i, "strides")
                ss.setdefault(k, u.get("strides", 1))
                # At least the loaded value: Streamlit resets a value above max_value to the minimum, silently.
                top = max(MAX_STRIDES, int(ss[k]) if str(ss[k]).isdigit() else 1)
                out["strides"] = st.number_input("Strides", min_value=1, max_value=top, step=1, key=k)
            with padding_col:
                out["padding"] = select("Padding", PADDINGS, key("use", i, "padding"), u.get("padding", "same"))
        st.button(
            plain(f"Remove {name}"),
            icon=":material/delete:",
            key=key("use", i, "remove"),
            on_click=remove_use,
            args=(i,),
        )
    return out


def editor(draft: dict) -> dict:
    """Draws the editor from `draft`; returns the draft as the widgets now hold it."""
    new: dict[str, Any] = {"name": draft.get("name", "custom"), "description": draft.get("description", "")}
    shape_col, vocab_col = st.columns([3, 2])
    with shape_col:
        new["input_shape"] = parse_shape(
            text("Input shape (per sample)", key("input_shape"), shape_text(draft["input_shape"])), "input shape"
        )
    with vocab_col:
        vocab = parse_shape(
            text(
                "Token vocabulary",
                key("input_vocab"),
                shape_text([draft["input_vocab"]] if draft.get("input_vocab") else None),
                placeholder="empty = float features",
                help="Set it when the input is token ids (one sequence per sample), read by an embedding use.",
            ),
            "token vocabulary",
            optional=True,
        )
    if isinstance(vocab, list) and len(vocab) == 1:
        new["input_vocab"] = vocab[0]
    elif vocab is not None:
        new["input_vocab"] = vocab  # refused by the spec check, with its message
    st.markdown("**Shared tensors**")
    new["tensors"] = tensor_editor(draft)
    st.markdown("**Uses**, in order")
    uses = []
    for i, u in enumerate(draft["uses"]):
        uses.append(use_editor(u, i, new["tensors"], [x["name"] for x in uses]))
    new["uses"] = uses
    st.button("Add use", icon=":material/add:", key=key("use", "add"), on_click=add_use)
    names = [u["name"] for u in uses]
    k = key("outputs")
    ss.setdefault(k, list(draft.get("outputs", [])))
    ss[k] = [o for o in ss[k] if o in names]
    new["outputs"] = st.multiselect("Outputs", names, key=k, placeholder="empty = the last use")
    return new


def to_spec(draft: dict) -> ModelSpec:
    """The draft as a checked spec; an edited preset is renamed so downloads do not mislabel it."""
    spec = ModelSpec.from_dict(draft)
    state.check_spec(spec)
    name = state.preset_name()
    if spec.name == name:
        base = sharecore.preset(name)
        if dataclasses.replace(spec, name=base.name, description=base.description) != base:
            spec = dataclasses.replace(spec, name="custom", description=f"Edited from preset '{name}'.")
    return spec


def equivariance_tab() -> None:  # an input turned: each use's maps move a slot (tied; untied until trained)
    res = kept.result()
    ran = res if res is not None and res.spec == spec and "untied" in res.weights.get("end", {}) else None
    st.caption(
        "Before training: the untied copies start as the same turns of one kernel, so they move exactly too; "
        "train this model in the Lab and come back to see them lose it."
        if ran is None
        else f"Where the last run of this model ended, step {ran.steps_done}: the untied copies trained apart."
    )
    if startup.tensorflow_or_status("the equivariance view"):
        widgets.chart(figures.equivariance_view(spec, seed, ran), key=keys.BUILD_EQUIVARIANCE)


# ----------------------------------------------------------------------------- page
st.title("Build")
st.caption("Pick a preset in the sidebar or start from a family, then change shapes, tensors and rules.")
# A row that wraps: fixed columns cut the button texts ("lang...") on a projector's 1024 px.
families = st.container(horizontal=True, vertical_alignment="center")
families.markdown("Start from a family:", width="content")
for family, name in FAMILIES.items():
    families.button(family, key=keys.of(keys.BUILD_FAMILY, family), on_click=state.load_preset, args=(name,))
# Below 1200 px of window (a projector, a laptop with the sidebar open) the editor and the views
# beside it were too narrow for their selects and labels: there they stack, views first.
widgets.stack_columns_when_narrow(keys.BUILD_VIEWS)

status = st.container()
edit_col, view_col = st.columns([5, 6], gap="medium")
errors: list[str] = []
with edit_col.container(key=keys.BUILD_EDITOR_BOX):
    exercise.panel()  # the exercise set up last, beside the views it asks about
    draft = editor(state.draft())
state.set_draft(draft)
try:
    if errors:
        raise ValueError(errors[0])
    candidate = to_spec(draft)
    if candidate != state.spec():
        state.set_spec(candidate, reload_editor=False)
except Exception as err:  # the core raises ValueError; the fallback keeps any surprise on screen, not a traceback
    with status:
        st.error(plain(str(err)), icon=":material/error:")
        st.caption("The views show the last valid model until the spec is fixed.")
if ss.get(keys.BUILD_LOAD_ERROR):
    status.error(plain(ss[keys.BUILD_LOAD_ERROR]), icon=":material/error:")

spec = state.spec()
seed = state.config().seed
with view_col.container(key=keys.BUILD_VIEWS):
    variant = st.segmented_control("Model", ["tied", "untied"], default="tied", key=keys.BUILD_VARIANT) or "tied"
    tied = variant == "tied"
    # Keyed and kept by the server: an exercise's Set up can open a tab, and a rerun that moves the tabs
    # (an element added or removed above them) cannot put them back on Diagram, as an unkeyed st.tabs is.
    if (asked := exercise.take_tab(keys.BUILD_TABS)) is not None:
        ss[keys.BUILD_TABS] = asked  # an exercise's Set up names a tab: open it
    symmetric = bool(symmetric_uses(spec))  # uses that read one kernel turned or flipped
    tabs = st.tabs([*BUILD_TABS, *([EQUIVARIANCE_TAB] if symmetric else [])], key=keys.BUILD_TABS, on_change="rerun")
    diagram_tab, tensors_tab, params_tab, code_tab, json_tab = tabs[:5]
    if symmetric:
        with tabs[5]:
            equivariance_tab()
    with diagram_tab:
        st.graphviz_chart(figures.model_dot(spec, tied), width="stretch")
        st.caption(
            "Grey arrows: data flow. Each shared tensor has its own color; "
            + (
                "tied: a dashed arrow goes from the one stored tensor to each use that reads it, labelled with "
                "how it reads it (as stored, transpose, slice ...)."
                if tied
                else "untied: each use stores its own copy, initialised by its rule, and trains it on its own."
            )
            + " Hover a box for its shapes and rule."
        )
    with tensors_tab:
        tensor = widgets.tensor_picker(spec, key=keys.BUILD_TENSOR)
        if tensor is None:
            st.info("This model shares no tensor: every use has its own kernel.")
        else:
            st.caption("The stored tensor, and the kernel each use makes from it through its rule.")
            if startup.tensorflow_or_status("the initial weights"):
                widgets.chart(figures.tensor_views(spec, tensor, seed), key=keys.BUILD_TENSOR_VIEWS)
    with params_tab:
        report = figures.param_report(spec)
        tied_col, untied_col, saved_col = st.columns(3)
        tied_col.metric("Tied", f"{report.tied_total:,}")
        untied_col.metric("Untied", f"{report.untied_total:,}")
        saved_col.metric("Saved", f"{report.saved:,}", help=f"Untied / tied = {report.ratio:.2f}x")
        widgets.chart(figures.param_bars(report), key=keys.BUILD_PARAM_BARS)
        widgets.data_table(report.table)
    with code_tab:
        code = figures.keras_code(spec, tied)
        st.caption(f"A standalone Keras script for the {variant} model: copy it or download it and run it.")
        st.download_button(
            "Download script",
            code,
            file_name=safe_file_name(spec.name, f"_{variant}.py"),
            mime="text/x-python",
            on_click="ignore",
            icon=":material/download:",
            key=keys.BUILD_DOWNLOAD_CODE,
        )
        st.code(code, language="python")
    with json_tab:
        st.download_button(
            "Download spec JSON",
            spec.to_json(),
            file_name=safe_file_name(spec.name, ".json"),
            mime="application/json",
            on_click="ignore",
            icon=":material/download:",
            key=keys.BUILD_DOWNLOAD_SPEC,
        )
        st.code(spec.to_json(), language="json")
        st.text_area("Paste a spec JSON", key=keys.BUILD_PASTE, height=150)
        st.button("Load pasted JSON", on_click=on_paste, key=keys.BUILD_LOAD_PASTE)
        st.file_uploader("…or upload a spec JSON file", type=["json"], key=keys.BUILD_UPLOAD, on_change=on_upload)
