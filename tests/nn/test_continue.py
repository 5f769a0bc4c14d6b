"""Continuing a run: n steps, then on to n + m, gives the numbers of one run of n + m steps.

The oracle is always an uninterrupted run of the same total length, compared record by record:
history, gradients and divergence at every recorded step both have, held-out at common steps,
end weights, and the whole saved state (weights, optimizer slots, the batch generator).
"""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import pandas as pd
import pytest

import sharecore
from sharecore import TrainConfig
from sharecore.nn.data import make_dataset
from sharecore.runs.runner import BackgroundRun

RTOL, ATOL = 1e-5, 1e-7


def _assert_frames_match(parts: pd.DataFrame, one: pd.DataFrame, keys: list[str], values: list[str]) -> None:
    """Every row the two frames share (by `keys`) has the same `values`, within float tolerance."""
    assert not parts.duplicated(keys).any(), "a continued run recorded a step twice"
    both = parts.merge(one, on=keys, suffixes=("_parts", "_one"))
    assert len(both) > 0
    for column in values:
        np.testing.assert_allclose(
            both[f"{column}_parts"], both[f"{column}_one"], rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=column
        )


def assert_same_as_one_run(parts: sharecore.TrainResult, one: sharecore.TrainResult) -> None:
    """A continued result matches an uninterrupted run of the same total, record by record."""
    assert parts.steps_done == one.steps_done == one.config.steps
    assert parts.stop_reason is None
    # History: every step of both, in the same order.
    assert list(parts.history.step) == list(one.history.step)
    assert list(parts.history.variant) == list(one.history.variant)
    _assert_frames_match(parts.history, one.history, ["step", "variant"], ["loss", "accuracy"])
    # Gradients and divergence: at every step both recorded.
    common = set(parts.gradients.step) & set(one.gradients.step)
    assert {1, one.config.steps} <= common
    _assert_frames_match(
        parts.gradients,
        one.gradients,
        ["step", "variant", "tensor", "use"],
        ["grad_norm", "sum_norm", "cosine_with_others"],
    )
    _assert_frames_match(
        parts.divergence,
        one.divergence,
        ["step", "variant", "tensor", "use_a", "use_b"],
        ["relative_distance", "cosine"],
    )
    # Held-out: the steps both evaluated, step 0 and the last among them.
    if not one.heldout.empty:
        assert {0, one.config.steps} <= set(parts.heldout.step) & set(one.heldout.step)
        _assert_frames_match(parts.heldout, one.heldout, ["step", "variant"], ["loss", "accuracy"])
    # Weights: the same start, the same end.
    for phase in ("start", "end"):
        for variant, tensors in one.weights[phase].items():
            assert tensors.keys() == parts.weights[phase][variant].keys()
            for name, value in tensors.items():
                np.testing.assert_allclose(parts.weights[phase][variant][name], value, rtol=RTOL, atol=ATOL)
    # The state to go on from: every variable and optimizer slot, and the batch generator exactly.
    assert parts.state.steps_done == one.state.steps_done
    assert parts.state.arrays.keys() == one.state.arrays.keys()
    for key, value in one.state.arrays.items():
        np.testing.assert_allclose(parts.state.arrays[key], value, rtol=RTOL, atol=ATOL, err_msg=key)
    assert parts.state.rng == one.state.rng


CASES = [
    pytest.param("seed-dense", "adam", "teacher", 8, id="dense-adam"),
    pytest.param("seed-dense", "sgd", "teacher", 8, id="dense-sgd"),
    pytest.param("seed-conv", "adam", "teacher", 4, id="conv-adam"),
    pytest.param("seed-conv", "sgd", "teacher", 4, id="conv-sgd"),
    pytest.param("siamese-digits", "adam", "digits", 16, id="digits-classifier-with-head"),
]


@pytest.mark.parametrize(("name", "optimizer", "dataset", "batch_size"), CASES)
def test_training_n_steps_then_continuing_to_n_plus_m_equals_one_run(name, optimizer, dataset, batch_size):
    spec = sharecore.preset(name)
    lr = 0.05 if optimizer == "sgd" else 0.01
    config = TrainConfig(
        steps=30, batch_size=batch_size, optimizer=optimizer, learning_rate=lr, dataset=dataset, record_every=4, seed=3
    )
    one = sharecore.train(spec, config)
    first = sharecore.train(spec, dataclasses.replace(config, steps=18))
    parts = sharecore.train(spec, config, resume=first)
    assert_same_as_one_run(parts, one)
    # The first part's records are kept as they were: its last step (18) was recorded there.
    assert set(parts.gradients.step) == {1, 4, 8, 12, 16, 18, 20, 24, 28, 30}
    assert parts.history.iloc[: len(first.history)].equals(first.history)
    if dataset == "digits":  # the classification head is part of the state and carried on
        assert parts.params == one.params
        assert parts.history.accuracy.notna().all()
    assert parts.seconds > first.seconds  # the parts' times, summed


