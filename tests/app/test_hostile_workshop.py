"""The workshop features attacked as a careless or hostile user would: run labels holding markup,
tampered cookies and share links, a run store that breaks while the server runs, continuing
what cannot be continued, and full workspaces (each exercise's Set up is tests/app/test_exercises.py's). Each
number drawn is checked against the run it came from or against `sharecore.train` itself."""

from __future__ import annotations

import html
import json
import re
import sqlite3

import numpy as np
import pytest
from streamlit.runtime.context import ContextProxy, StreamlitCookies
from streamlit.testing.v1 import AppTest

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.runs import compare
from sharecore.runs.store import RunStore, clean_label
from sharecore.runs.storefile import StoreFile
from sharecore.viz import overlays as comparecharts
from tests.support.apptest import APP, click_and_wait, edit_kept_runs, figures, open_app, values
from tests.support.users import rerun_unprivileged
from ui import kept as ui_kept
from ui.text import WORD_JOINER, plain

TOKEN = re.compile(r"[A-Za-z0-9_-]{24}")
# Labels a workshop participant might type, each meaning something to Markdown, HTML, plotly or a path.
HOSTILE_LABELS = (
    "<a href='https://evil.example'>click</a>",
    "<b>bold</b><br><img src=x onerror=alert(1)>",
    "**x** %{x} :red[x] [a](javascript:alert(1)) &lt;b&gt; ../../etc/passwd",
)


def lab(**query: str):
    at = open_app("lab", **{"steps": "5", **query})
    assert not at.exception, at.exception
    return at


def shown_text(at) -> list[str]:
    return [e.value for kind in (at.error, at.warning, at.info, at.success) for e in kind]


def kept_labels(at) -> list[str]:
    return [info.label for info in ui_kept.run_store().runs(at.session_state["workspace"])]


@pytest.fixture
def own_store(tmp_path, monkeypatch):
    """A run store of the test's own, so it can be damaged; the process's store comes back afterwards."""
    store = RunStore(tmp_path / "runs.sqlite3")
    monkeypatch.setattr(ui_kept, "_STORE", store)
    return store


# ----------------------------------------------------------------------------- labels as user text
def test_legend_and_hover_text_show_a_label_with_html_as_written_never_as_markup():
    spec = sharecore.preset("seed-dense")
    res = sharecore.train(spec, TrainConfig(steps=3))
    labels = list(HOSTILE_LABELS)
    runs = [compare.LabelledRun(label, res, "") for label in labels]
    fig = comparecharts.loss_overlay(compare.curves(runs), labels)
    assert len(fig.data) == 4 * len(labels)  # training and held-out panels, tied and untied
    for trace in fig.data:
        # Plotly reads <a>, <b>, <br>, <img> ... in legend names and hover text and decodes &lt; &gt; &amp;
        # after that: an escaped name has no tag left, and shows the label exactly as typed.
        assert "<" not in trace.name and ">" not in trace.name, trace.name
        label, variant = html.unescape(trace.name).rsplit(" · ", 1)
        assert label in labels and variant in ("tied", "untied")
        hover = trace.hovertemplate.split("<br>step")[0]
        assert "<" not in hover
        assert html.unescape(hover.replace("%%", "%")) == f"{label} · {variant}"


def test_labels_renamed_to_collide_with_a_counter_still_get_distinct_names():
    assert compare.unique_labels(["x", "x", "x (2)"]) == ["x", "x (2)", "x (2) (2)"]
    assert compare.unique_labels(["x (2)", "x", "x"]) == ["x (2)", "x", "x (3)"]
    spec = sharecore.preset("seed-dense")
    results = [sharecore.train(spec, TrainConfig(steps=2, learning_rate=lr)) for lr in (0.01, 0.05, 0.1)]
    labels = compare.unique_labels(["x", "x", "x (2)"])
    runs = [compare.LabelledRun(label, res) for label, res in zip(labels, results)]
    table = compare.settings_table(runs)
    assert list(table.columns) == ["setting", *labels]
    row = table.set_index("setting").loc["train.learning_rate"]
    assert row.tolist() == ["0.01", "0.05", "0.1"], "each run's column holds its own setting"
    assert len(comparecharts.run_colors(labels)) == 3, "one color per run"


