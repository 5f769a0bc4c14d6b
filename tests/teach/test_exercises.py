"""The Exercises: every claim holds on real runs (seed 0 here, seeds 1 and 2 in a slow test), the numbers
behind it agree with an independent computation (NumPy forward passes, plain Keras counts, the README's
published counts), and the page lists every exercise and sets one up in a click."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import sharecore
from sharecore.core.results import TrainResult
from sharecore.nn.data import make_dataset
from sharecore.teach.exercises import (
    EXERCISES,
    SAME_COPIES,
    SAME_DECIMALS,
    Claim,
    Exercise,
    exercise,
    verify,
)
from tests.support.apptest import go, open_app


def run(ex: Exercise) -> tuple[list[TrainResult], Claim]:
    """Trains the exercise's runs with `sharecore.train` and checks its claim on them."""
    results = [sharecore.train(s.spec, s.config) for s in ex.runs]
    return results, ex.check(results, ex.setups)


def heldout(result: TrainResult) -> tuple[np.ndarray, np.ndarray]:
    """The held-out inputs and targets the run was scored on, drawn again from the data set."""
    c = result.config
    data = make_dataset(result.spec, c.dataset, c.seed, c.teacher)
    return data.heldout_x, data.heldout_y


def final_heldout(result: TrainResult, variant: str) -> float:
    h = result.heldout[result.heldout.variant == variant]
    return float(h[h.step == h.step.max()].loss.iloc[0])


def final_distance(result: TrainResult, variant: str) -> float:
    d = result.divergence[result.divergence.variant == variant]
    return float(d[d.step == d.step.max()].relative_distance.max())


# ----------------------------------------------------------------------------- independent checks, per exercise
def independent_parameter_savings(results: list[TrainResult], ex: Exercise) -> None:
    # The README's published counts, hand arithmetic, and count_params() of the built Keras models.
    published = {"seed-conv": (2_736, 5_040), "albert-mlp": (1_024, 3_072)}
    for s in ex.setups:
        tied, untied = published[s.preset]
        assert sharecore.build(s.spec, tied=True).count_params() == tied
        assert sharecore.build(s.spec, tied=False).count_params() == untied
    assert 5_040 - 2_736 == 3 * 3 * 16 * 16  # one copy of K
    assert 3_072 - 1_024 == 2 * (16 * 32 + 32 * 16)  # two more copies of each projection


def independent_untied_drift(results: list[TrainResult], ex: Exercise) -> None:
    (res,) = results
    w0 = res.weights["start"]["tied"]["W"]
    end = res.weights["end"]["untied"]
    distance = np.linalg.norm(end["dense_1"] - end["dense_2"]) / np.linalg.norm(w0)
    np.testing.assert_allclose(final_distance(res, "untied"), distance, rtol=1e-4)
    # Exactly 0, structurally: the tied uses read one variable, so each difference is of equal bits.
    assert (res.divergence[res.divergence.variant == "tied"].relative_distance == 0.0).all()


def independent_tug_of_war(results: list[TrainResult], ex: Exercise) -> None:
    # Two uses: |g1 + g2|^2 = |g1|^2 + |g2|^2 + 2 |g1| |g2| cos(g1, g2), at every recorded step.
    (res,) = results
    g = res.gradients[res.gradients.variant == "tied"]
    for _, rows in g.groupby("step"):
        n1, n2 = rows.grad_norm
        cos = rows.cosine_with_others.iloc[0]
        np.testing.assert_allclose(rows.sum_norm.iloc[0] ** 2, n1**2 + n2**2 + 2 * n1 * n2 * cos, rtol=1e-3, atol=1e-7)


def independent_tied_teacher_agreement(results: list[TrainResult], ex: Exercise) -> None:
    agree, _ = results
    end = agree.weights["end"]["untied"]
    # The untied copies are the same numbers after 60 steps (the dense kernel and the conv's (1, 1, 10, 5)), to
    # float rounding: the two ops add the same products in different orders, so not bit for bit on every CPU.
    w0 = agree.weights["start"]["tied"]["W"]
    distance = np.linalg.norm(end["dense"] - end["conv"].reshape(10, 5)) / np.linalg.norm(w0)
    assert distance < SAME_COPIES
    np.testing.assert_allclose(final_distance(agree, "untied"), distance, rtol=1e-3, atol=1e-9)
    x, y = heldout(agree)
    np.testing.assert_allclose(y[:, :5], y[:, 5:], rtol=1e-5, atol=1e-6)  # a tied teacher labels both halves alike


def independent_conv_vs_dense(results: list[TrainResult], ex: Exercise) -> None:
    # The tied model outputs the same numbers on both halves [f, f]; against targets [y1, y2] no f scores
    # better than their average, whose mean square error is mean((y1 - y2)^2) / 4.
    (res,) = results
    _, y = heldout(res)
    floor = float(np.mean((y[:, :5] - y[:, 5:]) ** 2) / 4)
    assert final_heldout(res, "tied") >= floor * (1 - 1e-5)
    assert final_heldout(res, "untied") < floor
    w = res.weights["end"]["tied"]["W"]
    x, _ = heldout(res)
    f = x @ w
    np.testing.assert_allclose(final_heldout(res, "tied"), np.mean((np.concatenate([f, f], 1) - y) ** 2), rtol=1e-4)


