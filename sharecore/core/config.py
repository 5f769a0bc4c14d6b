"""The training settings of a side-by-side run of the tied and untied models: frozen, hashable,
JSON-serializable, checked on construction."""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from typing import Any

from sharecore.core.fields import check_choice, check_int, check_keys, fail

OPTIMIZERS = ("sgd", "adam")
DEVICES = ("auto", "cpu", "gpu")
DATASETS = ("teacher", "digits", "tokens")
TEACHERS = ("untied", "tied")  # the network that labels the 'teacher' data set: see `sharecore.nn.data.teacher_dataset`
DISTRIBUTE = ("none", "mirrored", "multi-worker")
SCORES_PER_RUN = 5  # held-out scores in a run with the default schedule (eval_every 0), the last step's among them
TEACHER_POOL_SIZE = 512  # samples in a teacher pool; batches are drawn from it with replacement
TOKENS_HELDOUT = 128  # held-out sequences of the 'tokens' data set (its pool is TEACHER_POOL_SIZE sequences)
TEACHER_HELDOUT = 256  # held-out samples of the 'teacher' data set: more inputs, labelled by the same teacher
DIGITS_INPUT_SIZES = (64, 128)  # one 8x8 image, or two side by side: see `sharecore.nn.data.digits_dataset`
DIGITS_POOL_SIZE = 1797  # scikit-learn's 8x8 digits: all the images of the 'digits' data set
DIGITS_HELDOUT = 360  # of them held out (20%, the same images in every run) and never trained on

# The learning rates the app trains with, from a link or a widget (`TrainConfig` itself takes any rate
# > 0): below 1e-5 the weights hardly move in the few thousand steps a run has, and above 10 every
# preset blows up in its first steps.
MIN_LEARNING_RATE = 1e-5
MAX_LEARNING_RATE = 10.0
# What a person picks from: 1-2-5 steps per decade over that range, as on a log scale.
LEARNING_RATES = tuple(
    rate
    for exponent in range(-5, 2)
    for mantissa in (1, 2, 5)
    if MIN_LEARNING_RATE <= (rate := float(f"{mantissa}e{exponent}")) <= MAX_LEARNING_RATE
)


def check_batch_split(batch_size: int, replicas: int) -> None:
    """Each replica trains on an equal slice of every batch.

    Raises:
        ValueError: if `batch_size` does not divide by `replicas`, with the nearest sizes that do.
    """
    if batch_size % replicas:
        fits = batch_size - batch_size % replicas or replicas
        raise fail(
            "train.batch_size",
            f"must divide evenly by the {replicas} replicas, so that each trains on an equal slice of every "
            f"batch; use {fits} or {fits + replicas}.",
            batch_size,
        )


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one side-by-side training run of the tied and untied models.

    Example:
        >>> TrainConfig(steps=200, optimizer="sgd", learning_rate=0.05).to_dict()["optimizer"]
        'sgd'
        >>> TrainConfig(optimizer="rmsprop")
        Traceback (most recent call last):
        ValueError: train.optimizer: must be one of 'sgd', 'adam'. Received: 'rmsprop'
    """

    steps: int = 60  # optimizer steps per variant
    batch_size: int = 32
    optimizer: str = "adam"  # 'sgd' | 'adam'
    learning_rate: float = 0.01
    seed: int = 0  # initial weights, teacher network and batch order
    device: str = "auto"  # 'auto' | 'cpu' | 'gpu'
    record_every: int = 1  # record gradients and divergence every k steps (and at the last step)
    # Score the held-out samples (both models, all of them) after every k-th step, counted from the start of
    # the run (also of a continued one), and after the last; 0: about five times a run (`scored_every`).
    # Each score ends a compiled chunk of steps, so scoring every step also returns to Python every step.
    eval_every: int = 0
    dataset: str = "teacher"  # 'teacher' (fits any spec) | 'digits' (8x8 images, 64 or 128 inputs)
    # The network that labels the 'teacher' data set, drawn at seed + 7919: 'untied' (each use its own
    # copy, which a tied student cannot always match) | 'tied' (the spec's own tied model, which it can).
    teacher: str = "untied"
    # 'none': one device | 'mirrored': replicas on this machine's devices | 'multi-worker': the
    # machines TF_CONFIG names. Replicas split each batch evenly; the records are the same as one device's.
    distribute: str = "none"
    replicas: int = 0  # devices for 'mirrored'; 0: every GPU, or the CPU devices TensorFlow has

    def __post_init__(self) -> None:
        check_int("train.steps", self.steps)
        check_int("train.batch_size", self.batch_size)
        check_choice("train.optimizer", self.optimizer, OPTIMIZERS)
        lr = self.learning_rate
        # A chained comparison, not math.isfinite: that raises OverflowError on an int like 10**400.
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= sys.float_info.max:
            raise fail("train.learning_rate", "must be a finite number > 0, e.g. 0.01.", lr)
        check_int("train.seed", self.seed, minimum=0)
        check_choice("train.device", self.device, DEVICES)
        check_int("train.record_every", self.record_every)
        check_int("train.eval_every", self.eval_every, minimum=0)
        check_choice("train.dataset", self.dataset, DATASETS)
        check_choice("train.teacher", self.teacher, TEACHERS)
        check_choice("train.distribute", self.distribute, DISTRIBUTE)
        check_int("train.replicas", self.replicas, minimum=0)
        if self.distribute == "none" and self.replicas > 1:
            raise fail("train.replicas", "needs train.distribute 'mirrored'.", self.replicas)
        if self.distribute == "multi-worker" and self.replicas:
            raise fail(
                "train.replicas",
                "must be 0 with 'multi-worker', which uses every GPU of each worker (or its CPU).",
                self.replicas,
            )
        if self.replicas:
            check_batch_split(self.batch_size, self.replicas)

    @property
    def scored_every(self) -> int:
        """The held-out schedule's period in steps: `eval_every`, or with 0 a fifth of the run (at least 1).

        Derived from the run's total, so a continued run of the same total scores the steps one
        uninterrupted run scores. A score costs a forward pass of both models over the whole held-out
        set (256 samples for the teacher, 8 batches of 32), so scoring after every step of a long run
        would cost more than the training.

        Example:
            >>> TrainConfig(steps=60).scored_every, TrainConfig(steps=3).scored_every, TrainConfig(eval_every=7).scored_every
            (12, 1, 7)
        """
        return self.eval_every or -(-self.steps // SCORES_PER_RUN)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Any) -> TrainConfig:
        check_keys("train", data, cls, ())
        return cls(**data)
