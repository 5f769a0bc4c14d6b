"""`sharecore.inspect` and `sharecore.SharingMonitor` on models of one's own, against plain TensorFlow.

Oracles: hand-written models in which every use owns a `tf.Variable` holding the same values (each
copy's gradient is that use's part), `tf.GradientTape` on the tied model's own variable (the parts
sum to it), NumPy for the norms, cosines and divergence, and `count_params()` plus a hand count.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import sharecore as sc
from sharecore.nn.inspect import split_gradients
from tests.support import ROOT
from tests.support.events import read_events

TOL = dict(rtol=1e-5, atol=1e-6)


def mse(y, pred):
    return tf.reduce_mean(tf.square(pred - y))


def tape_grads(loss_fn, variables):
    """d loss / d each variable by plain tf.GradientTape, dense."""
    with tf.GradientTape() as tape:
        loss = loss_fn()
    return [np.asarray(tf.convert_to_tensor(g)) for g in tape.gradient(loss, variables)]


def parts(shares, tensor):
    return {use: g for use, g in shares[tensor]}


def norms_of(grads):
    """grad_norm, sum_norm and cosine_with_others of each use's part, in NumPy."""
    g = np.stack([np.ravel(a).astype("float64") for a in grads])
    total = g.sum(0)
    others = total - g
    cos = (g * others).sum(1) / (np.linalg.norm(g, axis=1) * np.linalg.norm(others, axis=1))
    return np.linalg.norm(g, axis=1), np.linalg.norm(total), cos


def dense_chain():
    dense = keras.layers.Dense(3, activation="tanh", name="block")
    inp = keras.Input((3,))
    return keras.Model(inp, dense(dense(inp))), dense


# ----------------------------------------------------------------------------- one Dense called twice
def test_a_dense_called_twice_splits_its_gradient_into_the_gradients_of_two_copies():
    model, dense = dense_chain()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)).astype("float32"), rng.standard_normal((8, 3)).astype("float32")
    shares, _, _ = split_gradients(model, x, y, mse)

    k, b = dense.kernel.numpy(), dense.bias.numpy()
    copies = [tf.Variable(k), tf.Variable(b), tf.Variable(k), tf.Variable(b)]  # (W1, b1) then (W2, b2)
    k1, b1, k2, b2 = copies
    untied = tape_grads(lambda: mse(y, tf.tanh(tf.tanh(x @ k1 + b1) @ k2 + b2)), copies)
    tied = tape_grads(lambda: mse(y, model(x)), [dense.kernel, dense.bias])

    kernel, bias = parts(shares, "block/kernel"), parts(shares, "block/bias")
    np.testing.assert_allclose(kernel["block#0"], untied[0], **TOL)
    np.testing.assert_allclose(kernel["block#1"], untied[2], **TOL)
    np.testing.assert_allclose(bias["block#0"], untied[1], **TOL)
    np.testing.assert_allclose(bias["block#1"], untied[3], **TOL)
    np.testing.assert_allclose(kernel["block#0"] + kernel["block#1"], tied[0], atol=1e-6)
    np.testing.assert_allclose(bias["block#0"] + bias["block#1"], tied[1], atol=1e-6)


def test_inspect_reports_the_uses_the_counts_and_the_norms_of_the_split():
    model, dense = dense_chain()
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((8, 3)).astype("float32"), rng.standard_normal((8, 3)).astype("float32")
    result = sc.inspect(model, x, y, loss="mse")

    assert result.tensors == ["block/kernel", "block/bias"]
    assert list(result.shared.use) == ["block#0", "block#1", "block#0", "block#1"]
    assert result.stored_params == model.count_params() == 12
    assert result.untied_params == 2 * (9 + 3) and result.saved == 12
    assert list(result.gradients.columns) == [
        "step",
        "variant",
        "tensor",
        "use",
        "grad_norm",
        "sum_norm",
        "cosine_with_others",
    ]
    assert set(result.gradients.step) == {0} and set(result.gradients.variant) == {"tied"}

    k, b = dense.kernel.numpy(), dense.bias.numpy()
    copies = [tf.Variable(k), tf.Variable(b), tf.Variable(k), tf.Variable(b)]
    k1, b1, k2, b2 = copies
    untied = tape_grads(lambda: mse(y, tf.tanh(tf.tanh(x @ k1 + b1) @ k2 + b2)), copies)
    rows = result.gradients[result.gradients.tensor == "block/kernel"]
    norm, total, cos = norms_of([untied[0], untied[2]])
    np.testing.assert_allclose(rows.grad_norm, norm, rtol=1e-5)
    np.testing.assert_allclose(rows.sum_norm, [total, total], rtol=1e-5)
    np.testing.assert_allclose(rows.cosine_with_others, cos, rtol=1e-4, atol=1e-6)


