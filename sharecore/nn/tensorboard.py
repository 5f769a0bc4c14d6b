"""A run's records as TensorBoard event files, so that `tensorboard --logdir DIR` overlays tied and untied.

A run folder holds one TensorBoard run per variant, `DIR/tied` and `DIR/untied`, each with one or
more event files; several run folders under one parent (`logs/lr0.01`, `logs/lr0.1`) appear side by
side in `tensorboard --logdir logs`. The tags, the same in both variants:

- ``loss``, ``accuracy``: the history, at every step (accuracy only for a data set with classes).
- ``heldout/loss``, ``heldout/accuracy``: on the held-out samples, at step 0 and at the steps `TrainConfig.eval_every` scores.
- ``gradients/<tensor>/<use>/grad_norm``: the norm of one use's gradient of a shared tensor;
  ``.../sum_norm``: the norm of the sum over its uses; ``.../cosine_with_others``: the cosine of
  the use's gradient with the sum of the others'.
- ``divergence/<tensor>/<use_a>-<use_b>/relative_distance`` and ``.../cosine``: how far two uses'
  copies drifted apart since step 0 (the untied run; the tied run's one tensor stays at 0 and 1).
- ``weights/<name>`` (histograms): the kernels at step 0 and at the last step, named by shared
  tensor (tied) or use (untied), as in `TrainResult.weights`.

In a run of `sharecore.train`, tensor and use names are identifiers (`sharecore.core.fields`), so
such a tag holds no other '/' or '-'; a `SharingMonitor`'s are Keras weight paths and call sites
(`gradients/block/kernel/block#0/grad_norm`). A NaN (a cosine of a use with no others, accuracy without classes) is left out, as
TensorBoard draws none. Histograms are written only where the result carries weights: a kept
run that the store kept without them has the scalars alone.

TensorBoard itself is not needed to write them: `tf.summary.scalar` and `tf.summary.histogram`
raise `TBNotInstalledError` without it, and `tf.summary.write` costs about 300 µs a value in eager
mode (minutes for a long run's gradients) or, in a `tf.function`, a trace per writer. So the
events are TensorFlow's own `Event` protos in a `tf.io.TFRecordWriter`, the format TensorBoard
reads, with the plugin metadata its scalar and histogram dashboards look for (about 6 µs a value).
"""

from __future__ import annotations

import io
import itertools
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from sharecore.core.results import TrainResult
from sharecore.core.runcheck import folder_problem
from sharecore.core.text import safe_file_name
from sharecore.nn.tfimport import tf

SCALARS_PLUGIN = "scalars"  # TensorBoard's plugin names: which dashboard shows a tag
HISTOGRAMS_PLUGIN = "histograms"
HISTOGRAM_BUCKETS = 30  # TensorBoard's own default
GRADIENT_FIELDS = ("grad_norm", "sum_norm", "cosine_with_others")
DIVERGENCE_FIELDS = ("relative_distance", "cosine")
# A variant's folder: code's text ('tied', 'untied', a callback's model name), never a path.
_VARIANT_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_FILE_NUMBER = itertools.count()  # event files of this process, so two made in one second get distinct names


def _metadata(plugin: str) -> tf.compat.v1.SummaryMetadata:
    # Version 0 of the plugins' data is an empty message, which serializes to no bytes.
    return tf.compat.v1.SummaryMetadata(plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name=plugin))


