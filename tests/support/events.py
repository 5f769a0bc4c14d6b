"""TensorBoard event files read back with TensorFlow's own reader, and checked against a run's records.

The expected tags are spelled out here row by row from `sharecore.nn.tensorboard`'s documented
names, not with its helpers, so that a wrong tag or a lost row fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sharecore.core.results import VARIANTS, TrainResult
from sharecore.nn.tfimport import tf


@dataclass
class Events:
    """What one TensorBoard run folder holds: tag -> step -> value, and tag -> plugin name."""

    values: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    plugins: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def scalars(self) -> dict[tuple[str, int], float]:
        return {
            (tag, step): float(value)
            for tag, steps in self.values.items()
            if self.plugins[tag] == "scalars"
            for step, value in steps.items()
        }


def read_events(folder: Path) -> Events:
    """Every event file of a TensorBoard run folder, in name order (as TensorBoard reads them)."""
    out = Events(files=sorted(p for p in Path(folder).iterdir() if "tfevents" in p.name))
    for path in out.files:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name:
                    out.plugins.setdefault(value.tag, value.metadata.plugin_data.plugin_name)
                steps = out.values.setdefault(value.tag, {})
                assert event.step not in steps, f"{value.tag} twice at step {event.step}"
                steps[event.step] = tf.make_ndarray(value.tensor)
    return out


def expected_scalars(result: TrainResult, variant: str) -> dict[tuple[str, int], float]:
    """(tag, step) -> value of every number a variant's records hold that is not NaN."""
    out: dict[tuple[str, int], float] = {}

    def put(tag: str, step: int, value: float) -> None:
        if not math.isnan(value):
            assert (tag, step) not in out
            out[tag, int(step)] = float(value)

    for prefix, frame in (("", result.history), ("heldout/", result.heldout)):
        for r in frame[frame.variant == variant].itertuples():
            put(f"{prefix}loss", r.step, r.loss)
            put(f"{prefix}accuracy", r.step, r.accuracy)
    for r in result.gradients[result.gradients.variant == variant].itertuples():
        for name in ("grad_norm", "sum_norm", "cosine_with_others"):
            put(f"gradients/{r.tensor}/{r.use}/{name}", r.step, getattr(r, name))
    for r in result.divergence[result.divergence.variant == variant].itertuples():
        for name in ("relative_distance", "cosine"):
            put(f"divergence/{r.tensor}/{r.use_a}-{r.use_b}/{name}", r.step, getattr(r, name))
    return out


def assert_scalars_equal(got: dict[tuple[str, int], float], want: dict[tuple[str, int], float]) -> None:
    """The same (tag, step) keys, and each value the record's own through float32."""
    assert set(got) == set(want), (sorted(set(got) - set(want))[:5], sorted(set(want) - set(got))[:5])
    keys = sorted(want)
    np.testing.assert_array_equal(
        np.array([got[k] for k in keys], dtype=np.float32), np.array([want[k] for k in keys], dtype=np.float32)
    )


def assert_run_logged(logdir: Path, result: TrainResult) -> None:
    """`logdir` holds a folder per variant whose events are the run's records: scalars and weight histograms."""
    assert sorted(p.name for p in Path(logdir).iterdir()) == sorted(VARIANTS)
    for variant in VARIANTS:
        events = read_events(Path(logdir) / variant)
        assert_scalars_equal(events.scalars(), expected_scalars(result, variant))
        histograms = {tag for tag, plugin in events.plugins.items() if plugin == "histograms"}
        weights = result.weights.get("end", {}).get(variant, {})
        assert histograms == {f"weights/{name}" for name in weights}
        for name in weights:
            steps = events.values[f"weights/{name}"]
            assert sorted(steps) == [0, result.steps_done]
            for step, phase in ((0, "start"), (result.steps_done, "end")):
                assert_histogram_of(steps[step], result.weights[phase][variant][name])


def assert_histogram_of(buckets: np.ndarray, array: np.ndarray) -> None:
    """TensorBoard's histogram format, (k, 3) float64 of left edge, right edge and count, of `array`."""
    assert buckets.dtype == np.float64 and buckets.ndim == 2 and buckets.shape[1] == 3
    left, right, counts = buckets.T
    assert counts.sum() == array.size
    assert (left[0], right[-1]) == (array.min(), array.max())
    np.testing.assert_array_equal(left[1:], right[:-1])  # buckets side by side
    last = len(left) - 1  # the last bucket holds its right edge too
    inside = [
        np.sum((array >= a) & ((array < b) | (i == last) & (array == b))) for i, (a, b) in enumerate(buckets[:, :2])
    ]
    np.testing.assert_array_equal(counts, inside)
