"""Trains the tied and untied models side by side and records what sharing does.

Both variants start from the same initial numbers and see the same batches. The steps run in
compiled chunks (`sharecore.nn.trainer`): a recording step copies what its gradients and divergence
are computed from, and the chunk computes them for all its recorded steps at its end
(`sharecore.nn.variant`); between chunks `train` collects the records, reports
progress, honours a stop request and the time cap, and turns a device failure into a stop reason.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable

import numpy as np

from sharecore.core.config import TrainConfig, check_batch_split
from sharecore.core.limits import SECRETS_SECTION, Limits, env_variable
from sharecore.core.results import TrainProgress, TrainResult, TrainState
from sharecore.core.runcheck import check_run
from sharecore.core.spec import ModelSpec
from sharecore.nn.data import Dataset, make_dataset
from sharecore.nn.devices import describe, make_strategy, resolve_device
from sharecore.nn.model import initial_values
from sharecore.nn.recorder import Recorder
from sharecore.nn.tensorboard import check_logdir, write_run
from sharecore.nn.tfimport import tf
from sharecore.nn.trainer import borrowed
from sharecore.nn.variant import Variant


# ----------------------------------------------------------------------------- the run
def train(
    spec: ModelSpec,
    config: TrainConfig | None = None,
    *,
    on_progress: Callable[[TrainProgress], None] | None = None,
    stop: threading.Event | None = None,
    progress_every: int | None = None,
    limits: Limits | None = None,
    strategy: tf.distribute.Strategy | None = None,
    resume: TrainResult | None = None,
    logdir: str | os.PathLike | None = None,
) -> TrainResult:
    """Trains the tied and untied models of `spec` side by side.

    Both start from `config.seed`'s initial weights and see the same batches. Steps run in
    compiled chunks of about 0.2 s each (`ChunkSizes`), or of `progress_every` steps; the held-out
    set is scored inside them on `config.scored_every`'s schedule; progress calls and stop requests
    are handled between chunks.

    With `resume`, the run carries on where an earlier result of the same spec ended: its weights,
    optimizer state and batch order go on, and `config.steps` is the new total (to continue a run
    of 40 steps by 20: `train(spec, dataclasses.replace(previous.config, steps=60), resume=previous)`).
    The numbers are those of one run of the total length, up to float rounding. The learning rate
    may change on the way (a learning-rate schedule by hand); the shapes, optimizer, batch size,
    seed and data set may not.

    Args:
        spec: the model spec.
        config: the training settings; defaults to `TrainConfig()`.
        on_progress: called after every chunk with the steps done and the history rows of the steps
            since the last call (`TrainProgress.new_history`); a watcher that charts the whole run
            keeps the rows it was handed.
        stop: when set, the run ends after the current chunk and returns what it recorded.
        progress_every: steps per chunk; default by time, about 0.2 s of steps a chunk.
        limits: caps on size and run length; default `Limits.from_env()`.
        strategy: a `tf.distribute` strategy to train under, e.g. a `MultiWorkerMirroredStrategy`
            made at the start of the program; default the one `config.distribute` asks for
            (`sharecore.nn.devices.make_strategy`). Each replica trains on an equal slice of every
            batch, and the records are those of one device with the same batch.
        resume: an earlier result to continue (see above); its records come first in the result.
        logdir: where to write the run's TensorBoard logs when it ends, `logdir/tied` and
            `logdir/untied` (`sharecore.nn.tensorboard.write_run`); checked before training. A
            place on this machine, not a setting of the run: it is no part of `config`, which
            travels in links and the run store.

    Returns:
        A `TrainResult`. A run that stops early (stop request, the wall-clock cap
        `limits.max_run_seconds`, or a non-finite loss or weight) says why in `stop_reason`
        and keeps everything recorded before. Its `state` is where it ended, for `resume`;
        None after a non-finite value or a device failure, whose weights are no place to go on from.

    Raises:
        ValueError: for an impossible spec, dataset or device, a spec or run over the limits, a
            batch that does not split evenly over the replicas, a `resume` this run cannot
            continue, or a `logdir` that cannot be written, before any training.
        OSError: if the TensorBoard logs cannot be written at the end (write_run(result, logdir)
            after the run keeps the result in hand).

    Example:
        >>> from sharecore import preset
        >>> result = train(preset("seed-mixed"), TrainConfig(steps=20))
        >>> result.steps_done, sorted(result.history.variant.unique())
        (20, ['tied', 'untied'])
        >>> list(result.gradients.columns)
        ['step', 'variant', 'tensor', 'use', 'grad_norm', 'sum_norm', 'cosine_with_others']
        >>> float(result.divergence[result.divergence.variant == "tied"].relative_distance.abs().max())  # one variable
        0.0
    """
    config = config or TrainConfig()
    limits = limits or Limits.from_env()
    began = time.perf_counter()  # the wall-clock cap (limits.max_run_seconds) counts from here
    p = check_run(spec, config, limits, resume=resume)  # the one plan of this run, handed down from here
    if logdir is not None:
        check_logdir(logdir)
    strategy = strategy or make_strategy(config)
    if strategy is not None:
        check_batch_split(config.batch_size, strategy.num_replicas_in_sync)
    device = resolve_device(config.device)
    where = describe(strategy, device)
    # Everything of the run on its device, the data and initial values too (device 'cpu' on a GPU host).
    with tf.device(device):
        data = make_dataset(p, config.dataset, config.seed, config.teacher)
        init = initial_values(p, config.seed)
    # Each chunk draws its batches' indices from one generator as it starts: the same numbers as
    # drawing (steps, batch_size) at once, without holding them all (100,000 steps at batch 512
    # took 400 MB while they were drawn).
    batches = np.random.default_rng([config.seed, 3])
    if resume is not None:
        batches.bit_generator.state = resume.state.rng  # the batches the earlier run would have drawn next
    steps = np.arange(1, config.steps + 1)
    recorded = (steps == 1) | (steps % config.record_every == 0) | (steps == config.steps)
    # By absolute step number, so that a continued run scores the steps one uninterrupted run scores.
    scored = (steps % config.scored_every == 0) | (steps == config.steps)
    if data.heldout_x is None:
        scored[:] = False
    score_steps = np.append(np.flatnonzero(scored) + 1, config.steps)  # ascending; the last step closes it

    # A strategy places the replicas' ops itself; under an outer device scope they would all go there.
    with (
        tf.device(device) if strategy is None else contextlib.nullcontext(),
        borrowed(p, data.classes, config, device, strategy) as trainer,
    ):
        variants = trainer.variants
        for v in variants:
            v.reset(init, config)  # also for a continued run: it sets the seed's ||W0|| for divergence
        params = {v.name: int(v.model.count_params()) for v in variants}
        steps_done = resume.state.steps_done if resume is not None else 0
        recorder = Recorder(variants, steps_done, recorded, resume)
        heldout_x, heldout_y = _heldout_tensors(data)
        if resume is None:
            weights = {"start": {v.name: v.snapshot() for v in variants}}
            recorder.divergence_now(0)
            if data.heldout_x is not None:
                recorder.heldout(0, trainer.evaluate(heldout_x, heldout_y).numpy())
        else:
            weights = {"start": resume.weights["start"]}
            _restore(variants, resume.state, config)
        pool_x, pool_y = tf.constant(data.x), tf.constant(data.y)

        stop_reason = None
        can_continue = True  # False once the weights are no place to go on from
        # Trace before the clock starts, so that steps per second measure training only.
        start = time.perf_counter()
        trainer.chunk.get_concrete_function()
        compile_seconds = time.perf_counter() - start
        sizes = ChunkSizes(progress_every)
        # What a chunk holds of its recorded steps until and at its end (`Trainer._chunk`) stays under CHUNK_ROW_BYTES.
        max_rows = max(1, CHUNK_ROW_BYTES // (4 * max(1, sum(v.held_size for v in variants))))
        reported = steps_done  # the last step handed to on_progress
        start = time.perf_counter()
        while steps_done < config.steps:
            if stop is not None and stop.is_set():
                stop_reason = f"stopped by request after step {steps_done}"
                break
            if time.perf_counter() - began > limits.max_run_seconds:
                stop_reason = _over_time(limits, steps_done, config.steps)
                break
            first = steps_done
            # A chunk ends at the next step the held-out schedule scores: the chunk scores after its last step.
            last = min(first + sizes.next(), score_steps[np.searchsorted(score_steps, first, side="right")])
            last = _at_most_rows(recorded, first, last, max_rows)
            idx = batches.integers(0, len(data.x), (last - first, config.batch_size)).astype("int32")
            called = time.perf_counter()
            try:
                out = trainer.chunk(
                    pool_x,
                    pool_y,
                    tf.constant(idx),
                    tf.constant(recorded[first:last]),
                    tf.constant(scored[last - 1]),
                    heldout_x,
                    heldout_y,
                )
                scalars, stats, heldout, finite = (t.numpy() for t in out)
            except DEVICE_ERRORS as err:
                stop_reason = _device_failure(err, where, first, last, config, strategy is not None)
                can_continue = False  # the chunk may have updated some weights before it failed
                break
            sizes.took(len(scalars), time.perf_counter() - called)
            recorder.chunk(first, scalars, stats)
            steps_done = first + len(scalars)
            if steps_done == last and scored[last - 1]:
                recorder.heldout(last, heldout)
            if not finite.all():
                can_continue = False
                stop_reason = _non_finite([v.name for v, ok in zip(variants, finite) if not ok], steps_done, config)
            if on_progress is not None and steps_done > reported:
                on_progress(TrainProgress(steps_done, config.steps, recorder.history(reported)))
                reported = steps_done
            if stop_reason:
                break
        seconds = time.perf_counter() - start
        # A run stopped between two scores (Stop, the time cap) is scored where it ended, as its last word.
        if can_continue and data.heldout_x is not None and steps_done and not recorder.is_scored(steps_done):
            recorder.heldout(steps_done, trainer.evaluate(heldout_x, heldout_y).numpy())
        weights["end"] = {v.name: v.snapshot() for v in variants}
        # Once, at the end: a few small arrays, so that even an instant run can be continued.
        state = None
        if can_continue:
            state = TrainState(steps_done, _state_arrays(variants), batches.bit_generator.state)

    result = TrainResult(
        spec=spec,
        config=config,
        device=where,
        steps_done=steps_done,
        stop_reason=stop_reason,
        weights=weights,
        seconds=seconds + (resume.seconds if resume is not None else 0.0),
        dataset=data.description,
        params=params,
        compile_seconds=compile_seconds + (resume.compile_seconds if resume is not None else 0.0),
        state=state,
        **recorder.frames(),
    )
    if logdir is not None:
        write_run(result, logdir)
    return result


def _heldout_tensors(data: Dataset) -> tuple[tf.Tensor, tf.Tensor]:
    """The held-out samples as the chunk takes them; none (0 rows of the right shapes) without a held-out set."""
    if data.heldout_x is not None:
        return tf.constant(data.heldout_x), tf.constant(data.heldout_y)
    return tf.constant(data.x[:0]), tf.constant(data.y[:0])


# The most bytes one chunk holds for its recorded steps until its end, their rows and what the records are
# computed from at the end (`Variant.held_size`: seed-dense's are 12 kB a recorded step, so a chunk of 0.2 s
# recording every step fits; a model whose rows are bigger records fewer steps a chunk).
CHUNK_ROW_BYTES = 32 * 2**20


def _at_most_rows(recorded: np.ndarray, first: int, last: int, rows: int) -> int:
    """The end of a chunk from step `first + 1` to at most `last` that records at most `rows` steps (at least one step)."""
    if last <= first:
        return last
    counts = np.cumsum(recorded[first:last])
    if counts[-1] <= rows:
        return last
    return first + max(1, int(np.searchsorted(counts, rows, side="right")))


class ChunkSizes:
    """How many steps the next compiled chunk runs: enough that the call's fixed cost is small, few enough
    that the live chart and the Stop button answer soon.

    A chunk call costs 2-4 ms beyond its steps on a loaded 2-core machine (handing over the batch indices,
    fetching the records, the progress report: measured as 400 steps of seed-dense in chunks of 1 against
    one chunk of 400); a chunk of `CHUNK_SECONDS` keeps that at 1-2 %, under the 5 % a run may lose to it,
    and a stop request or a new point of the live chart waits at most that long. A chunk also ends at
    every step the held-out schedule scores (a handful a run), as the chunk scores after its last step. The first chunk is `FIRST_CHUNK` steps, so that a chart can be drawn at once; each
    later one is sized by the last one's pace, growing at most `GROWTH` times a chunk (a first measurement
    can be slow while caches warm up). The sizes change no number: batches are drawn step by step from one
    generator, and records and held-out scores are placed by absolute step.
    """

    CHUNK_SECONDS = 0.2
    FIRST_CHUNK = 2
    GROWTH = 8

    def __init__(self, fixed: int | None = None) -> None:
        self.fixed = fixed
        self.size = fixed or self.FIRST_CHUNK

    def next(self) -> int:
        return self.size

    def took(self, steps: int, seconds: float) -> None:
        """Sizes the next chunk from one that ran `steps` steps in `seconds`."""
        if self.fixed or steps < 1:
            return
        pace = seconds / steps
        self.size = max(1, min(self.size * self.GROWTH, int(self.CHUNK_SECONDS / max(pace, 1e-7))))


# What a device, its driver or a lost replica raises mid-run (out of memory, cuDNN, a collective that
# timed out or was cut). Other TensorFlow errors, such as a shape mismatch, are bugs and are raised.
DEVICE_ERRORS = (
    tf.errors.ResourceExhaustedError,
    tf.errors.InternalError,
    tf.errors.UnknownError,
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)


def _device_failure(
    err: tf.errors.OpError, where: str, first: int, last: int, config: TrainConfig, distributed: bool
) -> str:
    """The stop reason for a TensorFlow error during a chunk: out of memory, a device or driver
    failure, or (distributed) a replica or worker that failed or stopped answering."""
    steps = f"between steps {first + 1} and {last}"
    if isinstance(err, tf.errors.ResourceExhaustedError):
        return (
            f"{where} ran out of memory {steps}; training stopped and kept what was recorded. Use a smaller batch "
            f"size (now {config.batch_size}) or smaller tensors, or train on the CPU."
        )
    detail = (err.message or "").strip().splitlines()
    detail = f"{type(err).__name__}: {detail[0][:300]}" if detail else type(err).__name__
    if distributed:
        fix = (
            "A replica or worker failed or stopped answering: check that every worker is running and can reach "
            "the others, then train again."
        )
    elif "GPU" in where.upper():
        fix = "On a GPU this is usually the driver or cuDNN: train on the CPU (device 'cpu') to go on."
    else:
        fix = "Train again; if it happens again with this spec and these settings, please report it."
    return f"TensorFlow failed on {where} {steps} ({detail}); training stopped and kept what was recorded. {fix}"


def _over_time(limits: Limits, steps_done: int, steps: int) -> str:
    return (
        f"the run reached this server's time limit of {limits.max_run_seconds:,} s (max_run_seconds) after step "
        f"{steps_done} of {steps}; training stopped and kept what was recorded. Train fewer steps, or raise the "
        f"limit with the environment variable {env_variable('max_run_seconds')} or in .streamlit/secrets.toml "
        f"under [{SECRETS_SECTION}] max_run_seconds."
    )


def _non_finite(bad: list[str], steps_done: int, config: TrainConfig) -> str:
    """The stop reason when the `bad` variants' loss or weights became NaN or inf in the step after `steps_done`."""
    return (
        f"the {' and '.join(bad)} model's loss or weights became non-finite (NaN or inf) at step "
        f"{steps_done + 1}; training stopped there. The learning rate {config.learning_rate:g} is "
        f"probably too high for the {config.optimizer} optimizer: try {config.learning_rate / 10:g}."
    )


