"""The dashboard, driven through Streamlit's AppTest: every page renders, and its widgets do what they say."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from sharecore import preset, train
from sharecore.core.config import TrainConfig
from sharecore.core.spec import ModelSpec
from sharecore.share import urlstate
from tests.support.apptest import APP, charts, figures, go, open_app, train_until_done, trainer_threads, values, widget
from ui import keys

PAGES = [
    "home",
    "lab",
    "compare",
    "exercises",
    "room",
    "build",
    "train",
    "gradients",
    "divergence",
    "pitfalls",
    "your_model",
]
# Small enough to compile fast; A has three uses (so the pairwise heatmap shows), B one.
THREE_USES = ModelSpec.from_dict(
    {
        "name": "three-uses",
        "input_shape": [4],
        "tensors": [{"name": "A", "shape": [4, 4]}, {"name": "B", "shape": [4, 4]}],
        "uses": [
            {"name": "a1", "op": "dense", "tensor": "A", "activation": "tanh"},
            {"name": "a2", "op": "dense", "tensor": "A", "activation": "tanh"},
            {"name": "b", "op": "dense", "tensor": "B", "activation": "tanh"},
            {"name": "a3", "op": "dense", "tensor": "A"},
        ],
    }
)


# ----------------------------------------------------------------------------- smoke
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_exception_or_error(page):
    at = open_app(page)
    assert not at.exception
    assert not at.error
    assert at.title[0].value


def test_home_shows_the_parameter_counts_of_the_current_preset():
    at = open_app(preset="tied-autoencoder")
    assert [m.value for m in at.metric] == ["50", "100", "50"]


def test_a_sessions_second_run_ends_with_one_hidden_empty_chart_and_other_runs_have_none():
    """The browser sets up its chart code after its first page (`ui.startup.warm_up_charts`), not at Train's result."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not [el for el in at.get("plotly_chart") if keys.WARM_UP_CHART in el.proto.id]  # the first page paints first
    at.run()

    def warm_up_charts() -> list:
        return [el for el in at.get("plotly_chart") if el.proto.id.endswith(f"-{keys.WARM_UP_CHART}.chart")]

    (chart,) = warm_up_charts()
    assert not json.loads(chart.proto.spec)["data"]  # nothing to draw
    hidden = f".st-key-{keys.WARM_UP_CHART.replace('.', '-')} {{ display: none; }}"
    assert any(hidden in el.proto.body for el in at.get("html"))
    at.run()
    assert not warm_up_charts() and not at.exception
    assert any(hidden in el.proto.body for el in at.get("html"))


def test_no_hidden_chart_when_the_server_does_not_warm_up(monkeypatch):
    monkeypatch.setenv("SHARECORE_WARM_UP", "0")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.run()
    assert not [el for el in at.get("plotly_chart") if keys.WARM_UP_CHART in el.proto.id] and not at.exception


def test_result_pages_ask_to_train_first():
    for page in ("gradients", "divergence"):
        at = open_app(page)
        assert "train" in at.info[0].value.lower()
        assert not charts(at)


# ----------------------------------------------------------------------------- build
def test_build_shows_diagram_tensor_views_parameters_and_code():
    at = open_app("build", preset="seed-mixed")
    shown = figures(at)
    assert len(shown) == 2  # tensor views, parameter bars
    assert "digraph model" in at.get("graphviz_chart")[0].proto.spec  # the diagram, drawn by Graphviz
    assert "import keras" in at.code[0].value
    assert [m.value for m in at.metric] == ["50", "100", "50"]


def test_an_invalid_rule_shows_the_core_message_and_keeps_the_last_valid_model():
    at = open_app("build", preset="tied-autoencoder")
    before = figures(at)
    widget(at.selectbox, ".use.1.rule").set_value("identity").run()
    assert not at.exception
    assert len(at.error) == 1
    assert "use 'decoder' needs a kernel with 5 input rows" in at.error[0].value
    assert "Traceback" not in at.error[0].value
    assert at.session_state["spec"] == preset("tied-autoencoder")
    assert figures(at) == before  # the diagram of the last valid model stays
    assert "spec" not in at.query_params

    widget(at.selectbox, ".use.1.rule").set_value("transpose").run()
    assert not at.error


def test_a_valid_edit_becomes_the_current_spec_and_goes_into_the_url():
    at = open_app("build", preset="seed-dense")
    widget(at.selectbox, ".use.0.activation").set_value("relu").run()
    spec = at.session_state["spec"]
    assert spec.uses[0].activation == "relu" and spec.name == "custom"
    assert urlstate.decode_spec(at.query_params["spec"]) == spec


