"""What `sharecore.inspect` finds in a model of one's own: its shared weights, their uses, the counts, the gradient split.

Plain data (pandas and NumPy, no TensorFlow): `sharecore.nn.inspect` fills it, the CLI prints it, a
page could draw it. The gradient frame has a run's `GRADIENT_COLUMNS`, so the training charts of
`sharecore.viz` draw it as they draw `TrainResult.gradients`.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sharecore.core.results import record_frame

SHARED_COLUMNS = ("tensor", "shape", "params", "use", "layer")  # one row per use of a shared weight


@dataclass(frozen=True)
class Inspection:
    """The weight sharing of one Keras model, and how each use pulls on its shared weights on one batch.

    A *use* is one call of the Keras layer that reads the weight, named `<layer name>#<i>` for the
    layer's i-th call in the forward pass (from 0), or `<layer name>#embed` / `<layer name>#reverse`
    for the two directions of a `keras.layers.ReversibleEmbedding`.
    """

    model_name: str
    shared: pd.DataFrame  # SHARED_COLUMNS, one row per (shared weight, use)
    stored_params: int  # every weight once, as stored: model.count_params()
    untied_params: int  # if every use of a shared weight had a copy of its own
    # GRADIENT_COLUMNS: each use's part of each shared weight's gradient on the batch (step 0, variant 'tied')
    gradients: pd.DataFrame
    loss: str  # the loss the gradients are of
    notes: tuple[str, ...] = field(default=())  # what was assumed (a default loss, random data) or left out

    @property
    def saved(self) -> int:
        """Parameters that sharing saves: untied minus stored."""
        return self.untied_params - self.stored_params

    @property
    def tensors(self) -> list[str]:
        """The shared weights, by path, in the order the forward pass first read them."""
        return list(dict.fromkeys(self.shared["tensor"]))

    def to_text(self) -> str:
        """The report as the CLI prints it: the shared weights and uses, the counts, the split, the notes."""
        lines = [f"model {self.model_name!r}"]
        if self.shared.empty:
            lines.append("no weight is read by more than one layer call: nothing is shared.")
        for tensor in self.tensors:
            rows = self.shared[self.shared.tensor == tensor]
            lines.append(
                f"shared {tensor} {rows['shape'].iloc[0]} ({rows.params.iloc[0]:,} parameters): "
                f"{len(rows)} uses: {', '.join(rows.use)}"
            )
        lines.append(
            f"stored: {self.stored_params:,} parameters   untied: {self.untied_params:,}   sharing saves {self.saved:,}"
        )
        if not self.gradients.empty:
            lines.append(f"gradient split on the batch (loss {self.loss}):")
            lines.append(f"  {'tensor':<32}{'use':<24}{'grad_norm':>12}{'sum_norm':>12}{'cosine':>9}")
            for r in self.gradients.itertuples():
                lines.append(
                    f"  {r.tensor:<32}{r.use:<24}{r.grad_norm:>12.4g}{r.sum_norm:>12.4g}{r.cosine_with_others:>9.3f}"
                )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def gradient_rows(
    step: int, variant: str, shares: dict[str, Sequence[tuple[str, np.ndarray]]]
) -> list[tuple[int, str, str, str, float, float, float]]:
    """A run's gradient rows from each use's part of each shared tensor's gradient.

    The numbers mean what the trainer records (`sharecore.nn.variant`): `grad_norm` is ||g_use||,
    `sum_norm` is ||sum of the uses' g|| (the tied gradient), and `cosine_with_others` is the cosine
    between g_use and the sum of the other uses' g (NaN where either is all zeros, or with one use).

    Args:
        step: the step column.
        variant: the variant column.
        shares: tensor -> [(use, that use's gradient in the tensor's shape), ...].

    Example:
        >>> rows = gradient_rows(0, "tied", {"W": [("a", np.array([3.0, 0.0])), ("b", np.array([0.0, 4.0]))]})
        >>> [(r[3], r[4], r[5], r[6]) for r in rows]
        [('a', 3.0, 5.0, 0.0), ('b', 4.0, 5.0, 0.0)]
    """
    rows = []
    for tensor, uses in shares.items():
        g = np.stack([np.asarray(share, dtype="float64").ravel() for _, share in uses])  # (uses, size)
        total = g.sum(axis=0)
        others = total[None, :] - g  # (uses, size)
        norms = np.linalg.norm(g, axis=1)
        denom = norms * np.linalg.norm(others, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.where(denom > 0, (g * others).sum(axis=1) / np.maximum(denom, 1e-300), np.nan)
        if len(uses) < 2:
            cos[:] = np.nan
        sum_norm = float(np.linalg.norm(total))
        for (use, _), norm, c in zip(uses, norms, cos):
            rows.append((step, variant, tensor, use, float(norm), sum_norm, float(c)))
    return rows


def gradient_frame(step: int, variant: str, shares: dict[str, Sequence[tuple[str, np.ndarray]]]) -> pd.DataFrame:
    """`gradient_rows` as a frame with the run's gradient columns."""
    return record_frame("gradients", gradient_rows(step, variant, shares))


