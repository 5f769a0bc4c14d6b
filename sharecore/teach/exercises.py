"""Guided what-ifs for a workshop: set up, train, look, and check what you saw against the numbers.

Each `Exercise` asks one question about tied and untied weights, names the set-ups that answer
it (a preset, changed with `dataclasses.replace`, and its training settings), says where to look
and what to expect, and carries a `check` that states the claim on the numbers of real runs.
The tests train every set-up and assert each claim, for seeds 0, 1 and 2.

Plain Python: no TensorFlow and no Streamlit at import. `verify` trains (and so imports TensorFlow).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sharecore.core.config import TrainConfig
from sharecore.core.params import param_report
from sharecore.core.presets import preset
from sharecore.core.spec import ModelSpec, Rule

if TYPE_CHECKING:
    import pandas as pd

    from sharecore.core.results import TrainResult


@dataclass(frozen=True)
class Setup:
    """One experiment of an exercise: a spec (from a preset) and how to train it."""

    label: str  # what the exercise calls it, e.g. 'learning rate 0.1'
    preset: str  # the preset the spec is made from
    spec: ModelSpec
    config: TrainConfig


@dataclass(frozen=True)
class Claim:
    """What an exercise's check found: whether its claim holds, and the numbers it measured."""

    holds: bool
    detail: str  # the measured numbers, e.g. 'tied final loss 0.21 < untied 0.35'


# The largest relative distance (of the starting norm) at which two untied copies count as the same
# numbers: 0 to 6 decimal places, as a person reads a chart's hover or a table (0.0000005 rounds to
# 0.000000 only just; 5e-7 rounds to 0.000001, so the limit is strictly below it). Copies that get the
# same gradient through different ops (a dense matmul and a 1x1 conv add the same products in
# different orders) drift apart by float32 rounding only, and by how much depends on the CPU's kernels:
# seed-mixed with a tied teacher, seeds 0-4, ends 0 apart with oneDNN off and 5e-8 to 6.2e-8 with it on
# (seed 0: 5.5e-8 on an Intel and 6e-8 on an AMD host), and stays there over 1,000 steps: a margin of 8.
SAME_COPIES = 5e-7
SAME_DECIMALS = 6  # SAME_COPIES in words: "0 to 6 decimal places" (a test holds the two together)
ZERO = f"0 to {SAME_DECIMALS} decimal places"

# check(results, setups): `results` holds one TrainResult per set-up, in order, for an exercise
# that trains, and is empty for one that does not (its claim is on the specs alone).
Check = Callable[[Sequence["TrainResult"], Sequence[Setup]], Claim]


@dataclass(frozen=True)
class Look:
    """One place an exercise sends the class: a page, one element on it, and what to do or read there.

    Data, not prose, so that the page can open the place (Set up opens the first look's page and tab)
    and a test can find each element on its page and hold `what` to the panels and line styles the
    chart really draws.
    """

    page: str  # a page of the app, a key of ui.sitemap.PAGES: 'lab', 'build', 'gradients', 'divergence'
    element: str  # the key the page gives the element: a chart ('divergence.chart'), a button, the tabs
    what: str  # what to do or read there; line styles as the chart draws them ('tied solid, untied dashed')
    tab: str = ""  # the tab of `element` to open, by its label ('Parameters'), or '' when it is no tabs
    panel: str = ""  # the chart's panel to read, by its title ('held-out'), or '' for the whole element


# The elements the looks name, by the keys the pages give them (ui/keys.py).
TRAIN = "lab.train"  # the Lab's Train button
LOSS = "lab.loss"  # the Lab's loss chart of the kept runs: panels 'training' and 'held-out'
BUILD_TABS = "build.tabs"  # the Build page's tabs
DIVERGENCE = "divergence.chart"  # the Divergence page's chart: panels 'how far apart' and 'how aligned'
FLOW = "gradients.flow"  # Gradient flow's norms: panels 'tied' and 'untied'
COSINE = "gradients.cosine"  # Gradient flow's cosines: panels 'tied' and 'untied'