class EventFile:
    """One new TensorBoard event file in `folder`, open for appending; a context manager.

    Args:
        folder: the TensorBoard run it belongs to (made if missing).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp, EventFile(tmp) as events:
        ...     events.scalars(pd.DataFrame({"step": [1, 2], "tag": ["loss", "loss"], "value": [0.5, 0.25]}))
        ...     events.path.name.startswith("events.out.tfevents.")
        True
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # TensorBoard reads every file whose name holds 'tfevents', in name order; TensorFlow's own
        # writer puts the host name in it, which a download from a hosted app should not carry.
        name = f"events.out.tfevents.{int(time.time())}.sharecore.{os.getpid()}.{next(_FILE_NUMBER)}.v2"
        self.path = folder / name
        self._writer = tf.io.TFRecordWriter(str(self.path))
        self._described: set[str] = set()  # tags whose plugin metadata this file holds (once per tag suffices)
        self._write(tf.compat.v1.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: tf.compat.v1.Event) -> None:
        self._writer.write(event.SerializeToString())

    def _describe(self, value: tf.compat.v1.Summary.Value, plugin: str) -> None:
        if value.tag not in self._described:
            value.metadata.CopyFrom(_metadata(plugin))
            self._described.add(value.tag)

    def scalars(self, frame: pd.DataFrame) -> None:
        """Writes a long frame of scalars, one row each: step, tag, value. NaN values are left out.

        The values go through float32, as `tf.summary.scalar` writes them; one event per step.
        """
        frame = frame[frame["value"].notna()].sort_values("step", kind="stable")
        steps = frame["step"].to_numpy()
        tags, numbers = frame["tag"].tolist(), frame["value"].to_numpy(dtype=np.float64).tolist()
        starts = [0, *(np.flatnonzero(steps[1:] != steps[:-1]) + 1).tolist(), len(steps)]
        wall_time, dtype = time.time(), tf.float32.as_datatype_enum
        for first, stop in itertools.pairwise(starts):
            if first == stop:
                continue
            event = tf.compat.v1.Event(wall_time=wall_time, step=int(steps[first]))
            for tag, number in zip(tags[first:stop], numbers[first:stop]):
                value = event.summary.value.add(tag=tag)  # filled in place: appending a made one copies it
                self._describe(value, SCALARS_PLUGIN)
                value.tensor.dtype = dtype
                value.tensor.tensor_shape.SetInParent()  # a scalar: a shape with no dimensions
                value.tensor.float_val.append(number)
            self._write(event)

    def histogram(self, tag: str, step: int, values: np.ndarray) -> None:
        """Writes the histogram of `values` at `step`: `HISTOGRAM_BUCKETS` buckets (left edge, right edge,
        count) as float64, TensorBoard's histogram format; non-finite values are left out."""
        event = tf.compat.v1.Event(wall_time=time.time(), step=int(step))
        value = event.summary.value.add(tag=tag)
        self._describe(value, HISTOGRAMS_PLUGIN)
        value.tensor.CopyFrom(tf.make_tensor_proto(histogram_buckets(values)))
        self._write(event)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> EventFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def histogram_buckets(values: np.ndarray, buckets: int = HISTOGRAM_BUCKETS) -> np.ndarray:
    """(buckets, 3) float64: each bucket's left edge, right edge and count, of the finite `values`.

    Example:
        >>> histogram_buckets(np.array([0.0, 1.0, 1.0]), buckets=2).tolist()
        [[0.0, 0.5, 1.0], [0.5, 1.0, 2.0]]
    """
    finite = np.asarray(values, dtype=np.float64).ravel()
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return np.zeros((0, 3))
    counts, edges = np.histogram(finite, bins=buckets)  # all equal: numpy spans value +- 0.5
    return np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=1)  # (buckets, 3)


# ----------------------------------------------------------------------------- the record frames as tags
def _long(frame: pd.DataFrame, prefix: pd.Series | str, fields: Iterable[str]) -> pd.DataFrame:
    """step, variant, tag, value: one row per field of each row of `frame`; tag = prefix + field."""
    if frame.empty:
        fields = ()  # an empty frame (a run without a held-out split or shared tensors) may lack columns
    parts = [
        pd.DataFrame({"step": frame["step"], "variant": frame["variant"], "tag": prefix + field, "value": frame[field]})
        for field in fields
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["step", "variant", "tag", "value"])


