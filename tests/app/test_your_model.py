"""The Your model page: an uploaded .keras file inspected safely, its numbers against `sharecore.inspect`, and
one clear message for every file that cannot be inspected.

The page's work is `ui.own_model` (tested directly on real tiny models saved here); AppTest drives the page
itself, uploads included (`st.file_uploader` works in AppTest since Streamlit 1.67).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

import sharecore
from sharecore.core.limits import Limits
from sharecore.nn.inspect import inspect_file
from sharecore.nn.tfimport import keras
from tests.support.apptest import APP, charts, figures
from tests.support.hostile import MD_NAME, PATH_LABELS
from ui import own_model
from ui.text import plain

UPLOAD = "your_model.upload"


# ----------------------------------------------------------------------------- tiny models, saved
def dense_twice() -> keras.Model:
    """One Dense(4) called twice: kernel (4, 4) and bias (4,) stored once, used twice."""
    block = keras.layers.Dense(4, name="block")
    inp = keras.Input((4,))
    return keras.Model(inp, block(block(inp)), name="twice")


def tied_lm() -> keras.Model:
    """A ReversibleEmbedding(tie_weights=True) language model: the table embeds and reads out the logits."""
    tokens = keras.layers.ReversibleEmbedding(50, 8, tie_weights=True, name="tokens")
    inp = keras.Input((6,), dtype="int32")
    return keras.Model(inp, tokens(keras.layers.Dense(8, activation="tanh")(tokens(inp)), reverse=True), name="lm")


def no_sharing() -> keras.Model:
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="only")], name="plain")


def with_lambda() -> keras.Model:
    inp = keras.Input((3,))
    return keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp), name="code")


class Unregistered(keras.Model):
    """A subclassed model whose class no loader knows."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = keras.layers.Dense(3)

    def call(self, x):
        return self.block(self.block(x))


def unregistered() -> keras.Model:
    model = Unregistered()
    model(np.zeros((1, 3), "float32"))
    return model


# Hand counts: (stored, untied). Dense(4) on 4 inputs: 4*4 + 4 = 20, twice untied. The LM: a 50x8 table
# (400) and a Dense(8) (8*8 + 8 = 72) stored; untied, the read-out has a table of its own (+400).
MODELS = {"dense twice": (dense_twice, 20, 40), "tied lm": (tied_lm, 472, 872)}