def test_a_run_renamed_to_markup_shows_it_as_text_in_the_table_charts_compare_page_and_downloads():
    at = lab()
    click_and_wait(at, "lab.train")
    run_id = at.session_state["current_run_id"]
    history = at.session_state["result"].history
    for label in HOSTILE_LABELS:
        edit_kept_runs(at, {"0": {"label": label}})
        assert not at.error, [e.value for e in at.error]
        assert kept_labels(at) == [label]
    label = HOSTILE_LABELS[-1]
    traces = [t for fig in figures(at) for t in fig["data"] if t.get("name")]
    assert traces
    for trace in traces:
        assert "<" not in trace["name"]
        assert html.unescape(trace["name"]).rsplit(" · ", 1)[0] == label
    drawn = [values(t["y"]) for t in traces if t["name"].endswith("· tied") and t.get("xaxis", "x") == "x"]
    np.testing.assert_allclose(drawn[0], history[history.variant == "tied"]["loss"], rtol=1e-6)

    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    heading = [m.value for m in at.markdown if "etc" in m.value]
    assert heading == [f"**{plain(label)}**"], heading  # the Markdown-escaped label, bold as a whole
    assert label in list(at.dataframe[-1].value["run"]), "the final figures name the run as typed"
    stored = ui_kept.run_store().load(run_id, at.session_state["workspace"])
    runs = [compare.LabelledRun(stored.label, stored.result, run_id)]
    assert json.loads(compare.specs_json(runs))[0]["label"] == label
    assert "etc" in compare.comparison_csv(runs).splitlines()[1]  # quoted by the CSV writer, no path


def test_a_label_loses_control_and_bidi_override_characters_that_would_turn_the_text_after_it():
    assert clean_label("\u202eevil\u202c") == "evil"
    assert clean_label("a\u2066b\u2069c\u202ad") == "abcd"
    assert clean_label("a\nb\rc\ud800d") == "a b c d"
    assert clean_label("שלום \u200fmark") == "שלום \u200fmark", "right-to-left text and marks stay"


# ----------------------------------------------------------------------------- cookies and share links
@pytest.mark.parametrize(
    "cookie",
    ["A" * 30, "B" * 64, "A" * 23, "A" * 24 + "\n", "<script>alert(1)</script>", "../../etc/passwd", "x'; y=1"],
)
def test_a_tampered_workspace_cookie_gets_a_fresh_key_and_never_a_traceback_or_markup(cookie, monkeypatch):
    monkeypatch.setattr(
        ContextProxy, "cookies", property(lambda self: StreamlitCookies({ui_kept.WORKSPACE_COOKIE: cookie}))
    )
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()  # the first run writes the cookie
    assert not at.exception, at.exception
    key = at.session_state["workspace"]
    assert TOKEN.fullmatch(key) and key != cookie
    scripts = [el.proto.body for el in at.get("html") if "cookie" in el.proto.body]
    assert scripts == [
        f"<script>document.cookie = '{ui_kept.WORKSPACE_COOKIE}={key}; path=/; max-age=31536000; SameSite=Lax';</script>"
    ]
    at.switch_page("pages/lab.py").run()
    assert not at.exception, at.exception


def test_a_valid_cookie_is_kept_and_not_written_again(monkeypatch):
    key = "Zz09_-" * 4
    monkeypatch.setattr(
        ContextProxy, "cookies", property(lambda self: StreamlitCookies({ui_kept.WORKSPACE_COOKIE: key}))
    )
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert at.session_state["workspace"] == key
    assert not [el for el in at.get("html") if "cookie" in el.proto.body]


