"""Compare runs: kept runs overlaid, the settings that differ, their final figures, share links and
downloads. A share link (`/compare?run=<id>`) opens here."""

from __future__ import annotations

import streamlit as st

from sharecore.core.results import VARIANTS
from sharecore.core.text import safe_file_name
from sharecore.runs import compare
from sharecore.viz import overlays as comparecharts
from ui import figures, kept, kept_views, keys, room, widgets
from ui.routing import frame
from ui.sitemap import PAGES
from ui.text import plain

frame()  # before anything else: see ui/routing.py

st.title("Compare runs")
kept_views.open_shared_link()  # a share link's run joins this browser's kept runs, once

labels = kept.run_choices()
st.session_state[keys.COMPARE_PICK] = kept.shown_ids()


def _on_pick() -> None:
    kept.set_shown(st.session_state[keys.COMPARE_PICK])


st.multiselect(
    "Runs to compare",
    list(labels),
    key=keys.COMPARE_PICK,
    format_func=lambda run_id: labels.get(run_id) or run_id,
    on_change=_on_pick,
    placeholder="Pick two or more kept runs",
)
runs, problems = kept.shown_runs()
for problem in problems:
    st.warning(plain(problem), icon=":material/link_off:")
if not runs:
    st.info(
        "No runs to compare yet. Train in the Lab, change one thing, train again: every run is kept.",
        icon=":material/info:",
    )
    st.page_link(PAGES["lab"], label="Go to the Lab", icon=":material/science:")
    st.stop()

tensors = sorted({t for r in runs for t in r.result.divergence.get("tensor", [])})
tensor = None
if len(tensors) > 1:
    choice = st.selectbox("Shared tensor", ["all (mean)", *tensors], key=keys.COMPARE_TENSOR)
    tensor = None if choice == "all (mean)" else choice
kept_views.compare_charts(runs, key=keys.COMPARE_RUNS, tensor=tensor)
curves = figures.compare_curves(runs, tensor)  # cached: the one the charts above drew
if (curves["series"] == "heldout_accuracy").any():
    widgets.chart(
        figures.overlay_figure(
            comparecharts.series_overlay,
            curves,
            [r.label for r in runs],
            "heldout_accuracy",
            title="Held-out accuracy",
            reading="Higher is better: samples never trained on. Color: run; solid: tied, dashed: untied.",
            y_title="accuracy",
            empty="",
        ),
        key=keys.COMPARE_ACCURACY,
    )

st.subheader("What differs")
diff = figures.of_runs(compare.settings_table, runs)
if diff.empty:
    st.caption("These runs have the same settings.")
else:
    widgets.figures_table(diff, first=["setting"], pinned="setting")
st.subheader("Final figures")
# What a class compares first: the losses, held-out figures and divergence; the run's size and speed after.
widgets.figures_table(
    figures.of_runs(compare.final_figures, runs),
    first=[
        "run",
        *(f"{figure} {variant}" for figure in ("loss", "held-out loss", "held-out accuracy") for variant in VARIANTS),
        "final divergence untied",
    ],
    pinned="run",
)

st.subheader("Share and download")
base = (st.context.url or "").split("?")[0].rsplit("/", 1)[0]
seat = room.joined()
handed = {h.run_id for h in room.my_handins()}
for note_kind, note in room.notes():
    (st.success if note_kind == "ok" else st.error)(plain(note))
for r in runs:
    # The name and its button in a row that wraps, the link under them at full width: in a fifth
    # of a projector's page the button's label was cut ("Load in the...").
    row = st.container(horizontal=True, vertical_alignment="center")
    row.markdown(f"**{plain(r.label)}**", width="content")
    load = row.button(
        "Load in the Lab",
        key=keys.of(keys.COMPARE_LOAD, r.run_id),
        on_click=kept.load_into_lab,
        args=(r.run_id,),
        help="Makes this run's model and settings the current experiment, and opens the Lab.",
    )
    if seat is not None:
        row.button(
            "Withdraw" if r.run_id in handed else "Hand in",
            key=keys.of(keys.ROOM_HAND_IN, r.run_id),
            on_click=room.withdraw if r.run_id in handed else room.hand_in,
            args=(r.run_id,),
            icon=":material/undo:" if r.run_id in handed else ":material/upload:",
            help=f"Room {seat[0]}: the facilitator's board shows what you hand in.",
        )
    if load:
        st.switch_page(PAGES["lab"])  # loaded by the click's callback, before this run
    st.code(f"{base}/{kept.share_path(r.run_id)}", language=None)
# In a row that wraps: in half of an 800 px page the second label was cut.
downloads = st.container(horizontal=True)
downloads.download_button(
    "Curves of these runs (CSV)",
    lambda: compare.comparison_csv(runs),  # made on click: every curve of every run, seconds for ten
    file_name=safe_file_name("comparison", ".csv"),
    mime="text/csv",
    on_click="ignore",
    icon=":material/download:",
    key=keys.COMPARE_CSV,
)
downloads.download_button(
    "Their specs and settings (JSON)",
    lambda: compare.specs_json(runs),
    file_name=safe_file_name("comparison", "_specs.json"),
    mime="application/json",
    on_click="ignore",
    icon=":material/download:",
    key=keys.COMPARE_SPECS,
)
downloads.download_button(
    "Their TensorBoard logs (zip)",
    lambda: compare.tensorboard_zip(runs),  # made on click: it loads TensorFlow and writes every record
    file_name=safe_file_name("comparison", "_tensorboard.zip"),
    mime="application/zip",
    on_click="ignore",
    icon=":material/download:",
    key=keys.COMPARE_TENSORBOARD,
    help="A folder per run, tied/ and untied/ in each: unzip, then `tensorboard --logdir <folder>` "
    "(pip install tensorboard).",
)
