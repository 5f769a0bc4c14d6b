"""What a run records: preallocated arrays while it trains, the record frames once it is done.

`train` hands the recorder each chunk's two arrays as the compiled chunk returns them (the scalars, a
row per step; the stats vectors, a row per recorded step); the recorder copies them into arrays sized for the whole
run when it starts, and knows how a variant's stats vector is laid out and which row of which frame
each number goes to. The frames are built once, at the end (and the history rows of a few steps for
each progress report): building them after every chunk made a long run quadratic. The frames'
columns are `sharecore.core.results.RECORD_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sharecore.core.results import RECORD_COLUMNS, TrainResult, record_frame
from sharecore.nn.variant import Variant

# The columns of a chunk's scalars (steps, 4), each tied then untied.
LOSS, ACCURACY = slice(0, 2), slice(2, 4)


class Recorder:
    """The records of one run, steps `first + 1` to `last`, in arrays filled chunk by chunk.

    Args:
        variants: the tied and untied variants, in the order of the chunk's columns.
        first: the steps done before this run (a continued run's earlier steps), 0 for a new run.
        recorded: (last,) whether step s + 1 records its gradients and divergence.
        resume: the earlier result a continued run goes on from: its frames come first, kept as they were.
    """

    def __init__(
        self,
        variants: Sequence[Variant],
        first: int,
        recorded: np.ndarray,
        resume: TrainResult | None = None,
    ) -> None:
        self.variants = list(variants)
        self.first, self.done = first, first
        self.recorded = recorded
        self.resume = resume
        self.scalars = np.zeros((len(recorded) - first, 4), np.float32)  # (steps of this run, 4)
        # (recorded steps of this run, stats); np.zeros takes no time until rows are written.
        self.stats = np.zeros((int(recorded[first:].sum()), sum(v.stats_size for v in self.variants)), np.float32)
        self.stats_filled = 0  # rows of `stats` written
        self.start_divergence: list[tuple] = []  # step 0's rows, computed eagerly
        self.heldout_rows: list[tuple] = []  # a handful a run

    def divergence_now(self, step: int) -> None:
        """Records the divergence of the variants' current weights at `step` (0: before training)."""
        for v in self.variants:
            for (t, a, b), (rel, cos) in v.divergence_now().items():
                self.start_divergence.append((step, v.name, t, a, b, float(rel), float(cos)))

    def chunk(self, first: int, scalars: np.ndarray, stats: np.ndarray) -> None:
        """Records the steps `first + 1`, `first + 2`, ... of one compiled chunk.

        Args:
            first: the steps done before the chunk.
            scalars: (steps, 4) loss and accuracy (NaN without classes), each tied then untied.
            stats: (recorded steps, sum of the variants' `stats_size`): each variant's stats vector in turn, one
                row per step of the chunk that records (`recorded`).
        """
        rows = slice(first - self.first, first - self.first + len(scalars))
        self.scalars[rows] = scalars
        expected = int(self.recorded[first : first + len(scalars)].sum())
        if len(stats) != expected:
            raise RuntimeError(
                f"a chunk of steps {first + 1}-{first + len(scalars)} returned {len(stats)} recorded rows; "
                f"its schedule records {expected}"
            )
        self.stats[self.stats_filled : self.stats_filled + len(stats)] = stats
        self.stats_filled += len(stats)
        self.done = first + len(scalars)

    def heldout(self, step: int, values: np.ndarray) -> None:
        """Records a held-out score after `step`: (4,) loss and accuracy, each tied then untied."""
        self.heldout_rows += [
            (step, v.name, float(values[j]), float(values[2 + j])) for j, v in enumerate(self.variants)
        ]

    def is_scored(self, step: int) -> bool:
        """Whether the held-out set was scored after `step`."""
        return any(row[0] == step for row in self.heldout_rows)

    # -- frames
    def history(self, after: int) -> pd.DataFrame:
        """The history rows of the steps after `after` (at least `self.first`) up to the last step done."""
        after = max(after, self.first)
        steps = np.arange(after + 1, self.done + 1)
        scalars = self.scalars[after - self.first : self.done - self.first]
        return _frame(
            "history",
            np.repeat(steps, len(self.variants)),
            np.tile(self._names(), len(steps)),
            scalars[:, LOSS].reshape(-1),
            scalars[:, ACCURACY].reshape(-1),
        )

    def frames(self) -> dict[str, pd.DataFrame]:
        """Every record frame, by `TrainResult` field name: the earlier run's rows (continued), then this run's."""
        new = {
            "history": self.history(self.first),
            "gradients": self._gradients(),
            "divergence": _concat(record_frame("divergence", self.start_divergence), self._divergence()),
            "heldout": record_frame("heldout", self.heldout_rows),
        }
        if self.resume is None:
            return new
        return {name: _concat(getattr(self.resume, name), frame) for name, frame in new.items()}

    def _names(self) -> np.ndarray:
        return np.array([v.name for v in self.variants], dtype=object)

    def _recorded_steps(self) -> tuple[np.ndarray, np.ndarray]:
        """The recorded steps done in this run, and their rows of `stats`."""
        steps = np.flatnonzero(self.recorded[self.first : self.done]) + self.first + 1
        return steps, self.stats[: len(steps)]

    def _per_key(self, name: str, width: int, keys: str, first_value: int) -> pd.DataFrame:
        """A frame with one row per recorded step, variant and key (`grad_keys` or `div_keys`), read from
        `width` numbers per key at `first_value` (0: gradients, else divergence) of each variant's stats."""
        steps, stats = self._recorded_steps()
        labels, values, offset = [], [], 0
        for v in self.variants:
            keys_v = getattr(v, keys)
            start = offset + (3 * len(v.grad_keys) if first_value else 0)
            values.append(stats[:, start : start + width * len(keys_v)].reshape(len(steps), len(keys_v), width))
            labels += [(v.name, *key) for key in keys_v]
            offset += v.stats_size
        block = np.concatenate(values, axis=1).reshape(-1, width)  # (steps * keys of both, width)
        label_columns = [np.array(c, dtype=object) for c in zip(*labels)] if labels else []
        n_labels = len(RECORD_COLUMNS[name]) - 1 - width
        if not labels:
            label_columns = [np.array([], dtype=object)] * n_labels
        return _frame(
            name,
            np.repeat(steps, len(labels)),
            *(np.tile(c, len(steps)) for c in label_columns),
            *(block[:, i] for i in range(width)),
        )

    def _gradients(self) -> pd.DataFrame:
        return self._per_key("gradients", 3, "grad_keys", 0)

    def _divergence(self) -> pd.DataFrame:
        return self._per_key("divergence", 2, "div_keys", 1)


def _frame(name: str, *columns: np.ndarray) -> pd.DataFrame:
    """A record frame from its columns in `RECORD_COLUMNS[name]` order (floats widened to float64, as
    Python floats were); the empty frame of `record_frame` without rows."""
    if not len(columns[0]):
        return record_frame(name)
    data = {c: (v.astype(np.float64) if v.dtype == np.float32 else v) for c, v in zip(RECORD_COLUMNS[name], columns)}
    return pd.DataFrame(data)


def _concat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """`a`'s rows, then `b`'s; either may be empty."""
    if a.empty:
        return b.reset_index(drop=True)
    if b.empty:
        return a.reset_index(drop=True)
    return pd.concat([a, b], ignore_index=True)