def shared_frame(rows: Sequence[tuple[str, str, int, str, str]] = ()) -> pd.DataFrame:
    """The frame of shared weights and uses from (tensor, shape, params, use, layer) rows."""
    return pd.DataFrame(list(rows), columns=list(SHARED_COLUMNS))


DEFAULT_MAX_BYTES = 200 * 2**20  # the largest model or data file `inspect_file` and the CLI open


def _regular_file(path: str, what: str, max_bytes: int) -> None:
    """Refuses a missing path, a folder, a device or pipe, and a file larger than `max_bytes`."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise ValueError(f"cannot read {what} {path!r}: {err.strerror}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{what} {path!r} is not a regular file.")
    if info.st_size > max_bytes:
        raise ValueError(f"{what} {path!r} is larger than {max_bytes:,} bytes, the limit for inspection.")


def check_model_file(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Refuses, without loading TensorFlow, a path that cannot be a `.keras` model file of at most `max_bytes`.

    Raises:
        ValueError: for a missing path, a folder or device, a file too large, or one that is not a zip archive.
    """
    _regular_file(path, "model file", max_bytes)
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"model file {path!r} is not a Keras model file (a .keras file is a zip archive, as model.save writes)."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"model file {path!r} is a damaged zip archive ({err}).") from None
    if "config.json" not in names:
        raise ValueError(
            f"model file {path!r} is a zip archive but not a Keras model file: it holds no config.json, which "
            f"model.save('model.keras') writes. Received: {len(names)} other member(s)"
        )


def read_probe_data(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[Any, Any]:
    """The batch of an `.npz` file (no pickled objects), checked before TensorFlow loads.

    The inputs are the array `x`, or `x0`, `x1`, ... (a list, in that order) for a model with several
    inputs; the targets `y`, or `y0`, `y1`, ... for several outputs.

    Raises:
        ValueError: for a missing or oversized file, one NumPy cannot read, or one without x and y.
    """
    _regular_file(path, "data file", max_bytes)
    if not zipfile.is_zipfile(path):  # before NumPy, whose error for a text file suggests unpickling it
        raise ValueError(f"data file {path!r} is not an .npz file (np.savez(path, x=..., y=...) writes a zip archive).")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, AttributeError) as err:
        # ValueError: pickled objects (refused) or a damaged array; AttributeError: a plain .npy, not an .npz.
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise ValueError(f"data file {path!r} is not an .npz file NumPy can read safely ({reason}).") from None
    x, y = _arrays(arrays, "x"), _arrays(arrays, "y")
    if x is None or y is None:
        raise ValueError(
            f"data file {path!r} needs arrays named 'x' and 'y' (np.savez(path, x=..., y=...); x0, x1, ... for "
            f"several inputs, y0, y1, ... for several outputs). Received: arrays {sorted(arrays)}"
        )
    counts = {len(a) for a in (x if isinstance(x, list) else [x]) + (y if isinstance(y, list) else [y])}
    if len(counts) > 1:
        raise ValueError(
            f"data file {path!r}: its arrays hold different numbers of samples. Received: {sorted(counts)}"
        )
    return x, y


def _arrays(arrays: dict[str, np.ndarray], name: str) -> Any:
    """`arrays[name]`, else the list name0, name1, ... (numbered from 0 without a gap), else None."""
    if name in arrays:
        return arrays[name]
    numbered: list[np.ndarray] = []
    while f"{name}{len(numbered)}" in arrays:
        numbered.append(arrays[f"{name}{len(numbered)}"])
    return numbered or None
