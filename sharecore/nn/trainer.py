"""The compiled pair and the pool: a run's tied and untied variants in one compiled function, kept for the next run.

Compiling a trainer takes seconds; trainers are pooled by what the compiled graph depends on (not
a spec's name or initializers), so a second run of the same shapes does not trace again. A server
compiles its default experiment's trainer ahead of the first Train click (`warm_up`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import threading
import time
from collections.abc import Callable, Iterator

from sharecore.core.config import TrainConfig
from sharecore.core.plan import Plan
from sharecore.core.runcheck import check_run
from sharecore.core.spec import ModelSpec
from sharecore.nn.data import make_dataset
from sharecore.nn.devices import resolve_device
from sharecore.nn.tfimport import tf
from sharecore.nn.variant import Variant, split_columns


class Trainer:
    """The tied and untied variants of one spec, with one compiled function that runs a chunk
    of steps of both (many steps per call, recorded values fetched once per chunk).

    Trainers are reused across runs of the same shapes (reset to the new run's initial
    state), so a second run does not trace again. A trainer serves one run at a time.
    """

    def __init__(
        self,
        p: Plan,
        classes: int,
        optimizer: str,
        batch_size: int,
        input_dtype: tf.DType,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        # Under a strategy, every variable (weights, optimizer slots) is made in its scope: one
        # mirrored variable per tensor, so a shared tensor stays one variable on every replica.
        self.strategy = strategy
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            self.variants = [Variant(p, tied, classes, optimizer) for tied in (True, False)]
        if not classes:
            y_spec = tf.TensorSpec([None, *p.output_shape], tf.float32)
        elif p.spec.input_vocab:  # next tokens, one per position
            y_spec = tf.TensorSpec([None, *p.spec.input_shape], tf.int32)
        else:
            y_spec = tf.TensorSpec([None], tf.int32)
        # autograph=False: the step's control flow is written as tf.while_loop and tf.cond, so nothing
        # needs converting. With AutoGraph on, tracing parsed and rewrote the source of every method
        # and Keras layer it reached: about two thirds of a first run's compile time.
        x_spec = tf.TensorSpec([None, *p.spec.input_shape], input_dtype)
        self.chunk = tf.function(
            self._chunk,
            input_signature=[
                x_spec,  # the training pool
                y_spec,
                tf.TensorSpec([None, batch_size], tf.int32),  # (steps, batch) indices into the pool
                tf.TensorSpec([None], tf.bool),  # (steps,) whether the step records
                tf.TensorSpec([], tf.bool),  # whether the held-out set is scored after the chunk's last step
                x_spec,  # the held-out set (no rows where there is none)
                y_spec,
            ],
            autograph=False,
        )
        self.evaluate = tf.function(self._evaluate, input_signature=[x_spec, y_spec], autograph=False)

    def _evaluate(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """Loss and accuracy of both variants on held-out samples, (4,): tied loss, untied loss, tied and
        untied accuracy; no step is taken."""
        outs = [v.loss(x, y, training=False) for v in self.variants]
        return tf.stack([o[0] for o in outs] + [o[1] for o in outs])

    def _chunk(
        self,
        pool_x: tf.Tensor,
        pool_y: tf.Tensor,
        idx: tf.Tensor,
        record: tf.Tensor,
        score: tf.Tensor,
        heldout_x: tf.Tensor,
        heldout_y: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Trains len(idx) steps, or up to and without the first step whose loss or weights are not finite;
        then, if `score` and every step was done, scores the held-out set.

        Returns the scalars (steps done, 4) (loss and accuracy, each tied then untied); the stats vectors of
        the recorded steps done (recorded steps, both variants' `stats_size`), computed after the last step from
        the raw rows the steps copied; the held-out score (4,) (loss and accuracy, each tied then untied; zeros
        when not scored); and the finiteness of both variants at the last step tried. Fetched once per chunk:
        everything a run records between two progress reports. `train` ends a chunk at every step its held-out
        schedule scores (a handful a run), so the score is outside the loop of steps: a branch in every step
        costs a tiny model speed (recording nothing, seed-dense's chunk with a branch for its stats in every step
        ran at 0.95 times the steps per second of bench's bare chunk, the same chunk without the branch at 1.21
        times; quiet machine).
        """
        n = tf.shape(idx)[0]
        sizes = [v.row_size for v in self.variants]
        # The recorded steps' rows (`Variant.row_size`: raw rows, or a big model's stats), and one row more that the
        # steps in between write and the next recorded step overwrites: a write at every step, without a branch.
        rows = tf.reduce_sum(tf.cast(record, tf.int32)) + 1

        def more(i, finite, count, scalars, raw):
            return tf.logical_and(i < n, tf.reduce_all(finite))

        def step(i, finite, count, scalars, raw):
            x, y = tf.gather(pool_x, idx[i]), tf.gather(pool_y, idx[i])  # (batch, ...) each
            if self.strategy is None:
                outs = [v.train_step(x, y, record[i]) for v in self.variants]
            else:
                outs = self._replicated_step(x, y, record[i])
            return (
                i + 1,
                tf.stack([o[2] for o in outs]),
                count + tf.cast(record[i], tf.int32),
                scalars.write(i, tf.stack([o[0] for o in outs] + [o[1] for o in outs])),
                raw.write(count, tf.concat([o[3] for o in outs], axis=0)),
            )

        tried, finite, _, scalars, raw = tf.while_loop(
            more,
            step,
            (
                tf.constant(0),
                tf.ones([2], tf.bool),
                tf.constant(0),
                tf.TensorArray(tf.float32, size=n, element_shape=[4]),
                tf.TensorArray(tf.float32, size=rows, element_shape=[sum(sizes)]),
            ),
        )
        all_finite = tf.reduce_all(finite)
        # A step that was not finite was written too; it is not a step done.
        done = tried - tf.cast(tf.logical_not(all_finite), tf.int32)
        raw = raw.gather(tf.range(tf.reduce_sum(tf.cast(record[:done], tf.int32))))  # (recorded steps done, raw)
        # The records of every recorded step at once, each variant from its part of the rows.
        stats = tf.concat([v.stats_of_rows(part) for v, part in zip(self.variants, split_columns(raw, sizes))], 1)
        # Under a strategy in the cross-replica context: a mirrored variable reads the same values on every replica.
        heldout = tf.cond(
            tf.logical_and(score, all_finite),
            lambda: self._evaluate(heldout_x, heldout_y),
            lambda: tf.zeros([4]),
        )
        return scalars.stack()[:done], stats, heldout, finite

    def _replicated_step(self, x: tf.Tensor, y: tf.Tensor, record: tf.Tensor) -> list[tuple[tf.Tensor, ...]]:
        """One step of both variants on every replica, each on its slice of the batch; what they return is summed
        over the replicas inside the step, so the first local replica's values are the whole batch's."""

        def on_replica(x: tf.Tensor, y: tf.Tensor, record: tf.Tensor) -> list[tuple[tf.Tensor, ...]]:
            replica = tf.distribute.get_replica_context()
            size = tf.shape(x)[0] // replica.num_replicas_in_sync
            start = replica.replica_id_in_sync_group * size  # the global replica id, over every worker
            x, y = x[start : start + size], y[start : start + size]  # (batch / replicas, ...) each
            return [v.train_step(x, y, record, replica) for v in self.variants]

        per_replica = self.strategy.run(on_replica, args=(x, y, record))
        return tf.nest.map_structure(lambda t: self.strategy.experimental_local_results(t)[0], per_replica)


