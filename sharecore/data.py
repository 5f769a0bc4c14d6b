"""Training data that needs no download: a teacher task for any spec, and 8x8 digits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sharecore.model import _build_from_plan, draw, initial_values, layer_name
from sharecore.plan import Plan, as_plan
from sharecore.rules import apply_rule_np
from sharecore.spec import TEACHER_POOL_SIZE, TOKENS_HELDOUT, ModelSpec

TEACHER_SEED_OFFSET = 7919  # the teacher is the tied model of the same spec at another seed


@dataclass(frozen=True)
class Dataset:
    """A pool of samples; batches are drawn from it."""

    x: np.ndarray  # (n, *input_shape) float32, or (n, seq) int32 token ids
    y: np.ndarray  # (n, *output_shape) float32 targets, (n,) int32 class labels, or (n, seq) int32 next tokens
    classes: int  # 0 for regression
    description: str
    # Samples never trained on, for the held-out loss; None where the data set has no split yet.
    heldout_x: np.ndarray | None = None
    heldout_y: np.ndarray | None = None


def random_inputs(spec: ModelSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` random inputs for `spec`: token ids in [0, input_vocab) for a token model, else ~ N(0, 1)."""
    if spec.input_vocab:
        return rng.integers(0, spec.input_vocab, (n, *spec.input_shape)).astype("int32")
    return rng.standard_normal((n, *spec.input_shape)).astype("float32")


TEACHER_CHUNK = 32  # samples per forward pass of the teacher


def teacher_dataset(spec: ModelSpec | Plan, seed: int, pool_size: int = TEACHER_POOL_SIZE) -> Dataset:
    """Inputs ~ N(0, 1); targets from a fixed random network of the same spec.

    The teacher is the untied model of the spec with every copy drawn independently, so it is
    not itself tied: a tied student cannot always match it, and untied copies have a reason to
    drift apart (a tied teacher would give the copies of a symmetric model such as
    `seed-mixed` identical gradients forever). Targets are scaled to unit standard deviation
    so that one learning rate suits every spec.
    """
    p = as_plan(spec)
    x = random_inputs(p.spec, pool_size, np.random.default_rng([seed, 1]))
    teacher_seed = seed + TEACHER_SEED_OFFSET
    teacher = _build_from_plan(p, False, initial_values(p, teacher_seed))
    tensors = {t.name: t for t in p.spec.tensors}
    for u in p.uses:
        if u.shared:
            t = tensors[u.use.tensor]
            fresh = draw(t.initializer, t.shape, teacher_seed, f"{t.name}/{u.use.name}")
            teacher.get_layer(layer_name(u, False)).kernel.assign(apply_rule_np(u.use.rule, fresh))
    # A few samples at a time: the whole pool at once held a conv net's activations for all of it.
    y = np.concatenate(
        [np.asarray(teacher(x[i : i + TEACHER_CHUNK], training=False)) for i in range(0, pool_size, TEACHER_CHUNK)]
    ).astype("float32")
    y = y / max(float(y.std()), 1e-6)
    return Dataset(x, y, 0, f"teacher: a random untied network of the same spec (seed {teacher_seed})")


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download

    d = load_digits()
    return (d.data / 16.0).astype("float32"), d.target.astype("int32")  # (1797, 64), (1797,)


