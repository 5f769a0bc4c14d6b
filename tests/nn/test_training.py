"""Side-by-side training: recorded numbers checked against independent computations."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tensorflow as tf

import sharecore
from sharecore.core.config import TrainConfig
from sharecore.core.spec import ModelSpec
from sharecore.nn.data import make_dataset


@pytest.fixture(scope="module")
def dense_run():
    return sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=12, seed=0, record_every=1))


def test_history_has_one_loss_per_step_and_variant(dense_run):
    h = dense_run.history
    assert list(h.columns) == ["step", "variant", "loss", "accuracy"]
    assert len(h) == 2 * 12
    assert sorted(h.step.unique()) == list(range(1, 13))
    assert np.isfinite(h.loss).all()
    assert h.accuracy.isna().all()  # the teacher task is a regression
    assert dense_run.steps_done == 12 and dense_run.stop_reason is None


def test_both_variants_start_from_the_same_loss(dense_run):
    first = dense_run.history[dense_run.history.step == 1].set_index("variant").loss
    assert first["tied"] == pytest.approx(first["untied"], rel=1e-6)


def test_first_step_contributions_equal_the_untied_copy_gradients(dense_run):
    # Same initial weights and batch: each tied use's contribution (a gradient w.r.t. its view of
    # the one variable) must equal the untied copy's gradient (a gradient w.r.t. a separate variable).
    g = dense_run.gradients[dense_run.gradients.step == 1]
    tied = g[g.variant == "tied"].set_index("use")
    untied = g[g.variant == "untied"].set_index("use")
    for col in ("grad_norm", "sum_norm", "cosine_with_others"):
        np.testing.assert_allclose(tied[col], untied.loc[tied.index, col], rtol=1e-5)


def test_gradient_frame_matches_a_gradient_tape_oracle_on_the_first_batch():
    spec, config = sharecore.preset("tied-autoencoder"), TrainConfig(steps=1, seed=5, batch_size=16)
    result = sharecore.train(spec, config)
    # Rebuild the first batch exactly as the trainer draws it.
    data = make_dataset(spec, config.dataset, config.seed, config.teacher)
    idx = np.random.default_rng([config.seed, 3]).integers(0, len(data.x), config.batch_size)
    x, y = tf.constant(data.x[idx]), tf.constant(data.y[idx])
    w = tf.Variable(sharecore.initial_values(spec, config.seed)["W"])
    enc, dec = tf.Variable(w.numpy()), tf.Variable(w.numpy().T)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((tf.tanh(x @ enc) @ dec - y) ** 2)
    g_enc, g_dec = tape.gradient(loss, [enc, dec])
    contrib = {"encoder": g_enc.numpy(), "decoder": g_dec.numpy().T}
    total = contrib["encoder"] + contrib["decoder"]
    rows = result.gradients[(result.gradients.variant == "tied")].set_index("use")
    for use, c in contrib.items():
        assert rows.loc[use, "grad_norm"] == pytest.approx(np.linalg.norm(c), rel=1e-5)
        other = total - c
        cosine = float((c * other).sum() / (np.linalg.norm(c) * np.linalg.norm(other)))
        assert rows.loc[use, "cosine_with_others"] == pytest.approx(cosine, rel=1e-4, abs=1e-6)
    assert rows["sum_norm"].iloc[0] == pytest.approx(np.linalg.norm(total), rel=1e-5)
    assert result.history.loss.iloc[0] == pytest.approx(float(loss), rel=1e-5)


def test_divergence_is_zero_at_start_grows_for_untied_and_stays_zero_for_tied(dense_run):
    d = dense_run.divergence
    assert list(d.columns) == ["step", "variant", "tensor", "use_a", "use_b", "relative_distance", "cosine"]
    start = d[d.step == 0]
    assert (start.relative_distance == 0).all()
    np.testing.assert_allclose(start.cosine, 1.0, rtol=1e-6)
    tied, untied = d[d.variant == "tied"], d[d.variant == "untied"]
    assert (tied.relative_distance == 0.0).all()
    assert untied[untied.step == 12].relative_distance.iloc[0] > 1e-3
    assert untied.sort_values("step").relative_distance.iloc[-1] > untied.sort_values("step").relative_distance.iloc[1]


def test_recorded_divergence_equals_numpy_distance_of_the_final_weights(dense_run):
    end = dense_run.weights["end"]["untied"]
    start = dense_run.weights["start"]["tied"]["W"]
    expected = np.linalg.norm(end["dense_1"] - end["dense_2"]) / np.linalg.norm(start)
    last = dense_run.divergence[(dense_run.divergence.variant == "untied") & (dense_run.divergence.step == 12)]
    assert last.relative_distance.iloc[0] == pytest.approx(expected, rel=1e-5)


def test_record_every_k_steps_records_first_every_kth_and_last_step():
    result = sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=10, record_every=4))
    assert sorted(result.gradients.step.unique()) == [1, 4, 8, 10]
    assert sorted(result.divergence.step.unique()) == [0, 1, 4, 8, 10]
    assert len(result.history) == 20


def test_partial_share_divergence_compares_only_the_overlap():
    result = sharecore.train(sharecore.preset("partial-share"), TrainConfig(steps=8, seed=1))
    end = result.weights["end"]["untied"]
    start = result.weights["start"]["tied"]["W"][:, :4]
    expected = np.linalg.norm(end["wide"][:, :4] - end["narrow"]) / np.linalg.norm(start)
    row = result.divergence[(result.divergence.variant == "untied") & (result.divergence.step == 8)]
    assert row.relative_distance.iloc[0] == pytest.approx(expected, rel=1e-5)


def test_digits_dataset_reports_accuracy_and_learns():
    spec = ModelSpec.from_dict(
        {
            "input_shape": [64],
            "tensors": [{"name": "W", "shape": [64, 64]}],
            "uses": [
                {"name": "h1", "op": "dense", "tensor": "W", "activation": "relu"},
                {"name": "h2", "op": "dense", "tensor": "W", "activation": "relu"},
            ],
        }
    )
    result = sharecore.train(spec, TrainConfig(steps=40, dataset="digits", learning_rate=0.01, batch_size=64))
    h = result.history
    assert h.accuracy.between(0, 1).all()
    late = h[h.step > 30].groupby("variant").accuracy.mean()
    assert (late > 0.5).all()  # well above chance (0.1)


def test_digits_pairs_give_two_classes_and_a_wrong_input_size_says_how_to_fix():
    data = make_dataset(sharecore.preset("siamese-digits"), "digits", 0)
    assert data.classes == 2 and set(np.unique(data.y)) == {0, 1}
    assert 0.4 < data.y.mean() < 0.6
    with pytest.raises(
        ValueError, match=r"dataset 'digits' needs a model input of 64 values.*Received: input_shape=\(28, 28, 3\)"
    ):
        sharecore.train(sharecore.preset("seed-conv"), TrainConfig(steps=1, dataset="digits"))


def test_sgd_and_adam_both_reduce_the_loss():
    spec = sharecore.preset("tied-autoencoder")
    for opt, lr in (("sgd", 0.1), ("adam", 0.01)):
        h = sharecore.train(spec, TrainConfig(steps=40, optimizer=opt, learning_rate=lr)).history
        for variant in ("tied", "untied"):
            losses = h[h.variant == variant].loss.to_numpy()
            assert losses[-5:].mean() < losses[:5].mean()


def test_progress_callback_is_handed_each_new_history_row_once_and_stop_keeps_what_was_recorded():
    stop = threading.Event()
    seen = []

    def on_progress(p):
        seen.append((p.step, list(p.new_history.step)))
        if p.step >= 4:
            stop.set()

    result = sharecore.train(
        sharecore.preset("seed-dense"), TrainConfig(steps=50), on_progress=on_progress, stop=stop, progress_every=2
    )
    assert seen == [(2, [1, 1, 2, 2]), (4, [3, 3, 4, 4])]
    assert result.steps_done == 4
    assert result.stop_reason == "stopped by request after step 4"
    assert len(result.history) == 8
    assert result.divergence.step.max() == 4


def test_asking_for_a_missing_gpu_is_a_clear_error():
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match=r"device 'gpu' was requested, but TensorFlow sees no GPU.*Use device 'cpu'"):
        sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=1, device="gpu"))
    assert "CPU" in sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=1, device="auto")).device


@pytest.mark.parametrize(
    ("name", "config", "resume", "says"),
    [
        ("seed-dense", TrainConfig(steps=5001), None, "exceeds the limit of 5,000 steps"),
        ("seed-dense", TrainConfig(dataset="digits"), None, "needs a model input of 64 values"),
        ("tied-lm", TrainConfig(dataset="digits"), None, "holds images, but spec 'tied-lm' reads token ids"),
        ("seed-conv", TrainConfig(dataset="tokens"), None, "is sequences of token ids"),
        ("seed-dense", TrainConfig(distribute="multi-worker"), None, "TF_CONFIG environment variable"),
        ("seed-dense", TrainConfig(steps=3), "not a result", "resume must be the TrainResult of an earlier run"),
    ],
)
def test_train_refuses_what_check_run_refuses_with_the_same_message(name, config, resume, says, monkeypatch):
    """The command line refuses with check_run before it loads TensorFlow; train must not disagree."""
    from sharecore.core.runcheck import check_run

    monkeypatch.delenv("TF_CONFIG", raising=False)
    spec = sharecore.preset(name)
    with pytest.raises(ValueError, match=says) as checked:
        check_run(spec, config, resume=resume)
    with pytest.raises(ValueError) as trained:
        sharecore.train(spec, config, resume=resume)
    assert str(trained.value) == str(checked.value)


def test_a_learning_rate_that_blows_up_stops_at_the_step_with_the_variant_named():
    result = sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=40, optimizer="sgd", learning_rate=1e4))
    assert result.stop_reason is not None
    assert "became non-finite" in result.stop_reason and f"at step {result.steps_done + 1}" in result.stop_reason
    assert np.isfinite(result.history.loss).all()
    assert len(result.history) == 2 * result.steps_done


def test_a_long_run_does_not_hold_every_batch_of_indices_at_once():
    # Drawing (steps, batch_size) indices up front took 400 MB for 100,000 steps at batch 512 (a
    # workshop server with raised max_steps peaked at 1.6 GB); each chunk now draws its own.
    import tracemalloc

    from sharecore.core.limits import Limits

    stop = threading.Event()
    config = TrainConfig(steps=100_000, batch_size=512, record_every=1000)
    tracemalloc.start()
    try:
        result = sharecore.train(
            sharecore.preset("seed-dense"),
            config,
            limits=Limits(max_steps=100_000),
            on_progress=lambda progress: stop.set(),  # one chunk is enough
            stop=stop,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0 < result.steps_done < config.steps
    assert peak < 50 * 2**20, f"Python and NumPy allocations peaked at {peak / 2**20:.0f} MB"


def test_batches_drawn_chunk_by_chunk_are_the_batches_of_one_draw():
    # The oracle: one (steps, batch_size) draw from the run's generator, as the trainer used to make.
    # A run of 1 chunk and a run of many give the same numbers only if the batches are the same.
    spec, config = sharecore.preset("seed-dense"), TrainConfig(steps=30, batch_size=5, seed=4)
    one_chunk = sharecore.train(spec, config, progress_every=30)
    many = sharecore.train(spec, config, progress_every=7)
    np.testing.assert_array_equal(one_chunk.history["loss"], many.history["loss"])
    data = make_dataset(spec, "teacher", 4)
    idx = np.random.default_rng([4, 3]).integers(0, len(data.x), (30, 5))
    # Step 1's tied loss is the loss of the first batch of that draw, before any update.
    tied = sharecore.build(spec, tied=True)
    from sharecore.core.plan import plan
    from sharecore.nn.model import assign_initial

    assign_initial(tied, plan(spec), True, sharecore.initial_values(spec, 4))
    first = float(np.mean((np.asarray(tied(data.x[idx[0]])) - data.y[idx[0]]) ** 2))
    step1 = many.history[(many.history["step"] == 1) & (many.history["variant"] == "tied")]["loss"].item()
    assert step1 == pytest.approx(first, rel=1e-5)


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (tf.errors.ResourceExhaustedError, "ran out of memory between steps 4 and 6"),
        (tf.errors.InternalError, "TensorFlow failed on /device:CPU:0 between steps 4 and 6 (InternalError: cuDNN"),
        (tf.errors.UnknownError, "TensorFlow failed on /device:CPU:0 between steps 4 and 6 (UnknownError: cuDNN"),
    ],
)
def test_a_device_error_mid_run_stops_with_a_message_and_keeps_the_records(monkeypatch, error, says):
    """A GPU's out-of-memory or cuDNN failure (raised here on the CPU) is a stop, not a crash."""
    from sharecore.nn import trainer as pool

    # Chunks of 3 steps: progress_every, and a held-out score (which ends a chunk) every 3 steps.
    spec, config = sharecore.preset("seed-dense"), TrainConfig(steps=6, batch_size=8, seed=5, eval_every=3)
    real_checkout, calls = pool._checkout, []

    def failing_checkout(key, make):
        trainer = real_checkout(key, make)
        chunk = trainer.chunk

        def chunk_that_fails_second(*args):
            calls.append(len(calls))
            if len(calls) == 2:
                raise error(None, None, "cuDNN launch failure: CUDNN_STATUS_EXECUTION_FAILED\nsecond line")
            return chunk(*args)

        chunk_that_fails_second.get_concrete_function = chunk.get_concrete_function
        monkeypatch.setattr(trainer, "chunk", chunk_that_fails_second)
        return trainer

    monkeypatch.setattr(pool, "_checkout", failing_checkout)
    result = sharecore.train(spec, config, progress_every=3)
    assert says in result.stop_reason
    assert "training stopped and kept what was recorded" in result.stop_reason
    assert "second line" not in result.stop_reason
    assert result.steps_done == 3
    assert list(result.history.step.unique()) == [1, 2, 3]
    full = sharecore.train(spec, config)  # the kept records are the first steps of an undisturbed run
    np.testing.assert_array_equal(result.history.loss, full.history.loss[:6])


