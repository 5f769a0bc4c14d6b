"""The `embedding` op and tied input/output embeddings, against Keras's own ReversibleEmbedding.

Oracles: `keras.layers.ReversibleEmbedding(tie_weights=True)` (Keras's tied embedding: the same
table embeds the ids and, transposed, gives the logits), plain `tf.GradientTape`, NumPy, float64
finite differences, and GPT-2 small's published embedding size (50,257 x 768).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import sharecore as sc
from sharecore.core.config import TrainConfig
from sharecore.core.spec import ModelSpec
from sharecore.nn.data import make_dataset
from sharecore.nn.model import kernel_variables
from tests.support.cli import main
from tests.support.ties import assert_tie_holds

ROOT = Path(__file__).resolve().parents[2]
VOCAB, DIM, SEQ = 12, 5, 4


def lm_spec(block: bool = False, vocab: int = VOCAB, dim: int = DIM, seq: int = SEQ) -> ModelSpec:
    """Embedding (vocab, dim) -> [dense tanh block] -> logits through the embedding's transpose."""
    uses = [{"name": "embed", "op": "embedding", "tensor": "E"}]
    if block:
        uses.append({"name": "block", "op": "dense", "kernel_shape": [dim, dim], "activation": "tanh"})
    uses.append({"name": "logits", "op": "dense", "tensor": "E", "rule": "transpose"})
    return ModelSpec.from_dict(
        {
            "name": "lm",
            "input_shape": [seq],
            "input_vocab": vocab,
            "tensors": [{"name": "E", "shape": [vocab, dim]}],
            "uses": uses,
        }
    )


def token_batch(n: int = 3, seq: int = SEQ, vocab: int = VOCAB) -> np.ndarray:
    return np.random.default_rng(7).integers(0, vocab, (n, seq)).astype("int32")


def next_tokens(n: int = 3, seq: int = SEQ, vocab: int = VOCAB) -> np.ndarray:
    return np.random.default_rng(8).integers(0, vocab, (n, seq)).astype("int32")


def ce(logits: tf.Tensor, y: np.ndarray) -> tf.Tensor:
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))


# ----------------------------------------------------------------------------- counts
def test_tied_lm_counts_the_table_once_and_untied_twice(tmp_path):
    """tests/support/ties.py's harness: the table once (one weight) or twice (two), against param_report;
    one function at init; a tie that survives save and load."""
    counts = (VOCAB * DIM, 2 * VOCAB * DIM, 1, 2)
    assert_tie_holds(lm_spec(), counts=counts, seed=1, x=token_batch(), exact=False, tmp_path=tmp_path)


def test_tied_lm_preset_counts():
    # Keras builds these counts too: tests/nn/test_build.py runs the tie harness over every preset.
    report = sc.param_report(sc.preset("tied-lm"))
    assert (report.tied_total, report.untied_total) == (32 * 16 + 16 * 16, 2 * 32 * 16 + 16 * 16) == (768, 1280)


def test_params_cli_reports_gpt2_small_embedding_without_building(capsys, without_tensorflow):
    """GPT-2 small reads one (50,257, 768) table as its input embedding and its output projection; it is
    counted from the plan (TensorFlow cannot load during this test), at the server's default caps."""
    path = ROOT / "docs" / "gpt2-small-embedding.json"  # the README's command
    status, stdout, stderr = main(capsys, "params", str(path), "--json")
    assert status == 0, stderr
    counts = json.loads(stdout)
    assert counts["tied"] == 38_597_376 == 50257 * 768
    assert counts["untied"] == 77_194_752


def test_a_table_over_the_parameter_cap_is_refused_before_anything_is_allocated():
    with pytest.raises(ValueError, match="max_params"):
        sc.build(lm_spec(vocab=50257, dim=768, seq=16), True)