def _train(steps: int = 60, what: str = "") -> Look:
    return Look("lab", TRAIN, f"press Train ({steps} steps, tied and untied side by side){what}.")


@dataclass(frozen=True)
class Exercise:
    """One guided what-if."""

    id: str  # a slug, e.g. 'untied-drift'
    title: str
    question: str  # what the class is asked to guess
    setups: tuple[Setup, ...]  # the first is what the page's Set up button loads
    looks: tuple[Look, ...]  # where to go, in order; Set up opens the first
    expect: str  # what you should see, with the direction of the numbers
    check: Check
    then: str = ""  # what to change for the second set-up (empty with one set-up)
    trains: bool = True  # False: the claim is on the specs alone (parameter counts)

    @property
    def page(self) -> str:
        """The page Set up opens: the first look's."""
        return self.looks[0].page

    @property
    def look_at(self) -> str:
        """The looks as one line of text, e.g. for a download or a room's board."""
        return " Then ".join(f"{look.page}{f' ({look.tab})' if look.tab else ''}: {look.what}" for look in self.looks)

    @property
    def runs(self) -> tuple[Setup, ...]:
        """The set-ups to train before `check`: all of them, or () for a claim on the specs alone."""
        return self.setups if self.trains else ()

    def reseeded(self, seed: int) -> Exercise:
        """The same exercise with every set-up trained at `seed` (to see that its claim is no accident of one seed)."""
        return dataclasses.replace(
            self,
            setups=tuple(dataclasses.replace(s, config=dataclasses.replace(s.config, seed=seed)) for s in self.setups),
        )


def verify(exercise: Exercise) -> Claim:
    """Trains the exercise's runs with `sharecore.train` and returns its claim on their numbers."""
    from sharecore.nn.training import train  # TensorFlow only here

    return exercise.check([train(s.spec, s.config) for s in exercise.runs], exercise.setups)


# ----------------------------------------------------------------------------- reading results
def _last(frame: pd.DataFrame, variant: str, column: str = "loss") -> float:
    """`column` of `variant` at the frame's last step."""
    rows = frame[frame.variant == variant]
    return float(rows[rows.step == rows.step.max()][column].iloc[0])


def _divergence(result: TrainResult, variant: str) -> pd.Series:
    """The largest relative distance between two uses' weights, per recorded step."""
    rows = result.divergence[result.divergence.variant == variant]
    return rows.groupby("step").relative_distance.max()


def _tied_gradients(result: TrainResult, step: int) -> pd.DataFrame:
    """The tied model's gradient records at `step` (-1: the last recorded step)."""
    rows = result.gradients[result.gradients.variant == "tied"]
    return rows[rows.step == (rows.step.max() if step == -1 else step)]


def _claim(parts: list[tuple[bool, str]]) -> Claim:
    """All parts must hold; the detail lists every part's numbers."""
    return Claim(all(ok for ok, _ in parts), "; ".join(text for _, text in parts))


def _compare(a: float, b: float, a_name: str, b_name: str) -> tuple[bool, str]:
    """(a < b, 'a_name 0.21 < b_name 0.35'), with the sign that was measured."""
    return a < b, f"{a_name} {a:.3f} {'<' if a < b else '>='} {b_name} {b:.3f}"


# ----------------------------------------------------------------------------- the set-ups
def _setup(label: str, name: str, spec: ModelSpec | None = None, **config: object) -> Setup:
    return Setup(label, name, spec or preset(name), TrainConfig(**config))  # type: ignore[arg-type]


def _with_decoder_rule(name: str, rule: dict) -> ModelSpec:
    """Preset `name` with its 'decoder' use reading the tensor through `rule`."""
    spec = preset(name)
    uses = tuple(dataclasses.replace(u, rule=Rule.from_dict(rule)) if u.name == "decoder" else u for u in spec.uses)
    return dataclasses.replace(spec, uses=uses, description=f"{spec.description} Here the decoder's rule is {rule}.")