# ----------------------------------------------------------------------------- continuing a run
def _state_arrays(variants: list[Variant]) -> dict[str, np.ndarray]:
    """Every trainable and optimizer variable of both variants, as 'tied/var/0', 'untied/opt/2', ..."""
    return {
        f"{v.name}/{kind}/{i}": np.array(var.numpy())
        for v in variants
        for kind, group in (("var", v.variables), ("opt", v.optimizer.variables))
        for i, var in enumerate(group)
    }


def _restore(variants: list[Variant], state: TrainState, config: TrainConfig) -> None:
    """Assigns a saved state to freshly reset variants; the learning rate is the new config's."""
    for v in variants:
        for kind, group in (("var", v.variables), ("opt", v.optimizer.variables)):
            for i, var in enumerate(group):
                key = f"{v.name}/{kind}/{i}"
                value = state.arrays.get(key)
                if value is None or tuple(np.shape(value)) != tuple(var.shape):
                    got = "missing" if value is None else f"shape {tuple(np.shape(value))}"
                    raise ValueError(
                        f"the earlier run's state does not fit this model: {key} should have shape "
                        f"{tuple(var.shape)}. It was probably saved by another version of sharecore; train from "
                        f"the start instead. Received: {key} {got}"
                    )
                var.assign(np.asarray(value, dtype=var.dtype))
        # The state holds the earlier learning rate; a continued run may change it (a schedule by hand).
        v.optimizer.learning_rate = config.learning_rate
