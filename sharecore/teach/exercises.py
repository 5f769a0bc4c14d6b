"""Guided what-ifs for a workshop: set up, train, look, and check what you saw against the numbers.

Each `Exercise` asks one question about tied and untied weights, names the set-ups that answer
it (a preset, changed with `dataclasses.replace`, and its training settings), says where to look
and what to expect, and carries a `check` (sharecore.teach.claims) that states the claim on the
numbers of real runs. The tests train every set-up and assert each claim, for seeds 0, 1 and 2.

Plain Python: no TensorFlow and no Streamlit at import. `verify` trains (and so imports TensorFlow).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sharecore.core.config import TrainConfig
from sharecore.core.presets import preset
from sharecore.core.spec import ModelSpec, Rule
from sharecore.teach import claims
from sharecore.teach.claims import SAME_COPIES, SAME_DECIMALS, ZERO, Claim

if TYPE_CHECKING:
    from sharecore.core.results import TrainResult

__all__ = [
    "EXERCISES",
    "SAME_COPIES",
    "SAME_DECIMALS",
    "ZERO",
    "Claim",
    "Exercise",
    "Look",
    "Setup",
    "exercise",
    "verify",
]


@dataclass(frozen=True)
class Setup:
    """One experiment of an exercise: a spec (from a preset) and how to train it."""

    label: str  # what the exercise calls it, e.g. 'learning rate 0.1'
    preset: str  # the preset the spec is made from
    spec: ModelSpec
    config: TrainConfig


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


def _train(steps: int = 60) -> Look:
    return Look("lab", TRAIN, f"press Train ({steps} steps, tied and untied side by side).")


# The Lab's held-out panel, which several exercises read.
HELD_OUT = Look(
    "lab", LOSS, "the held-out loss of tied and untied (tied solid, untied dashed; color: run).", panel="held-out"
)


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


# ----------------------------------------------------------------------------- the set-ups
def _setup(label: str, name: str, spec: ModelSpec | None = None, **config: object) -> Setup:
    return Setup(label, name, spec or preset(name), TrainConfig(**config))  # type: ignore[arg-type]


def _with_decoder_rule(name: str, rule: dict) -> ModelSpec:
    """Preset `name` with its 'decoder' use reading the tensor through `rule`."""
    spec = preset(name)
    uses = tuple(dataclasses.replace(u, rule=Rule.from_dict(rule)) if u.name == "decoder" else u for u in spec.uses)
    return dataclasses.replace(spec, uses=uses, description=f"{spec.description} Here the decoder's rule is {rule}.")


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
        check=claims.check_param_savings,
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
        check=claims.check_untied_drift,
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
        check=claims.check_tug_of_war,
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
        check=claims.check_tied_teacher_agreement,
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
            HELD_OUT,
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
        check=claims.check_conv_vs_dense,
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
        check=claims.check_transpose_vs_reshape,
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
        check=claims.check_partial,
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
        check=claims.check_collapse,
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
            HELD_OUT,
        ),
        expect="The tied towers reach the lower held-out loss after 60 steps (about 0.33 to 0.41 against 0.42 "
        "to 0.62): 'is the left digit the larger?' asks the same of both images (how large is this digit?), "
        "only compared, so both towers need the same features. Tying builds that in with half the parameters "
        "(4,680 against 9,360); untied, each tower must learn the digits from its own half of the data.",
        check=claims.check_siamese,
    ),
    Exercise(
        id="tied-teacher-chain",
        title="A tied teacher: does the tied student win?",
        question="Set the teacher of seed-dense to 'tied', so that the data come from a network whose two layers "
        "share one W. The tied student matches the truth. Does it reach the lower held-out loss?",
        setups=(_setup("seed-dense, tied teacher", "seed-dense", teacher="tied"),),
        looks=(
            _train(),
            HELD_OUT,
        ),
        expect="No: the untied student still ends lower (about 0.15 to 0.17 against 0.33 to 0.37 after 60 "
        "steps). It can reach every tied solution too, its two copies give it more ways downhill, and with "
        "512 samples of 10 outputs there is little room to overfit 200 parameters. Matching the truth is not "
        "the same as learning it faster.",
        check=claims.check_tied_teacher_chain,
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
