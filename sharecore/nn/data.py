"""Training data that needs no download: a teacher task for any spec, 8x8 digits and a token chain.

Every data set has a pool that batches are drawn from and held-out samples that are never trained on."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from sharecore.core.config import DIGITS_HELDOUT, DIGITS_POOL_SIZE, TEACHER_HELDOUT, TEACHER_POOL_SIZE, TOKENS_HELDOUT
from sharecore.core.plan import Plan, as_plan
from sharecore.core.rules import apply_rule_np
from sharecore.core.runcheck import check_dataset
from sharecore.core.spec import ModelSpec
from sharecore.nn.model import build_from_plan, draw, initial_values, layer_name

if TYPE_CHECKING:
    import keras

# The teacher network is drawn at the run's seed + this, so it never starts where the students start.
TEACHER_SEED_OFFSET = 7919
DIGITS_SPLIT_SEED = 0  # the held-out digits are the same images in every run, so runs compare on them


@dataclass(frozen=True)
class Dataset:
    """A pool of samples that batches are drawn from, and held-out samples never trained on."""

    x: np.ndarray  # (n, *input_shape) float32, or (n, seq) int32 token ids
    y: np.ndarray  # (n, *output_shape) float32 targets, (n,) int32 class labels, or (n, seq) int32 next tokens
    classes: int  # 0 for regression
    description: str
    # Samples never trained on, for the held-out loss; None only where none could be drawn
    # (a teacher or tokens pool that already holds every token sequence there is to draw).
    heldout_x: np.ndarray | None = None
    heldout_y: np.ndarray | None = None


def random_inputs(spec: ModelSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` random inputs for `spec`: token ids in [0, input_vocab) for a token model, else ~ N(0, 1)."""
    if spec.input_vocab:
        return rng.integers(0, spec.input_vocab, (n, *spec.input_shape)).astype("int32")
    return rng.standard_normal((n, *spec.input_shape)).astype("float32")


TEACHER_CHUNK = 32  # samples per forward pass of the teacher


def teacher_model(spec: ModelSpec | Plan, seed: int, tied: bool = False) -> keras.Model:
    """The network that labels the teacher data set of a run with seed `seed`.

    It is drawn at `seed + TEACHER_SEED_OFFSET`, so it never starts where the run's students
    start. Tied: the spec's tied model, every use reading the one drawn tensor through its rule.
    Untied: every use of a shared tensor reads its own independent draw, so the teacher is not
    itself tied.
    """
    p = as_plan(spec)
    teacher_seed = seed + TEACHER_SEED_OFFSET
    teacher = build_from_plan(p, tied, initial_values(p, teacher_seed))
    if not tied:
        tensors = {t.name: t for t in p.spec.tensors}
        for u in p.uses:
            if u.shared:
                t = tensors[u.use.tensor]
                fresh = draw(t.initializer, t.shape, teacher_seed, f"{t.name}/{u.use.name}")
                teacher.get_layer(layer_name(u, False)).kernel.assign(apply_rule_np(u.use.rule, fresh))
    return teacher


def _outputs(model: keras.Model, x: np.ndarray) -> np.ndarray:
    # A few samples at a time: the whole pool at once held a conv net's activations for all of it.
    return np.concatenate(
        [np.asarray(model(x[i : i + TEACHER_CHUNK], training=False)) for i in range(0, len(x), TEACHER_CHUNK)]
    ).astype("float32")