def test_a_badly_written_shape_is_explained():
    at = open_app("build")
    widget(at.text_input, ".tensor.0.shape").set_value("10, ten").run()
    assert "write whole numbers separated by commas" in at.error[0].value
    assert at.session_state["spec"] == preset("seed-dense")


def test_family_buttons_load_a_starting_model():
    at = open_app("build")
    at.button(key="build.family.conv").click().run()
    assert at.session_state["spec"] == preset("seed-conv")
    assert at.sidebar.selectbox(key="sidebar.preset").value == "seed-conv"


@pytest.mark.parametrize(
    ("family", "name", "counts"),
    [("language model", "tied-lm", ["768", "1,280"]), ("autoencoder", "conv-autoencoder", ["36", "72"])],
)
def test_the_language_model_and_autoencoder_families_load_and_show_their_counts(family, name, counts):
    at = open_app("build")
    at.button(key=f"build.family.{family}").click().run()
    assert not at.exception and not at.error
    assert at.session_state["spec"] == preset(name)
    assert [m.value for m in at.metric][:2] == counts


def test_the_rule_editor_edits_quarter_turns_flips_and_composed_rules():
    at = open_app("build", preset="rotation-tied-conv")
    assert not at.exception and not at.error
    # rot270 reads K turned 3 times; make it 1 turn: the spec follows.
    widget(at.selectbox, "use.3.rule_k").set_value(1).run()
    assert not at.error
    assert at.session_state["spec"].uses[3].rule.k == 1
    # A composed rule from JSON, and its own error for JSON that is not.
    widget(at.selectbox, "use.3.rule").set_value("compose").run()
    widget(at.text_input, "use.3.rule_steps").set_value(
        '[{"kind": "flip", "axis": 0}, {"kind": "rot90", "k": 2}]'
    ).run()
    assert not at.error
    rule = at.session_state["spec"].uses[3].rule
    assert [(r.kind, r.axis, r.k) for r in rule.rules] == [("flip", 0, None), ("rot90", None, 2)]
    widget(at.text_input, "use.3.rule_steps").set_value("[{not json").run()
    assert "composed rule: the steps are not valid JSON" in shown(at.error[0])
    assert at.session_state["spec"].uses[3].rule == rule  # the last valid model stays


def test_the_build_page_keeps_a_linked_quarter_turn_count_and_a_large_stride_and_survives_deep_json():
    data = preset("conv-autoencoder").to_dict()
    data["uses"][0]["rule"] = {"kind": "rot90", "k": 4}  # a full turn, kept as k=0
    data["uses"][1]["strides"] = 16
    data["uses"][0]["strides"] = 16
    data["input_shape"] = [16, 16, 1]
    spec = ModelSpec.from_dict(data)
    at = open_app("build", spec=urlstate.encode_spec(spec))
    assert not at.exception and not at.error
    assert at.session_state["spec"] == spec  # the editor's widgets did not change the linked model
    widget(at.selectbox, "use.0.rule").set_value("compose").run()
    widget(at.text_input, "use.0.rule_steps").set_value("[" * 100_000).run()
    assert not at.exception
    assert "composed rule: the steps are not valid JSON" in shown(at.error[0])


def test_pasted_json_loads_and_bad_json_is_an_error_not_an_exception():
    at = open_app("build")
    at.text_area(key="build.paste").set_value("{not json")
    at.button(key="build.load_paste").click().run()
    assert not at.exception
    assert "could not be parsed" in at.error[0].value

    spec = dataclasses.replace(preset("partial-share"), name="mine")
    at.text_area(key="build.paste").set_value(spec.to_json())
    at.button(key="build.load_paste").click().run()
    assert not at.error
    assert at.session_state["spec"] == spec


# ----------------------------------------------------------------------------- train
def test_digits_is_offered_only_for_64_or_128_inputs():
    at = open_app("train")
    assert [o.split(":")[0] for o in at.radio(key="train.dataset").options] == ["teacher"]
    assert any("digits needs a model input of 64 values" in c.value for c in at.caption)
    at = open_app("train", preset="siamese-digits")
    assert [o.split(":")[0] for o in at.radio(key="train.dataset").options] == ["teacher", "digits"]


