"""Held-out splits of every data set, the tied or untied teacher, and digits presets that learn.

Oracles: scikit-learn's own digits (matched by pixels), NumPy forward passes, plain Keras layers.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import keras
import numpy as np
import pytest

import sharecore as sc
from sharecore.core.config import DIGITS_HELDOUT, TEACHER_HELDOUT, TEACHER_POOL_SIZE, TOKENS_HELDOUT, TrainConfig
from sharecore.core.spec import ModelSpec
from sharecore.nn import data as sc_data
from sharecore.nn import trainer as pool
from sharecore.nn.data import TEACHER_SEED_OFFSET, make_dataset, teacher_dataset
from sharecore.nn.model import draw
from sharecore.share.urlstate import datasets_for

ROOT = Path(__file__).resolve().parents[2]
DIGITS_MLP = ModelSpec.from_dict(
    {
        "name": "digits-mlp",
        "input_shape": [64],
        "tensors": [{"name": "W", "shape": [64, 64]}],
        "uses": [
            {"name": "h1", "op": "dense", "tensor": "W", "activation": "relu"},
            {"name": "h2", "op": "dense", "tensor": "W", "activation": "relu"},
        ],
    }
)


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype("float32"), d.target


def image_index(images: np.ndarray) -> dict[bytes, int]:
    """Which of scikit-learn's images each pixel pattern is (the 1,797 images are all different)."""
    index = {row.tobytes(): i for i, row in enumerate(images)}
    assert len(index) == len(images)
    return index


def indices_of(rows: np.ndarray, index: dict[bytes, int]) -> np.ndarray:
    return np.array([index[np.ascontiguousarray(r, dtype="float32").tobytes()] for r in rows.reshape(len(rows), -1)])


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean()), float((logits.argmax(1) == labels).mean())


# ----------------------------------------------------------------------------- digits
def test_digits_pool_and_held_out_images_are_disjoint_and_together_are_all_the_digits():
    images, labels = sklearn_digits()
    index = image_index(images)
    data = make_dataset(DIGITS_MLP, "digits", 0)
    pool, heldout = indices_of(data.x, index), indices_of(data.heldout_x, index)
    assert len(heldout) == DIGITS_HELDOUT == 360 and len(pool) == 1797 - 360
    assert not set(pool) & set(heldout)
    assert sorted({*pool, *heldout}) == list(range(1797))
    np.testing.assert_array_equal(data.y, labels[pool])
    np.testing.assert_array_equal(data.heldout_y, labels[heldout])
    assert data.classes == 10 and "360 of the 1,797 images are held out" in data.description


def test_the_digits_split_is_the_same_images_for_every_seed_and_input_shape():
    images, _ = sklearn_digits()
    index = image_index(images)
    flat = indices_of(make_dataset(DIGITS_MLP, "digits", 0).heldout_x, index)
    image = indices_of(make_dataset(sc.preset("rotation-tied-conv"), "digits", 9).heldout_x, index)
    np.testing.assert_array_equal(flat, image)


def test_digit_pairs_are_made_only_of_training_images_or_only_of_held_out_images():
    images, labels = sklearn_digits()
    index = image_index(images)
    heldout_images = set(indices_of(make_dataset(DIGITS_MLP, "digits", 0).heldout_x, index))
    data = make_dataset(sc.preset("siamese-digits"), "digits", 3)
    assert data.classes == 2
    for x, y, held_out in ((data.x, data.y, False), (data.heldout_x, data.heldout_y, True)):
        left, right = indices_of(x[:, :64], index), indices_of(x[:, 64:], index)
        both = set(left) | set(right)
        assert both <= heldout_images if held_out else both.isdisjoint(heldout_images)
        assert (labels[left] != labels[right]).all()  # two different digits: the question always has an answer
        np.testing.assert_array_equal(y, (labels[left] > labels[right]).astype("int32"))
        assert 0.4 < y.mean() < 0.6
    assert len(data.x) == 1797 - 360 and len(data.heldout_x) == 360