def test_the_charts_draw_an_inspection_as_they_draw_a_run():
    from sharecore.viz.training_charts import gradient_flow

    model, _ = dense_chain()
    fig = gradient_flow(sc.inspect(model).gradients, "block/kernel")
    assert {t.meta.get("use") for t in fig.data if t.meta.get("variant") == "tied"} >= {"block#0", "block#1"}


# ----------------------------------------------------------------------------- a tied embedding
def test_reversible_embedding_splits_into_embed_and_reverse_parts_that_match_two_tables():
    vocab, dim, seq = 11, 4, 5
    emb = keras.layers.ReversibleEmbedding(vocab, dim, tie_weights=True, name="tokens")
    mix = keras.layers.Dense(dim, activation="tanh", name="mix")
    inp = keras.Input((seq,), dtype="int32")
    model = keras.Model(inp, emb(mix(emb(inp)), reverse=True))
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, vocab, (6, seq)).astype("int32"), rng.integers(0, vocab, (6, seq)).astype("int32")

    def ce(y, logits):
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))

    shares, _, _ = split_gradients(model, x, y, ce)
    table = emb.embeddings.numpy()
    e_in, e_out = tf.Variable(table), tf.Variable(table)
    w, b = tf.constant(mix.kernel.numpy()), tf.constant(mix.bias.numpy())
    untied = tape_grads(lambda: ce(y, tf.tanh(tf.gather(e_in, x) @ w + b) @ tf.transpose(e_out)), [e_in, e_out])
    tied = tape_grads(lambda: ce(y, model(x)), [emb.embeddings])

    table_parts = parts(shares, "tokens/embeddings")
    assert list(table_parts) == ["tokens#embed", "tokens#reverse"]
    np.testing.assert_allclose(table_parts["tokens#embed"], untied[0], **TOL)
    np.testing.assert_allclose(table_parts["tokens#reverse"], untied[1], **TOL)
    np.testing.assert_allclose(table_parts["tokens#embed"] + table_parts["tokens#reverse"], tied[0], atol=1e-6)
    result = sc.inspect(model, x, y, loss=ce)
    assert result.stored_params == model.count_params() == vocab * dim + dim * dim + dim
    assert result.untied_params == result.stored_params + vocab * dim


# ----------------------------------------------------------------------------- a siamese encoder
def test_a_siamese_encoder_called_on_two_inputs_is_shared_by_both_branches():
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="enc")], name="encoder")
    left, right = keras.Input((4,), name="left"), keras.Input((4,), name="right")
    head = keras.layers.Dense(1, name="head")
    model = keras.Model([left, right], head(keras.layers.Subtract()([encoder(left), encoder(right)])))
    rng = np.random.default_rng(3)
    xa, xb = rng.standard_normal((8, 4)).astype("float32"), rng.standard_normal((8, 4)).astype("float32")
    y = rng.standard_normal((8, 1)).astype("float32")
    shares, _, _ = split_gradients(model, [xa, xb], y, mse)

    enc = encoder.get_layer("enc")
    k, b = enc.kernel.numpy(), enc.bias.numpy()
    hk, hb = tf.constant(head.kernel.numpy()), tf.constant(head.bias.numpy())
    copies = [tf.Variable(k), tf.Variable(b), tf.Variable(k), tf.Variable(b)]
    k1, b1, k2, b2 = copies
    untied = tape_grads(lambda: mse(y, ((xa @ k1 + b1) - (xb @ k2 + b2)) @ hk + hb), copies)
    kernel = parts(shares, enc.kernel.path)
    assert list(kernel) == ["enc#0", "enc#1"] and set(shares) == {enc.kernel.path, enc.bias.path}
    np.testing.assert_allclose(kernel["enc#0"], untied[0], **TOL)
    np.testing.assert_allclose(kernel["enc#1"], untied[2], **TOL)
    result = sc.inspect(model, [xa, xb], y, loss="mse")
    assert result.stored_params == model.count_params() == (4 * 3 + 3) + (3 + 1)
    assert result.untied_params == result.stored_params + 4 * 3 + 3


# ----------------------------------------------------------------------------- a subclassed loop (ALBERT)
class Looped(keras.Model):
    """One Dense block applied `depth` times, ALBERT-style, then a readout."""

    def __init__(self, depth: int = 3) -> None:
        super().__init__(name="looped")
        self.depth = depth
        self.block = keras.layers.Dense(4, activation="tanh", name="block")
        self.readout = keras.layers.Dense(2, name="readout")

    def call(self, x):
        for _ in range(self.depth):
            x = self.block(x)
        return self.readout(x)