def test_a_tensorflow_error_that_is_no_device_failure_is_raised_not_hidden_in_a_stop(monkeypatch):
    """A shape or argument error is a bug: the run must not end quietly with part of its records."""
    from sharecore.nn import trainer as pool

    real_checkout = pool._checkout

    def failing_checkout(key, make):
        trainer = real_checkout(key, make)

        def chunk_that_fails(*args):
            raise tf.errors.InvalidArgumentError(None, None, "Incompatible shapes: [8,10] vs. [8,5]")

        chunk_that_fails.get_concrete_function = trainer.chunk.get_concrete_function
        monkeypatch.setattr(trainer, "chunk", chunk_that_fails)
        return trainer

    monkeypatch.setattr(pool, "_checkout", failing_checkout)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Incompatible shapes"):
        sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=4, batch_size=8, seed=5))


def test_chunks_are_sized_by_their_pace_growing_at_most_eightfold_and_a_fixed_size_stays():
    from sharecore.nn.training import ChunkSizes

    sizes = ChunkSizes()
    assert sizes.next() == ChunkSizes.FIRST_CHUNK == 2  # a first chart at once
    sizes.took(2, 0.002)  # 1 ms a step: 0.2 s would be 200 steps, but a chunk grows at most 8 times
    assert sizes.next() == 16
    sizes.took(16, 0.016)
    assert sizes.next() == 128
    sizes.took(128, 0.128)
    assert sizes.next() == 200  # CHUNK_SECONDS of steps
    sizes.took(200, 2.0)  # a slower spell: 10 ms a step
    assert sizes.next() == 20
    fixed = ChunkSizes(5)
    fixed.took(5, 10.0)
    assert fixed.next() == 5