def test_a_share_link_opens_without_calling_its_run_ignored_and_bad_ids_say_no_run():
    at = lab()
    click_and_wait(at, "lab.train")
    run_id = at.session_state["current_run_id"]
    shared = open_app("compare", run=run_id)
    assert not shared.exception
    assert not [w.value for w in shared.warning if "run" in w.value], [w.value for w in shared.warning]
    assert run_id in shared.session_state["shown_runs"]
    both = AppTest.from_file(APP, default_timeout=60)
    both.query_params["run"] = ["A" * 24, run_id]  # two run parameters: the last counts
    both.run()
    both.switch_page("pages/compare.py").run()
    assert not both.exception and run_id in both.session_state["shown_runs"]
    for bad in (run_id.swapcase(), "' OR 1=1 --", "x" * 100_000, "ünïcødé☃"):
        other = open_app("compare", run=bad)
        assert not other.exception
        assert any("No run with id" in e.value for e in other.error), shown_text(other)
        assert all(len(e.value) < 400 for e in other.error), "a huge id is cut short in the message"


def test_a_shared_run_shows_its_owners_label_everywhere_until_the_viewer_renames_it():
    owner = lab()
    click_and_wait(owner, "lab.train")
    run_id = owner.session_state["current_run_id"]
    edit_kept_runs(owner, {"0": {"label": "owner's name"}})  # renamed before sharing
    viewer = open_app("compare", run=run_id)
    assert not viewer.exception, viewer.exception
    [kept] = ui_kept.run_store().runs(viewer.session_state["workspace"])
    assert kept.id == run_id and kept.label == "owner's name", kept

    def labels_shown() -> set[str]:
        shown = set(viewer.dataframe[-1].value["run"])  # the final figures
        shown |= {html.unescape(t["name"]).rsplit(" · ", 1)[0] for f in figures(viewer) for t in f["data"]}
        return shown | set(viewer.multiselect(key="compare.pick").options)

    assert any(plain("'owner's name'") in text for text in shown_text(viewer)), shown_text(viewer)  # "Opened ..."
    assert labels_shown() == {"owner's name"}
    edit_kept_runs(owner, {"0": {"label": "owner renamed it again"}})
    viewer.run()
    assert labels_shown() == {"owner renamed it again"}, "a list that has not renamed the run follows its owner"
    viewer.switch_page("pages/lab.py").run()
    edit_kept_runs(viewer, {"0": {"label": "the viewer's name"}})
    edit_kept_runs(owner, {"0": {"label": "owner's third name"}})
    viewer.switch_page("pages/compare.py").run()
    assert labels_shown() == {"the viewer's name"}, "the viewer's rename is the viewer's"
    assert [info.label for info in ui_kept.run_store().runs(owner.session_state["workspace"])] == ["owner's third name"]