def test_a_subclassed_model_calling_one_dense_in_a_loop_has_one_use_per_pass():
    model = Looped()
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((8, 4)).astype("float32"), rng.standard_normal((8, 2)).astype("float32")
    model(x)
    shares, _, _ = split_gradients(model, x, y, mse)

    k, b = model.block.kernel.numpy(), model.block.bias.numpy()
    rk, rb = tf.constant(model.readout.kernel.numpy()), tf.constant(model.readout.bias.numpy())
    kernels = [tf.Variable(k) for _ in range(3)]

    def unrolled():
        h = x
        for kernel in kernels:
            h = tf.tanh(h @ kernel + b)
        return mse(y, h @ rk + rb)

    untied = tape_grads(unrolled, kernels)
    tied = tape_grads(lambda: mse(y, model(x)), [model.block.kernel])
    kernel = parts(shares, model.block.kernel.path)
    assert list(kernel) == ["block#0", "block#1", "block#2"]
    for i in range(3):
        np.testing.assert_allclose(kernel[f"block#{i}"], untied[i], **TOL)
    np.testing.assert_allclose(sum(kernel.values()), tied[0], atol=1e-6)
    result = sc.inspect(model, x, y, loss="mse")
    assert result.stored_params == model.count_params() == (16 + 4) + (8 + 2)
    assert result.untied_params == result.stored_params + 2 * (16 + 4)


# ----------------------------------------------------------------------------- a variable held by two layers
@keras.saving.register_keras_serializable(package="tests")
class TransposedOf(keras.layers.Layer):
    """Multiplies by the transpose of another layer's kernel: that variable is in the weights of both layers."""

    def __init__(self, source: keras.layers.Dense, **kwargs) -> None:
        super().__init__(**kwargs)
        self.source = source

    def call(self, h):
        return keras.ops.matmul(h, keras.ops.transpose(self.source.kernel))  # (batch, units) -> (batch, in)


def test_a_kernel_that_a_second_layer_reads_transposed_is_split_between_the_two_layers():
    enc = keras.layers.Dense(3, use_bias=False, name="enc")
    dec = TransposedOf(enc, name="dec")
    inp = keras.Input((5,))
    model = keras.Model(inp, dec(enc(inp)))
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 5)).astype("float32")
    shares, _, _ = split_gradients(model, x, x, mse)  # an autoencoder: y = x

    w = enc.kernel.numpy()
    w_in, w_out = tf.Variable(w), tf.Variable(w)
    untied = tape_grads(lambda: mse(x, (x @ w_in) @ tf.transpose(w_out)), [w_in, w_out])
    tied = tape_grads(lambda: mse(x, model(x)), [enc.kernel])
    kernel = parts(shares, "enc/kernel")
    assert list(kernel) == ["enc#0", "dec#0"]
    np.testing.assert_allclose(kernel["enc#0"], untied[0], **TOL)
    np.testing.assert_allclose(kernel["dec#0"], untied[1], **TOL)
    np.testing.assert_allclose(kernel["enc#0"] + kernel["dec#0"], tied[0], atol=1e-6)
    result = sc.inspect(model, x, x, loss="mse")
    assert (result.stored_params, result.untied_params) == (model.count_params(), 2 * 15) == (15, 30)


# ----------------------------------------------------------------------------- random inputs and saved files
def test_without_x_a_seeded_random_batch_of_the_input_shape_is_used_and_said():
    model = Looped()
    model(np.zeros((2, 4), "float32"))  # built from a call: no symbolic inputs, only a build shape
    first, again = sc.inspect(model, seed=3), sc.inspect(model, seed=3)
    assert first.tensors == [model.block.kernel.path, model.block.bias.path]
    assert first.gradients.equals(again.gradients)  # the same seed, the same batch
    assert any("seeded random batch" in n for n in first.notes)
    tokens = keras.Sequential([keras.layers.Embedding(7, 4), keras.layers.Dense(4)])
    tokens.build((None, 3))  # declared float, but an embedding takes token ids
    assert sc.inspect(tokens).shared.empty


