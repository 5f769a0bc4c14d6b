"""The training-settings editor (ui/settings_editor.py) through AppTest: one set of widgets that the Lab draws
compact and the Train page full, and one way a change reaches the experiment's settings."""

from __future__ import annotations

import re

import pytest

from sharecore.core.config import TrainConfig
from tests.support.apptest import go, open_app

# seed-dense records 6 gradient and divergence rows per recorded step, and 2 for step 0: under this cap, 30
# steps recorded at every step fit (182 rows) and 60 do not (362 rows), nor do the default settings (60 steps).
RECORDED_ROWS_CAP = "200"


def shown(alerts) -> list[str]:
    """The alerts' text as the reader sees it: ui.text.plain escapes Markdown with backslashes."""
    return [re.sub(r"\\(.)", r"\1", a.value).replace("\u2060", "") for a in alerts]


def test_the_lab_and_the_train_page_show_and_change_the_same_settings():
    at = open_app("lab", preset="seed-dense", steps="20")
    at.select_slider(key="train.learning_rate").set_value(0.1).run()
    at.selectbox(key="train.optimizer").set_value("sgd").run()
    go(at, "train")
    assert at.select_slider(key="train.learning_rate").value == 0.1
    assert at.selectbox(key="train.optimizer").value == "sgd"
    assert at.number_input(key="train.steps").value == 20
    at.number_input(key="train.steps").set_value(30).run()
    at.number_input(key="train.batch_size").set_value(16).run()  # the Lab has no batch size: it keeps this one
    go(at, "lab")
    assert not at.exception and not at.warning and not at.error
    assert at.select_slider(key="train.steps").value == 30
    assert at.session_state["config"] == TrainConfig(steps=30, batch_size=16, optimizer="sgd", learning_rate=0.1)


@pytest.mark.parametrize("page", ["lab", "train"])
def test_a_change_the_limits_refuse_leaves_the_settings_as_they_were_and_says_why(page, monkeypatch):
    monkeypatch.setenv("SHARECORE_MAX_RECORDED_ROWS", RECORDED_ROWS_CAP)
    at = open_app(page, preset="seed-dense", steps="20")
    steps = at.select_slider(key="train.steps") if page == "lab" else at.number_input(key="train.steps")
    steps.set_value(60).run()
    assert not at.exception
    assert at.session_state["config"].steps == 20
    widget = at.select_slider(key="train.steps") if page == "lab" else at.number_input(key="train.steps")
    assert widget.value == 20, "the widget shows the settings that train"
    [error] = shown(at.error)
    assert error.startswith("Steps not changed: the training run exceeds the limit of 200 recorded rows"), error
    assert "Record every 2 steps or more" in error
    at.run()
    assert shown(at.error) == [error], "said while the experiment stays as it was"
    steps = at.select_slider(key="train.steps") if page == "lab" else at.number_input(key="train.steps")
    steps.set_value(30).run()
    assert not at.error and at.session_state["config"].steps == 30


def test_settings_over_a_limit_together_say_why_and_keep_train_off_on_both_pages_until_one_changes(monkeypatch):
    monkeypatch.setenv("SHARECORE_MAX_RECORDED_ROWS", RECORDED_ROWS_CAP)
    at = open_app("lab", preset="seed-dense")  # the default settings: 60 steps, each one recorded
    assert at.session_state["config"] == TrainConfig()
    assert any("362" in e and "Record every 2 steps or more" in e for e in shown(at.error)), shown(at.error)
    assert at.button(key="lab.train").disabled
    go(at, "train")
    assert any("362" in e for e in shown(at.error)), shown(at.error)
    assert at.button(key="train.start").disabled
    at.number_input(key="train.record_every").set_value(2).run()  # 32 recorded steps: 194 rows
    assert not at.error and not at.button(key="train.start").disabled
    go(at, "lab")
    assert not at.error and not at.button(key="lab.train").disabled


def test_the_lab_says_when_it_changes_a_setting_that_no_longer_fits_the_model():
    at = open_app("lab", preset="siamese-digits", data="digits")
    assert at.selectbox(key="train.dataset").value == "digits" and not at.warning
    at.sidebar.selectbox(key="sidebar.preset").set_value("seed-dense").run()
    assert shown(at.warning) == [
        "Dataset 'digits' cannot be used: the digits data set needs a model input of 64 values (one 8x8 image) "
        "or 128 (two side by side), and this model's input [10] holds 10 values. Using 'teacher'."
    ]
    assert at.selectbox(key="train.dataset").value == "teacher" and at.session_state["config"].dataset == "teacher"
    at.run()
    assert not at.warning and not at.exception  # said once, when it happened


def test_a_limit_lowered_while_the_page_is_open_turns_train_off_on_the_next_run(monkeypatch):
    # The run check's answers are kept for the same spec, settings and limits: new limits are a new question.
    at = open_app("train", preset="seed-dense")
    assert not at.error and not at.button(key="train.start").disabled
    monkeypatch.setenv("SHARECORE_MAX_RECORDED_ROWS", RECORDED_ROWS_CAP)
    at.run()
    assert at.button(key="train.start").disabled
    assert any("362" in e for e in shown(at.error)), shown(at.error)