def test_a_shared_run_that_a_full_list_cannot_take_is_shown_and_says_why_it_was_not_added(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARECORE_KEPT_RUNS", "1")
    monkeypatch.setenv("SHARECORE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(ui_kept, "_STORE", None)
    owner = lab()
    click_and_wait(owner, "lab.train")
    run_id = owner.session_state["current_run_id"]
    viewer_key = "V" * 24
    store = ui_kept.run_store()
    store.pin(viewer_key, store.save(viewer_key, owner.session_state["result"], "pinned").run_id, True)
    monkeypatch.setattr(
        ContextProxy, "cookies", property(lambda self: StreamlitCookies({ui_kept.WORKSPACE_COOKIE: viewer_key}))
    )
    viewer = open_app("compare", run=run_id)
    assert not viewer.exception, viewer.exception
    warned = [text for text in shown_text(viewer) if "could not be added to your kept runs" in text]
    assert len(warned) == 1 and "all 1 are pinned" in warned[0], shown_text(viewer)
    assert not any("It is now in your kept runs" in text for text in shown_text(viewer))
    assert run_id in viewer.session_state["shown_runs"] and figures(viewer), "the shared run is still shown"
    assert [info.label for info in store.runs(viewer_key)] == ["pinned"]


# ----------------------------------------------------------------------------- the store breaking at run time
def _damage(store: RunStore, how: str) -> None:
    for suffix in ("-wal", "-shm"):
        store.path.with_name(store.path.name + suffix).unlink(missing_ok=True)
    if how == "garbage":
        store.path.write_bytes(b"not a database " * 500)
    else:
        store.path.unlink()


@pytest.mark.parametrize("how", ["garbage", "deleted"])
def test_a_store_damaged_while_the_server_runs_is_reported_and_the_lab_keeps_working(how, own_store):
    at = lab()
    click_and_wait(at, "lab.train")
    _damage(own_store, how)
    at.run()
    assert not at.exception, at.exception
    assert any("run store" in text for text in shown_text(at)), shown_text(at)
    click_and_wait(at, "lab.train")  # the user's next run
    res = at.session_state["result"]
    assert res.steps_done == 5
    assert not at.exception
    # The store started anew, and the new run is kept and drawn.
    assert len(kept_labels(at)) == 1
    tied = [values(t["y"]) for fig in figures(at) for t in fig["data"] if t.get("name", "").endswith("· tied")]
    assert any(np.allclose(y, res.history[res.history.variant == "tied"]["loss"], rtol=1e-6) for y in tied)
    if how == "garbage":
        assert list(own_store.path.parent.glob("runs.sqlite3.corrupt-*")), "the damaged file is set aside, not lost"


def test_a_store_folder_the_server_may_not_write_is_one_message_on_every_page_and_runs_still_train_and_draw(
    request, tmp_path, monkeypatch
):
    if rerun_unprivileged(request):  # root may write any folder: this test runs as another user
        return
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)  # as a read-only volume is, to this server
    monkeypatch.setenv("SHARECORE_DATA_DIR", str(folder))
    monkeypatch.setattr(ui_kept, "_STORE", None)  # the process opens its store again, from this folder
    monkeypatch.setattr(ui_kept, "_STORE_PROBLEM", None)

    def the_message(at) -> str:
        assert not at.exception, at.exception
        # As written: plain() escaped the Markdown characters with backslashes, and put word joiners in.
        shown = [re.sub(r"\\([!-/:-@[-`{-~])", r"\1", text).replace(WORD_JOINER, "") for text in shown_text(at)]
        about = [text for text in shown if str(folder) in text]
        assert len(about) == 1, shown  # one message, naming the folder
        return about[0]

    at = lab()
    message = the_message(at)
    assert "cannot be created" in message and "mode 0555" in message, message
    assert "SHARECORE_DATA_DIR" in message and "runs are trained and drawn but not kept" in message, message
    for page in ("home", "compare", "train", "build", "lab"):
        at.switch_page(f"pages/{page}.py").run()
        assert the_message(at) == message, page
    click_and_wait(at, "lab.train")
    assert the_message(at) == message
    res = at.session_state["result"]
    assert res.steps_done == 5 and at.session_state["current_run_id"] is None
    assert any("This run could not be kept" in note for note in at.session_state["keep_notes"])
    drawn = [
        values(t["y"])
        for fig in figures(at)
        for t in fig["data"]
        if t.get("name") == "this run (not kept) · tied" and t.get("xaxis", "x") == "x"
    ]
    assert drawn, "the run that could not be kept is drawn"
    np.testing.assert_allclose(drawn[0], res.history[res.history.variant == "tied"]["loss"], rtol=1e-6)
    assert list(folder.iterdir()) == []


def test_a_locked_store_is_a_clear_value_error_and_works_again_once_free(tmp_path):
    class QuickFile(StoreFile):  # the real store waits 30 s for a lock
        def _connect(self, timeout: float = 0.0) -> sqlite3.Connection:
            return super()._connect(0.2)

    store = RunStore(tmp_path / "runs.sqlite3")
    store.database = QuickFile(tmp_path / "runs.sqlite3")
    workspace = "W" * 24
    res = sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=2))
    locker = sqlite3.connect(store.path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ValueError, match="locked"):
            store.save(workspace, res, "a run")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert not list(tmp_path.glob("*.corrupt-*")), "a busy store is not set aside"
    run_id = store.save(workspace, res, "a run").run_id
    assert [info.id for info in store.runs(workspace)] == [run_id]