_POOL: dict[tuple, list[Trainer]] = {}
_POOL_ORDER: list[tuple] = []
_POOL_LOCK = threading.Lock()
POOL_SIZE = 6  # idle compiled trainers kept for reuse (each is a few small models and a graph)


# Keys whose trainer `warm_up` is compiling now, each with an event set when it is in the pool.
_WARMING: dict[tuple, threading.Event] = {}
WARM_UP_WAIT_S = 60.0  # the longest a run waits for a warm-up's compile before compiling its own


def _checkout(key: tuple, make: Callable[[], Trainer]) -> Trainer:
    """An idle trainer for `key` from the pool, or a new one from `make`.

    A run whose trainer a warm-up is compiling waits for it: a second compile beside the first
    would take longer than the rest of the first (the workshop's first Train clicks after a
    server starts).
    """
    with _POOL_LOCK:
        idle = _POOL.get(key)
        if idle:
            return idle.pop()
        warming = _WARMING.get(key)
    if warming is not None and warming.wait(WARM_UP_WAIT_S):
        with _POOL_LOCK:
            idle = _POOL.get(key)
            if idle:  # another run may have taken it first
                return idle.pop()
    return make()


def _checkin(key: tuple, trainer: Trainer) -> None:
    evicted = False
    with _POOL_LOCK:
        _POOL.setdefault(key, []).append(trainer)
        if key in _POOL_ORDER:
            _POOL_ORDER.remove(key)
        _POOL_ORDER.append(key)
        while sum(len(v) for v in _POOL.values()) > POOL_SIZE:
            oldest = _POOL_ORDER[0]
            _POOL[oldest].pop(0)
            evicted = True
            if not _POOL[oldest]:
                del _POOL[oldest]
                _POOL_ORDER.pop(0)
    _give_back_memory(collect=evicted)