def independent_transpose_vs_reshape(results: list[TrainResult], ex: Exercise) -> None:
    # The tied held-out losses, recomputed by a NumPy forward pass: tanh(x W) then the decoder's view of W.
    for res, decoder in zip(results, (lambda w: w.T, lambda w: w.reshape(5, 10))):
        x, y = heldout(res)
        w = res.weights["end"]["tied"]["W"]
        loss = np.mean((np.tanh(x @ w) @ decoder(w) - y) ** 2)
        np.testing.assert_allclose(final_heldout(res, "tied"), loss, rtol=1e-4)


def independent_partial(results: list[TrainResult], ex: Exercise) -> None:
    (res,) = results
    assert sharecore.build(res.spec, tied=True).count_params() == 80
    assert sharecore.build(res.spec, tied=False).count_params() == 10 * 8 + 10 * 4
    w0 = res.weights["start"]["tied"]["W"][:, :4]  # only the entries both uses read
    end = res.weights["end"]["untied"]
    distance = np.linalg.norm(end["wide"][:, :4] - end["narrow"]) / np.linalg.norm(w0)
    np.testing.assert_allclose(final_distance(res, "untied"), distance, rtol=1e-4)


def independent_collapse(results: list[TrainResult], ex: Exercise) -> None:
    # Dead ReLUs output 0, which scores the targets' mean square: the untied model exactly, the tied one within 1%.
    _, hot = results
    _, y = heldout(hot)
    zero = float(np.mean(y**2))
    np.testing.assert_allclose(final_heldout(hot, "untied"), zero, rtol=1e-4)
    np.testing.assert_allclose(final_heldout(hot, "tied"), zero, rtol=1e-2)


def independent_siamese(results: list[TrainResult], ex: Exercise) -> None:
    (res,) = results
    assert (res.params["tied"], res.params["untied"]) == (4_680, 9_360)  # the README's counts
    assert res.dataset.startswith("pairs of 8x8 digits")


def independent_tied_teacher_chain(results: list[TrainResult], ex: Exercise) -> None:
    # seed-dense is x -> tanh(x W1) W2: recompute both held-out losses with NumPy.
    (res,) = results
    x, y = heldout(res)
    w = res.weights["end"]["tied"]["W"]
    np.testing.assert_allclose(final_heldout(res, "tied"), np.mean((np.tanh(x @ w) @ w - y) ** 2), rtol=1e-4)
    u = res.weights["end"]["untied"]
    untied = np.mean((np.tanh(x @ u["dense_1"]) @ u["dense_2"] - y) ** 2)
    np.testing.assert_allclose(final_heldout(res, "untied"), untied, rtol=1e-4)


INDEPENDENT = {
    "parameter-savings": independent_parameter_savings,
    "untied-drift": independent_untied_drift,
    "gradient-tug-of-war": independent_tug_of_war,
    "tied-teacher-agreement": independent_tied_teacher_agreement,
    "conv-vs-dense": independent_conv_vs_dense,
    "transpose-vs-reshape": independent_transpose_vs_reshape,
    "partial-sharing": independent_partial,
    "learning-rate-collapse": independent_collapse,
    "siamese-generalisation": independent_siamese,
    "tied-teacher-chain": independent_tied_teacher_chain,
}


# ----------------------------------------------------------------------------- the claims
@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.id)
def test_each_exercise_claim_holds_on_real_runs_and_its_numbers_agree_with_an_independent_computation(ex):
    results, claim = run(ex)
    assert all(r.stop_reason is None or ex.id == "learning-rate-collapse" for r in results)
    assert claim.holds, claim.detail
    assert re.search(r"\d", claim.detail), "a claim states its measured numbers"
    INDEPENDENT[ex.id](results, ex)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("ex", [ex for ex in EXERCISES if ex.trains], ids=lambda ex: ex.id)
def test_each_exercise_claim_holds_on_other_seeds_too(ex, seed):
    results, claim = run(ex.reseeded(seed))
    assert claim.holds, claim.detail
    INDEPENDENT[ex.id](results, ex)


def test_a_check_says_when_its_claim_does_not_hold():
    ex = exercise("tied-teacher-chain")
    (res,) = [sharecore.train(s.spec, s.config) for s in ex.runs]
    # Swap the variants' held-out rows: the claim (untied lower) must now fail, with the numbers.
    res.heldout = res.heldout.assign(variant=res.heldout.variant.map({"tied": "untied", "untied": "tied"}))
    claim = ex.check([res], ex.setups)
    assert not claim.holds
    assert ">=" in claim.detail