# ----------------------------------------------------------------------------- against Keras
def test_tied_embedding_equals_keras_reversible_embedding_logits_and_gradients():
    spec = lm_spec()
    ours = sc.build(spec, True, seed=3)
    table = kernel_variables(ours, spec, True)["embed"]
    ref = keras.layers.ReversibleEmbedding(VOCAB, DIM, tie_weights=True)
    ref.build((None, SEQ))
    ref.embeddings.assign(table.numpy())
    assert len(ref.trainable_weights) == 1  # Keras's tie: one table
    x, y = token_batch(), next_tokens()
    with tf.GradientTape() as tape:
        ours_loss = ce(ours(x), y)
    ours_grad = tape.gradient(ours_loss, table.value)
    with tf.GradientTape() as tape:
        ref_logits = ref(ref(x), reverse=True)  # (batch, seq, vocab)
        ref_loss = ce(ref_logits, y)
    ref_grad = tape.gradient(ref_loss, ref.embeddings.value)
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref_logits), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tf.convert_to_tensor(ours_grad), tf.convert_to_tensor(ref_grad), atol=1e-7)


def test_tied_and_untied_compute_the_same_logits_at_init():
    x = token_batch()
    tied = assert_tie_holds(lm_spec(True), seed=1, x=x, exact=False).tied  # tied and untied agree (the harness)
    np.testing.assert_allclose(np.asarray(tied(x))[0, 0], tied_oracle(tied, x)[0, 0], rtol=1e-5, atol=1e-6)