def _give_back_memory(collect: bool) -> None:
    """Frees an evicted trainer now, and hands freed memory back to the operating system.

    A traced graph is a web of reference cycles that only a full garbage collection frees, and with
    TensorFlow's many long-lived objects Python runs one rarely: evicted trainers piled up for a
    while (a few MB each). An eviction comes with a new trainer's compile (seconds), so the
    collection (a fraction of that) is paid only then. glibc keeps freed memory for reuse instead
    of returning it, so a run's transient peak (a teacher data set, a conv net's activations) stayed
    in the server's resident memory; `malloc_trim` returns it (Linux with glibc only).
    """
    if collect:
        gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018  (absent outside glibc)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def _input_dtype(p: Plan) -> tf.DType:
    return tf.int32 if p.spec.input_vocab else tf.float32  # token ids, or float features


def _pool_key(
    p: Plan, classes: int, config: TrainConfig, device: str, strategy: tf.distribute.Strategy | None = None
) -> tuple:
    """What the compiled chunk depends on.

    Not the spec's name, description or initializers (the initial values are assigned per run),
    so a renamed or re-described spec (a workshop's "my-model-2") reuses the trainer its shapes
    compiled. The strategy is part of it: a trainer's variables belong to the strategy they were
    made under (by identity; a pooled trainer holds its strategy, so the id is not reused while
    the trainer waits in the pool).
    """
    spec = dataclasses.replace(
        p.spec,
        name="",
        description="",
        tensors=tuple(dataclasses.replace(t, initializer="glorot_uniform") for t in p.spec.tensors),
    )
    where = None if strategy is None else (type(strategy).__name__, id(strategy))
    return (spec, classes, config.optimizer, config.batch_size, device, where)


def warming_up() -> bool:
    """Whether a `warm_up` is compiling a trainer now (a front end must not reset Keras meanwhile)."""
    with _POOL_LOCK:
        return bool(_WARMING)


def warm_up(spec: ModelSpec, config: TrainConfig | None = None) -> float:
    """Compiles the trainer `train(spec, config)` would use and leaves it in the pool, without training.

    A server calls it once TensorFlow is loaded, for its default experiment, so that the first
    Train click is as fast as later ones; a run that starts while this compiles waits for it
    instead of compiling a second trainer beside it. Returns the seconds spent (0 if a trainer
    was there already or is being compiled).

    Raises:
        ValueError: as `train` would, for an impossible spec or run, before any TensorFlow work.
    """
    config = config or TrainConfig()
    p = check_run(spec, config)
    device = resolve_device(config.device)
    classes = make_dataset(p, config.dataset, config.seed, config.teacher).classes
    key = _pool_key(p, classes, config, device)
    with _POOL_LOCK:
        if _POOL.get(key) or key in _WARMING:
            return 0.0
        done = _WARMING[key] = threading.Event()
    start = time.perf_counter()
    try:
        with tf.device(device):
            trainer = Trainer(p, classes, config.optimizer, config.batch_size, _input_dtype(p))
            trainer.chunk.get_concrete_function()
        _checkin(key, trainer)
    finally:
        with _POOL_LOCK:
            del _WARMING[key]
        done.set()
    return time.perf_counter() - start


@contextlib.contextmanager
def borrowed(
    p: Plan, classes: int, config: TrainConfig, device: str, strategy: tf.distribute.Strategy | None = None
) -> Iterator[Trainer]:
    """The compiled trainer for a run, from the pool or new, and back into the pool when the run ends.

    A new trainer is made (and its variables placed) under the caller's device scope.
    """
    key = _pool_key(p, classes, config, device, strategy)
    trainer = _checkout(
        key, lambda: Trainer(p, classes, config.optimizer, config.batch_size, _input_dtype(p), strategy)
    )
    try:
        yield trainer
    finally:
        _checkin(key, trainer)
