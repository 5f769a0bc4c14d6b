"""Compare runs: kept runs overlaid, the settings that differ, their final figures, share links and
downloads. A share link (`/compare?run=<id>`) opens here."""

from __future__ import annotations

import streamlit as st

import ui
from sharecore.core.text import safe_file_name
from sharecore.runs import compare
from sharecore.viz import overlays as comparecharts

ui.frame()  # before anything else: see ui.frame

ss = st.session_state


def open_shared_link() -> None:
    """A share link's run joins this browser's kept runs (by reference) and the comparison."""
    run_id = ss[ui.SHARED]
    ss[ui.SHARED] = None
    # Adopted first, then read: the page, the charts and the CSV show the label this browser's list keeps.
    not_added = ui.adopt_shared(run_id)
    try:
        stored = ui.load_kept(run_id)
    except (KeyError, ValueError) as err:
        st.error(ui.plain(str(err)), icon=":material/link_off:")
        return
    if run_id not in ss[ui.SHOWN]:
        ss[ui.SHOWN].insert(0, run_id)
    if not_added:
        st.warning(
            ui.plain(
                f"Opened the shared run '{stored.label}', but it could not be added to your kept runs: {not_added}"
            ),
            icon=":material/link:",
        )
    else:
        st.success(
            ui.plain(f"Opened the shared run '{stored.label}'. It is now in your kept runs."), icon=":material/link:"
        )


def _load_into_lab(run_id: str) -> None:
    stored = ui.load_kept(run_id)
    ui.load_experiment(stored.result.spec, stored.result.config, stored.preset or ui.preset_name())
    # The loaded run becomes the current one: Continue carries it on (not the session's last run), and
    # the next run's label says what changed from it.
    ss[ui.RESULT], ss[ui.CURRENT_RUN_ID] = stored.result, run_id
    ss[ui.LAST_SETTINGS] = (stored.result.spec, stored.result.config)


st.title("Compare runs")
if ss.get(ui.SHARED):
    open_shared_link()

kept = {info.id: info.label for info in ui.kept_runs()}
options = list(dict.fromkeys([*ss[ui.SHOWN], *kept]))
labels = {run_id: kept.get(run_id) for run_id in options}
for run_id in options:
    if labels[run_id] is None:
        try:
            labels[run_id] = ui.load_kept(run_id).label
        except (KeyError, ValueError):
            labels[run_id] = "(no longer kept)"
ss["compare.pick"] = list(ss[ui.SHOWN])


def _on_pick() -> None:
    ss[ui.SHOWN] = list(ss["compare.pick"])


st.multiselect(
    "Runs to compare",
    options,
    key="compare.pick",
    format_func=lambda run_id: labels.get(run_id) or run_id,
    on_change=_on_pick,
    placeholder="Pick two or more kept runs",
)
runs, problems = ui.shown_runs()
for problem in problems:
    st.warning(ui.plain(problem), icon=":material/link_off:")
if not runs:
    st.info(
        "No runs to compare yet. Train in the Lab, change one thing, train again: every run is kept.",
        icon=":material/info:",
    )
    st.page_link(ui.PAGES["lab"], label="Go to the Lab", icon=":material/science:")
    st.stop()

tensors = sorted({t for r in runs for t in r.result.divergence.get("tensor", [])})
tensor = None
if len(tensors) > 1:
    choice = st.selectbox("Shared tensor", ["all (mean)", *tensors], key="compare.tensor")
    tensor = None if choice == "all (mean)" else choice
ui.compare_charts(runs, key="compare", tensor=tensor)
curves = ui.compare_curves(runs, tensor)  # cached: the one the charts above drew
if (curves["series"] == "heldout_accuracy").any():
    ui.chart(
        ui.overlay_figure(
            comparecharts.series_overlay,
            curves,
            [r.label for r in runs],
            "heldout_accuracy",
            title="Held-out accuracy",
            reading="Higher is better: samples never trained on. Color: run; solid: tied, dashed: untied.",
            y_title="accuracy",
            empty="",
        ),
        key="compare.accuracy",
    )

st.subheader("What differs")
diff = ui.of_runs(compare.settings_table, runs)
if diff.empty:
    st.caption("These runs have the same settings.")
else:
    st.dataframe(
        diff, hide_index=True, width="stretch", column_config={"setting": st.column_config.TextColumn(pinned=True)}
    )
st.subheader("Final figures")
finals = ui.of_runs(compare.final_figures, runs)
st.dataframe(
    finals,
    hide_index=True,
    width="stretch",
    column_config={
        # Wider than a projector's page: the run names stay in view while the figures scroll.
        "run": st.column_config.TextColumn(pinned=True),
        **{
            name: st.column_config.NumberColumn(format="%.4g")
            for name in finals.columns
            if name.startswith(("loss", "held-out", "final", "steps per"))
        },
    },
)

st.subheader("Share and download")
base = (st.context.url or "").split("?")[0].rsplit("/", 1)[0]
for r in runs:
    # The name and its button in a row that wraps, the link under them at full width: in a fifth
    # of a projector's page the button's label was cut ("Load in the...").
    row = st.container(horizontal=True, vertical_alignment="center")
    row.markdown(f"**{ui.plain(r.label)}**", width="content")
    row.button(
        "Load in the Lab",
        key=f"compare.load.{r.run_id}",
        on_click=_load_into_lab,
        args=(r.run_id,),
        help="Makes this run's model and settings the current experiment.",
    )
    st.code(f"{base}/{ui.share_path(r.run_id)}", language=None)
# In a row that wraps: in half of an 800 px page the second label was cut.
downloads = st.container(horizontal=True)
downloads.download_button(
    "Curves of these runs (CSV)",
    lambda: compare.comparison_csv(runs),  # made on click: every curve of every run, seconds for ten
    file_name=safe_file_name("comparison", ".csv"),
    mime="text/csv",
    on_click="ignore",
    icon=":material/download:",
    key="compare.csv",
)
downloads.download_button(
    "Their specs and settings (JSON)",
    lambda: compare.specs_json(runs),
    file_name=safe_file_name("comparison", "_specs.json"),
    mime="application/json",
    on_click="ignore",
    icon=":material/download:",
    key="compare.specs",
)
