"""The app through Streamlit's AppTest: open a page as a fresh session, read its figures, train until done.

The fixture that checks no training thread outlives a test is tests/app/conftest.py's
`no_training_left_behind`.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.support import ROOT
from ui.keys import WARM_UP_CHART

APP = str(ROOT / "streamlit_app.py")


def open_app(page: str | None = None, **query: str) -> AppTest:
    """A fresh session (one browser tab), opened with `query` in the URL."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.run()
    if page is not None:
        go(at, page)
    return at


def go(at: AppTest, page: str) -> AppTest:
    return at.switch_page(f"pages/{page}.py").run()


def charts(at: AppTest) -> list:
    """The page's plotly chart elements: not the hidden one a session's second run ends with
    (`ui.startup.warm_up_charts`)."""
    return [el for el in at.get("plotly_chart") if not el.proto.id.endswith(f"-{WARM_UP_CHART}.chart")]


def figures(at: AppTest) -> list[dict]:
    """The plotly figures on the page, as the JSON the browser gets."""
    return [json.loads(el.proto.spec) for el in charts(at)]


def values(array) -> np.ndarray:
    """A plotly array: plain JSON, or plotly 7's base64 {'dtype', 'bdata', 'shape'} form."""
    if isinstance(array, dict) and "bdata" in array:
        out = np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
        if "shape" in array:
            out = out.reshape([int(n) for n in str(array["shape"]).split(",")])
        return out
    return np.asarray(array)


def widget(widgets, suffix: str):
    """The widget whose key ends with `suffix` (the Build editor's keys carry a version)."""
    found = [w for w in widgets if w.key and w.key.endswith(suffix)]
    assert len(found) == 1, f"expected one widget with key *{suffix}, found {[w.key for w in found]}"
    return found[0]


def trainer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sharecore-train"]


def train_until_done(at: AppTest, timeout: float = 90) -> None:
    """Clicks Train, then reruns the page (as the live fragment's polling does) until the run ends."""
    at.button(key="train.start").click().run()
    deadline = time.monotonic() + timeout
    while at.session_state["run"] is not None:
        assert time.monotonic() < deadline, "training did not finish in time"
        time.sleep(0.5)
        at.run()


def click_and_wait(at, key: str, timeout: float = 90):
    """Clicks a button that starts a run, then reruns (as the live fragment does) until it ends."""
    at.button(key=key).click().run()
    deadline = time.monotonic() + timeout
    while at.session_state["run"] is not None:
        assert time.monotonic() < deadline, "training did not finish in time"
        time.sleep(0.3)
        at.run()
    assert not at.exception
    return at


def edit_kept_runs(at, edited_rows: dict, key: str = "lab"):
    """Edits the kept-runs table as the browser does: sends its `edited_rows` state and reruns."""
    tables = [e for e in at.get("dataframe") if f"{key}.runs" in (e.proto.id or "")]
    assert len(tables) == 1, [e.proto.id for e in at.get("dataframe")]
    states = at._tree.get_widget_states()
    state = states.widgets.add()
    state.id = tables[0].proto.id
    state.string_value = json.dumps({"edited_rows": edited_rows, "added_rows": [], "deleted_rows": []})
    at._run(states)
    assert not at.exception, at.exception
    return at