def teacher_dataset(
    spec: ModelSpec | Plan,
    seed: int,
    pool_size: int = TEACHER_POOL_SIZE,
    tied: bool = False,
    heldout: int = TEACHER_HELDOUT,
) -> Dataset:
    """Inputs ~ N(0, 1) (token ids for a token model); targets from a fixed random network of the same spec.

    The default teacher is untied (`teacher_model`): a tied student cannot always match it, and
    untied copies have a reason to drift apart (a tied teacher gives the copies of a symmetric
    model such as `seed-mixed` identical gradients forever). A tied teacher is a task the tied
    student can solve exactly. Targets are scaled to unit standard deviation over the pool, so
    that one learning rate suits every spec; `heldout` more inputs from the same distribution,
    labelled by the same teacher and scaled by the same factor, are held out. An input that is
    also in the pool (possible only for token ids from a small vocabulary) is not held out.
    """
    p = as_plan(spec)
    # The pool's own generator, unchanged by the held-out split: a run's batches are as before.
    x = random_inputs(p.spec, pool_size, np.random.default_rng([seed, 1]))
    heldout_x = random_inputs(p.spec, heldout, np.random.default_rng([seed, 5]))
    in_pool = {row.tobytes() for row in x}
    heldout_x = heldout_x[[row.tobytes() not in in_pool for row in heldout_x]]
    teacher = teacher_model(p, seed, tied)
    y = _outputs(teacher, x)
    scale = max(float(y.std()), 1e-6)
    heldout_y = _outputs(teacher, heldout_x) / scale if len(heldout_x) else None
    kind = "tied" if tied else "untied"
    return Dataset(
        x,
        y / scale,
        0,
        f"teacher: a random {kind} network of the same spec, drawn at seed {seed + TEACHER_SEED_OFFSET} "
        f"(the run's seed + {TEACHER_SEED_OFFSET}, so it never starts where the students start)",
        heldout_x=heldout_x if len(heldout_x) else None,
        heldout_y=heldout_y,
    )


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download

    d = load_digits()
    return (d.data / 16.0).astype("float32"), d.target.astype("int32")  # (1797, 64), (1797,)


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and the held-out digit images: a fixed split, the same in every run."""
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(DIGITS_POOL_SIZE)
    return np.sort(order[DIGITS_HELDOUT:]), np.sort(order[:DIGITS_HELDOUT])  # (1437,), (360,)


def _larger_pairs(
    images: np.ndarray, labels: np.ndarray, among: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One pair per image of `among`, both images from `among`: (n, 128) pairs, (n,) 'left digit is larger'."""
    n = len(among)
    a = rng.choice(among, n)
    # The right image shows another digit, any of the other nine alike: no ties, and half the pairs are 1.
    b_class = (labels[a] + rng.integers(1, 10, n)) % 10
    by_class = [among[labels[among] == c] for c in range(10)]
    b = np.array([rng.choice(by_class[c]) for c in b_class])
    return np.concatenate([images[a], images[b]], axis=1), (labels[a] > labels[b]).astype("int32")


def digits_dataset(spec: ModelSpec | Plan, seed: int) -> Dataset:
    """scikit-learn's bundled 8x8 digits, `DIGITS_HELDOUT` of the 1,797 images held out (`digits_split`).

    64 inputs: classify the digit (10 classes). 128 inputs: two images of different digits side
    by side; is the left digit the larger? (2 classes, balanced). Not "are they the same digit?":
    the classifier's head is linear on the model's outputs, so it adds a score of the left
    embedding to a score of the right one, and no such sum tells "same" from "different" (it
    would need s(i) + t(i) > 0 and s(i) + t(j) < 0 for all i != j, and adding the two cases for
    (i, j) and (j, i) contradicts the first). A sum can compare: s(left) - s(right). Training pairs
    are made only of training images, held-out pairs only of held-out images.

    Raises:
        ValueError: if the spec's input does not hold 64 or 128 values.
    """
    spec = as_plan(spec).spec
    check_dataset(spec, "digits")  # 64 or 128 float inputs
    images, labels = _digits()
    train, heldout = digits_split()
    held = f"; {len(heldout)} of the {len(labels):,} images are held out"
    if math.prod(spec.input_shape) == 64:
        x = images.reshape(-1, *spec.input_shape)
        return Dataset(
            x[train], labels[train], 10, f"8x8 digits: which digit (10 classes){held}", x[heldout], labels[heldout]
        )
    x, y = _larger_pairs(images, labels, train, np.random.default_rng([seed, 2]))
    hx, hy = _larger_pairs(images, labels, heldout, np.random.default_rng([seed, 6]))
    return Dataset(
        x.reshape(-1, *spec.input_shape),
        y,
        2,
        f"pairs of 8x8 digits: is the left digit the larger? (2 classes){held}, and held-out pairs "
        f"are made only of them",
        hx.reshape(-1, *spec.input_shape),
        hy,
    )


TOKENS_SUCCESSORS = 4  # the tokens that can follow each token in the 'tokens' chain
TOKENS_CONCENTRATION = 0.5  # Dirichlet concentration of each token's successor probabilities