# ----------------------------------------------------------------------------- the table itself
def test_there_are_at_least_eight_exercises_with_unique_slugs_and_every_spec_validates():
    assert len(EXERCISES) >= 8
    ids = [ex.id for ex in EXERCISES]
    assert len(set(ids)) == len(ids)
    for ex in EXERCISES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", ex.id)
        assert ex.setups and ex.title and ex.question and ex.look_at and ex.expect
        assert exercise(ex.id) is ex
        assert bool(ex.then) == (len(ex.setups) > 1), f"{ex.id}: say what to change for a second set-up"
        assert ex.page in {"lab", "build"}
        for look in ex.looks:  # tests/app/test_exercises.py finds each element on its page
            assert look.page in ui_pages() and look.what.endswith(".")
            assert bool(look.tab) == (look.element == "build.tabs")
        assert ex.runs == (ex.setups if ex.trains else ())
        for s in ex.setups:
            sharecore.validate(s.spec)
            assert s.spec.uses and s.preset in sharecore.presets()
            assert s.config.steps * s.config.batch_size <= 150 * 32, "each exercise trains in a few seconds"


def ui_pages() -> set[str]:
    from ui.sitemap import PAGES

    return set(PAGES)


def test_zero_in_words_is_the_tolerance_the_checks_use():
    # "0 to 6 decimal places": everything below SAME_COPIES rounds to 0.000000, and nothing above it.
    assert f"{SAME_COPIES * 0.999:.{SAME_DECIMALS}f}" == "0." + "0" * SAME_DECIMALS
    assert f"{SAME_COPIES * 1.001:.{SAME_DECIMALS}f}" != "0." + "0" * SAME_DECIMALS
    for ex in EXERCISES:
        text = " ".join([ex.question, ex.expect, ex.then, *(look.what for look in ex.looks)])
        assert "exactly 0" not in text and "1e-6" not in text, ex.id


def test_line_styles_and_panels_are_named_only_where_a_test_holds_them_to_the_chart():
    # tests/app/test_exercises.py checks each look's 'tied solid'/'untied dashed' and panel against
    # the chart the page draws; a style named anywhere else would go unchecked.
    for ex in EXERCISES:
        for text in (ex.question, ex.expect, ex.then):
            assert not re.search(r"\b(solid|dashed|dash|panel)\b", text), f"{ex.id}: {text}"
        for look in ex.looks:
            styles = re.findall(r"\b(solid|dashed)\b", look.what)
            assert len(styles) == len(re.findall(r"\b(?:tied|untied) (?:solid|dashed)\b", look.what)), look.what


def test_the_siamese_exercise_asks_what_its_data_set_asks():
    ex = exercise("siamese-generalisation")
    (res,) = [sharecore.train(s.spec, dataclasses.replace(s.config, steps=1)) for s in ex.runs]
    assert "is the left digit the larger?" in res.dataset
    assert "larger" in ex.question and "same digit" not in ex.question + ex.expect


def test_a_claim_on_the_specs_alone_needs_no_training():
    ex = exercise("parameter-savings")
    assert ex.runs == ()
    claim = ex.check([], ex.setups)
    assert claim.holds
    assert "2,736" in claim.detail and "5,040" in claim.detail and "3,072" in claim.detail
    assert verify(ex) == claim


def test_an_unknown_exercise_is_a_value_error_naming_the_choices():
    with pytest.raises(ValueError, match="unknown exercise 'nope'.*untied-drift"):
        exercise("nope")


def test_reseeding_changes_only_the_seed():
    ex = exercise("learning-rate-collapse")
    again = ex.reseeded(2)
    assert [s.config.seed for s in again.setups] == [2, 2]
    assert [s.config.learning_rate for s in again.setups] == [0.01, 0.1]
    assert [s.spec for s in again.setups] == [s.spec for s in ex.setups]


# ----------------------------------------------------------------------------- the page
def test_the_exercises_page_lists_every_exercise_and_hides_the_answers_in_expanders():
    at = open_app("exercises")
    assert not at.exception, at.exception
    headers = [h.value for h in at.subheader]
    assert headers == [f"{i}. {ex.title}" for i, ex in enumerate(EXERCISES, 1)]
    assert [e.label for e in at.expander] == ["What you should see"] * len(EXERCISES)
    text = " ".join(m.value for m in at.markdown)
    for ex in EXERCISES:
        assert ex.question in text and all(look.what in text for look in ex.looks)
        assert ex.expect in " ".join(m.value for m in at.expander[EXERCISES.index(ex)].markdown)
    assert "set the learning rate to 0.1" in text


@pytest.mark.parametrize("exercise_id", ["transpose-vs-reshape", "parameter-savings"])
def test_set_up_loads_the_first_set_up_into_the_session_and_opens_its_page(exercise_id):
    ex = exercise(exercise_id)
    at = open_app("exercises")
    at.button(key=f"exercises.setup.{ex.id}").click().run()
    assert not at.exception, at.exception
    first = ex.setups[0]
    assert at.session_state["spec"] == first.spec
    assert at.session_state["config"] == first.config
    assert at.session_state["preset"] == first.preset
    # The page it names is open: the exercises are gone, the Lab's Train button or the Build title is there.
    assert "Exercises" not in [t.value for t in at.title]
    if ex.page == "lab":
        assert at.button(key="lab.train")
    else:
        assert [t.value for t in at.title] == ["Build"]
    go(at, "home")  # the experiment stays the session's on every page
    assert at.session_state["config"] == first.config