def digits_dataset(spec: ModelSpec | Plan, seed: int) -> Dataset:
    """scikit-learn's bundled 8x8 digits.

    64 inputs: classify the digit (10 classes). 128 inputs: two digits side by side,
    classify whether they are the same digit (2 classes, balanced).

    Raises:
        ValueError: if the spec's input does not hold 64 or 128 values.
    """
    spec = as_plan(spec).spec
    size = math.prod(spec.input_shape)
    if spec.input_vocab:
        raise ValueError(
            f"dataset 'digits' holds images, but spec '{spec.name}' reads token ids (input_vocab "
            f"{spec.input_vocab}). Use dataset 'tokens' or 'teacher'. Received: dataset='digits'"
        )
    images, labels = _digits()
    if size == 64:
        return Dataset(images.reshape(-1, *spec.input_shape), labels, 10, "8x8 digits: which digit (10 classes)")
    if size == 128:
        rng = np.random.default_rng([seed, 2])
        n = len(labels)
        a = rng.integers(0, n, n)
        same = rng.random(n) < 0.5
        by_class = [np.flatnonzero(labels == c) for c in range(10)]
        b = np.array([rng.choice(by_class[labels[i]]) if s else rng.integers(0, n) for i, s in zip(a, same)])
        pair = np.concatenate([images[a], images[b]], axis=1)  # (n, 128)
        target = (labels[a] == labels[b]).astype("int32")
        return Dataset(pair.reshape(-1, *spec.input_shape), target, 2, "pairs of 8x8 digits: same digit or not")
    raise ValueError(
        f"dataset 'digits' needs a model input of 64 values (one 8x8 image) or 128 (two images side "
        f"by side), but spec '{spec.name}' has input shape {spec.input_shape} ({size} values). "
        f"Use dataset 'teacher', or set input_shape to [64], [8, 8, 1] or [128]. "
        f"Received: input_shape={spec.input_shape}"
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
    that accuracy. `TOKENS_HELDOUT` more sequences from the same chain are held out.

    Raises:
        ValueError: if the spec does not read token ids or does not output (seq, vocab) logits.
    """
    p = as_plan(spec)
    vocab, shape = p.spec.input_vocab, p.spec.input_shape
    if not vocab:
        raise ValueError(
            f"dataset 'tokens' is sequences of token ids, but spec '{p.spec.name}' reads float features. "
            f"Give it an input_vocab and an 'embedding' use (preset tied-lm), or use dataset 'teacher'. "
            f"Received: input_vocab=None"
        )
    if p.output_shape != (*shape, vocab):
        raise ValueError(
            f"dataset 'tokens' predicts the next token at each position, so the model must output "
            f"logits of shape {(*shape, vocab)} (sequence, vocab), but spec '{p.spec.name}' outputs "
            f"{p.output_shape}. End with a dense use of {vocab} units, e.g. rule 'transpose' on the "
            f"embedding table. Received: output shape={p.output_shape}"
        )
    rng = np.random.default_rng([seed, 4])
    successors = rng.integers(0, vocab, (vocab, TOKENS_SUCCESSORS)).astype("int32")  # (vocab, 4)
    probs = rng.dirichlet(np.full(TOKENS_SUCCESSORS, TOKENS_CONCENTRATION), size=vocab)  # (vocab, 4), rows sum to 1
    cumulative = np.cumsum(probs, axis=1)
    n, seq = pool_size + TOKENS_HELDOUT, shape[0]
    tokens = np.empty((n, seq + 1), dtype="int32")
    tokens[:, 0] = rng.integers(0, vocab, n)
    for t in range(seq):  # next token: inverse CDF over the current token's successors
        pick = np.minimum((rng.random((n, 1)) > cumulative[tokens[:, t]]).sum(axis=1), TOKENS_SUCCESSORS - 1)
        tokens[:, t + 1] = successors[tokens[:, t], pick]
    x, y = tokens[:, :-1], tokens[:, 1:]  # (n, seq) each: y is x shifted by one
    # A token listed twice among its successors adds up; the best guess is the likeliest distinct one.
    best = float(np.mean([np.bincount(row, weights=w).max() for row, w in zip(successors, probs)]))
    return Dataset(
        x[:pool_size],
        y[:pool_size],
        vocab,
        f"tokens: next token of a fixed random Markov chain over {vocab} tokens (the best possible "
        f"accuracy is about {best:.2f})",
        heldout_x=x[pool_size:],
        heldout_y=y[pool_size:],
    )


def make_dataset(spec: ModelSpec | Plan, name: str, seed: int) -> Dataset:
    """The data set `name` ('teacher', 'digits' or 'tokens') for `spec` (or its `Plan`)."""
    if name == "teacher":
        return teacher_dataset(spec, seed)
    if name == "digits":
        return digits_dataset(spec, seed)
    if name == "tokens":
        return tokens_dataset(spec, seed)
    raise ValueError(f"unknown dataset {name!r}. Choose 'teacher', 'digits' or 'tokens'.")
