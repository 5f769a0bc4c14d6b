"""What the Lab and Compare pages draw of the kept runs: their overlaid charts and the editable table."""

from __future__ import annotations

import streamlit as st

from ui.figures import compare_curves, overlay_figure
from ui.kept import _NoStore, kept_runs, run_store, share_path, workspace
from ui.keys import LOADED, SHOWN, STORE_ERROR
from ui.text import plain
from ui.widgets import chart


def compare_charts(runs: list, *, key: str, tensor: str | None = None) -> None:
    """The overlays of kept runs: loss (training and held-out), divergence and gradient cosine."""
    from sharecore.viz import overlays as comparecharts

    labels = [r.label for r in runs]
    curves = compare_curves(runs, tensor)
    log_y = st.toggle("Log scale for loss", key=f"{key}.log_y", help="Shows small losses and slow drift.")
    chart(overlay_figure(comparecharts.loss_overlay, curves, labels, log_y=log_y), key=f"{key}.loss")
    # Drift and cosine side by side only where each gets 450 px: narrower (a projector, the Lab's
    # chart column), their titles and run names did not fit, so they stack. A container query
    # measures the charts' own room, not the window's.
    box = f"st-key-{key}-overlays"
    st.html(
        f"""<style>
        .{box} {{ container-type: inline-size; }}
        @container (max-width: 899.98px) {{
          .{box} [data-testid="stHorizontalBlock"] {{ flex-direction: column; }}
          .{box} [data-testid="stHorizontalBlock"] > [data-testid="stColumn"] {{
            width: 100% !important; flex: 1 1 auto !important; }}
        }}
        </style>"""
    )
    left, right = st.container(key=f"{key}-overlays").columns(2)
    with left:
        chart(overlay_figure(comparecharts.divergence_overlay, curves, labels, log_y=log_y), key=f"{key}.divergence")
    with right:
        chart(overlay_figure(comparecharts.cosine_overlay, curves, labels), key=f"{key}.cosine")


def _apply_run_edits(key: str, rows: list) -> None:
    """The kept-runs table's callback: show/hide, rename, pin, delete."""
    ss = st.session_state
    edits = ss[f"{key}.runs.{ss.get(f'{key}.runs.version', 0)}"]["edited_rows"]
    store, ws = run_store(), workspace()
    problems = []
    for index, change in edits.items():
        info = rows[int(index)]
        try:
            if "label" in change:
                store.rename(ws, info.id, change["label"])
                ss[LOADED].pop(info.id, None)
            if "pinned" in change:
                store.pin(ws, info.id, bool(change["pinned"]))
                ss[LOADED].pop(info.id, None)
            if change.get("delete"):
                store.delete(ws, info.id)
                ss[LOADED].pop(info.id, None)
                if info.id in ss[SHOWN]:
                    ss[SHOWN].remove(info.id)
            if "show" in change:
                if change["show"] and info.id not in ss[SHOWN]:
                    ss[SHOWN].append(info.id)
                elif not change["show"] and info.id in ss[SHOWN]:
                    ss[SHOWN].remove(info.id)
        except (KeyError, ValueError) as err:
            problems.append(str(err))
    ss[f"{key}.runs.problems"] = problems
    ss[f"{key}.runs.version"] = ss.get(f"{key}.runs.version", 0) + 1  # a fresh table shows the store


def kept_runs_editor(*, key: str) -> None:
    """This workspace's kept runs as an editable table: show (overlay), label, pin, delete, share link."""
    import pandas as pd

    ss = st.session_state
    rows = kept_runs()
    store = run_store()
    if getattr(store, "problem", None) and not getattr(store, "read_only", None):  # read-only: the page's top message
        st.warning(plain(store.problem), icon=":material/warning:")
    if ss.get(STORE_ERROR):
        st.error(
            plain(f"{ss[STORE_ERROR]} Runs cannot be kept or listed until it works again."), icon=":material/error:"
        )
    for problem in ss.get(f"{key}.runs.problems", []):
        st.error(plain(problem), icon=":material/error:")
    if not rows:
        if isinstance(store, _NoStore):
            st.caption("No runs are kept while the run store cannot be opened (see the message above).")
        else:
            st.caption("No kept runs yet. Every finished or stopped run is kept here, in this browser's workspace.")
        return
    table = pd.DataFrame(
        {
            "show": [info.id in ss[SHOWN] for info in rows],
            "label": [info.label for info in rows],
            "pinned": [info.pinned for info in rows],
            "steps": [info.steps_done for info in rows],
            "loss tied": [info.final_loss.get("tied") for info in rows],
            "loss untied": [info.final_loss.get("untied") for info in rows],
            "link": [share_path(info.id) for info in rows],
            "delete": [False] * len(rows),
        }
    )
    st.data_editor(
        table,
        key=f"{key}.runs.{ss.get(f'{key}.runs.version', 0)}",
        on_change=_apply_run_edits,
        args=(key, rows),
        hide_index=True,
        width="stretch",
        disabled=["steps", "loss tied", "loss untied", "link"],
        # Widths in px so that all eight fit a projector's page (1024 px with the sidebar); what a
        # class reads (name and losses) comes first, and the name stays in view on a narrower page.
        column_order=["show", "label", "loss tied", "loss untied", "steps", "pinned", "link", "delete"],
        column_config={
            "show": st.column_config.CheckboxColumn(
                "show", width=64, pinned=True, help="Overlay this run on the charts."
            ),
            "label": st.column_config.TextColumn(
                "label", width=116, pinned=True, max_chars=80, help="What changed; click to rename."
            ),
            "pinned": st.column_config.CheckboxColumn(
                "pin", width=52, help="A pinned run is never removed to make room."
            ),
            "steps": st.column_config.NumberColumn("steps", width=50),
            "loss tied": st.column_config.NumberColumn(width=70, format="%.4g"),
            "loss untied": st.column_config.NumberColumn(width=84, format="%.4g"),
            "link": st.column_config.LinkColumn(
                "share", width=52, display_text="link", help="Whoever has this link sees the run."
            ),
            "delete": st.column_config.CheckboxColumn("delete", width=70, help="Removes the run from this workspace."),
        },
    )
    limit = getattr(store, "max_runs_per_workspace", None)
    if limit:
        st.caption(f"Up to {limit} runs are kept per browser; beyond that the oldest unpinned run goes.")