def saved(tmp_path: Path, make) -> tuple[Path, bytes, keras.Model]:
    model = make()
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    return path, path.read_bytes(), model


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """The folder `tempfile` writes into for this test: what it holds afterwards is what inspection left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def uploads_left(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith("sharecore-upload-")]


# ----------------------------------------------------------------------------- the numbers
@pytest.mark.parametrize("case", MODELS)
def test_the_counts_equal_count_params_and_the_hand_count(case, tmp_path, private_tmp):
    make, stored, untied = MODELS[case]
    _, data, model = saved(tmp_path, make)
    found = own_model.inspect_bytes("m.keras", data)
    assert found.stored_params == model.count_params() == stored
    assert (found.untied_params, found.saved) == (untied, untied - stored)
    assert uploads_left(private_tmp) == []


@pytest.mark.parametrize("case", MODELS)
def test_each_uses_part_equals_what_sharecore_inspect_gives_on_the_same_file(case, tmp_path):
    path, data, _ = saved(tmp_path, MODELS[case][0])
    ours = own_model.inspect_bytes("m.keras", data, loss="mean_squared_error")
    oracle = sharecore.inspect(keras.saving.load_model(path, safe_mode=True, compile=False), loss="mean_squared_error")
    pd.testing.assert_frame_equal(ours.shared, oracle.shared)
    pd.testing.assert_frame_equal(ours.gradients, oracle.gradients)
    assert ours.notes == oracle.notes and ours.loss == oracle.loss
    # The parts add up to the tied gradient: each row's sum_norm is its tensor's, over at least two uses.
    assert (ours.gradients.groupby("tensor")["use"].count() >= 2).all()


def test_an_npz_batch_is_used_instead_of_a_random_one(tmp_path):
    path, data, _ = saved(tmp_path, dense_twice)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((2, 5, 4)).astype("float32")
    batch = tmp_path / "batch.npz"
    np.savez(batch, x=x, y=y)
    ours = own_model.inspect_bytes("m.keras", data, batch.read_bytes())
    oracle = inspect_file(str(path), str(batch))
    pd.testing.assert_frame_equal(ours.gradients, oracle.gradients)
    assert not any("no x given" in note for note in ours.notes)


# ----------------------------------------------------------------------------- files that cannot be inspected
REFUSED = {
    # case: (file bytes, or a model maker; words the message must hold)
    "a text file renamed .keras": (b"just some notes\n", ["is not a Keras model file", "zip archive"]),
    "an empty file": (b"", ["empty", "model.save"]),
    "a Lambda layer": (with_lambda, ["safe mode", "Lambda", "sharecore.inspect(model)"]),
    "a subclassed model whose class is not registered": (
        unregistered,
        ["could not load", "register_keras_serializable"],
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_file_that_cannot_be_inspected_gets_one_sentence_naming_it_and_leaves_no_file(case, tmp_path, private_tmp):
    content, words = REFUSED[case]
    data = content if isinstance(content, bytes) else saved(tmp_path, content)[1]
    with pytest.raises(ValueError) as err:
        own_model.inspect_bytes("upload.keras", data)
    message = str(err.value)
    assert all(w in message for w in words), message
    assert "sharecore-upload-" not in message and str(private_tmp) not in message  # the upload is named, not the path
    assert "Traceback" not in message
    assert uploads_left(private_tmp) == []


def test_a_model_over_the_size_or_parameter_cap_is_refused_saying_the_cap(tmp_path, private_tmp):
    _, data, _ = saved(tmp_path, dense_twice)
    with pytest.raises(ValueError, match=r"over this server's limit of 1 MB \(max_model_mb\)"):
        own_model.inspect_bytes("big.keras", data + b"\0" * 10**6, limits=Limits(max_model_mb=1))
    with pytest.raises(ValueError, match=r"20 parameters, over this server's limit of 10 \(max_params\)"):
        own_model.inspect_bytes("big.keras", data, limits=Limits(max_params=10))
    assert uploads_left(private_tmp) == []


def test_a_model_that_shares_nothing_is_not_an_error(tmp_path):
    _, data, model = saved(tmp_path, no_sharing)
    found = own_model.inspect_bytes("plain.keras", data)
    assert found.shared.empty and found.gradients.empty
    assert found.stored_params == found.untied_params == model.count_params() == 8


def test_the_temporary_file_exists_while_inspecting_and_never_takes_the_uploaded_name(tmp_path, monkeypatch):
    _, data, _ = saved(tmp_path, dense_twice)
    seen = []
    real = own_model._inspect_files

    def spy(path, *args):
        seen.append((path, os.path.isfile(path), oct(os.stat(path).st_mode & 0o777)))
        return real(path, *args)

    monkeypatch.setattr(own_model, "_inspect_files", spy)
    own_model.inspect_bytes("../../etc/passwd.keras", data)
    [(path, existed, mode)] = seen
    assert existed and mode == "0o600" and "passwd" not in path and Path(path).name.startswith("sharecore-upload-")
    assert not os.path.exists(path)


# ----------------------------------------------------------------------------- the page
def page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    return at.switch_page("pages/your_model.py").run()


def test_the_page_shows_the_uses_counts_and_split_keeps_them_across_reruns_and_replaces_them(tmp_path, monkeypatch):
    _, dense, model = saved(tmp_path, dense_twice)
    _, lm, lm_model = saved(tmp_path, tied_lm)
    calls = []
    real = own_model.inspect_bytes
    monkeypatch.setattr(own_model, "inspect_bytes", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    at = page()
    assert not at.exception and "Upload a .keras file" in at.info[0].value
    at.file_uploader(key=UPLOAD).upload("twice.keras", dense).run()
    assert not at.exception and not at.error
    assert [m.value for m in at.metric] == [f"{model.count_params()}", "40", "20"]
    oracle = own_model.inspect_bytes("same", dense)
    calls.clear()
    pd.testing.assert_frame_equal(at.dataframe[0].value, oracle.shared)
    shown = at.dataframe[1].value
    np.testing.assert_array_equal(shown["use"], oracle.gradients["use"])
    np.testing.assert_allclose(shown["grad_norm"], oracle.gradients["grad_norm"], rtol=1e-6)
    assert len(charts(at)) == 1
    assert any("mean\\_squared\\_error" in c.value for c in at.caption)  # the note saying which loss

    at.run()  # a rerun: the same bytes, nothing computed again
    at.switch_page("pages/home.py").run()
    at.switch_page("pages/your_model.py").run()  # back: the uploader is empty, the result stays
    assert calls == [] and [m.value for m in at.metric] == ["20", "40", "20"]
    assert len(charts(at)) == 1

    at.file_uploader(key=UPLOAD).upload("lm.keras", lm).run()  # a new upload replaces it
    assert calls == ["lm.keras"] and not at.exception
    assert [m.value for m in at.metric] == [f"{lm_model.count_params()}", "872", "400"]
    assert set(at.dataframe[0].value["use"]) == {"tokens#embed", "tokens#reverse"}


# Streamlit itself refuses a file name with a NUL byte; the rest of that label's line breaks stay.
HOSTILE_NAMES = [MD_NAME, PATH_LABELS[0], PATH_LABELS[11].replace("\x00", ""), PATH_LABELS[12]]


@pytest.mark.parametrize("name", [f"{n}.keras" for n in HOSTILE_NAMES])
def test_a_hostile_file_name_is_shown_as_text_in_the_pages_message(name, private_tmp):
    at = page()
    at.file_uploader(key=UPLOAD).upload(name, b"PK not really a zip").run()
    assert not at.exception
    [error] = at.error
    assert error.value.startswith(f"Could not inspect {plain(name)}: ")
    assert "](" not in error.value.replace("\\]\\(", "")  # no link or image survives unescaped
    assert uploads_left(private_tmp) == []


def test_a_model_that_shares_nothing_is_said_plainly_on_the_page(tmp_path):
    _, data, _ = saved(tmp_path, no_sharing)
    at = page()
    at.file_uploader(key=UPLOAD).upload("plain.keras", data).run()
    assert not at.exception and not at.error
    assert [m.value for m in at.metric] == ["8", "8", "0"]
    assert "nothing is shared" in at.info[0].value
    assert not charts(at)


def test_the_page_states_the_cap_streamlits_upload_route_and_the_limits_allow(monkeypatch):
    monkeypatch.setenv("SHARECORE_MAX_MODEL_MB", "7")
    at = page()
    uploader = at.file_uploader(key=UPLOAD)
    limit = min(7, int(streamlit_config.get_option("server.maxUploadSize")))  # 50 MB in .streamlit/config.toml
    assert f"(at most {limit} MB)" in uploader.label
    assert uploader.proto.max_upload_size_mb == limit


def test_markup_in_a_layer_name_reaches_the_chart_as_text(tmp_path):
    block = keras.layers.Dense(4, name="<b>x <a href=http:")  # Keras refuses '/' in a name, not '<'
    inp = keras.Input((4,))
    path = tmp_path / "m.keras"
    keras.Model(inp, block(block(inp)), name="<i>m").save(path)
    at = page()
    at.file_uploader(key=UPLOAD).upload("m.keras", path.read_bytes()).run()
    assert not at.exception and not at.error
    assert at.dataframe[0].value["use"].tolist()[:2] == [
        "<b>x <a href=http:#0",
        "<b>x <a href=http:#1",
    ]  # a table: text
    [chart] = figures(at)
    names = {trace.get("name") for trace in chart["data"]}
    assert "&lt;b&gt;x &lt;a href=http:#0" in names and not any("<" in (n or "") for n in names)
    assert "<" not in json.dumps(chart["layout"].get("title", {}))
    assert at.subheader[0].value == f"{plain('m.keras')}: the Keras model {plain(repr('<i>m'))}"


def test_a_batch_the_model_cannot_run_on_is_one_message_not_a_traceback(tmp_path, private_tmp):
    _, data, _ = saved(tmp_path, tied_lm)
    for x, y in [
        (np.full((2, 6), 999, "int32"), np.zeros((2, 6), "int32")),  # token ids past the vocabulary of 50
        (np.zeros((2, 3), "int32"), np.zeros((2, 3), "int32")),  # a sequence the model's input does not take
    ]:
        batch = tmp_path / "batch.npz"
        np.savez(batch, x=x, y=y)
        with pytest.raises(ValueError) as err:
            own_model.inspect_bytes("lm.keras", data, batch.read_bytes())
        message = str(err.value)
        assert "\n" not in message and "\x1b" not in message and len(message) < 900, message
        assert "Traceback" not in message
    assert uploads_left(private_tmp) == []


def test_a_bad_npz_batch_is_named_by_its_uploaded_name_not_its_temporary_path(tmp_path, private_tmp):
    _, data, _ = saved(tmp_path, dense_twice)
    only_x = tmp_path / "x.npz"
    np.savez(only_x, x=np.zeros((2, 4), "float32"))
    for batch, words in [
        (b"not an npz", "is not an .npz file (np.savez"),
        (only_x.read_bytes(), "'x' and 'y'"),
    ]:
        with pytest.raises(ValueError) as err:
            own_model.inspect_bytes("m.keras", data, batch, data_name="b](x).npz")
        assert "data file 'b](x).npz'" in str(err.value) and words in str(err.value)
        assert str(private_tmp) not in str(err.value)
    assert uploads_left(private_tmp) == []


def test_the_page_uses_an_uploaded_batch_and_the_loss_picked(tmp_path):
    path, data, _ = saved(tmp_path, dense_twice)
    x, y = np.random.default_rng(5).standard_normal((2, 3, 4)).astype("float32")
    batch = tmp_path / "batch.npz"
    np.savez(batch, x=x, y=y)
    at = page()
    at.file_uploader(key="your_model.data").upload("batch.npz", batch.read_bytes())
    at.selectbox(key="your_model.loss").set_value("mean_absolute_error")
    at.file_uploader(key=UPLOAD).upload("twice.keras", data).run()
    assert not at.exception and not at.error
    oracle = inspect_file(str(path), str(batch), loss="mean_absolute_error")
    np.testing.assert_allclose(at.dataframe[1].value["grad_norm"], oracle.gradients["grad_norm"], rtol=1e-6)
    assert not any("no x given" in c.value for c in at.caption)
    assert any("loss: mean\\_absolute\\_error" in m.value for m in at.markdown)