def test_inspect_file_loads_a_saved_model_with_its_sharing_and_caps_the_size(tmp_path):
    from sharecore.nn.inspect import inspect_file

    model, _ = dense_chain()
    path = str(tmp_path / "chain.keras")
    model.save(path)
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 3), "float32")
    np.savez(tmp_path / "batch.npz", x=x, y=y)
    loaded = inspect_file(path, str(tmp_path / "batch.npz"), loss="mse")
    direct = sc.inspect(model, x, y, loss="mse")
    assert (loaded.stored_params, loaded.untied_params) == (12, 24)
    np.testing.assert_allclose(loaded.gradients.grad_norm, direct.gradients.grad_norm, rtol=1e-6)
    with pytest.raises(ValueError, match="larger than 1,000 bytes"):
        inspect_file(path, max_bytes=1000)


# ----------------------------------------------------------------------------- what inspect refuses or reports
def test_a_model_that_shares_nothing_says_so_and_is_not_an_error():
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Dense(3)(inp)))
    result = sc.inspect(model)
    assert result.shared.empty and result.gradients.empty
    assert result.stored_params == result.untied_params == model.count_params()
    assert any("nothing is shared" in note for note in result.notes)


def test_a_model_that_is_not_built_is_refused_with_what_to_do():
    model = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"not built.*model\.build\(input_shape\).*Received: model\.built=False"):
        sc.inspect(model)


def test_a_subclassed_model_that_reads_its_own_weight_twice_is_refused_naming_it():
    class Squared(keras.Model):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(3, 3), name="w")

        def call(self, x):
            return x @ self.w @ self.w  # shared, but not through a layer call

    model = Squared(name="squared")
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match=r"'squared' reads weight 'squared/w' 2 times in its own call\(\).*Received"):
        sc.inspect(model)


# ----------------------------------------------------------------------------- SharingMonitor in model.fit
class Snapshots(keras.callbacks.Callback):
    """The weights after every `every`-th batch (and before the first)."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every, self.steps, self.weights = every, 0, {}

    def on_train_begin(self, logs=None):
        self.weights[0] = self.model.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps % self.every == 0:
            self.weights[self.steps] = self.model.get_weights()


def test_the_monitor_records_at_the_right_steps_what_inspect_finds_at_those_weights():
    model, _ = dense_chain()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((16, 3)).astype("float32"), rng.standard_normal((16, 3)).astype("float32")
    probe_x, probe_y = x[:5], y[:5]
    monitor, snapshots = sc.SharingMonitor(probe_x, probe_y, every=3), Snapshots(3)
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[monitor, snapshots])

    assert sorted(set(monitor.gradients.step)) == [0, 3, 6]  # 8 batches over two epochs
    assert sorted(snapshots.weights) == [0, 3, 6]
    for step, weights in snapshots.weights.items():
        model.set_weights(weights)
        expected = sc.inspect(model, probe_x, probe_y, loss="mse").gradients
        got = monitor.gradients[monitor.gradients.step == step]
        assert list(got.use) == list(expected.use)
        np.testing.assert_allclose(got.grad_norm, expected.grad_norm, rtol=1e-5)
        np.testing.assert_allclose(got.cosine_with_others, expected.cosine_with_others, rtol=1e-4, atol=1e-6)
    assert not (monitor.gradients[monitor.gradients.step == 0].grad_norm.to_numpy() == got.grad_norm.to_numpy()).all()


def test_the_monitor_records_how_far_an_untied_models_copies_move_apart():
    spec = sc.preset("seed-mixed")  # W (10, 5): a dense op, and a 1x1 conv reading it reshaped to (1, 1, 10, 5)
    model = sc.build(spec, tied=False)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((12, 10)).astype("float32"), rng.standard_normal((12, 10)).astype("float32")
    y[:, 5:] *= -1.0  # the two branches chase different targets, so the copies part
    start = model.get_layer("copy_dense").kernel.numpy()
    monitor, snapshots = sc.SharingMonitor(x, y, every=2, spec=spec), Snapshots(2)
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[monitor, snapshots])

    div = monitor.divergence
    assert list(div.columns) == ["step", "variant", "tensor", "use_a", "use_b", "relative_distance", "cosine"]
    assert sorted(div.step) == [0, 2, 4, 6] and set(div.variant) == {"untied"}
    names = [w.path for w in model.weights]
    for step, weights in snapshots.weights.items():
        by_name = dict(zip(names, weights))
        a = by_name["copy_dense/kernel"]  # (10, 5)
        b = by_name["copy_conv/kernel"].reshape(10, 5)  # (1, 1, 10, 5) -> the tensor's shape
        row = div[div.step == step].iloc[0]
        assert (row.use_a, row.use_b) == ("dense", "conv")
        np.testing.assert_allclose(
            row.relative_distance, np.linalg.norm(a - b) / np.linalg.norm(start), rtol=1e-5, atol=1e-7
        )
        np.testing.assert_allclose(row.cosine, (a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)), rtol=1e-5)
    assert div.relative_distance.iloc[0] == 0 and div.relative_distance.iloc[-1] > 0

    # Gradients: each copy's kernel gradient in W's shape, as sharecore.train records an untied variant's.
    grads = monitor.gradients
    assert set(grads.variant) == {"untied"} and set(grads.tensor) == {"W"}
    dense, conv = model.get_layer("copy_dense").kernel, model.get_layer("copy_conv").kernel
    for step, weights in snapshots.weights.items():
        model.set_weights(weights)
        g_dense, g_conv = tape_grads(lambda: mse(y, model(x)), [dense, conv])
        norm, total, cos = norms_of([g_dense, g_conv.reshape(10, 5)])
        rows = grads[grads.step == step]
        assert list(rows.use) == ["dense", "conv"]
        np.testing.assert_allclose(rows.grad_norm, norm, rtol=1e-5)
        np.testing.assert_allclose(rows.sum_norm, [total, total], rtol=1e-5)
        np.testing.assert_allclose(rows.cosine_with_others, cos, rtol=1e-4, atol=1e-6)


def test_the_monitor_writes_each_record_to_tensorboard_as_fit_goes_and_refuses_a_bad_folder(tmp_path):
    """Read back with TensorFlow's own event reader: one scalar per recorded step, use and field."""
    dense = keras.layers.Dense(3, name="block")
    inp = keras.Input((3,))
    model = keras.Model(inp, dense(dense(inp)))
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")
    monitor = sc.SharingMonitor(x, y, every=2, logdir=tmp_path / "logs")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[monitor])

    events = read_events(tmp_path / "logs" / "tied")
    written = events.scalars()
    rows = monitor.gradients
    assert sorted(set(rows.step)) == [0, 2, 4]
    expected = {
        (f"gradients/{r.tensor}/{r.use}/{field}", r.step): getattr(r, field)
        for r in rows.itertuples()
        for field in ("grad_norm", "sum_norm", "cosine_with_others")
    }
    assert written.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(written[key], value, rtol=1e-6, err_msg=str(key))

    with pytest.raises(ValueError, match="not a folder|is a file"):
        sc.SharingMonitor(x, y, logdir=tmp_path / "logs" / "tied" / events.files[0].name)
    with pytest.raises(ValueError, match="empty folder name"):
        sc.SharingMonitor(x, y, logdir="")


