"""Presenter mode and a phone's width, as the app sends them: the kept-runs table's columns (a phone
sees share and delete beside the run's name; a projector the losses) and Compare's tables (HTML
tables in presenter mode, the figures a class compares first, user text shown as written). What a
browser draws of them is checked in tests/browser/test_presenter*.py."""

from __future__ import annotations

import json

from tests.support.apptest import click_and_wait, edit_kept_runs, open_app
from ui import kept as ui_kept
from ui.text import plain

# A phone's 390 px less Streamlit's 1 rem (16 px) of margin on each side of a narrow page.
PHONE_TABLE_PX = 390 - 2 * 16


def kept_runs_columns(at) -> list[tuple[str, int]]:
    """The kept-runs table's columns in the order drawn, each with its width in px."""
    (table,) = [e for e in at.get("dataframe") if "lab.runs" in (e.proto.id or "")]
    config = json.loads(table.proto.columns)
    return [(name, config[name]["width"]) for name in table.proto.column_order]


def test_a_phone_sees_share_and_delete_and_a_projector_the_losses_beside_the_run_name():
    at = open_app("lab", steps="5")
    click_and_wait(at, "lab.train")
    columns = kept_runs_columns(at)
    names = [name for name, _ in columns]
    assert names[:2] == ["show", "label"]
    through_delete = names.index("delete") + 1
    assert "link" in names[:through_delete]
    assert sum(width for _, width in columns[:through_delete]) <= PHONE_TABLE_PX, columns
    at.sidebar.toggle(key="sidebar.presenter").set_value(True).run()
    assert [name for name, _ in kept_runs_columns(at)][:4] == ["show", "label", "loss tied", "loss untied"]


def test_compare_in_presenter_mode_draws_html_tables_with_the_compared_figures_first():
    at = open_app("lab", steps="5")
    click_and_wait(at, "lab.train")
    click_and_wait(at, "lab.train")
    at.sidebar.toggle(key="sidebar.presenter").set_value(True).run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert not at.dataframe, "no canvas grid (fixed 14 px, cut headers) in presenter mode"
    (finals,) = [t.value for t in at.table if "run" in t.value.columns]
    figures_first = ["run", "loss tied", "loss untied", "held-out loss tied", "held-out loss untied"]
    shown = [name.replace("\\", "") for name in finals.columns]  # headers are Markdown, user text escaped
    assert shown[: len(figures_first)] == figures_first
    assert len(finals) == len(at.session_state["shown_runs"]) == 2
    last = at.session_state["result"].history  # the run trained last, as sharecore recorded it
    final = last[last.step == last.step.max()].set_index("variant")["loss"]
    assert f"{final['tied']:.4g}" in set(finals["loss tied"]) and f"{final['untied']:.4g}" in set(finals["loss untied"])


HOSTILE_LABEL = "<img src=x onerror=alert(1)>**b**"


def test_presenter_mode_draws_the_kept_runs_as_an_html_table_of_their_final_losses_and_folds_the_editor_beneath():
    at = open_app("lab", steps="5")
    click_and_wait(at, "lab.train")
    first = at.session_state["result"]
    click_and_wait(at, "lab.train")
    second = at.session_state["result"]
    at.sidebar.toggle(key="sidebar.presenter").set_value(True).run()
    # Every edit stays reachable: the grid, folded in an expander, renames the older run (newest first).
    (folded,) = [e for e in at.expander if e.label.startswith("Edit kept runs")]
    assert [e for e in folded.get("dataframe") if "lab.runs" in (e.proto.id or "")], "the editor is folded here"
    edit_kept_runs(at, {"1": {"label": HOSTILE_LABEL}})
    assert [r.label for r in ui_kept.run_store().runs(at.session_state["workspace"])][1] == HOSTILE_LABEL
    (kept_runs,) = [t.value for t in at.main.table if "run" in t.value.columns]
    assert kept_runs.columns[:3].tolist() == ["run", "loss tied", "loss untied"]
    assert kept_runs["run"].tolist()[1] == plain(HOSTILE_LABEL), "the label is shown as written, never as markup"
    for row, res in zip(kept_runs.itertuples(index=False), [second, first]):
        last = res.history[res.history.step == res.history.step.max()].set_index("variant")["loss"]
        assert (row[1], row[2]) == (f"{last['tied']:.4g}", f"{last['untied']:.4g}")
