"""What the Lab and Compare pages draw of the kept runs: their overlaid charts and the editable table."""

from __future__ import annotations

import math

import streamlit as st

from sharecore.core.results import VARIANTS
from ui import figures, kept, presenter, room
from ui.figures import compare_curves, overlay_figure
from ui.keys import (
    COSINE_OVERLAY,
    DIVERGENCE_OVERLAY,
    LOG_Y,
    LOSS_OVERLAY,
    OVERLAYS_BOX,
    REVOKE_BUTTON,
    REVOKE_CHOICE,
    REVOKED,
    RUNS_TABLE,
    RUNS_TABLE_PROBLEMS,
    RUNS_TABLE_VERSION,
    of,
)
from ui.text import plain
from ui.widgets import chart, figures_table


def compare_charts(runs: list, *, key: str, tensor: str | None = None) -> None:
    """The overlays of kept runs: loss (training and held-out), divergence and gradient cosine."""
    from sharecore.runs import compare
    from sharecore.viz import overlays as comparecharts

    labels = [r.label for r in runs]
    curves = compare_curves(runs, tensor)
    log_y = st.toggle("Log scale for loss", key=of(key, LOG_Y), help="Shows small losses and slow drift.")
    chart(overlay_figure(comparecharts.loss_overlay, curves, labels, log_y=log_y), key=of(key, LOSS_OVERLAY))
    # Drift and cosine side by side only where each gets 450 px: narrower (a projector, the Lab's
    # chart column), their titles and run names did not fit, so they stack. A container query
    # measures the charts' own room, not the window's.
    box = f"st-key-{key}-{OVERLAYS_BOX}"
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
    left, right = st.container(key=f"{key}-{OVERLAYS_BOX}").columns(2)
    with left:
        chart(
            overlay_figure(comparecharts.divergence_overlay, curves, labels, log_y=log_y),
            key=of(key, DIVERGENCE_OVERLAY),
        )
    with right:
        ends = compare.gradient_ends(runs, tensor)  # where a collapsed run's cosine stops, and why
        chart(
            overlay_figure(comparecharts.cosine_overlay, curves, labels, gradient_ends=ends),
            key=of(key, COSINE_OVERLAY),
        )


def _table_keys(key: str) -> tuple[str, str, str]:
    """The kept-runs table's widget key (with its version), version key and problems key under prefix `key`."""
    version = st.session_state.get(of(key, RUNS_TABLE_VERSION), 0)
    return of(key, RUNS_TABLE, version), of(key, RUNS_TABLE_VERSION), of(key, RUNS_TABLE_PROBLEMS)


def _apply_run_edits(key: str, rows: list) -> None:
    """The kept-runs table's callback: show/hide, rename, pin, delete (`kept.edit_runs`)."""
    ss = st.session_state
    table, version, problems = _table_keys(key)
    edits = {rows[int(index)].id: dict(change) for index, change in ss[table]["edited_rows"].items()}
    for run_id, change in edits.items():  # the room's column; the others are the list's
        if HAND_IN in change:
            (room.hand_in if change.pop(HAND_IN) else room.withdraw)(run_id)
    ss[problems] = kept.edit_runs(edits.items())
    ss[version] = ss.get(version, 0) + 1  # a fresh table shows the store


HAND_IN = "hand in"  # the kept-runs table's column, while the session is in a room


def kept_runs_editor(*, key: str) -> None:
    """This workspace's kept runs as an editable table: show (overlay), label, pin, delete, share link, and,
    in a room, hand in."""
    import pandas as pd

    rows = kept.kept_runs()
    store = kept.run_store()
    table_key, _, problems_key = _table_keys(key)
    if getattr(store, "problem", None) and not getattr(store, "read_only", None):  # read-only: the page's top message
        st.warning(plain(store.problem), icon=":material/warning:")
    if kept.store_error():
        st.error(
            plain(f"{kept.store_error()} Runs cannot be kept or listed until it works again."), icon=":material/error:"
        )
    for problem in st.session_state.get(problems_key, []):
        st.error(plain(problem), icon=":material/error:")
    for kind, note in room.notes():  # what a hand-in of the table did
        (st.success if kind == "ok" else st.error)(plain(note))
    if not rows:
        if not kept.store_open():
            st.caption("No runs are kept while the run store cannot be opened (see the message above).")
        else:
            st.caption("No kept runs yet. Every finished or stopped run is kept here, in this browser's workspace.")
        return
    shown = kept.shown_ids()
    names = kept.run_names(rows)  # as the legends and Compare's chips name them
    table = pd.DataFrame(
        {
            "show": [info.id in shown for info in rows],
            "label": [names[info.id] for info in rows],
            "pinned": [info.pinned for info in rows],
            "steps": [info.steps_done for info in rows],
            "loss tied": [info.final_loss.get("tied") for info in rows],
            "loss untied": [info.final_loss.get("untied") for info in rows],
            "link": [kept.share_path(info.id) for info in rows],
            "delete": [False] * len(rows),
        }
    )
    seat = room.joined()
    if seat is not None:
        handed = {h.run_id for h in room.my_handins()}
        table.insert(1, HAND_IN, [info.id in handed for info in rows])
    if presenter.on():
        _kept_runs_figures(rows, names)
        editor = st.expander(f"Edit kept runs: show, {'hand in, ' if seat else ''}rename, pin, share, delete")
    else:
        editor = st.container()
    editor.data_editor(
        table,
        key=table_key,
        on_change=_apply_run_edits,
        args=(key, rows),
        hide_index=True,
        width="stretch",
        disabled=["steps", "loss tied", "loss untied", "link"],
        # Widths in px so that all the columns fit a projector's page (1024 px with the sidebar). The name
        # stays in view on a narrower page; beside it, on a projector what a class compares (the
        # losses), elsewhere what a participant does with a run (share, delete), which on a phone's
        # 390 px were off screen behind the losses. In a room, "hand in" comes beside "show".
        column_order=[
            *(["show", HAND_IN] if seat else ["show"]),
            "label",
            *(
                ["loss tied", "loss untied", "steps", "pinned", "link", "delete"]
                if presenter.on()
                else ["link", "delete", "loss tied", "loss untied", "steps", "pinned"]
            ),
        ],
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
            HAND_IN: st.column_config.CheckboxColumn(
                HAND_IN, width=76, help=f"Hands the run in to room {seat[0]}; untick to withdraw it." if seat else None
            ),
        },
    )
    limit = getattr(store, "max_runs_per_workspace", None)
    if limit:
        quota = getattr(store, "max_workspace_bytes", 0) / 2**20
        st.caption(
            f"Up to {limit} runs ({quota:.0f} MiB) are kept per browser; beyond that its own oldest unpinned run goes."
        )
    _revoke_control(key, [info for info in rows if not info.adopted])