def history_scalars(frame: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """The tags of a history (or, with prefix 'heldout/', a held-out) frame: step, variant, tag, value."""
    return _long(frame, prefix, ("loss", "accuracy"))


def gradient_scalars(frame: pd.DataFrame) -> pd.DataFrame:
    """The tags of a gradients frame (`GRADIENT_COLUMNS`): step, variant, tag, value."""
    if frame.empty:
        return _long(frame, "", ())
    return _long(frame, "gradients/" + frame["tensor"] + "/" + frame["use"] + "/", GRADIENT_FIELDS)


def divergence_scalars(frame: pd.DataFrame) -> pd.DataFrame:
    """The tags of a divergence frame (`DIVERGENCE_COLUMNS`): step, variant, tag, value."""
    if frame.empty:
        return _long(frame, "", ())
    pair = frame["use_a"] + "-" + frame["use_b"]
    return _long(frame, "divergence/" + frame["tensor"] + "/" + pair + "/", DIVERGENCE_FIELDS)


def _variant_folder(variant: object) -> str:
    if not isinstance(variant, str) or not _VARIANT_FOLDER.fullmatch(variant) or set(variant) == {"."}:
        raise ValueError(
            "a variant names a TensorBoard run folder: letters, digits, '_', '.' and '-', such as 'tied' or "
            f"'untied'. Received: variant={variant!r}"
        )
    return variant


class RunLog:
    """A TensorBoard run folder being written: `logdir/<variant>` for each variant, each with one new event
    file, opened when the variant first has something to write. A context manager.

    What a Keras callback holds to write a model's records as it trains (`gradients` after each
    record); `write_run` writes a finished run with one.

    Args:
        logdir: the run folder (made if missing).
    """

    def __init__(self, logdir: str | os.PathLike) -> None:
        self.logdir = Path(logdir)
        self._files: dict[str, EventFile] = {}

    def _file(self, variant: object) -> EventFile:
        folder = _variant_folder(variant)
        if folder not in self._files:
            self._files[folder] = EventFile(self.logdir / folder)
        return self._files[folder]

    @property
    def paths(self) -> list[Path]:
        """The event files written, by variant in the order they were opened."""
        return [f.path for f in self._files.values()]

    def scalars(self, frame: pd.DataFrame) -> None:
        """Writes a long frame of step, variant, tag, value (NaN left out) into each variant's folder."""
        for variant, rows in frame.groupby("variant", sort=False):
            self._file(variant).scalars(rows)

    def history(self, frame: pd.DataFrame) -> None:
        """A history frame (`HISTORY_COLUMNS`): `loss`, `accuracy`."""
        self.scalars(history_scalars(frame))

    def heldout(self, frame: pd.DataFrame) -> None:
        """A held-out frame (`HELDOUT_COLUMNS`): `heldout/loss`, `heldout/accuracy`."""
        self.scalars(history_scalars(frame, "heldout/"))

    def gradients(self, frame: pd.DataFrame) -> None:
        """A gradients frame (`GRADIENT_COLUMNS`): `gradients/<tensor>/<use>/<field>`."""
        self.scalars(gradient_scalars(frame))

    def divergence(self, frame: pd.DataFrame) -> None:
        """A divergence frame (`DIVERGENCE_COLUMNS`): `divergence/<tensor>/<use_a>-<use_b>/<field>`."""
        self.scalars(divergence_scalars(frame))

    def weights(self, arrays: Mapping[str, Mapping[str, np.ndarray]], step: int) -> None:
        """Histograms `weights/<name>` of variant -> name -> array, at `step`."""
        for variant, named in arrays.items():
            for name, array in named.items():
                self._file(variant).histogram(f"weights/{name}", step, array)

    def flush(self) -> None:
        for events in self._files.values():
            events.flush()

    def close(self) -> None:
        for events in self._files.values():
            events.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_logdir(logdir: str | os.PathLike) -> Path:
    """Makes `logdir` and writes and removes a file there, so that a bad folder fails before a run, not after.

    Returns:
        The folder, as a `Path`.

    Raises:
        ValueError: if it is a file (or lies in one) or cannot be written, with the reason.
    """
    if not str(logdir).strip():
        raise ValueError(
            "cannot write TensorBoard logs to an empty folder name; give a folder, e.g. logs/run1. Received: logdir=''"
        )
    folder = Path(logdir)
    reason = folder_problem(folder)
    if reason is not None:
        raise ValueError(
            f"cannot write TensorBoard logs to {str(folder)!r} ({reason}); give a folder you can write to. "
            f"Received: logdir={str(logdir)!r}"
        )
    return folder


def write_run(result: TrainResult, logdir: str | os.PathLike) -> list[Path]:
    """Writes a run's records as TensorBoard events: `logdir/tied` and `logdir/untied` (tags: see the module).

    Args:
        result: a finished, stopped or kept run.
        logdir: its run folder; made if missing. A folder written before gets new event files beside
            the old ones, which TensorBoard reads as one run: give each run a folder of its own.

    Returns:
        The event files written, one per variant.

    Raises:
        OSError: if a folder or file cannot be written.

    Example:
        >>> import tempfile
        >>> from sharecore import TrainConfig, preset
        >>> from sharecore.nn.training import train
        >>> result = train(preset("seed-mixed"), TrainConfig(steps=3))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     [p.parent.name for p in write_run(result, tmp)]
        ['tied', 'untied']
    """
    with RunLog(logdir) as log:
        log.history(result.history)
        log.heldout(result.heldout)
        log.gradients(result.gradients)
        log.divergence(result.divergence)
        end = result.weights.get("end")
        if end:  # a kept run may have been stored without its weights
            log.weights(result.weights.get("start", {}), 0)
            log.weights(end, result.steps_done)
        return log.paths


def write_gradients(frame: pd.DataFrame, logdir: str | os.PathLike) -> list[Path]:
    """Writes a gradients frame (step, variant and the `GRADIENT_COLUMNS` fields) as new event files,
    `logdir/<variant>`: for a caller that records gradients itself, such as a Keras callback.

    Returns:
        The event files written, one per variant in the frame.
    """
    with RunLog(logdir) as log:
        log.gradients(frame)
        return log.paths


# ----------------------------------------------------------------------------- a download of several runs
def run_folders(labels: Iterable[str]) -> list[str]:
    """A folder name for each run label: `safe_file_name` of it (never a path, '..' or a device name),
    made unique ignoring case (a second 'a/b' or 'a_b' becomes 'a_b_2'), as a zip's folders must be
    on every system that unpacks it.

    Example:
        >>> run_folders(["lr 0.1", "../../etc", "LR 0.1", ""])
        ['lr_0.1', 'etc', 'LR_0.1_2', 'run']
    """
    taken: set[str] = set()
    folders = []
    for label in labels:
        base = safe_file_name(label, default="run")
        folder, n = base, 1
        while folder.lower() in taken:
            n += 1
            folder = f"{base}_{n}"
        taken.add(folder.lower())
        folders.append(folder)
    return folders


def logs_zip(runs: Iterable[tuple[str, TrainResult]]) -> bytes:
    """The TensorBoard logs of labelled runs as a .zip, built in memory: `<label>/tied/...`,
    `<label>/untied/...` for each run (labels made folder names by `run_folders`).

    Unpacked in a folder, `tensorboard --logdir <that folder>` overlays every run and variant.
    The event files are written to a temporary folder first (a TFRecord writer writes files), which
    is removed before this returns.

    Args:
        runs: (label, result) pairs, e.g. the runs a comparison shows.

    Returns:
        The zip's bytes.
    """
    runs = list(runs)
    buffer = io.BytesIO()
    with (
        tempfile.TemporaryDirectory(prefix="sharecore-tensorboard-") as tmp,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for folder, (_, result) in zip(run_folders(label for label, _ in runs), runs):
            for path in write_run(result, Path(tmp) / folder):
                # The member's name is made of the safe folder, the variant and the file's own name only.
                archive.write(path, f"{folder}/{path.parent.name}/{path.name}")
    return buffer.getvalue()