# ----------------------------------------------------------------------------- caps
def test_a_full_workspace_evicts_the_oldest_and_a_run_it_cannot_keep_is_still_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARECORE_KEPT_RUNS", "2")
    monkeypatch.setenv("SHARECORE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(ui_kept, "_STORE", None)
    at = lab(preset="seed-dense")
    for lr in (0.01, 0.05, 0.1):
        at.select_slider(key="train.learning_rate").set_value(lr).run()
        click_and_wait(at, "lab.train")
    assert kept_labels(at) == ["seed-dense: lr 0.1, steps 5", "seed-dense: lr 0.05, steps 5"]
    assert any("oldest unpinned run 'seed-dense: steps 5' was removed" in n for n in at.session_state["keep_notes"])
    edit_kept_runs(at, {"0": {"pinned": True}, "1": {"pinned": True}})
    at.select_slider(key="train.learning_rate").set_value(0.2).run()
    click_and_wait(at, "lab.train")
    assert any("all 2 are pinned" in text for text in shown_text(at)), shown_text(at)
    res = at.session_state["result"]
    assert res.config.learning_rate == 0.2
    tied = [values(t["y"]) for fig in figures(at) for t in fig["data"] if t.get("name", "").endswith("· tied")]
    assert any(np.allclose(y, res.history[res.history.variant == "tied"]["loss"], rtol=1e-6) for y in tied), (
        "the run that could not be kept is still drawn"
    )
    # Unpin one and continue the unkept run: it is kept as itself and replaces no other run.
    edit_kept_runs(at, {"1": {"pinned": False}})
    click_and_wait(at, "lab.continue")
    labels = kept_labels(at)
    assert "seed-dense: lr 0.1, steps 5" in labels, labels
    assert len(labels) == 2 and any("0.2" in label for label in labels), labels


# ----------------------------------------------------------------------------- continue and step
def test_load_in_the_lab_then_continue_carries_on_the_loaded_run():
    at = lab(preset="seed-dense", steps="20")
    click_and_wait(at, "lab.train")
    first = at.session_state["current_run_id"]
    at.select_slider(key="train.learning_rate").set_value(0.1).run()
    click_and_wait(at, "lab.train")
    second = at.session_state["current_run_id"]
    at.switch_page("pages/compare.py").run()
    at.button(key=f"compare.load.{first}").click().run()
    at.switch_page("pages/lab.py").run()
    assert not at.exception
    click_and_wait(at, "lab.continue")  # +20 steps
    res = at.session_state["result"]
    longer = sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=40))
    np.testing.assert_allclose(res.history["loss"], longer.history["loss"], rtol=1e-5)
    kept = {info.id for info in ui_kept.run_store().runs(at.session_state["workspace"])}
    assert second in kept, "the other run is untouched"
    assert first not in kept, "the loaded run is replaced by its longer self"


def test_a_diverged_run_says_why_it_cannot_be_continued():
    at = lab(preset="seed-conv", opt="sgd", lr="1", steps="30")
    click_and_wait(at, "lab.train")
    res = at.session_state["result"]
    assert res.stop_reason and "non-finite" in res.stop_reason and res.state is None
    button = at.button(key="lab.continue")
    assert button.disabled
    assert "non-finite" in button.help and "too large" not in button.help, button.help


def test_steps_past_the_servers_cap_are_refused_with_a_message(monkeypatch):
    monkeypatch.setenv("SHARECORE_MAX_STEPS", "30")
    at = lab(preset="seed-dense", steps="20")
    click_and_wait(at, "lab.train")
    at.button(key="lab.continue").click().run()
    assert not at.exception and at.session_state["run"] is None
    assert any("30 steps" in e.value for e in at.error), shown_text(at)
    assert at.session_state["result"].steps_done == 20