def test_held_out_loss_at_step_0_and_the_first_batch_loss_equal_numpy_on_the_split():
    config = TrainConfig(steps=1, dataset="digits", seed=4)
    result = sc.train(DIGITS_MLP, config)
    data = make_dataset(DIGITS_MLP, "digits", 4)
    w = sc.initial_values(DIGITS_MLP, 4)["W"]
    head = draw("glorot_uniform", (64, 10), 4, "head")  # the trainer's seeded readout, bias 0

    def logits(x: np.ndarray) -> np.ndarray:
        return np.maximum(np.maximum(x @ w, 0) @ w, 0) @ head

    loss, acc = softmax_cross_entropy(logits(data.heldout_x), data.heldout_y)
    start = result.heldout[result.heldout.step == 0].set_index("variant")
    for variant in ("tied", "untied"):
        assert start.loss[variant] == pytest.approx(loss, rel=1e-5)
        assert start.accuracy[variant] == pytest.approx(acc, abs=1e-6)
    # The first training batch is drawn from the pool only (indices into data.x, as the trainer draws them).
    idx = np.random.default_rng([4, 3]).integers(0, len(data.x), config.batch_size)
    first = result.history[result.history.step == 1].set_index("variant").loss
    assert first["tied"] == pytest.approx(softmax_cross_entropy(logits(data.x[idx]), data.y[idx])[0], rel=1e-5)


DIGITS_PRESETS = [name for name in sc.presets() if "digits" in datasets_for(sc.preset(name))]


def test_the_presets_that_take_digits_are_the_three_image_models():
    assert DIGITS_PRESETS == ["siamese-digits", "rotation-tied-conv", "conv-autoencoder"]


@pytest.mark.parametrize("name", DIGITS_PRESETS)
def test_every_preset_that_takes_digits_learns_visibly_in_the_default_steps(name):
    result = sc.train(sc.preset(name), TrainConfig(dataset="digits"))  # 60 steps, batch 32, adam 0.01
    classes = make_dataset(sc.preset(name), "digits", 0).classes
    h, held = result.history, result.heldout
    assert result.stop_reason is None and h.step.max() == 60
    for variant in ("tied", "untied"):
        losses = h[h.variant == variant].sort_values("step").loss.to_numpy()
        assert losses[0] == pytest.approx(math.log(classes), rel=0.05)  # chance at the start
        assert losses[-5:].mean() < 0.75 * losses[0]
        end = held[(held.variant == variant) & (held.step == 60)]
        assert end.accuracy.iloc[0] > 1 / classes + 0.2  # on images never trained on
        assert end.loss.iloc[0] < 0.75 * math.log(classes)


# ----------------------------------------------------------------------------- teacher
def tied_autoencoder_numpy(x: np.ndarray, seed: int) -> np.ndarray:
    w = sc.initial_values(sc.preset("tied-autoencoder"), seed + TEACHER_SEED_OFFSET)["W"]  # (10, 5)
    return np.tanh(x @ w) @ w.T  # encoder, then the decoder reads transpose(W)