def test_a_tiny_run_draws_the_loss_gradient_and_divergence_charts():
    at = open_app("train", preset="seed-dense", spec=urlstate.encode_spec(THREE_USES))
    assert at.session_state["spec"] == THREE_USES
    at.number_input(key="train.steps").set_value(4).run()
    at.number_input(key="train.batch_size").set_value(8).run()
    assert at.session_state["config"] == TrainConfig(steps=4, batch_size=8)
    assert at.query_params["steps"] == "4"
    train_until_done(at)
    result = at.session_state["result"]
    assert not at.exception and not at.error
    assert result.steps_done == 4 and result.stop_reason is None
    assert [m.value for m in at.metric][:2] == [result.device.split("device:")[-1], "4 / 4"]
    assert len(at.get("download_button")) == 5
    assert len(figures(at)) == 1  # the loss chart

    go(at, "gradients")
    flow, cosine = figures(at)
    assert at.selectbox(key="gradients.tensor").value == "A"
    # The chart shows sharecore's numbers: the tied contribution of a2 per step.
    trace = next(t for t in flow["data"] if t.get("meta") == {"variant": "tied", "use": "a2"})
    rows = result.gradients.query("variant == 'tied' and use == 'a2'").sort_values("step")
    np.testing.assert_allclose(values(trace["y"]), rows["grad_norm"].to_numpy(), rtol=1e-6)
    assert cosine["data"]

    at.selectbox(key="gradients.tensor").set_value("B").run()
    assert not at.exception and len(figures(at)) == 2

    go(at, "divergence")
    chart, heatmap, histograms = figures(at)  # three uses per tensor: the pairwise heatmap is shown
    assert heatmap["data"][0]["type"] == "heatmap"
    steps = at.select_slider(key="divergence.step")
    steps.set_value(1).run()
    assert json.loads(charts(at)[1].proto.spec)["data"][0]["meta"]["step"] == 1
    assert not at.exception

    go(at, "build")
    go(at, "train")
    assert at.session_state["result"] is result  # results survive page switches, and nothing retrains
    assert len(figures(at)) == 1


def test_stop_ends_the_run_and_keeps_what_was_recorded_and_train_is_disabled_meanwhile():
    at = open_app("train")
    at.number_input(key="train.steps").set_value(5000).run()
    at.button(key="train.start").click().run()
    first = at.session_state["run"]
    deadline = time.monotonic() + 60
    while first.progress is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    at.run()
    assert at.button(key="train.start").disabled  # no second run while one is going
    assert at.session_state["run"] is first
    assert len(trainer_threads()) == 1

    at.button(key="train.stop").click().run()
    first.wait(60)  # the Stop click waits 5 s for the current chunk, then the page polls
    at.run()
    assert not trainer_threads()
    result = at.session_state["result"]
    assert 0 < result.steps_done < 5000
    assert any("stopped by request" in w.value for w in at.warning)
    assert not at.exception


def test_two_sessions_never_see_each_others_runs():
    first = open_app("train")
    first.number_input(key="train.steps").set_value(2).run()
    train_until_done(first)
    second = open_app("gradients")
    assert first.session_state["result"] is not None
    assert second.session_state["result"] is None
    assert "train" in second.info[0].value.lower()


# ----------------------------------------------------------------------------- sharing
def test_a_url_with_a_spec_and_settings_restores_the_experiment():
    spec = dataclasses.replace(preset("tied-autoencoder"), name="custom", description="")
    spec = dataclasses.replace(spec, uses=(dataclasses.replace(spec.uses[0], activation="relu"), spec.uses[1]))
    config = TrainConfig(steps=7, learning_rate=0.003, optimizer="sgd")
    at = open_app("train", **urlstate.encode_state("tied-autoencoder", spec, config))
    assert not at.warning
    assert at.session_state["spec"] == spec
    assert at.session_state["config"] == config
    assert at.number_input(key="train.steps").value == 7
    assert at.selectbox(key="train.optimizer").value == "sgd"
    go(at, "build")
    assert widget(at.selectbox, ".use.0.activation").value == "relu"


def test_a_tampered_url_warns_and_falls_back_to_defaults():
    at = open_app("build", preset="seed-conv", spec="eJzLSM3JyVcozy_KSQEAGgQEXQ", steps="-4")
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("Could not restore the model from the link" in w for w in warnings)
    assert any("Ignored 'steps'" in w for w in warnings)
    assert at.session_state["spec"] == preset("seed-conv")
    assert at.session_state["config"] == TrainConfig()


