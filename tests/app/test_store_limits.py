"""What a person sees of the run store's limits: a store another process holds locked is a message on a page
that still draws, a label of invisible characters is refused in words, a run whose state was altered opens and
says why it cannot be continued, an owner takes a share link back."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from streamlit.runtime.context import ContextProxy, StreamlitCookies

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.runs.store import RunStore
from tests.support.apptest import open_app
from ui import kept as ui_kept
from ui.text import WORD_JOINER

OWNER, VIEWER = "O" * 24, "V" * 24


@pytest.fixture(scope="module")
def result():
    return sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=2, batch_size=8))


@pytest.fixture
def store(tmp_path, monkeypatch) -> RunStore:
    """A run store of the test's own, so that it can be locked; the process's store comes back afterwards."""
    own = RunStore(tmp_path / "runs.sqlite3")
    monkeypatch.setattr(ui_kept, "_STORE", own)
    return own


def as_browser(monkeypatch, key: str) -> None:
    """The next sessions come from the browser whose workspace cookie is `key`."""
    monkeypatch.setattr(
        ContextProxy, "cookies", property(lambda self: StreamlitCookies({ui_kept.WORKSPACE_COOKIE: key}))
    )


def shown(at) -> list[str]:
    """The page's messages as a reader sees them (plain()'s escapes and word joiners taken out)."""
    texts = [e.value for kind in (at.error, at.warning, at.info, at.success) for e in kind]
    return [re.sub(r"\\([!-/:-@[-`{-~])", r"\1", text).replace(WORD_JOINER, "") for text in texts]


def test_a_store_another_process_holds_locked_is_a_message_and_the_lab_still_draws(store, result, monkeypatch):
    as_browser(monkeypatch, OWNER)
    store.save(OWNER, result, "kept before")
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE workspaces SET last_used = last_used")
    try:
        at = open_app("lab", steps="5")
        assert not at.exception, at.exception
        locked = [text for text in shown(at) if "holds it locked" in text]
        assert locked and "try again in a moment" in locked[0], shown(at)
        assert at.button, "the Lab's controls are drawn"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    at.run()
    assert not any("holds it locked" in text for text in shown(at)), shown(at)


def edit_table(at, edited_rows: dict) -> None:
    """Edits the Lab's kept-runs table as the browser does: sends its `edited_rows` state and reruns."""
    [table] = [e for e in at.get("dataframe") if "lab.runs" in (e.proto.id or "")]
    states = at._tree.get_widget_states()
    state = states.widgets.add()
    state.id = table.proto.id
    state.string_value = json.dumps({"edited_rows": edited_rows, "added_rows": [], "deleted_rows": []})
    at._run(states)
    assert not at.exception, at.exception


def test_renaming_a_run_to_invisible_characters_says_why_and_keeps_its_label(store, result, monkeypatch):
    as_browser(monkeypatch, OWNER)
    store.save(OWNER, result, "visible")
    at = open_app("lab", steps="5")
    edit_table(at, {"0": {"label": "\u200b\ufeff"}})
    refused = [text for text in shown(at) if "visible character" in text]
    assert refused and "U+200B" in refused[0] and "U+FEFF" in refused[0], shown(at)
    assert [info.label for info in store.runs(OWNER)] == ["visible"]


def test_an_owner_takes_back_a_link_a_viewer_opened_and_the_link_opens_nothing_after(store, result, monkeypatch):
    run_id = store.save(OWNER, result, "mine").run_id
    as_browser(monkeypatch, VIEWER)
    viewer = open_app("compare", run=run_id)
    assert not viewer.exception and [info.id for info in store.runs(VIEWER)] == [run_id]

    as_browser(monkeypatch, OWNER)
    owner = open_app("lab", steps="5")
    [picker] = [box for box in owner.selectbox if (box.key or "").startswith("lab.revoke_choice.")]
    picker.select(run_id).run()
    owner.button(key="lab.revoke").click().run()
    assert not owner.exception, owner.exception
    [new_id] = [info.id for info in store.runs(OWNER)]
    said = [text for text in shown(owner) if "opens nothing now" in text]
    assert new_id != run_id and said and f"compare?run={new_id}" in said[0], shown(owner)

    assert store.runs(VIEWER) == []  # a share is a loan: it leaves the viewer's list
    as_browser(monkeypatch, "N" * 24)
    newcomer = open_app("compare", run=run_id)
    assert not newcomer.exception
    assert any("No run with id" in text for text in shown(newcomer)), shown(newcomer)


def test_a_run_whose_state_was_altered_opens_in_the_lab_and_says_why_it_cannot_be_continued(store, result, monkeypatch):
    from sharecore.runs.codec import _arrays_bytes

    as_browser(monkeypatch, OWNER)
    run_id = store.save(OWNER, result, "altered").run_id
    rng = {"bit_generator": "PCG64", "state": "rewound"}  # not a state NumPy can take
    with store._write() as db:
        db.execute(
            "UPDATE runs SET state = ? WHERE id = ?",
            (_arrays_bytes(result.state.arrays, {"steps_done": result.steps_done, "rng": rng}), run_id),
        )
    at = open_app("lab", steps="5")
    assert not at.exception, at.exception
    said = [text for text in shown(at) if "cannot be continued" in text]
    assert said and "'altered'" in said[0] and "PCG64" in said[0], shown(at)
    assert "Traceback" not in " ".join(shown(at))
