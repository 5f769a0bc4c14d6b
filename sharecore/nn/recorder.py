"""What a run records: rows while it trains, the record frames once it is done.

`train` hands the recorder each chunk's numbers as the compiled chunk returns them (NumPy arrays,
one row per step); the recorder knows how a variant's stats vector is laid out and which row of
which frame each number goes to. The frames' columns are `sharecore.core.results.RECORD_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sharecore.core.results import RECORD_COLUMNS, TrainResult, record_frame
from sharecore.nn.variant import Variant


class Recorder:
    """The rows of a run's record frames, by frame name, in the order they were recorded.

    A continued run's rows start with the earlier run's, kept as they were.
    """

    def __init__(self, variants: Sequence[Variant], resume: TrainResult | None = None) -> None:
        self.variants = list(variants)
        self.rows: dict[str, list[tuple]] = {name: _rows(resume, name) for name in RECORD_COLUMNS}

    def divergence_now(self, step: int) -> None:
        """Records the divergence of the variants' current weights at `step` (0: before training)."""
        for v in self.variants:
            for (t, a, b), (rel, cos) in v.divergence_now().items():
                self.rows["divergence"].append((step, v.name, t, a, b, float(rel), float(cos)))

    def chunk(self, first: int, losses: np.ndarray, accs: np.ndarray, stats: np.ndarray, recorded: np.ndarray) -> None:
        """Records the steps `first + 1`, `first + 2`, ... of one compiled chunk.

        Args:
            first: the steps done before the chunk.
            losses: (steps, variants) training losses.
            accs: (steps, variants) training accuracies (NaN without classes).
            stats: (steps, sum of the variants' `stats_size`): each variant's stats vector in turn.
            recorded: (the run's steps,) whether step s + 1 records its gradients and divergence.
        """
        for i in range(len(losses)):
            step = first + i + 1
            offset = 0
            for j, v in enumerate(self.variants):
                self.rows["history"].append((step, v.name, float(losses[i, j]), float(accs[i, j])))
                if recorded[step - 1]:
                    self._stats(step, v, stats[i, offset : offset + v.stats_size])
                offset += v.stats_size

    def _stats(self, step: int, v: Variant, values: np.ndarray) -> None:
        # grad_norm, sum_norm, cosine per use, then distance, cosine per pair (Variant.train_step's layout).
        for i, (t, use) in enumerate(v.grad_keys):
            norm, total, cos = values[3 * i : 3 * i + 3]
            self.rows["gradients"].append((step, v.name, t, use, float(norm), float(total), float(cos)))
        base = 3 * len(v.grad_keys)
        for i, (t, a, b) in enumerate(v.div_keys):
            rel, cos = values[base + 2 * i : base + 2 * i + 2]
            self.rows["divergence"].append((step, v.name, t, a, b, float(rel), float(cos)))

    def heldout(self, step: int, losses: np.ndarray, accs: np.ndarray) -> None:
        """Records the variants' (variants,) loss and accuracy on the held-out samples after `step`."""
        self.rows["heldout"].extend(
            (step, v.name, float(losses[j]), float(accs[j])) for j, v in enumerate(self.variants)
        )

    def frame(self, name: str) -> pd.DataFrame:
        """The record frame `name` ('history', 'gradients', 'divergence' or 'heldout') so far."""
        return record_frame(name, self.rows[name])

    def frames(self) -> dict[str, pd.DataFrame]:
        """Every record frame, by `TrainResult` field name."""
        return {name: self.frame(name) for name in RECORD_COLUMNS}


def _rows(result: TrainResult | None, frame: str) -> list[tuple]:
    """The rows of one of `result`'s record frames as tuples; none without a result."""
    if result is None:
        return []
    return list(getattr(result, frame).itertuples(index=False, name=None))