def test_continuing_twice_equals_one_run():
    spec = sharecore.preset("seed-dense")
    config = TrainConfig(steps=60, batch_size=8, seed=2)
    one = sharecore.train(spec, config)
    a = sharecore.train(spec, dataclasses.replace(config, steps=20))
    b = sharecore.train(spec, dataclasses.replace(config, steps=40), resume=a)
    c = sharecore.train(spec, config, resume=b)
    assert_same_as_one_run(c, one)
    # The held-out schedule counts absolute steps: the last part scores the steps one run scores after 40
    # (a fifth of its 60 steps, and the last), whatever the parts' own schedules were.
    after = c.heldout[c.heldout.step > 40].step
    assert list(after.unique()) == list(one.heldout[one.heldout.step > 40].step.unique()) == [48, 60]


def test_a_stopped_run_can_be_continued_to_the_numbers_of_one_run():
    spec, config = sharecore.preset("seed-dense"), TrainConfig(steps=30, batch_size=8, seed=4)
    stop = threading.Event()
    stopped = sharecore.train(spec, config, progress_every=5, on_progress=lambda progress: stop.set(), stop=stop)
    assert stopped.steps_done == 5
    assert "stopped by request after step 5" in stopped.stop_reason
    assert stopped.state is not None and stopped.state.steps_done == 5
    parts = sharecore.train(spec, config, resume=stopped, progress_every=5)
    assert_same_as_one_run(parts, sharecore.train(spec, config, progress_every=5))


def test_the_state_holds_every_variable_and_optimizer_slot_and_the_json_ready_batch_generator():
    spec, config = sharecore.preset("seed-dense"), TrainConfig(steps=7, batch_size=5, seed=6)
    result = sharecore.train(spec, config)
    arrays = result.state.arrays
    # seed-dense: tied has the one W; untied has a copy per use. Adam adds its iteration count, its
    # learning rate, and a momentum and a velocity per variable.
    assert list(arrays) == [
        "tied/var/0",
        *(f"tied/opt/{i}" for i in range(4)),
        "untied/var/0",
        "untied/var/1",
        *(f"untied/opt/{i}" for i in range(6)),
    ]
    np.testing.assert_array_equal(arrays["tied/var/0"], result.weights["end"]["tied"]["W"])
    np.testing.assert_array_equal(arrays["untied/var/1"], result.weights["end"]["untied"]["dense_2"])
    assert int(arrays["tied/opt/0"]) == int(arrays["untied/opt/0"]) == 7  # Adam's iterations
    assert float(arrays["tied/opt/1"]) == pytest.approx(0.01)
    # The generator has drawn 7 batches of 5 indices into the data set's pool, and no more.
    rng = np.random.default_rng([6, 3])
    rng.integers(0, len(make_dataset(spec, "teacher", 6).x), (7, 5))
    assert result.state.rng == rng.bit_generator.state
    assert json.loads(json.dumps(result.state.rng)) == result.state.rng


def test_the_state_is_taken_once_at_the_end_not_per_chunk(monkeypatch):
    from sharecore.nn import training

    calls = []
    real = training._state_arrays
    monkeypatch.setattr(training, "_state_arrays", lambda variants: calls.append(1) or real(variants))
    sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=6, batch_size=4), progress_every=1)
    assert calls == [1]


def test_a_continued_run_may_change_the_learning_rate_from_its_next_step_on():
    spec = sharecore.preset("seed-dense")
    config = TrainConfig(steps=12, batch_size=8, optimizer="sgd", learning_rate=0.05, seed=1)
    one = sharecore.train(spec, config)
    first = sharecore.train(spec, dataclasses.replace(config, steps=6))
    slower = sharecore.train(spec, dataclasses.replace(config, learning_rate=0.005), resume=first)
    loss = slower.history.set_index(["step", "variant"]).loss
    same = one.history.set_index(["step", "variant"]).loss
    # Step 7's loss is measured before its update, on the weights after step 6: the same in both.
    np.testing.assert_allclose(loss.loc[:7], same.loc[:7], rtol=RTOL)
    assert not np.allclose(loss.loc[8:], same.loc[8:], rtol=1e-4)
    assert float(slower.state.arrays["tied/opt/1"]) == pytest.approx(0.005)
    assert slower.config.learning_rate == 0.005


