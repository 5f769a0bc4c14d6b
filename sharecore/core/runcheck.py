"""Whether a training run can start: every check of `train(spec, config)` that needs no TensorFlow, once.

`check_run` is the first thing `sharecore.nn.training.train` does, and what the command line does
before it loads TensorFlow (seconds), so bad input is refused in a fraction of a second, with the
same message either way. The data sets (`sharecore.nn.data`) and the strategies (`sharecore.nn.devices`)
raise the messages defined here, so each has one source.

What only TensorFlow can tell is checked once it is loaded: whether there is a GPU for device
'gpu' (`sharecore.nn.devices.resolve_device`), and how many replicas 'mirrored' gets with replicas 0
(`sharecore.nn.devices.make_strategy`). The names of devices, optimizers, data sets and teachers, and
the batch split over a given number of replicas, are checked by `TrainConfig` itself.

Plain Python: importing this module never imports TensorFlow (nor pandas).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sharecore.core.config import DIGITS_INPUT_SIZES, TEACHERS, TrainConfig
from sharecore.core.limits import Limits, check_limits
from sharecore.core.plan import Plan, as_plan
from sharecore.core.spec import ModelSpec

if TYPE_CHECKING:
    from sharecore.core.results import TrainResult

__all__ = [
    "KEPT_ON_RESUME",
    "check_dataset",
    "check_distribute",
    "check_resume",
    "check_run",
    "digits_fits",
    "resume_conflicts",
    "tokens_fit",
]

# Settings a continued run keeps from the run it continues: the optimizer's state and the batch
# generator belong to them.
KEPT_ON_RESUME = ("optimizer", "batch_size", "seed", "dataset", "teacher")


def check_run(
    spec: ModelSpec | Plan,
    config: TrainConfig | None = None,
    limits: Limits | None = None,
    *,
    resume: object = None,
) -> Plan:
    """Raises the `ValueError` that `train(spec, config, limits=limits, resume=resume)` would, without TensorFlow.

    Checks, in this order: the spec itself and the caps (`check_limits`), the run that `resume`
    would continue (`check_resume`), a multi-worker run's cluster (`check_distribute`), and
    whether the data set fits the spec (`check_dataset`).

    Args:
        spec: the model spec, or its `Plan`.
        config: the training settings; defaults to `TrainConfig()`.
        limits: the caps; default `Limits.from_env()`.
        resume: the earlier `TrainResult` that the run would continue, or None.

    Returns:
        The spec's `Plan`, for the caller to hand down instead of planning again.

    Raises:
        ValueError: the first reason the run cannot start, saying what was received and how to fix it.

    Example:
        >>> from sharecore import TrainConfig, preset
        >>> check_run(preset("seed-dense"), TrainConfig(steps=10)).spec.name
        'seed-dense'
        >>> check_run(preset("seed-dense"), TrainConfig(dataset="digits"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: dataset 'digits' needs a model input of 64 values (one 8x8 image) or 128 ...
    """
    config = config or TrainConfig()
    p = check_limits(spec, config, limits)
    if resume is not None:
        check_resume(p.spec, config, resume)
    check_distribute(config)
    check_dataset(p, config.dataset, config.teacher)
    return p


# ----------------------------------------------------------------------------- data sets
def _digits_problem(spec: ModelSpec) -> str | None:
    size = math.prod(spec.input_shape)
    if spec.input_vocab:
        return (
            f"dataset 'digits' holds images, but spec '{spec.name}' reads token ids (input_vocab "
            f"{spec.input_vocab}). Use dataset 'tokens' or 'teacher'. Received: dataset='digits'"
        )
    if size not in DIGITS_INPUT_SIZES:
        return (
            f"dataset 'digits' needs a model input of 64 values (one 8x8 image) or 128 (two images side "
            f"by side), but spec '{spec.name}' has input shape {spec.input_shape} ({size} values). "
            f"Use dataset 'teacher', or set input_shape to [64], [8, 8, 1] or [128]. "
            f"Received: input_shape={spec.input_shape}"
        )
    return None


def _tokens_problem(p: Plan) -> str | None:
    vocab, shape = p.spec.input_vocab, p.spec.input_shape
    if not vocab:
        return (
            f"dataset 'tokens' is sequences of token ids, but spec '{p.spec.name}' reads float features. "
            f"Give it an input_vocab and an 'embedding' use (preset tied-lm), or use dataset 'teacher'. "
            f"Received: input_vocab=None"
        )
    if p.output_shape != (*shape, vocab):
        return (
            f"dataset 'tokens' predicts the next token at each position, so the model must output "
            f"logits of shape {(*shape, vocab)} (sequence, vocab), but spec '{p.spec.name}' outputs "
            f"{p.output_shape}. End with a dense use of {vocab} units, e.g. rule 'transpose' on the "
            f"embedding table. Received: output shape={p.output_shape}"
        )
    return None


def check_dataset(spec: ModelSpec | Plan, dataset: str, teacher: str = "untied") -> None:
    """Whether `spec` can train on data set `dataset` ('teacher', 'digits' or 'tokens') with `teacher`.

    'teacher' fits any spec; 'digits' needs 64 or 128 float inputs; 'tokens' needs token ids in
    and next-token logits (sequence, vocab) out (see `sharecore.nn.data`).

    Raises:
        ValueError: for an unknown data set or teacher, or a data set the spec cannot take.
    """
    if teacher not in TEACHERS:
        raise ValueError(f"unknown teacher {teacher!r}. Choose 'untied' or 'tied'. Received: teacher={teacher!r}")
    if dataset == "teacher":
        return
    if dataset == "digits":
        problem = _digits_problem(spec.spec if isinstance(spec, Plan) else spec)
    elif dataset == "tokens":
        problem = _tokens_problem(as_plan(spec))
    else:
        raise ValueError(
            f"unknown dataset {dataset!r}. Choose 'teacher', 'digits' or 'tokens'. Received: dataset={dataset!r}"
        )
    if problem:
        raise ValueError(problem)


def digits_fits(spec: ModelSpec | Plan) -> bool:
    """Whether the digits data set fits `spec`: 64 float input values (one 8x8 image) or 128 (two)."""
    return _digits_problem(spec.spec if isinstance(spec, Plan) else spec) is None


def tokens_fit(spec: ModelSpec | Plan) -> bool:
    """Whether the tokens data set fits `spec`: token ids in, next-token logits (seq, vocab) out."""
    if not (spec.spec if isinstance(spec, Plan) else spec).input_vocab:
        return False  # before planning: a float model never fits, however it is built
    try:
        return _tokens_problem(as_plan(spec)) is None
    except ValueError:  # a spec that cannot be built fits no data set
        return False


# ----------------------------------------------------------------------------- distribution
def check_distribute(config: TrainConfig) -> None:
    """A multi-worker run reads its cluster from the TF_CONFIG environment variable, which must be set.

    Raises:
        ValueError: for 'multi-worker' without TF_CONFIG.
    """
    if config.distribute == "multi-worker" and not os.environ.get("TF_CONFIG"):
        raise ValueError(
            "train.distribute 'multi-worker' reads the cluster from the TF_CONFIG environment variable, which is "
            "not set. Set it on every worker (see 'Several machines' in README.md), or use 'mirrored' for the "
            "devices of one machine. Received: distribute='multi-worker'"
        )


# ----------------------------------------------------------------------------- continuing a run
def check_resume(spec: ModelSpec, config: TrainConfig, previous: object) -> None:
    """Whether `train(spec, config, resume=previous)` can continue the earlier run `previous`.

    Raises:
        ValueError: if `previous` is not a `TrainResult` with a state, `config.steps` is not more
            than it did, or the spec or a setting of `KEPT_ON_RESUME` differs from its own.
    """
    from sharecore.core.results import TrainResult  # pandas: only when a run is continued

    if not isinstance(previous, TrainResult):
        raise ValueError(
            f"resume must be the TrainResult of an earlier run (what train returned). Received: resume of type "
            f"{type(previous).__name__}"
        )
    if previous.state is None:
        why = f"it ended with: {previous.stop_reason}" if previous.stop_reason else "it was kept without its state"
        raise ValueError(
            f"the earlier run has no state to continue from ({why}). Train from the start instead: call train "
            f"without resume. Received: resume.state=None"
        )
    done = previous.state.steps_done
    if config.steps <= done:
        raise ValueError(
            f"steps is the total of the continued run and must be more than the {done} steps the earlier run did. "
            f"To train m more steps, pass dataclasses.replace(previous.config, steps={done} + m). "
            f"Received: steps={config.steps}"
        )

    differ, settings = resume_conflicts(spec, config, previous)
    if differ:
        raise ValueError(
            f"a run continues with the spec it started with (only the name and description may change), but its "
            f"{_listed(differ)} differ from those of the earlier run's spec {previous.spec.name!r}. Continue "
            f"with the earlier spec, or train this one from the start. Received: spec {spec.name!r}"
        )
    changed = [
        f"{name}={getattr(config, name)!r} (the earlier run had {getattr(previous.config, name)!r})"
        for name in settings
    ]
    if changed:
        raise ValueError(
            f"a continued run keeps the earlier run's {', '.join(KEPT_ON_RESUME[:-1])} and teacher: its optimizer "
            f"state and batch order belong to them. Only steps (the new total), learning_rate, record_every and the "
            f"device may change: pass dataclasses.replace(previous.config, steps=..., learning_rate=...). "
            f"Received: {'; '.join(changed)}"
        )


def resume_conflicts(spec: ModelSpec, config: TrainConfig, previous: TrainResult) -> tuple[list[str], list[str]]:
    """What keeps `previous` from being continued with `spec` and `config`: the one rule, for the library
    (`check_resume`) and a front end's Continue button alike.

    A continued run keeps its spec (only the name and description may change) and the settings of
    `KEPT_ON_RESUME`, whose optimizer state and batch order it carries on; the steps, the learning
    rate, record_every and the device may change.

    Returns:
        The spec's fields and the settings that differ from the earlier run's; both empty when it can go on.
    """
    differ = [
        f.name
        for f in dataclasses.fields(spec)
        if f.name not in ("name", "description") and getattr(spec, f.name) != getattr(previous.spec, f.name)
    ]
    settings = [name for name in KEPT_ON_RESUME if getattr(config, name) != getattr(previous.config, name)]
    return differ, settings


def _listed(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def folder_problem(folder: Path) -> str | None:
    """Makes `folder` and writes and removes a file there, so that a bad output folder fails before a run,
    not after it; None when it can be written, else why not, in a few words ('it is a file', ...)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".sharecore-write-test-{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        probe.unlink()
    except OSError as err:
        if folder.is_file():
            return "it is a file"
        if folder.exists() and not folder.is_dir():
            return "it is not a folder"
        return err.strerror or type(err).__name__
    return None