def shown(alert) -> str:
    """An alert's text as the reader sees it: ui.text.plain escapes Markdown with backslashes."""
    return re.sub(r"\\(.)", r"\1", alert.value)


@pytest.mark.parametrize(
    ("query", "field", "used", "said", "in_url"),
    [
        ({"lr": "1e-9"}, "learning_rate", 1e-5, "Changed 'lr' in the link from 1e-09 to 1e-05", "1e-05"),
        ({"every": "999999"}, "record_every", 60, "Changed 'every' in the link from 999999 to 60", "60"),
        ({"data": "digits"}, "dataset", "teacher", "Changed 'data' in the link from 'digits' to 'teacher'", None),
    ],
)
def test_a_link_value_out_of_range_is_replaced_by_the_nearest_allowed_one_with_a_warning(
    query, field, used, said, in_url
):
    at = open_app("train", preset="seed-dense", **query)
    assert not at.exception
    assert [said in shown(w) for w in at.warning] == [True]
    widget = {"dataset": at.radio, "learning_rate": at.select_slider}.get(field, at.number_input)(key=f"train.{field}")
    assert widget.value == used
    assert getattr(at.session_state["config"], field) == used
    key = next(iter(query))
    assert at.query_params.get(key) == in_url  # the URL now holds what is used ('teacher' is the default)


def test_the_train_page_says_when_it_changes_a_setting_that_no_longer_fits():
    at = open_app("train", preset="siamese-digits", data="digits")
    assert at.radio(key="train.dataset").value == "digits" and not at.warning
    at.sidebar.selectbox(key="sidebar.preset").set_value("seed-dense").run()
    assert [shown(w) for w in at.warning] == [
        "Dataset 'digits' cannot be used: the digits data set needs a model input of 64 values (one 8x8 image) "
        "or 128 (two side by side), and this model's input [10] holds 10 values. Using 'teacher'."
    ]
    assert at.radio(key="train.dataset").value == "teacher" and at.session_state["config"].dataset == "teacher"

    at.number_input(key="train.record_every").set_value(30).run()
    assert not at.warning
    at.number_input(key="train.steps").set_value(10).run()
    assert [shown(w) for w in at.warning] == [
        "Record every (steps) 30 cannot be used: the interval can be at most the run's 10 steps; "
        "the first and last step are recorded either way. Using 10."
    ]
    assert at.number_input(key="train.record_every").value == 10  # shown, and trained
    assert at.session_state["config"] == TrainConfig(steps=10, record_every=10)
    at.run()
    assert not at.warning and not at.exception  # said once, when it happened


def test_the_learning_rate_is_picked_in_1_2_5_steps_and_keeps_a_linked_rate_between_them():
    at = open_app("train", lr="0.0003")
    picker = at.select_slider(key="train.learning_rate")
    between = [o for o in map(float, picker.options) if 0.0002 <= o <= 0.0005]
    assert picker.value == 0.0003 and between == [0.0002, 0.0003, 0.0005]
    picker.set_value(0.05).run()
    assert at.session_state["config"].learning_rate == 0.05


def test_changing_the_preset_in_the_sidebar_updates_the_url():
    at = open_app()
    at.sidebar.selectbox(key="sidebar.preset").set_value("albert-mlp").run()
    assert at.query_params == {"preset": "albert-mlp"}
    assert at.session_state["spec"] == preset("albert-mlp")
    at.sidebar.number_input(key="sidebar.seed").set_value(3).run()
    assert at.session_state["config"].seed == 3


def test_uploaded_spec_loads_and_a_binary_file_is_an_error():
    at = open_app("build")
    at.file_uploader(key="build.upload").upload("bad.json", b"\xff\xd8\xff\xe0 not text", "application/json").run()
    assert not at.exception
    assert "not UTF-8 text" in shown(at.error[0])
    at = open_app("build")
    spec = dataclasses.replace(preset("seed-mixed"), name="uploaded")
    at.file_uploader(key="build.upload").upload("mine.json", spec.to_json().encode(), "application/json").run()
    assert not at.error
    assert at.session_state["spec"] == spec


def test_adding_and_removing_uses_and_tensors_edits_the_model():
    at = open_app("build", preset="seed-dense")
    widget(at.button, ".use.add").click().run()
    spec = at.session_state["spec"]
    assert [u.name for u in spec.uses] == ["dense_1", "dense_2", "use_1"] and spec.uses[2].tensor == "W"

    widget(at.button, ".tensor.add").click().run()  # a tensor no use reads yet: the core says so
    assert "shared tensor 'T1' is declared but no use reads it" in at.error[0].value
    assert at.session_state["spec"] == spec
    widget(at.button, ".tensor.1.remove").click().run()
    assert not at.error

    widget(at.button, ".use.0.remove").click().run()
    assert [u.name for u in at.session_state["spec"].uses] == ["dense_2", "use_1"]
    assert not at.exception