def tied_oracle(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """NumPy: E[x] -> tanh(. @ B) -> . @ E.T"""
    spec = lm_spec(True)
    kernels = kernel_variables(model, spec, True)
    table, block = kernels["embed"].numpy(), kernels["block"].numpy()
    return np.tanh(table[x] @ block) @ table.T


# ----------------------------------------------------------------------------- training and records
def test_one_sgd_step_of_the_tied_table_is_the_sum_of_the_untied_copies_moves():
    spec, lr = lm_spec(True), 0.5
    config = TrainConfig(steps=1, batch_size=4, optimizer="sgd", learning_rate=lr, dataset="tokens")
    result = sc.train(spec, config)
    start, end = result.weights["start"], result.weights["end"]
    moved_embed = end["untied"]["embed"] - start["untied"]["embed"]
    moved_logits = end["untied"]["logits"] - start["untied"]["logits"]  # (dim, vocab): the transposed copy
    expected = start["tied"]["E"] + moved_embed + moved_logits.T
    np.testing.assert_allclose(end["tied"]["E"], expected, atol=1e-6)


def test_contributions_sum_to_the_table_gradient_and_match_finite_differences():
    spec = lm_spec()
    config = TrainConfig(steps=1, batch_size=4, optimizer="sgd", dataset="tokens", seed=2)
    result = sc.train(spec, config)
    data = make_dataset(spec, "tokens", 2)
    idx = np.random.default_rng([2, 3]).integers(0, len(data.x), (1, 4))[0]  # train()'s first batch
    x, y = data.x[idx], data.y[idx]
    table = result.weights["start"]["tied"]["E"].astype("float64")

    def loss(e: np.ndarray) -> float:  # float64 NumPy forward of embed -> transpose
        logits = e[x] @ e.T  # (batch, seq, vocab)
        logits = logits - logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return float(-np.take_along_axis(logp, y[..., None], -1).mean())

    with tf.GradientTape() as tape:
        e = tf.Variable(table)
        logits = tf.matmul(tf.gather(e, x), e, transpose_b=True)
        tf_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    grad = tape.gradient(tf_loss, e).numpy()
    rows = result.gradients[(result.gradients.step == 1) & (result.gradients.variant == "tied")]
    assert list(rows.use) == ["embed", "logits"]
    assert rows.sum_norm.iloc[0] == pytest.approx(np.linalg.norm(grad), rel=1e-5)
    # Finite differences of one entry read by a token of the batch.
    i, j, h = int(x[0, 0]), 1, 1e-6
    bump = np.zeros_like(table)
    bump[i, j] = h
    fd = (loss(table + bump) - loss(table - bump)) / (2 * h)
    assert grad[i, j] == pytest.approx(fd, rel=1e-6, abs=1e-9)
    # The recorded per-use norms are those of the two views' gradients, which add up to the table's.
    with tf.GradientTape(persistent=True) as tape:
        e = tf.Variable(table)
        rows_view, cols_view = tf.identity(e), tf.identity(e)
        logits = tf.matmul(tf.gather(rows_view, x), cols_view, transpose_b=True)
        tf_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    g_embed = tf.convert_to_tensor(tape.gradient(tf_loss, rows_view)).numpy()
    g_logits = tape.gradient(tf_loss, cols_view).numpy()
    np.testing.assert_allclose(g_embed + g_logits, grad, atol=1e-12)
    np.testing.assert_allclose(rows.grad_norm, [np.linalg.norm(g_embed), np.linalg.norm(g_logits)], rtol=1e-5)


def test_tied_lm_learns_the_token_task_with_a_held_out_loss():
    result = sc.train(sc.preset("tied-lm"), TrainConfig(dataset="tokens"))
    assert result.stop_reason is None
    first, last = (result.history[result.history.step == s] for s in (1, 60))
    assert first.loss.iloc[0] == pytest.approx(np.log(32), rel=0.02)  # uniform over 32 tokens at init
    assert (last.loss < 0.75 * first.loss.to_numpy()).all()
    assert (last.accuracy > 0.25).all()  # chance is 1/32
    heldout = result.heldout
    assert list(heldout.columns) == ["step", "variant", "loss", "accuracy"]
    assert heldout.step.iloc[0] == 0 and heldout.step.iloc[-1] == 60
    end = heldout[heldout.step == 60]
    assert (end.loss < 0.8 * np.log(32)).all()
    assert "Markov chain over 32 tokens" in result.dataset


def test_token_data_is_a_markov_chain_with_a_held_out_split():
    data = make_dataset(sc.preset("tied-lm"), "tokens", 0)
    assert data.x.shape == (512, 8) and data.heldout_x.shape == (128, 8)
    assert data.x.dtype == np.int32 and data.x.min() >= 0 and data.x.max() < 32
    np.testing.assert_array_equal(data.x[:, 1:], data.y[:, :-1])  # y is x shifted by one
    # The chain's transitions are concentrated: the likeliest successor is far above 1/32.
    pairs = np.stack([data.x.ravel(), data.y.ravel()], 1)
    counts = np.zeros((32, 32))
    np.add.at(counts, (pairs[:, 0], pairs[:, 1]), 1)
    assert (counts.max(1) / np.maximum(counts.sum(1), 1)).mean() > 0.25


def test_saved_tied_lm_loads_with_one_table_and_trains_the_same(tmp_path):
    spec = lm_spec(True)
    model = sc.build(spec, True, seed=4)
    model.save(tmp_path / "lm.keras")
    loaded = sc.load_model(tmp_path / "lm.keras")
    assert len(loaded.trainable_weights) == len(model.trainable_weights) == 2
    x, y = token_batch(), next_tokens()
    for m in (model, loaded):
        opt = keras.optimizers.SGD(0.1)
        with tf.GradientTape() as tape:
            loss = ce(m(x), y)
        opt.apply_gradients(zip(tape.gradient(loss, m.trainable_variables), m.trainable_variables))
    for a, b in zip(model.trainable_weights, loaded.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-7)


# ----------------------------------------------------------------------------- messages
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input_vocab": None}, "op 'embedding' reads token ids, but the input holds float features"),
        ({"input_vocab": 7}, r"the input has 7 token ids \(input_vocab\), so the table needs 7 rows"),
        ({"input_vocab": DIM}, "Use rule 'transpose', or set input_vocab to 12"),
        ({"input_shape": [2, 2]}, r"token ids come as one sequence per sample, shape \(seq,\)"),
    ],
)
def test_embedding_mismatches_are_refused_with_a_fix(change, message):
    data = {**lm_spec().to_dict(), **change}
    if data.get("input_vocab") is None:
        data.pop("input_vocab")
    with pytest.raises(ValueError, match=message):
        sc.plan(ModelSpec.from_dict(data))


def test_a_dense_use_cannot_read_token_ids_and_an_embedding_adds_no_bias():
    data = lm_spec().to_dict()
    data["uses"][0] = {"name": "embed", "op": "dense", "kernel_shape": [SEQ, DIM]}
    with pytest.raises(ValueError, match="reads the input, which holds token ids"):
        sc.plan(ModelSpec.from_dict(data))
    data = lm_spec().to_dict()
    data["uses"][0]["bias"] = "own"
    with pytest.raises(ValueError, match="an embedding looks rows up and adds no bias"):
        sc.plan(ModelSpec.from_dict(data))