# The kept runs' figures a class compares first: the losses, the held-out figures, the divergence.
KEPT_FIGURES = [
    "run",
    *(f"{figure} {variant}" for figure in ("loss", "held-out loss", "held-out accuracy") for variant in VARIANTS),
    "final divergence untied",
    "steps",
]


def _kept_runs_figures(rows: list, names: dict[str, str]) -> None:
    """Presenter mode's kept-runs table: each kept run's final figures (`sharecore.runs.compare.final_figures`)
    as an HTML table whose text a class reads from the back of a room; the editable grid, drawn on a canvas
    at 14 px, is folded beneath it. A run that cannot be read keeps its row, with the losses its list
    line recorded."""
    import pandas as pd

    from sharecore.runs.compare import LabelledRun, final_figures

    frames = []
    for info in rows:
        try:
            stored = kept.load_kept(info.id)
        except (KeyError, ValueError):  # unreadable now: the losses its list line recorded
            frames.append(
                pd.DataFrame(
                    [
                        {"run": names[info.id], "steps": info.steps_done}
                        | {f"loss {v}": info.final_loss.get(v, math.nan) for v in VARIANTS}
                    ]
                )
            )
            continue
        frames.append(figures.of_runs(final_figures, [LabelledRun(names[info.id], stored.result, info.id)]))
    frame = pd.concat(frames, ignore_index=True)
    figures_table(frame[[c for c in KEPT_FIGURES if c in frame.columns]], first=KEPT_FIGURES)


def _revoke_control(key: str, own: list) -> None:
    """Takes back the share link of a run this browser saved: the old link opens nothing from then on."""
    if not own:
        return
    with st.expander("Take back a share link"):
        st.caption(
            "The run stays in your list under a new link; the old link opens nothing, and the run leaves the "
            "lists of everyone who opened it. Pages they have open keep showing it until they reload."
        )
        labels = {info.id: info.label for info in own}
        # A fresh picker whenever the list changes: a run continued, deleted or revoked leaves the list,
        # and a picker keeping its id would hold a value that is no longer among its options.
        choice = of(key, REVOKE_CHOICE, str(hash(tuple(labels))))
        st.selectbox("Run", list(labels), format_func=lambda i: labels[i], key=choice)
        st.button("Take back its link", key=of(key, REVOKE_BUTTON), on_click=_revoke, args=(key, choice, labels))
    said = st.session_state.pop(of(key, REVOKED), None)
    if said is not None:
        (st.success if said[0] == "success" else st.error)(plain(said[1]), icon=":material/link_off:")


def _revoke(key: str, choice: str, labels: dict[str, str]) -> None:
    """The take-back button's callback: revokes the run picked in `choice` and says what happened, once."""
    ss = st.session_state
    run_id = ss.get(choice)
    if run_id is None:
        return
    try:
        new_id = kept.revoke_link(run_id)
    except (KeyError, ValueError) as err:
        ss[of(key, REVOKED)] = ("error", str(err))
        return
    ss[of(key, REVOKED)] = (
        "success",
        f"The old link of '{labels.get(run_id, run_id)}' opens nothing now. Its new link: {kept.share_path(new_id)}",
    )
    _, version, _ = _table_keys(key)
    ss[version] = ss.get(version, 0) + 1  # a fresh table shows the new link


def open_shared_link() -> None:
    """A share link's run joins this browser's kept runs (by reference) and the comparison; says how it went."""
    run_id = kept.take_shared_link()
    if run_id is None:
        return
    # Adopted first, then read: the page, the charts and the CSV show the label this browser's list keeps.
    not_added = kept.adopt_shared(run_id)
    try:
        stored = kept.load_kept(run_id)
    except (KeyError, ValueError) as err:
        st.error(plain(str(err)), icon=":material/link_off:")
        return
    kept.show_first(run_id)
    if not_added:
        st.warning(
            plain(f"Opened the shared run '{stored.label}', but it could not be added to your kept runs: {not_added}"),
            icon=":material/link:",
        )
    else:
        st.success(
            plain(f"Opened the shared run '{stored.label}'. It is now in your kept runs."), icon=":material/link:"
        )