def test_a_monitor_in_a_second_fit_counts_its_steps_on_and_writes_them_after_the_first(tmp_path):
    dense = keras.layers.Dense(3, name="block")
    inp = keras.Input((3,))
    model = keras.Model(inp, dense(dense(inp)))
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")
    monitor = sc.SharingMonitor(x, y, every=2, logdir=tmp_path / "logs")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[monitor])  # 4 batches
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[monitor])  # 4 more
    steps = monitor.gradients.groupby("step").size()
    assert list(steps.index) == [0, 2, 4, 6, 8] and set(steps) == {4}  # 2 tensors x 2 uses, once per step
    written = read_events(tmp_path / "logs" / "tied").values["gradients/block/kernel/block#0/grad_norm"]
    assert sorted(written) == [0, 2, 4, 6, 8]
    with pytest.raises(ValueError, match="Received: every=0"):
        sc.SharingMonitor(np.zeros((1, 3)), np.zeros((1, 3)), every=0)


# ----------------------------------------------------------------------------- the README's section
def readme_snippets() -> list[str]:
    """The Python code blocks of the README's "Your own model" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Your own model", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run_snippet(code: str) -> dict:
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # our own README
    return namespace


def test_the_readme_snippets_on_your_own_model_run_and_print_what_their_comments_say():
    lm, siamese, fit = readme_snippets()
    ran = run_snippet(lm)
    assert (ran["result"].stored_params, ran["result"].untied_params) == (472, 872) == (ran["lm"].count_params(), 872)
    assert list(ran["result"].shared.use) == ["tokens#embed", "tokens#reverse"]
    ran = run_snippet(siamese)
    assert ran["result"].tensors == ["encoder/enc/kernel", "encoder/enc/bias"]
    assert set(ran["result"].shared.use) == {"enc#0", "enc#1"}
    ran = run_snippet(fit)
    assert sorted(set(ran["monitor"].gradients.step)) == [0, 4, 8, 12, 16]
    assert set(ran["monitor"].gradients.use) == {"block#0", "block#1", "block#2"}
    assert set(ran["monitor"].gradients.tensor) == {"block/kernel", "block/bias"}