def test_token_datasets_refuse_specs_they_do_not_fit():
    with pytest.raises(ValueError, match="dataset 'tokens' is sequences of token ids"):
        make_dataset(sc.preset("seed-dense"), "tokens", 0)
    with pytest.raises(ValueError, match="dataset 'digits' holds images"):
        make_dataset(sc.preset("tied-lm"), "digits", 0)
    no_logits = lm_spec().to_dict()
    no_logits["uses"] = no_logits["uses"][:1]
    with pytest.raises(ValueError, match=r"must output logits of shape \(4, 12\)"):
        make_dataset(ModelSpec.from_dict(no_logits), "tokens", 0)


def test_the_teacher_task_also_trains_a_token_model():
    result = sc.train(sc.preset("tied-lm"), TrainConfig(steps=5))
    assert result.stop_reason is None and len(result.history) == 10
    # 256 held-out token sequences, labelled by the same teacher: a loss, no accuracy (regression).
    assert sorted(result.heldout.step.unique()) == [0, 1, 2, 3, 4, 5]
    assert result.heldout.accuracy.isna().all() and np.isfinite(result.heldout.loss).all()


def test_cli_trains_tied_lm_on_tokens_and_writes_the_held_out_loss(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = ["train", "tied-lm", "--dataset", "tokens", "--steps", "10", "--out", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "sharecore", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    import pandas as pd

    written = pd.read_csv(tmp_path / "heldout.csv")
    library = sc.train(sc.preset("tied-lm"), TrainConfig(dataset="tokens", steps=10)).heldout
    np.testing.assert_allclose(written.loss, library.loss, rtol=1e-6)
    assert list(written.step.unique()) == list(library.step.unique()) == [0, 2, 4, 6, 8, 10]  # a fifth of the run
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["final_heldout_loss"]["tied"] == pytest.approx(library.loss.iloc[-2], rel=1e-6)


@pytest.mark.parametrize("name", ["tied-lm", "albert-embedding", "rotation-tied-conv", "conv-autoencoder"])
def test_new_presets_and_an_edited_copy_round_trip_through_a_link(name):
    from sharecore.share import urlstate

    spec = sc.preset(name)
    edited = ModelSpec.from_dict({**spec.to_dict(), "name": "mine"})
    for s in (spec, edited):
        assert urlstate.decode_spec(urlstate.encode_spec(s)) == s
    state = urlstate.read_state({"preset": name, "data": "tokens"})
    assert state.spec == spec and state.config.dataset == ("tokens" if spec.input_vocab else "teacher")


def test_the_token_chain_grows_with_the_vocabulary_not_its_square():
    """A 20,000-token table fits the caps; a (vocab, vocab) chain took 6 GB for it."""
    import tracemalloc

    spec = lm_spec(vocab=20_000, dim=8, seq=1)
    tracemalloc.start()
    data = make_dataset(spec, "tokens", 0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MB"
    assert data.x.shape == (512, 1) and data.x.max() < 20_000


def test_a_language_models_link_names_its_data_set_only_when_it_is_not_tokens():
    from sharecore.share import urlstate

    spec = sc.preset("tied-lm")
    assert urlstate.read_state({"preset": "tied-lm"}).config.dataset == "tokens"
    tokens, teacher = TrainConfig(dataset="tokens"), TrainConfig(dataset="teacher")
    assert "data" not in urlstate.encode_state("tied-lm", spec, tokens)
    assert urlstate.encode_state("tied-lm", spec, teacher)["data"] == "teacher"
    for config in (tokens, teacher):
        assert urlstate.read_state(urlstate.encode_state("tied-lm", spec, config)).config == config
    assert urlstate.read_state({"preset": "seed-dense"}).config == TrainConfig()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"rule": "transpose"},
            r"Remove rule 'transpose': an embedding reads the table as \(vocab, dim\)",
        ),
        ({"source": "embed"}, "its source is 'embed', whose output is floats. Set its source to 'input'"),
    ],
)
def test_embedding_messages_name_the_fix_that_applies(change, message):
    data = lm_spec(True).to_dict()
    if "source" in change:  # a second embedding that reads the first one's float output
        data["uses"].insert(1, {"name": "again", "op": "embedding", "tensor": "E", **change})
    else:
        data["uses"][0] |= change
    with pytest.raises(ValueError, match=message):
        sc.plan(ModelSpec.from_dict(data))