# ----------------------------------------------------------------------------- the checks
def _saved_copies(spec: ModelSpec) -> int:
    """Hand arithmetic: an untied model stores one more full copy of a shared tensor per extra use.

    Holds for rules that read the whole tensor (identity, transpose, reshape), as in these presets.
    """
    sizes = {t.name: math.prod(t.shape) for t in spec.tensors}
    uses = [u.tensor for u in spec.uses if u.tensor is not None]
    return sum((uses.count(t) - 1) * size for t, size in sizes.items() if t in uses)


def _check_param_savings(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    parts = []
    for s in setups:
        report = param_report(s.spec)
        expected = _saved_copies(s.spec)
        parts.append(
            (
                report.saved == expected,
                f"{s.preset}: tied {report.tied_total:,}, untied {report.untied_total:,}, saved "
                f"{report.saved:,} {'=' if report.saved == expected else '!='} {expected:,} "
                f"(one copy of each shared tensor per extra use; {report.ratio:.2f}x)",
            )
        )
    return _claim(parts)


def _check_untied_drift(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    (res,) = results
    tied, untied = _divergence(res, "tied"), _divergence(res, "untied")
    start, end = float(untied.iloc[0]), float(untied.iloc[-1])
    # Both 0s are exact here (at step 0 the copies are assigned the same numbers, and the tied uses
    # read one variable), but the claim is the one the text makes, which holds on any CPU.
    return _claim(
        [
            (start < SAME_COPIES, f"untied distance at step 0: {start:.3g} ({ZERO})"),
            (end > 0.5, f"after {res.steps_done} steps: {end:.3f} (> 0.5 of the starting norm)"),
            (
                float(tied.abs().max()) < SAME_COPIES,
                f"tied, largest at any step: {float(tied.abs().max()):.3g} ({ZERO})",
            ),
        ]
    )


def _check_tug_of_war(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    (res,) = results
    first, last = _tied_gradients(res, 1), _tied_gradients(res, -1)
    cos_first, cos_last = float(first.cosine_with_others.iloc[0]), float(last.cosine_with_others.iloc[0])
    sum_first, sum_last = float(first.sum_norm.iloc[0]), float(last.sum_norm.iloc[0])
    parts_first, parts_last = first.grad_norm.max(), last.grad_norm.min()
    return _claim(
        [
            (cos_first > 0, f"step 1: cosine {cos_first:+.2f}"),
            (sum_first > parts_first, f"sum {sum_first:.3f} vs largest part {parts_first:.3f}"),
            (cos_last < -0.5, f"step {int(last.step.iloc[0])}: cosine {cos_last:+.2f}"),
            (sum_last < parts_last, f"sum {sum_last:.3f} vs smallest part {parts_last:.3f}"),
        ]
    )


def _check_tied_teacher_agreement(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    agree, disagree = results
    cosines = agree.gradients[agree.gradients.variant == "tied"].cosine_with_others
    drift = float(_divergence(agree, "untied").abs().max())
    losses = agree.history.pivot(index="step", columns="variant", values="loss")
    same = float((losses.tied - losses.untied).abs().max())
    end = float(_tied_gradients(disagree, -1).cosine_with_others.iloc[0])
    return _claim(
        [
            (float(cosines.min()) > 0.999, f"tied teacher: smallest cosine {float(cosines.min()):.4f}"),
            # Not exactly 0: the dense and the conv compute their (equal) gradients with different kernels.
            (drift < SAME_COPIES, f"untied copies' largest distance {drift:.3g} ({ZERO})"),
            (same < 1e-4, f"largest tied-untied loss difference {same:.2g}"),
            (end < 0, f"untied teacher: cosine at the last step {end:+.2f}"),
        ]
    )


def _check_conv_vs_dense(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    (res,) = results
    untied = _divergence(res, "untied")
    start, end = float(untied.iloc[0]), float(untied.iloc[-1])
    tied_loss, untied_loss = _last(res.heldout, "tied"), _last(res.heldout, "untied")
    better, text = _compare(untied_loss, tied_loss, "held-out loss untied", "tied")
    return _claim(
        [
            # At step 0 both copies hold the numbers they were assigned (W, and W reshaped).
            (start < SAME_COPIES, f"dense and conv copies at step 0: distance {start:.3g} ({ZERO})"),
            (end > 0.5, f"at the end {end:.3f}"),
            (better and tied_loss > 1.5 * untied_loss, text),
        ]
    )


def _check_transpose_vs_reshape(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    transpose, reshape = (_last(r.heldout, "tied") for r in results)
    return _claim([_compare(reshape, transpose, "tied held-out loss with reshape", "with transpose")])


def _check_partial(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    (res,) = results
    report = param_report(setups[0].spec)
    untied = res.divergence[res.divergence.variant == "untied"]
    pairs = sorted({(a, b) for a, b in zip(untied.use_a, untied.use_b)})
    drift = _divergence(res, "untied")
    tied = float(_divergence(res, "tied").abs().max())
    # 0s as in _check_untied_drift: assigned equal numbers at step 0, one variable when tied.
    return _claim(
        [
            (
                (report.tied_total, report.untied_total) == (80, 120),
                f"tied {report.tied_total}, untied {report.untied_total} (the narrow copy of W[:, :4] is 40)",
            ),
            (pairs == [("wide", "narrow")], f"compared pairs {pairs}"),
            (
                float(drift.iloc[0]) < SAME_COPIES and float(drift.iloc[-1]) > 0.5,
                f"untied distance on W[:, :4] from {float(drift.iloc[0]):.3g} to {float(drift.iloc[-1]):.3f}",
            ),
            (tied < SAME_COPIES, f"tied {tied:.3g} ({ZERO})"),
        ]
    )


def _check_collapse(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    calm, hot = results
    calm_tied, calm_untied = _last(calm.history, "tied"), _last(calm.history, "untied")
    losses = hot.history.pivot(index="step", columns="variant", values="loss").iloc[-10:]
    gap = float((losses.tied - losses.untied).abs().max())
    held_tied, held_untied = _last(hot.heldout, "tied"), _last(hot.heldout, "untied")

    def last_gradient(res: TrainResult) -> float:
        return float(res.gradients[res.gradients.step == res.gradients.step.max()].grad_norm.abs().max())

    calm_grad, hot_grad = last_gradient(calm), last_gradient(hot)
    return _claim(
        [
            (max(calm_tied, calm_untied) < 0.6, f"lr 0.01: final loss tied {calm_tied:.3f}, untied {calm_untied:.3f}"),
            (hot.stop_reason is None, f"lr 0.1: no NaN ({hot.stop_reason or 'ran to the end'})"),
            (
                min(held_tied, held_untied) > 0.9 and abs(held_tied - held_untied) < 0.01 * held_untied,
                f"held-out loss tied {held_tied:.4f}, untied {held_untied:.4f} (about the targets' mean square)",
            ),
            (gap < 0.01, f"training losses over the last 10 steps differ by at most {gap:.2g}"),
            (
                hot_grad < 1e-3 < calm_grad,
                f"largest gradient at the last step {hot_grad:.2g} (lr 0.01: {calm_grad:.2g})",
            ),
        ]
    )


def _check_siamese(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    (res,) = results
    tied, untied = _last(res.heldout, "tied"), _last(res.heldout, "untied")
    acc_t, acc_u = _last(res.heldout, "tied", "accuracy"), _last(res.heldout, "untied", "accuracy")
    ok, text = _compare(tied, untied, "held-out loss tied", "untied")
    return _claim([(ok, f"{text} (held-out accuracy {acc_t:.1%} and {acc_u:.1%})")])


def _check_tied_teacher_chain(results: Sequence[TrainResult], setups: Sequence[Setup]) -> Claim:
    (res,) = results
    tied, untied = _last(res.heldout, "tied"), _last(res.heldout, "untied")
    return _claim([_compare(untied, tied, "held-out loss untied", "tied")])


# ----------------------------------------------------------------------------- the exercises
EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        id="parameter-savings",
        title="What does tying save?",
        question="seed-conv uses one 3x3 kernel K (16 -> 16 channels) twice, after an unshared stem. "
        "How many parameters does the untied model store that the tied one does not? And albert-mlp, "
        "whose two projections are each used three times?",
        setups=(_setup("seed-conv", "seed-conv"), _setup("albert-mlp", "albert-mlp")),
        then="Then pick albert-mlp in the sidebar and read its counts.",
        trains=False,
        looks=(
            Look(
                "build",
                BUILD_TABS,
                "the tied, untied and saved counts, and the bars of what each use owns and what it only "
                "references (Home shows the same counts).",
                tab="Parameters",
            ),
        ),
        expect="seed-conv: 2,736 tied, 5,040 untied: tying saves 2,304 = 3 x 3 x 16 x 16, exactly one copy of K "
        "(the stem's 432 are not shared and count in both). albert-mlp: 1,024 tied, 3,072 untied, 3x: each "
        "of the two 512-entry projections is stored once instead of three times. In general, each extra use "
        "of a shared tensor costs one more copy, untied.",
        check=_check_param_savings,
    ),
    Exercise(
        id="untied-drift",
        title="Do untied copies stay equal?",
        question="seed-dense's two layers start from the same 10 x 10 numbers, tied and untied. "
        "After 60 steps, how far apart are the untied copies? And the tied ones?",
        setups=(_setup("seed-dense", "seed-dense"),),
        looks=(
            _train(),
            Look(
                "divergence",
                DIVERGENCE,
                "the distance between the two uses' weights over the steps (untied solid, tied dashed).",
                panel="how far apart",
            ),
        ),
        expect=f"Untied starts at 0 ({ZERO}: the same starting numbers) and grows: after 60 steps the copies "
        "are more than half the starting norm apart (about 1.1 to 1.3 times it). Tied stays at 0 "
        f"({ZERO}) at every step: there is one variable, so there is nothing to drift.",
        check=_check_untied_drift,
    ),
    Exercise(
        id="gradient-tug-of-war",
        title="Do the uses pull together?",
        question="In conv-autoencoder, the encoder and the decoder read one kernel K. Each use adds its own "
        "part to K's gradient. Do the two parts point the same way at the start? At the end?",
        setups=(_setup("conv-autoencoder", "conv-autoencoder"),),
        looks=(
            _train(),
            Look("gradients", FLOW, "each use's gradient norm and the norm of their sum, step by step.", panel="tied"),
            Look("gradients", COSINE, "the cosine between one use's gradient and the other's.", panel="tied"),
        ),
        expect="At step 1 the cosine is positive (about +0.2 to +0.6): the parts agree and their sum is longer "
        "than either. By the end it is below -0.5 (about -0.95): the parts pull against each other and "
        "their sum is shorter than either part. Near a minimum of the tied loss the sum must go to 0, so the "
        "uses end up in a tug-of-war that the tie settles.",
        check=_check_tug_of_war,
    ),
    Exercise(
        id="tied-teacher-agreement",
        title="When do the uses agree?",
        question="seed-mixed reads W with a dense op and a 1x1 conv; the targets come from a teacher network. "
        "If the teacher is itself tied, do the two uses' gradients ever disagree? Do untied copies drift?",
        setups=(
            _setup("tied teacher", "seed-mixed", teacher="tied"),
            _setup("untied teacher", "seed-mixed", teacher="untied"),
        ),
        then="Then set the teacher to 'untied' (each use labelled by its own random copy) and train again; "
        "compare the cosines of the two runs.",
        looks=(
            _train(),
            Look("gradients", COSINE, "the cosine between the dense and the conv use's gradients.", panel="tied"),
            Look(
                "divergence",
                DIVERGENCE,
                "the distance between the untied dense and conv copies (untied solid, tied dashed).",
                panel="how far apart",
            ),
        ),
        expect="With a tied teacher both halves of the target are the same, so both uses get the same "
        "gradient: the cosine is 1.000 at every step, the untied copies stay the same numbers (their distance "
        f"stays at {ZERO} of the starting norm; about 6e-8 on some CPUs: the dense op and the conv add the "
        "same products in different orders, so float rounding is all that separates them) and the tied and "
        "untied losses differ by less than 0.0001 (float rounding). With an untied teacher "
        "the cosine starts positive and ends negative: each use pulls W towards its own half of the target.",
        check=_check_tied_teacher_agreement,
    ),
    Exercise(
        id="conv-vs-dense",
        title="A dense layer and a 1x1 conv: one layer or two?",
        question="seed-mixed reads one (10, 5) tensor W as a dense kernel and, reshaped to (1, 1, 10, 5), as a "
        "1x1 conv kernel. Both compute the same function at the start. The teacher labels the two halves of "
        "the output differently. Which model reaches the lower held-out loss?",
        setups=(_setup("seed-mixed", "seed-mixed"),),
        looks=(
            _train(),
            Look(
                "lab",
                LOSS,
                "the held-out loss of tied and untied (tied solid, untied dashed; color: run).",
                panel="held-out",
            ),
            Look(
                "divergence",
                DIVERGENCE,
                "the distance between the untied dense and conv copies (untied solid, tied dashed).",
                panel="how far apart",
            ),
        ),
        expect=f"The copies start at distance 0 ({ZERO}) and end more than half the starting norm apart. The tied model "
        "computes the same numbers on both halves, so it can only fit their average: its held-out loss "
        "stays more than 1.5 times the untied one's (about 0.6 against 0.17 to 0.32).",
        check=_check_conv_vs_dense,
    ),
    Exercise(
        id="transpose-vs-reshape",
        title="Transpose or reshape in the decoder?",
        question="tied-autoencoder's decoder reads W (10, 5) as transpose(W). A reshape to (5, 10) also fits. "
        "Which tied decoder learns the teacher better in 150 steps?",
        setups=(
            _setup("transpose", "tied-autoencoder", steps=150),
            _setup(
                "reshape",
                "tied-autoencoder",
                _with_decoder_rule("tied-autoencoder", {"kind": "reshape", "shape": [5, 10]}),
                steps=150,
            ),
        ),
        then="Then on the Build page change the decoder's rule to reshape [5, 10], train again and compare the "
        "two runs' tied held-out losses.",
        looks=(
            _train(150),
            Look(
                "lab",
                LOSS,
                "the tied model's held-out loss in the two runs (tied solid; one color per run).",
                panel="held-out",
            ),
        ),
        expect="Reshape wins: its tied held-out loss is lower (about 0.26 to 0.53 against 0.76 to 0.80). "
        "With transpose, the model near 0 is x -> x W W^T, a symmetric map, and the teacher's map is not "
        "symmetric; the reshaped decoder is not bound that way. Transpose is the right tie for "
        "reconstruction, not for every task.",
        check=_check_transpose_vs_reshape,
    ),
    Exercise(
        id="partial-sharing",
        title="Sharing part of a tensor",
        question="In partial-share, 'wide' reads all of W (10, 8) and 'narrow' only its first 4 columns. "
        "How many parameters does tying save, and where can untied copies drift?",
        setups=(_setup("partial-share", "partial-share"),),
        looks=(
            Look(
                "build",
                BUILD_TABS,
                "the tied and untied counts and the table of what each use reads.",
                tab="Parameters",
            ),
            _train(),
            Look(
                "divergence",
                DIVERGENCE,
                "the distance between wide and narrow (untied solid, tied dashed).",
                panel="how far apart",
            ),
        ),
        expect="80 tied, 120 untied: the untied narrow copy adds 10 x 4 = 40. Divergence is measured on the 40 "
        "entries both read (W[:, :4]), relative to their starting norm: untied it grows from 0 to more than "
        f"0.5, tied it stays at 0 ({ZERO}). Columns 4 to 7 belong to wide alone and are not compared.",
        check=_check_partial,
    ),
    Exercise(
        id="learning-rate-collapse",
        title="Too high a learning rate",
        question="Train seed-conv with Adam at learning rate 0.01, then at 0.1. Does the higher rate learn faster?",
        setups=(
            _setup("learning rate 0.01", "seed-conv"),
            _setup("learning rate 0.1", "seed-conv", learning_rate=0.1),
        ),
        then="Then set the learning rate to 0.1 and train again; compare the two runs.",
        looks=(
            _train(),
            Look(
                "lab",
                LOSS,
                "both runs' training losses (tied solid, untied dashed; one color per run).",
                panel="training",
            ),
            Look("gradients", FLOW, "the gradient norms at the end of the 0.1 run.", panel="tied"),
        ),
        expect="At 0.01 both models learn (final loss below 0.6). At 0.1 nothing becomes NaN, but the ReLUs "
        "die: both networks output 0 (almost) everywhere, so the tied and untied losses become equal (over "
        "the last 10 steps at most 0.01 apart, in most steps to the last digit) and stay near 1, the "
        "targets' mean square, which is what an output of 0 scores. It is the batch's mean square, not a "
        "fixed number: 1.083 on seed 0's last batch, 1.008 and 0.998 on seeds 1 and 2. The held-out losses "
        "agree within 1%, and the gradients at the last step are 0, so training cannot recover.",
        check=_check_collapse,
    ),
    Exercise(
        id="siamese-generalisation",
        title="Does the siamese tie generalise?",
        question="siamese-digits sees two 8x8 digits side by side and decides whether the left digit is the "
        "larger, with two towers that share their kernels (tied) or have their own (untied). Which does "
        "better on digits it never trained on?",
        setups=(_setup("siamese-digits", "siamese-digits", dataset="digits", learning_rate=0.02),),
        looks=(
            _train(),
            Look(
                "lab",
                LOSS,
                "the held-out loss of tied and untied (tied solid, untied dashed; color: run).",
                panel="held-out",
            ),
        ),
        expect="The tied towers reach the lower held-out loss after 60 steps (about 0.33 to 0.41 against 0.42 "
        "to 0.62): 'is the left digit the larger?' asks the same of both images (how large is this digit?), "
        "only compared, so both towers need the same features. Tying builds that in with half the parameters "
        "(4,680 against 9,360); untied, each tower must learn the digits from its own half of the data.",
        check=_check_siamese,
    ),
    Exercise(
        id="tied-teacher-chain",
        title="A tied teacher: does the tied student win?",
        question="Set the teacher of seed-dense to 'tied', so that the data come from a network whose two layers "
        "share one W. The tied student matches the truth. Does it reach the lower held-out loss?",
        setups=(_setup("seed-dense, tied teacher", "seed-dense", teacher="tied"),),
        looks=(
            _train(),
            Look(
                "lab",
                LOSS,
                "the held-out loss of tied and untied (tied solid, untied dashed; color: run).",
                panel="held-out",
            ),
        ),
        expect="No: the untied student still ends lower (about 0.15 to 0.17 against 0.33 to 0.37 after 60 "
        "steps). It can reach every tied solution too, its two copies give it more ways downhill, and with "
        "512 samples of 10 outputs there is little room to overfit 200 parameters. Matching the truth is not "
        "the same as learning it faster.",
        check=_check_tied_teacher_chain,
    ),
)


def exercise(id: str) -> Exercise:  # noqa: A002  the exercise's own field name
    """The exercise with slug `id`.

    Raises:
        ValueError: if there is no exercise of that id.
    """
    for ex in EXERCISES:
        if ex.id == id:
            return ex
    raise ValueError(f"unknown exercise {id!r}. Choose one of: {', '.join(e.id for e in EXERCISES)}.")
