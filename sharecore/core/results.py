"""What a training run returns: its records, and the state a run continues from.

Plain data (pandas and NumPy, no TensorFlow), so that the run store, the compare view and the CLI
read kept runs without importing TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sharecore.core.config import TrainConfig
from sharecore.core.spec import ModelSpec

VARIANTS = ("tied", "untied")

# The columns of a run's record frames, in order: the one definition that the trainer fills
# (`sharecore.nn.recorder`), the run store keeps, and the charts, comparisons and diagnoses read.
# Every row says at which step (0: before training) and of which variant it is.
RECORD_KEY = ("step", "variant")
HISTORY_COLUMNS = (*RECORD_KEY, "loss", "accuracy")  # every step; accuracy is NaN without classes
GRADIENT_COLUMNS = (*RECORD_KEY, "tensor", "use", "grad_norm", "sum_norm", "cosine_with_others")  # per use
DIVERGENCE_COLUMNS = (*RECORD_KEY, "tensor", "use_a", "use_b", "relative_distance", "cosine")  # per pair of uses
HELDOUT_COLUMNS = (*RECORD_KEY, "loss", "accuracy")  # on the held-out samples
# Each record frame of a `TrainResult`, by field name.
RECORD_COLUMNS: dict[str, tuple[str, ...]] = {
    "history": HISTORY_COLUMNS,
    "gradients": GRADIENT_COLUMNS,
    "divergence": DIVERGENCE_COLUMNS,
    "heldout": HELDOUT_COLUMNS,
}


def record_frame(name: str, rows: Iterable[tuple] = ()) -> pd.DataFrame:
    """One of a run's record frames from its rows (tuples in `RECORD_COLUMNS[name]` order); empty without rows.

    Example:
        >>> record_frame("history", [(1, "tied", 0.5, float("nan"))]).columns.tolist()
        ['step', 'variant', 'loss', 'accuracy']
    """
    return pd.DataFrame(list(rows), columns=list(RECORD_COLUMNS[name]))


def gradients_zero_from(gradients: pd.DataFrame, tensor: str | None = None) -> dict[str, int]:
    """Per variant, the step from which every recorded gradient of `tensor` was zero to the end of the records.

    The cosine between zero gradients has no value, so a collapsed run's cosine line stops there (ReLUs
    that all went dead after one too-large step); a chart names this step to say why. A variant whose
    last record has a gradient that moves is left out.

    Args:
        gradients: `TrainResult.gradients` (`GRADIENT_COLUMNS`).
        tensor: a shared tensor; None for every shared tensor together.

    Example:
        >>> rows = [(s, "untied", "W", u, n, n, float("nan")) for s, n in ((1, 0.3), (2, 0.0), (3, 0.0)) for u in "ab"]
        >>> gradients_zero_from(record_frame("gradients", rows))
        {'untied': 2}
    """
    rows = gradients if tensor is None or gradients.empty else gradients[gradients["tensor"] == tensor]
    out = {}
    for variant, of_variant in rows.groupby("variant", sort=False):
        moving = of_variant.groupby("step")["grad_norm"].sum() > 0  # by step, in order
        if moving.empty or moving.iloc[-1]:
            continue
        still = moving.index if not moving.any() else moving.index[moving.index > moving[moving].index.max()]
        out[str(variant)] = int(still.min())
    return out


@dataclass(frozen=True)
class TrainProgress:
    """What a progress callback receives."""

    step: int  # steps done by both variants
    total: int
    # The history rows of the steps since the last report (`HISTORY_COLUMNS`): only what is new, so a
    # long run hands over each row once instead of the whole history after every chunk.
    new_history: pd.DataFrame


@dataclass(frozen=True)
class TrainState:
    """Where a run ended, so that `train(..., resume=state)` carries on as if it had never stopped.

    Continuing a run of n steps for m more gives the numbers of one run of n + m steps (the same
    batches, weights and optimizer state), up to float rounding.
    """

    steps_done: int
    # 'tied/var/0', 'untied/opt/3', ...: every trainable variable and optimizer variable of each variant, in order
    arrays: dict[str, np.ndarray]
    rng: dict[str, Any]  # the batch generator's `bit_generator.state` (JSON-ready)


@dataclass
class TrainResult:
    """Everything one run recorded. The frames are tidy (one row per observation)."""

    spec: ModelSpec
    config: TrainConfig
    device: str  # the device it ran on, e.g. '/CPU:0'
    steps_done: int
    stop_reason: str | None  # None when all steps ran
    history: pd.DataFrame  # HISTORY_COLUMNS
    gradients: pd.DataFrame  # GRADIENT_COLUMNS
    divergence: pd.DataFrame  # DIVERGENCE_COLUMNS, step 0 included
    weights: dict[str, dict[str, dict[str, np.ndarray]]]  # phase ('start'|'end') -> variant -> name -> array
    seconds: float  # training time, excluding the one-off compile
    dataset: str = ""
    params: dict[str, int] = field(default_factory=dict)  # variant -> count_params()
    compile_seconds: float = 0.0  # tracing the compiled chunk; 0 when a compiled trainer was reused
    # HELDOUT_COLUMNS: loss and accuracy on the data set's held-out samples (at step 0 and after every
    # chunk of steps); empty for a data set without a held-out split
    heldout: pd.DataFrame = field(default_factory=lambda: record_frame("heldout"))
    # where the run ended, for `train(..., resume=result.state)`; None for a run that cannot continue
    state: TrainState | None = None

    @property
    def steps_per_second(self) -> float:
        """Optimizer steps per second, counting a tied plus an untied step as one."""
        return self.steps_done / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary of the run."""
        last = self.history[self.history.step == self.history.step.max()] if len(self.history) else self.history
        return {
            "spec": self.spec.to_dict(),
            "train": self.config.to_dict(),
            "device": self.device,
            "dataset": self.dataset,
            "steps_done": self.steps_done,
            "stop_reason": self.stop_reason,
            "seconds": round(self.seconds, 3),
            "compile_seconds": round(self.compile_seconds, 3),
            "steps_per_second": round(self.steps_per_second, 2),
            "params": self.params,
            "final_loss": {r.variant: float(r.loss) for r in last.itertuples()},
            **self._final_heldout(),
        }

    def _final_heldout(self) -> dict[str, dict[str, float]]:
        if self.heldout.empty:
            return {}
        last = self.heldout[self.heldout.step == self.heldout.step.max()]
        return {"final_heldout_loss": {r.variant: float(r.loss) for r in last.itertuples()}}