def tokens_dataset(spec: ModelSpec | Plan, seed: int, pool_size: int = TEACHER_POOL_SIZE) -> Dataset:
    """Next-token prediction on sequences from a fixed random Markov chain; no download.

    Each token can be followed by `TOKENS_SUCCESSORS` tokens drawn at random, with probabilities
    from a Dirichlet(0.5): the next token is predictable from the current one, and a language
    model (embedding -> block -> logits) learns it in a few hundred steps. The chain is stored as
    (vocab, 4) successors and probabilities, so its memory grows with the vocabulary, not with
    its square (a (vocab, vocab) matrix took 6 GB for a 20,000-token table the caps allow). The
    best any model can do is to always predict the likeliest successor; the description gives
    that accuracy. `TOKENS_HELDOUT` more sequences from the same chain are held out, none with an
    input sequence that is also in the pool (`_tokens_heldout`).

    Raises:
        ValueError: if the spec does not read token ids or does not output (seq, vocab) logits.
    """
    p = as_plan(spec)
    check_dataset(p, "tokens")  # token ids in, (seq, vocab) logits out
    vocab, shape = p.spec.input_vocab, p.spec.input_shape
    rng = np.random.default_rng([seed, 4])
    successors = rng.integers(0, vocab, (vocab, TOKENS_SUCCESSORS)).astype("int32")  # (vocab, 4)
    probs = rng.dirichlet(np.full(TOKENS_SUCCESSORS, TOKENS_CONCENTRATION), size=vocab)  # (vocab, 4), rows sum to 1
    cumulative = np.cumsum(probs, axis=1)
    seq = shape[0]
    # The pool and the first held-out candidates come from one generator, as they always have: a
    # run's pool, and so its batches and numbers, do not depend on how the held-out part is drawn.
    tokens = _chain_sequences(successors, cumulative, pool_size + TOKENS_HELDOUT, seq, rng)
    x, y = tokens[:pool_size, :-1], tokens[:pool_size, 1:]  # (pool_size, seq) each: y is x shifted by one
    heldout = _tokens_heldout(tokens[pool_size:], x, successors, cumulative, np.random.default_rng([seed, 7]))
    # A token listed twice among its successors adds up; the best guess is the likeliest distinct one.
    best = float(np.mean([np.bincount(row, weights=w).max() for row, w in zip(successors, probs)]))
    return Dataset(
        x,
        y,
        vocab,
        f"tokens: next token of a fixed random Markov chain over {vocab} tokens (the best possible "
        f"accuracy is about {best:.2f})",
        heldout_x=heldout[:, :-1] if len(heldout) else None,
        heldout_y=heldout[:, 1:] if len(heldout) else None,
    )


def _chain_sequences(
    successors: np.ndarray, cumulative: np.ndarray, n: int, seq: int, rng: np.random.Generator
) -> np.ndarray:
    """`n` sequences of `seq + 1` tokens from the chain: (n, seq + 1) int32, the inputs and their next tokens."""
    tokens = np.empty((n, seq + 1), dtype="int32")
    tokens[:, 0] = rng.integers(0, len(successors), n)
    for t in range(seq):  # next token: inverse CDF over the current token's successors
        pick = np.minimum((rng.random((n, 1)) > cumulative[tokens[:, t]]).sum(axis=1), TOKENS_SUCCESSORS - 1)
        tokens[:, t + 1] = successors[tokens[:, t], pick]
    return tokens


TOKENS_HELDOUT_ROUNDS = 16  # rounds of TOKENS_HELDOUT more draws for held-out sequences whose input is in the pool


def _tokens_heldout(
    candidates: np.ndarray, pool_x: np.ndarray, successors: np.ndarray, cumulative: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """`TOKENS_HELDOUT` sequences (n, seq + 1) whose input is none of the pool's inputs `pool_x`.

    A short chain over a small vocabulary repeats sequences: 6 to 39 of tied-lm's 128 held-out
    inputs (seeds 0-9) were also pool inputs, so the held-out loss partly measured trained-on samples. The
    candidates that are not in the pool are kept as drawn; the others are replaced by new draws
    from the same chain (`rng`, a generator of their own). Where the pool already holds (nearly)
    every sequence the chain makes, fewer come back after `TOKENS_HELDOUT_ROUNDS` rounds, or none.
    """
    in_pool = {row.tobytes() for row in pool_x}
    seq = pool_x.shape[1]
    kept, found = [], 0
    for draw_round in range(TOKENS_HELDOUT_ROUNDS + 1):
        if draw_round:
            candidates = _chain_sequences(successors, cumulative, TOKENS_HELDOUT, seq, rng)
        new = candidates[[row[:-1].tobytes() not in in_pool for row in candidates]][: TOKENS_HELDOUT - found]
        kept.append(new)
        found += len(new)
        if found == TOKENS_HELDOUT:
            break
    return np.concatenate(kept)  # (<= TOKENS_HELDOUT, seq + 1)


def make_dataset(spec: ModelSpec | Plan, name: str, seed: int, teacher: str = "untied") -> Dataset:
    """The data set `name` ('teacher', 'digits' or 'tokens') for `spec` (or its `Plan`).

    Args:
        spec: the model spec, or its `Plan`.
        name: the data set, as `TrainConfig.dataset`.
        seed: the run's seed.
        teacher: 'untied' or 'tied', the network that labels the 'teacher' data set (`TrainConfig.teacher`).

    Raises:
        ValueError: for an unknown data set or teacher, or a data set the spec cannot take.
    """
    check_dataset(spec, name, teacher)
    if name == "digits":
        return digits_dataset(spec, seed)
    if name == "tokens":
        return tokens_dataset(spec, seed)
    return teacher_dataset(spec, seed, tied=teacher == "tied")