def test_streamlit_clean_up_between_script_runs_leaves_a_running_training_alone():
    # Streamlit calls keras.backend.clear_session() after every script run; the app defers it
    # while a run trains, and freezes the imported heap so the post-run garbage collection is cheap.
    import gc

    import keras
    from keras.src.backend.common import global_state

    from sharecore.runs.runner import BackgroundRun, active_runs

    assert gc.get_freeze_count() > 100_000
    assert keras.backend.clear_session.waits_for_training
    run = BackgroundRun(preset("seed-dense"), TrainConfig(steps=5000)).start()
    try:
        deadline = time.monotonic() + 60
        while run.progress is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        state = global_state.GLOBAL_STATE_TRACKER
        keras.backend.clear_session()
        assert global_state.GLOBAL_STATE_TRACKER is state
    finally:
        run.stop()
    keras.backend.clear_session()
    assert global_state.GLOBAL_STATE_TRACKER is not state
    assert active_runs() == 0


def test_streamlit_clean_up_between_script_runs_resets_keras_without_a_full_garbage_collection(monkeypatch):
    # A full collection after every rerun cost 0.2 s of a 0.4 s Lab rerun (bench/whatif.py).
    import gc

    import keras
    from keras.src.backend.common import global_state

    from ui import startup

    startup._keep_keras_session_while_training()
    collections = []
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or 0)
    state = global_state.GLOBAL_STATE_TRACKER
    keras.backend.clear_session()
    assert global_state.GLOBAL_STATE_TRACKER is not state
    assert collections == []
    keras.backend.clear_session(free_memory=True)  # an explicit request still collects
    assert len(collections) == 1


@pytest.fixture
def server_defaults_restored():
    from sharecore.core.limits import Limits, set_server_defaults

    yield
    set_server_defaults(Limits())


def test_limits_in_secrets_toml_cap_the_train_page_and_bad_ones_are_reported(server_defaults_restored):
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["sharecore"] = {"max_steps": 50}
    at.run()
    go(at, "train")
    assert not at.exception
    at.number_input(key="train.steps").set_value(51).run()
    assert at.number_input(key="train.steps").value == 50 and at.session_state["config"].steps == 50
    bad = AppTest.from_file(APP, default_timeout=60)
    bad.secrets["sharecore"] = {"max_stepz": 50}
    bad.run()
    assert not bad.exception
    assert any(
        "Limits in .streamlit/secrets.toml were ignored: unknown limit(s) ['max_stepz']" in shown(e) for e in bad.error
    )


def test_picking_tied_lm_halves_the_table_and_trains_on_the_token_task():
    """Issue 11's newcomer: build tied-lm, see the count, train on next-token prediction with a held-out loss."""
    at = open_app()
    at.sidebar.selectbox(key="sidebar.preset").set_value("tied-lm").run()
    go(at, "train")
    assert at.radio(key="train.dataset").options == [
        "tokens: predict the next token of a random Markov chain",
        "teacher: match a random network of the same shape",
    ]
    assert at.radio(key="train.dataset").value == "tokens"
    train_until_done(at)
    assert not at.exception
    result = at.session_state["result"]
    assert result.config.dataset == "tokens" and result.params == {"tied": 768, "untied": 1280}
    oracle = train(preset("tied-lm"), TrainConfig(dataset="tokens"))
    np.testing.assert_array_equal(result.history.loss, oracle.history.loss)
    np.testing.assert_array_equal(result.heldout.loss, oracle.heldout.loss)
    text = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "Markov chain over 32 tokens" in text
    # Back to a float model: the token task does not fit it; the page says so and uses the teacher.
    at.sidebar.selectbox(key="sidebar.preset").set_value("seed-dense").run()
    assert [shown(w) for w in at.warning] == [
        "Dataset 'tokens' cannot be used: the tokens data set needs a model that reads token ids (input_vocab) "
        "and outputs next-token logits (sequence, vocab), as preset 'tied-lm' does. Using 'teacher'."
    ]
    assert at.session_state["config"].dataset == "teacher"