def test_teacher_held_out_inputs_are_new_draws_labelled_by_the_same_teacher_at_the_same_scale():
    spec = sc.preset("tied-autoencoder")
    data = teacher_dataset(spec, 2, tied=True)
    assert data.x.shape == (TEACHER_POOL_SIZE, 10) and data.heldout_x.shape == (TEACHER_HELDOUT, 10)
    assert not {r.tobytes() for r in data.x} & {r.tobytes() for r in data.heldout_x}
    assert abs(data.heldout_x.mean()) < 0.1 and abs(data.heldout_x.std() - 1) < 0.1  # N(0, 1), as the pool
    scale = tied_autoencoder_numpy(data.x, 2).std()
    np.testing.assert_allclose(data.y, tied_autoencoder_numpy(data.x, 2) / scale, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(data.heldout_y, tied_autoencoder_numpy(data.heldout_x, 2) / scale, rtol=1e-4, atol=1e-5)


def test_the_held_out_split_leaves_the_teacher_pool_as_it_was():
    spec = sc.preset("seed-dense")
    data = teacher_dataset(spec, 5)
    np.testing.assert_array_equal(data.x, sc_data.random_inputs(spec, TEACHER_POOL_SIZE, np.random.default_rng([5, 1])))
    np.testing.assert_array_equal(data.y, teacher_dataset(spec, 5, heldout=0).y)


def test_tied_teacher_of_a_rotation_tied_conv_equals_plain_keras_convs_of_the_rotated_kernel():
    spec = sc.preset("rotation-tied-conv")
    data = make_dataset(spec, "teacher", 1, teacher="tied")
    k = sc.initial_values(spec, 1 + TEACHER_SEED_OFFSET)["K"]  # (3, 3, 1, 4)

    def oracle(x: np.ndarray) -> np.ndarray:
        outs = []
        for turns in range(4):
            conv = keras.layers.Conv2D(4, 3, padding="same", activation="tanh", use_bias=False)
            conv.build((None, 8, 8, 1))
            conv.set_weights([np.rot90(k, turns, axes=(0, 1))])
            outs.append(np.asarray(conv(x)).reshape(len(x), -1))
        return np.concatenate(outs, axis=1)  # (n, 4 * 8 * 8 * 4)

    scale = oracle(data.x).std()
    np.testing.assert_allclose(data.y, oracle(data.x) / scale, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(data.heldout_y, oracle(data.heldout_x) / scale, rtol=1e-4, atol=1e-5)


def test_untied_teacher_differs_from_the_tied_one_and_each_description_says_which():
    spec = sc.preset("tied-autoencoder")
    untied, tied = make_dataset(spec, "teacher", 0), make_dataset(spec, "teacher", 0, teacher="tied")
    np.testing.assert_array_equal(untied.x, tied.x)  # the same inputs, other labels
    assert np.abs(untied.y - tied.y).mean() > 0.1
    assert untied.description == (
        "teacher: a random untied network of the same spec, drawn at seed 7919 "
        "(the run's seed + 7919, so it never starts where the students start)"
    )
    assert tied.description.startswith("teacher: a random tied network of the same spec, drawn at seed 7919 ")
    assert "drawn at seed 7922 (the run's seed + 7919" in make_dataset(spec, "teacher", 3).description


def test_held_out_loss_of_the_teacher_at_step_0_equals_numpy_and_has_no_accuracy():
    spec = sc.preset("tied-autoencoder")
    result = sc.train(spec, TrainConfig(steps=2, seed=6, teacher="tied"))
    data = make_dataset(spec, "teacher", 6, teacher="tied")
    w = sc.initial_values(spec, 6)["W"]
    expected = float(np.mean((np.tanh(data.heldout_x @ w) @ w.T - data.heldout_y) ** 2))
    start = result.heldout[result.heldout.step == 0].set_index("variant")
    assert start.loss["tied"] == pytest.approx(expected, rel=1e-5)
    assert start.loss["untied"] == pytest.approx(expected, rel=1e-5)
    assert result.heldout.accuracy.isna().all()  # regression: no classes
    assert sorted(result.heldout.step.unique()) == [0, 1, 2]


def test_a_tied_teacher_lets_the_tied_student_learn_what_an_untied_teacher_denies_it():
    # An untied teacher's decoder is not the transpose of its encoder: the tied autoencoder cannot
    # fit it, and stays far behind the untied student. A tied teacher it can match.
    spec, final = sc.preset("tied-autoencoder"), {}
    for teacher in ("untied", "tied"):
        held = sc.train(spec, TrainConfig(steps=150, teacher=teacher)).heldout
        final[teacher] = held[held.step == 150].set_index("variant").loss
    assert final["tied"]["tied"] < 0.2 * final["untied"]["tied"]
    assert final["untied"]["tied"] > 5 * final["untied"]["untied"]  # the untied teacher favours the untied copy
    assert final["tied"]["tied"] < 2 * final["tied"]["untied"]  # the tied one does not


def lm(vocab: int, seq: int) -> ModelSpec:
    """A tied language model over `vocab` tokens and sequences of `seq`: it takes the tokens and the teacher data."""
    return ModelSpec.from_dict(
        {
            "input_shape": [seq],
            "input_vocab": vocab,
            "tensors": [{"name": "E", "shape": [vocab, 4]}],
            "uses": [
                {"name": "embed", "op": "embedding", "tensor": "E"},
                {"name": "logits", "op": "dense", "tensor": "E", "rule": "transpose"},
            ],
        }
    )


def test_a_token_teacher_holds_out_only_sequences_that_are_not_in_the_pool():
    data = make_dataset(lm(8, 3), "teacher", 0)  # 512 possible sequences: the pool holds many of them
    pool = {r.tobytes() for r in data.x}
    assert 0 < len(data.heldout_x) < TEACHER_HELDOUT
    assert not pool & {r.tobytes() for r in data.heldout_x}
    tiny = make_dataset(lm(2, 2), "teacher", 0)  # 4 possible sequences, all in the pool: nothing to hold out
    assert tiny.heldout_x is None and tiny.heldout_y is None
    assert sc.train(lm(2, 2), TrainConfig(steps=2)).heldout.empty


# ----------------------------------------------------------------------------- tokens
def chain_as_first_drawn(vocab: int, seq: int, seed: int, n: int) -> np.ndarray:
    """(n, seq + 1) token sequences drawn as tokens_dataset has always drawn its pool, followed by 128 held-out ones.

    The oracle for "the pool is as it was": the chain and then all n sequences from one generator,
    the next token by inverse CDF (searchsorted) over the current token's four successors.
    """
    rng = np.random.default_rng([seed, 4])
    successors = rng.integers(0, vocab, (vocab, 4))
    cumulative = np.cumsum(rng.dirichlet(np.full(4, 0.5), size=vocab), axis=1)
    tokens = np.empty((n, seq + 1), dtype="int64")
    tokens[:, 0] = rng.integers(0, vocab, n)
    for t in range(seq):
        u = rng.random(n)
        pick = [min(np.searchsorted(cumulative[a], v), 3) for a, v in zip(tokens[:, t], u)]
        tokens[:, t + 1] = successors[tokens[:, t], pick]
    return tokens


@pytest.mark.parametrize("seed", [0, 3])
def test_token_held_out_sequences_are_new_draws_and_the_pool_is_as_it_was(seed):
    data = make_dataset(sc.preset("tied-lm"), "tokens", seed)
    first = chain_as_first_drawn(32, 8, seed, TEACHER_POOL_SIZE + TOKENS_HELDOUT)
    np.testing.assert_array_equal(data.x, first[:TEACHER_POOL_SIZE, :-1])  # every run's batches as before
    np.testing.assert_array_equal(data.y, first[:TEACHER_POOL_SIZE, 1:])
    pool = {r.tobytes() for r in data.x}
    drawn = first[TEACHER_POOL_SIZE:, :-1].astype("int32")
    kept = drawn[[r.tobytes() not in pool for r in drawn]]
    # 8 to 23 of the 128 first held-out draws (seeds 0-5) repeat a pool input: a 32-token chain repeats itself.
    assert 0 < len(drawn) - len(kept) < 0.25 * TOKENS_HELDOUT
    assert data.heldout_x.shape == data.heldout_y.shape == (TOKENS_HELDOUT, 8)
    np.testing.assert_array_equal(data.heldout_x[: len(kept)], kept)  # the others are kept as drawn
    assert not pool & {r.tobytes() for r in data.heldout_x}
    np.testing.assert_array_equal(data.heldout_x[:, 1:], data.heldout_y[:, :-1])  # y is x shifted by one
    successors = {(a, b) for a, b in zip(first[:, :-1].ravel(), first[:, 1:].ravel())}
    assert {(a, b) for a, b in zip(data.heldout_x.ravel(), data.heldout_y.ravel())} <= successors  # the same chain


def test_a_token_chain_whose_sequences_are_all_in_the_pool_holds_out_fewer_or_none():
    few = make_dataset(lm(8, 3), "tokens", 0)  # a chain that makes at most 8 * 4**3 = 512 sequences
    assert 0 < len(few.heldout_x) < TOKENS_HELDOUT
    assert not {r.tobytes() for r in few.x} & {r.tobytes() for r in few.heldout_x}
    none = make_dataset(lm(2, 2), "tokens", 0)  # 4 possible sequences, all in the pool
    assert none.heldout_x is None and none.heldout_y is None
    result = sc.train(lm(2, 2), TrainConfig(steps=2, dataset="tokens"))
    assert result.heldout.empty and len(result.history) == 4


HELDOUT_SIZES = {"teacher": TEACHER_HELDOUT, "digits": DIGITS_HELDOUT, "tokens": TOKENS_HELDOUT}


@pytest.mark.parametrize("name", sc.presets())
def test_no_held_out_input_of_any_preset_and_data_set_is_also_a_pool_input(name, monkeypatch):
    # Disjointness is a property of the inputs. The teacher network only labels them: a stand-in
    # of the right output shape keeps 10 seeds of a conv teacher at a fraction of a second (the
    # teacher's real labels are checked against NumPy and plain Keras above).
    spec = sc.preset(name)
    shape = sc.plan(spec).output_shape
    monkeypatch.setattr(sc_data, "teacher_model", lambda *_: lambda x, training: np.ones((len(x), *shape)))
    for dataset in datasets_for(spec):
        for seed in range(10):
            data = make_dataset(spec, dataset, seed)
            pool = {np.ascontiguousarray(r).tobytes() for r in data.x}
            heldout = [np.ascontiguousarray(r).tobytes() for r in data.heldout_x]
            assert len(heldout) == HELDOUT_SIZES[dataset], (dataset, seed)
            clashes = sum(r in pool for r in heldout)
            assert clashes == 0, f"{dataset}, seed {seed}: {clashes} held-out inputs are also pool inputs"


# ----------------------------------------------------------------------------- the choice
def test_an_unknown_teacher_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"train.teacher: must be one of 'untied', 'tied'. Received: 'shared'"):
        TrainConfig(teacher="shared")
    with pytest.raises(ValueError, match=r"unknown teacher 'shared'. Choose 'untied' or 'tied'"):
        make_dataset(sc.preset("seed-dense"), "teacher", 0, teacher="shared")


def test_the_compiled_trainer_does_not_depend_on_the_teacher():
    p = sc.plan(sc.preset("seed-dense"))
    assert pool._pool_key(p, 0, TrainConfig(teacher="tied"), "cpu") == pool._pool_key(p, 0, TrainConfig(), "cpu")


# ----------------------------------------------------------------------------- the Train page
def test_the_train_page_offers_the_teacher_choice_only_with_the_teacher_data_set_and_keeps_it_in_the_link():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.query_params.update({"preset": "siamese-digits"})
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    teacher = at.radio(key="train.teacher")
    assert teacher.options == ["untied", "tied"] and teacher.value == "untied"
    teacher.set_value("tied").run()
    assert at.session_state["config"].teacher == "tied" and at.query_params.get("teacher") == "tied"
    at.radio(key="train.dataset").set_value("digits").run()
    assert "train.teacher" not in [r.key for r in at.radio]  # digits has no teacher
    assert at.session_state["config"] == TrainConfig(dataset="digits", teacher="tied")
    at.radio(key="train.dataset").set_value("teacher").run()
    assert at.radio(key="train.teacher").value == "tied"


# ----------------------------------------------------------------------------- the schedule
def test_held_out_is_scored_a_fifth_of_the_run_apart_by_default_or_every_eval_every_steps_and_at_the_last():
    spec = sc.preset("seed-dense")
    assert sorted(sc.train(spec, TrainConfig(steps=60)).heldout.step.unique()) == [0, 12, 24, 36, 48, 60]
    assert sorted(sc.train(spec, TrainConfig(steps=60, eval_every=25)).heldout.step.unique()) == [0, 25, 50, 60]


def test_a_run_stopped_between_two_scores_is_scored_where_it_stopped():
    stop = threading.Event()
    result = sc.train(
        sc.preset("seed-dense"), TrainConfig(steps=60), progress_every=5, on_progress=lambda p: stop.set(), stop=stop
    )
    assert result.steps_done == 5
    assert sorted(result.heldout.step.unique()) == [0, 5]


def test_eval_every_must_be_a_whole_number_of_steps_or_0():
    with pytest.raises(ValueError, match=r"train.eval_every: must be >= 0. Received: -1"):
        TrainConfig(eval_every=-1)