def _records(result: sharecore.TrainResult) -> dict[str, np.ndarray]:
    return {
        "loss": result.history["loss"].to_numpy(),
        "grad_norm": result.gradients["grad_norm"].to_numpy(),
        "sum_norm": result.gradients["sum_norm"].to_numpy(),
        "cosine_with_others": result.gradients["cosine_with_others"].to_numpy(),
        "relative_distance": result.divergence["relative_distance"].to_numpy(),
        "cosine": result.divergence["cosine"].to_numpy(),
    }


def test_a_chunk_holding_few_raw_rows_records_the_numbers_of_one_chunk(monkeypatch):
    """A chunk keeps its recorded steps' raw rows until its end; with room for two, chunks end every second recorded
    step (and not at the steps in between), and the records are those of a run in one chunk."""
    from sharecore.nn import trainer, training

    spec, config = sharecore.preset("albert-mlp"), TrainConfig(steps=12, batch_size=4, record_every=3, seed=6)
    whole = sharecore.train(spec, config, progress_every=12)
    chunks = []
    real_checkout = trainer._checkout

    def counting_checkout(key, make):
        pooled = real_checkout(key, make)
        chunk = pooled.chunk

        def counted(*args):
            chunks.append(int(args[3].numpy().sum()))  # the steps of the chunk that record
            return chunk(*args)

        counted.get_concrete_function = chunk.get_concrete_function
        monkeypatch.setattr(pooled, "chunk", counted)
        return pooled

    monkeypatch.setattr(trainer, "_checkout", counting_checkout)
    (pooled,) = [t for waiting in trainer._POOL.values() for t in waiting if t.variants[0].plan.spec == spec]
    assert all(v.defer for v in pooled.variants)
    held = 4 * sum(v.held_size for v in pooled.variants)  # bytes a recorded step takes in a chunk
    monkeypatch.setattr(training, "CHUNK_ROW_BYTES", 2 * held + 1)
    split = sharecore.train(spec, config, progress_every=12)
    assert chunks and max(chunks) == 2 and sum(chunks) == 5  # steps 1, 3, 6, 9, 12 record
    for name, values in _records(whole).items():
        np.testing.assert_allclose(_records(split)[name], values, rtol=1e-6, atol=1e-7, err_msg=name)


def test_stats_a_big_model_computes_in_its_recording_steps_are_those_computed_at_the_chunks_end(monkeypatch):
    """Above DEFER_MAX numbers a recording step computes its stats itself (a branch); the records are those the chunk
    computes at its end from the raw rows of every recorded step."""
    from sharecore.nn import trainer, variant

    spec, config = sharecore.preset("seed-mixed"), TrainConfig(steps=10, batch_size=4, record_every=4, seed=7)
    always = sharecore.train(spec, config)
    monkeypatch.setattr(trainer, "_POOL", {})  # a trainer of the other kind, compiled anew
    monkeypatch.setattr(trainer, "_POOL_ORDER", [])
    monkeypatch.setattr(variant, "DEFER_MAX", 0)
    branched = sharecore.train(spec, config)
    assert not any(v.defer for pooled in trainer._POOL.values() for t in pooled for v in t.variants)
    assert len(branched.gradients) == len(always.gradients) > 0
    for name, values in _records(always).items():
        np.testing.assert_allclose(_records(branched)[name], values, rtol=1e-6, atol=1e-7, err_msg=name)