def test_streamlit_clean_up_waits_while_the_start_up_warm_up_compiles():
    # The loader thread's warm-up traces a trainer while Streamlit resets Keras after each script
    # run; a reset mid-trace broke it ("'list' object has no attribute 'ndim'").

    import keras
    from keras.src.backend.common import global_state

    from sharecore.nn import trainer as pool
    from ui import startup

    startup._keep_keras_session_while_training()
    state = global_state.GLOBAL_STATE_TRACKER
    pool._WARMING[("a warm-up",)] = threading.Event()
    try:
        assert pool.warming_up()
        keras.backend.clear_session()
        assert global_state.GLOBAL_STATE_TRACKER is state, "reset under a compiling warm-up"
    finally:
        del pool._WARMING[("a warm-up",)]
    keras.backend.clear_session()
    assert global_state.GLOBAL_STATE_TRACKER is not state


@pytest.fixture
def unusable_settings(monkeypatch):
    """Two SHARECORE_* values a server cannot use; the messages this process collected are dropped afterwards."""
    from ui import startup

    monkeypatch.setenv("SHARECORE_MAX_STEPS", "lots")
    monkeypatch.setenv("SHARECORE_WARM_UP", "yes")
    yield
    startup.IGNORED_SETTINGS.clear()


@pytest.mark.parametrize("page", ["home", "lab", "train", "compare"])
def test_a_setting_the_server_cannot_use_is_one_message_on_every_page_and_its_default_is_used(unusable_settings, page):
    import os

    at = open_app(page)
    assert not at.exception, at.exception
    errors = [e.value.replace("\\", "").replace("\u2060", "") for e in at.error]  # as plain() escaped them
    assert len(errors) == 2, errors
    assert "SHARECORE_MAX_STEPS must be a whole number >= 1, e.g. 5000. Received: 'lots'" in errors[0] + errors[1]
    assert "SHARECORE_WARM_UP must be 0 or 1" in errors[0] + errors[1]
    assert all("this server uses the default" in e for e in errors)
    assert "SHARECORE_MAX_STEPS" not in os.environ  # every later read of the caps gets the default
    from sharecore.core.limits import Limits

    assert Limits.from_env().max_steps == Limits().max_steps


def test_gradient_flow_and_divergence_pick_from_the_kept_runs_also_after_a_reload(monkeypatch):
    from streamlit.runtime.context import ContextProxy, StreamlitCookies

    from ui import kept as ui_kept

    at = open_app("train", preset="seed-dense", steps="3")
    for lr in (0.01, 0.1):
        at.select_slider(key="train.learning_rate").set_value(lr).run()
        train_until_done(at)
    newest, older = [info.id for info in ui_kept.run_store().runs(at.session_state["workspace"])]
    go(at, "gradients")
    assert at.selectbox(key=f"gradients.run.{newest}").value == newest, "the current run is picked first"

    def tied_sum(page) -> np.ndarray:
        [trace] = [t for fig in figures(page) for t in fig["data"] if (t.get("meta") or {}).get("role") == "sum"]
        return values(trace["y"])

    def direct_sum(lr: float) -> np.ndarray:
        grads = train(preset("seed-dense"), TrainConfig(steps=3, learning_rate=lr)).gradients
        return grads[grads.variant == "tied"].drop_duplicates("step").sort_values("step")["sum_norm"].to_numpy()

    # A reload is a new session of the same browser (its cookie): no current run, the kept runs are there.
    key = at.session_state["workspace"]
    monkeypatch.setattr(
        ContextProxy, "cookies", property(lambda self: StreamlitCookies({ui_kept.WORKSPACE_COOKIE: key}))
    )
    for page, picker in (("gradients", "gradients.run.none"), ("divergence", "divergence.run.none")):
        reloaded = open_app(page)
        assert not reloaded.exception, reloaded.exception
        assert not [i.value for i in reloaded.info if "No results yet" in i.value]
        assert reloaded.selectbox(key=picker).value == newest
        assert reloaded.selectbox(key=picker).options == [info.label for info in ui_kept.run_store().runs(key)], (
            "named as the kept-runs table names them"
        )
        assert figures(reloaded)
    reloaded = open_app("gradients")
    np.testing.assert_allclose(tied_sum(reloaded), direct_sum(0.1), rtol=1e-5)
    reloaded.selectbox(key="gradients.run.none").set_value(older).run()
    np.testing.assert_allclose(tied_sum(reloaded), direct_sum(0.01), rtol=1e-5)
