"""Several kept runs side by side: their curves as one tidy frame, their final figures, the
settings that differ, and a download of it all.

Plain pandas (no TensorFlow, no streamlit): the Lab and Compare pages call it on every rerun,
with runs read back from the run store. Only `tensorboard_zip` loads TensorFlow, when it is called
(it writes TensorBoard's event files), never on import.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sharecore.core.results import RECORD_KEY, VARIANTS, TrainResult, gradients_zero_from
from sharecore.core.text import csv_text
from sharecore.runs.whatif import settings_diff, settings_values

# The curves a comparison overlays, and where each comes from.
SERIES = {
    "loss": "training loss (mean over the batch)",
    "heldout_loss": "loss on held-out samples, never trained on",
    "heldout_accuracy": "accuracy on held-out samples",
    "divergence": "relative distance between untied copies, mean over the pairs of uses",
    "cosine": "cosine between a use's gradient and the other uses', mean over the uses",
}
CURVE_COLUMNS = ["run", "series", *RECORD_KEY, "value"]


@dataclass(frozen=True)
class LabelledRun:
    """A run as a comparison shows it: its label (unique among the compared runs) and its records."""

    label: str
    result: TrainResult
    run_id: str = ""  # the run store's id; '' for a run that is not kept


def curves(runs: Sequence[LabelledRun], tensor: str | None = None) -> pd.DataFrame:
    """Every run's curves as one tidy frame: run, series, step, variant, value.

    Args:
        runs: the runs to compare.
        tensor: the shared tensor whose divergence and gradient cosine are averaged; None
            averages over every shared tensor.

    Returns:
        One row per (run, series, step, variant). Series are `SERIES`' keys; a run without a
        held-out split, or with nothing shared, simply has no rows of that series.
    """
    parts = []
    for run in runs:
        res = run.result
        parts.append(_long(res.history, "loss", "loss", run.label))
        if not res.heldout.empty:
            parts.append(_long(res.heldout, "heldout_loss", "loss", run.label))
            if res.heldout["accuracy"].notna().any():
                parts.append(_long(res.heldout, "heldout_accuracy", "accuracy", run.label))
        div = _of_tensor(res.divergence, tensor)
        if not div.empty:
            mean = div.groupby(list(RECORD_KEY), as_index=False)["relative_distance"].mean()
            parts.append(_long(mean, "divergence", "relative_distance", run.label))
        grads = _of_tensor(res.gradients, tensor).dropna(subset=["cosine_with_others"])
        if not grads.empty:
            mean = grads.groupby(list(RECORD_KEY), as_index=False)["cosine_with_others"].mean()
            parts.append(_long(mean, "cosine", "cosine_with_others", run.label))
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def gradient_ends(runs: Sequence[LabelledRun], tensor: str | None = None) -> tuple[tuple[str, str, int], ...]:
    """(run label, variant, step) for each run whose gradients were all zero from that step on: its cosine
    curve stops there (`sharecore.core.results.gradients_zero_from`), and the cosine overlay says why."""
    return tuple(
        (run.label, variant, step)
        for run in runs
        for variant, step in gradients_zero_from(run.result.gradients, tensor).items()
    )


def _long(frame: pd.DataFrame, series: str, column: str, label: str) -> pd.DataFrame:
    out = frame[[*RECORD_KEY, column]].rename(columns={column: "value"})
    return out.assign(run=label, series=series)[CURVE_COLUMNS]


def _of_tensor(frame: pd.DataFrame, tensor: str | None) -> pd.DataFrame:
    return frame if tensor is None or frame.empty else frame[frame["tensor"] == tensor]


def final_figures(runs: Sequence[LabelledRun]) -> pd.DataFrame:
    """One row per run: parameters, final losses, held-out figures, final divergence and speed.

    A figure a run does not have (no held-out split, nothing recorded) is NaN.
    """
    rows = []
    for run in runs:
        res = run.result
        row: dict[str, object] = {"run": run.label, "steps": res.steps_done}
        for variant in VARIANTS:
            row[f"params {variant}"] = res.params.get(variant, np.nan)
        last = _last(res.history)
        for variant in VARIANTS:
            row[f"loss {variant}"] = _value(last, variant, "loss")
        held = _last(res.heldout)
        for variant in VARIANTS:
            row[f"held-out loss {variant}"] = _value(held, variant, "loss")
        for variant in VARIANTS:
            row[f"held-out accuracy {variant}"] = _value(held, variant, "accuracy")
        div = _last(res.divergence)
        row["final divergence untied"] = (
            float(div[div.variant == "untied"]["relative_distance"].mean()) if not div.empty else np.nan
        )
        row["steps per second"] = res.steps_per_second
        row["stopped"] = res.stop_reason or ""
        rows.append(row)
    return pd.DataFrame(rows)


def _last(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if frame.empty else frame[frame["step"] == frame["step"].max()]


def _value(frame: pd.DataFrame, variant: str, column: str) -> float:
    if frame.empty:
        return math.nan
    values = frame.loc[frame["variant"] == variant, column]
    return float(values.iloc[0]) if len(values) else math.nan


def settings_table(runs: Sequence[LabelledRun]) -> pd.DataFrame:
    """The settings that differ among the runs (`sharecore.runs.whatif.settings_diff`): one row per
    setting, one column per run. With one run, or runs that differ in nothing, the frame is empty."""
    settings = [(run.result.spec, run.result.config) for run in runs]
    values = [settings_values(spec, config) for spec, config in settings]
    rows = [
        {"setting": path, **{run.label: v[path] for run, v in zip(runs, values)}} for path in settings_diff(settings)
    ]
    return pd.DataFrame(rows, columns=["setting", *[r.label for r in runs]])


def comparison_csv(runs: Sequence[LabelledRun]) -> str:
    """The download: every curve of every run in one tidy CSV (run, series, step, variant, value).

    A run's label is the user's text: `csv_text` writes one that starts like a formula as text.
    """
    return csv_text(curves(runs))


def specs_json(runs: Sequence[LabelledRun]) -> str:
    """The download: each run's label, id, spec and training settings, enough to train it again."""
    return json.dumps(
        [
            {"label": r.label, "run_id": r.run_id, "spec": r.result.spec.to_dict(), "train": r.result.config.to_dict()}
            for r in runs
        ],
        indent=2,
    )


def unique_labels(labels: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """Labels made unique for a legend: a repeated label gets ' (2)', ' (3)', ... (skipping a number
    that another label already is: runs renamed 'x', 'x' and 'x (2)' stay three runs).

    Args:
        labels: the labels, in the order whose first keeps its label.
        taken: names already given to other runs, which none of these may get.
    """
    taken = set(taken)
    out = []
    for label in labels:
        unique, n = label, 1
        while unique in taken:
            n += 1
            unique = f"{label} ({n})"
        taken.add(unique)
        out.append(unique)
    return out


def tensorboard_zip(runs: Sequence[LabelledRun]) -> bytes:
    """The runs' TensorBoard logs as a .zip built in memory: a folder per run, named after its label but only
    ever a name (`sharecore.nn.tensorboard.run_folders`), with `tied/` and `untied/` in it.

    Unpacked, `tensorboard --logdir <folder>` overlays every run and variant. Loads TensorFlow (seconds,
    once per process) on the first call.
    """
    from sharecore.nn.tensorboard import logs_zip

    return logs_zip((run.label, run.result) for run in runs)