def test_a_resumed_run_on_a_pooled_trainer_another_run_used_meanwhile_starts_from_its_own_state(monkeypatch):
    from sharecore.nn import trainer as pool

    spec, config = sharecore.preset("seed-dense"), TrainConfig(steps=16, batch_size=8, seed=0)
    first = sharecore.train(spec, dataclasses.replace(config, steps=8))
    # Another seed shares the compiled trainer (seeds are not part of the pool key) and moves its weights.
    sharecore.train(spec, dataclasses.replace(config, seed=9, steps=12))
    made = []

    class CountedTrainer(pool.Trainer):
        def __init__(self, *args, **kwargs) -> None:
            made.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(pool, "Trainer", CountedTrainer)
    parts = sharecore.train(spec, config, resume=first)
    assert made == []  # the pooled trainer, not a new one
    assert_same_as_one_run(parts, sharecore.train(spec, config))


def test_a_background_run_continues_a_run():
    spec, config = sharecore.preset("seed-dense"), TrainConfig(steps=20, batch_size=8, seed=5)
    first = sharecore.train(spec, dataclasses.replace(config, steps=10))
    run = BackgroundRun(spec, config, resume=first).start()
    assert run.wait(120)
    assert run.error is None
    assert run.fraction == 1.0
    assert_same_as_one_run(run.result, sharecore.train(spec, config))


# ----------------------------------------------------------------------------- what cannot continue
@pytest.fixture(scope="module")
def short_run() -> sharecore.TrainResult:
    return sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=5, batch_size=8))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"optimizer": "sgd"}, "Received: optimizer='sgd' (the earlier run had 'adam')"),
        ({"batch_size": 16}, "Received: batch_size=16 (the earlier run had 8)"),
        ({"seed": 1}, "Received: seed=1 (the earlier run had 0)"),
        ({"dataset": "digits"}, "Received: dataset='digits' (the earlier run had 'teacher')"),
    ],
)
def test_continuing_with_another_optimizer_batch_size_seed_or_dataset_is_refused(short_run, change, says):
    config = dataclasses.replace(short_run.config, steps=10, **change)
    with pytest.raises(ValueError, match="keeps the earlier run's") as err:
        sharecore.train(short_run.spec, config, resume=short_run)
    assert says in str(err.value)
    assert "dataclasses.replace(previous.config" in str(err.value)


def test_continuing_with_another_teacher_is_refused(short_run):
    config = dataclasses.replace(short_run.config, steps=10, teacher="tied")
    with pytest.raises(ValueError, match="Received: teacher='tied' \\(the earlier run had 'untied'\\)"):
        sharecore.train(short_run.spec, config, resume=short_run)


@pytest.mark.parametrize("steps", [5, 3])
def test_continuing_to_no_more_steps_than_were_done_is_refused(short_run, steps):
    config = dataclasses.replace(short_run.config, steps=steps)
    with pytest.raises(ValueError, match=rf"more than the 5 steps.*steps=5 \+ m.*Received: steps={steps}"):
        sharecore.train(short_run.spec, config, resume=short_run)


def test_continuing_with_another_spec_is_refused_but_a_new_name_is_fine(short_run):
    config = dataclasses.replace(short_run.config, steps=10)
    with pytest.raises(
        ValueError,
        match="only the name and description may change.*its tensors, uses and outputs differ from those of the earlier run's spec 'seed-dense'",
    ):
        sharecore.train(sharecore.preset("partial-share"), config, resume=short_run)
    renamed = dataclasses.replace(short_run.spec, name="my-model-2", description="renamed")
    assert sharecore.train(renamed, config, resume=short_run).steps_done == 10


def test_a_diverged_run_has_no_state_and_continuing_it_says_to_start_again():
    spec = sharecore.preset("seed-dense")
    diverged = sharecore.train(spec, TrainConfig(steps=40, batch_size=8, optimizer="sgd", learning_rate=1e6))
    assert "non-finite" in diverged.stop_reason
    assert diverged.state is None
    with pytest.raises(ValueError, match="no state to continue from .*non-finite.*call train without resume"):
        sharecore.train(spec, dataclasses.replace(diverged.config, steps=50), resume=diverged)


def test_resume_must_be_a_train_result(short_run):
    with pytest.raises(ValueError, match="Received: resume of type TrainState"):
        sharecore.train(short_run.spec, dataclasses.replace(short_run.config, steps=10), resume=short_run.state)
