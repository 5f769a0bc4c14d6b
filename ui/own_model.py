"""The Your model page's work: an uploaded `.keras` file inspected safely, and the result kept for the session.

An upload is data, never a path or code: its bytes go to a private temporary file (`tempfile`, a
name of its own; the uploaded name is only shown), which `sharecore.nn.inspect` checks and loads
with `safe_mode=True` (a Lambda layer is refused, nothing in the file runs) and which is deleted
when inspection ends, whether it worked or not. The result is kept in the session with the bytes'
digest, so a rerun shows it without loading the model again, and a new upload replaces it.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from sharecore.core.inspection import Inspection
from sharecore.core.limits import Limits
from ui import figures
from ui.keys import OWN_MODEL

# The losses the page offers (Keras loss names); None: the library's stated default (the loss the file
# was compiled with; else sparse cross-entropy on logits for a language model or whole-number y, else
# mean squared error).
LOSSES = (None, "mean_squared_error", "mean_absolute_error", "categorical_crossentropy", "binary_crossentropy")
SEED = 0  # the seed of the random batch, as the CLI's default
MB = 10**6  # max_model_mb's unit: Streamlit's uploader counts 1,000,000 bytes to the MB in the browser


@dataclass(frozen=True)
class Outcome:
    """What one upload gave: the inspection, or the one sentence that says why there is none."""

    name: str  # the uploaded file's name: shown (escaped), never a path
    key: tuple[str, str | None, str | None]  # (model digest, data digest, loss): what the result depends on
    inspection: Inspection | None = None
    problem: str | None = None  # why it could not be inspected, with what would fix it
    # inspection.gradients with its names HTML-escaped, for the chart: a Keras layer name may hold
    # '<a href=...>', which a plotly title or legend would draw as markup. Kept, so the chart's cache hits.
    chart_gradients: pd.DataFrame | None = None


def cap_mb() -> int:
    """The largest upload this server inspects, in MB: `Limits.max_model_mb` (`SHARECORE_MAX_MODEL_MB`), or
    Streamlit's `server.maxUploadSize` where that is smaller (its upload route refuses a larger body, whatever
    a widget says)."""
    return max(1, min(Limits.from_env().max_model_mb, int(st.get_option("server.maxUploadSize"))))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def private_file(data: bytes, suffix: str) -> Iterator[str]:
    """`data` in a new temporary file only this process's user can read, deleted on leaving, also on error."""
    fd, path = tempfile.mkstemp(prefix="sharecore-upload-", suffix=suffix)  # mode 0600, a name of its own
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def inspect_bytes(
    name: str,
    model: bytes,
    data: bytes | None = None,
    loss: str | None = None,
    limits: Limits | None = None,
    data_name: str = "the .npz upload",
) -> Inspection:
    """`sharecore.inspect` of an uploaded `.keras` file (and `.npz` batch), through private temporary files.

    Args:
        name: the uploaded file's name; only quoted in messages, in place of the temporary path.
        model: the `.keras` file's bytes.
        data: an `.npz` file's bytes with arrays `x` and `y`; None for a seeded random batch.
        loss: a Keras loss name; None for the library's stated default.
        limits: the caps (`max_model_mb`, `max_params`); default this server's.
        data_name: the uploaded `.npz` file's name, quoted in messages as `name` is.

    Raises:
        ValueError: one sentence naming the upload, what was received and what would fix it.
    """
    limits = limits or Limits.from_env()
    cap = limits.max_model_mb * MB
    for what, blob in (("model", model), ("data", data)):
        if blob is not None and len(blob) > cap:
            raise ValueError(
                f"the {what} file is {len(blob):,} bytes, over this server's limit of {limits.max_model_mb} MB "
                f"(max_model_mb). Inspect a larger model with `python -m sharecore inspect`, or raise "
                f"SHARECORE_MAX_MODEL_MB. Received: {len(blob):,} bytes"
            )
    if not model:
        raise ValueError("the file is empty (0 bytes): upload the .keras file that model.save('model.keras') writes.")
    with contextlib.ExitStack() as files:
        path = files.enter_context(private_file(model, ".keras"))
        data_path = None if data is None else files.enter_context(private_file(data, ".npz"))
        try:
            return _inspect_files(path, data_path, loss, limits, cap)
        except ValueError as err:
            message = str(err)
            for tmp, shown in ((path, name), (data_path, data_name)):
                if tmp is not None:  # the temporary paths mean nothing to the visitor: name their upload
                    message = message.replace(repr(tmp), repr(shown)).replace(tmp, shown)
            raise ValueError(message) from None


def _inspect_files(path: str, data_path: str | None, loss: str | None, limits: Limits, cap: int) -> Inspection:
    """The checks before TensorFlow loads, then the load in safe mode, the parameter cap, and `inspect`."""
    from sharecore.core.inspection import check_model_file, read_probe_data

    check_model_file(path, cap)  # a zip archive of at most the cap, before TensorFlow loads
    x, y = read_probe_data(data_path, cap) if data_path is not None else (None, None)
    from sharecore.nn.inspect import inspect, load_inspectable, one_line  # TensorFlow

    model = load_inspectable(path, cap)
    params = model.count_params()
    if params > limits.max_params:
        raise ValueError(
            f"the model has {params:,} parameters, over this server's limit of {limits.max_params:,} (max_params). "
            f"Inspect it with `python -m sharecore inspect`, or raise SHARECORE_MAX_PARAMS. Received: {params:,}"
        )
    try:
        return inspect(model, x, y, loss=loss, seed=SEED)  # says a batch or loss the model cannot take itself
    except ValueError:
        raise
    except Exception as err:  # not expected; still one sentence on the page, never a traceback
        raise ValueError(f"the model could not be inspected ({type(err).__name__}: {one_line(err)}).") from None


def outcome(
    name: str, model: bytes, data: bytes | None = None, loss: str | None = None, data_name: str = "the .npz upload"
) -> Outcome:
    """This upload's outcome: the session's kept one when the same bytes, batch and loss were inspected
    last (a rerun computes nothing), else a new inspection, which replaces the kept one."""
    key = (digest(model), None if data is None else digest(data), loss)
    kept = last()
    if kept is not None and kept.key == key:
        if kept.name == name:
            return kept
        # The same bytes under another name: the same result, its message naming the new upload.
        problem = None if kept.problem is None else kept.problem.replace(repr(kept.name), repr(name))
        result = Outcome(name, key, kept.inspection, problem, kept.chart_gradients)
    else:
        try:
            found = inspect_bytes(name, model, data, loss, data_name=data_name)
            result = Outcome(name, key, found, chart_gradients=_escaped(found.gradients))
        except ValueError as err:
            result = Outcome(name, key, problem=str(err))
    st.session_state[OWN_MODEL] = result
    return result


def _escaped(gradients: pd.DataFrame) -> pd.DataFrame:
    """The gradient frame with its tensor and use names as HTML text (plotly draws `<b>`, `<a>`... in names)."""
    out = gradients.copy()
    for column in ("tensor", "use"):
        out[column] = out[column].map(lambda text: html.escape(str(text), quote=False))
    return out


def split_chart(result: Outcome, tensor: str):
    """How this batch's gradient of `tensor` splits between its uses: a bar per use and their sum."""
    if result.chart_gradients is None:
        raise ValueError(f"upload {result.name!r} was not inspected, so it has no gradient split to draw.")
    return figures.gradient_split(result.chart_gradients, html.escape(tensor, quote=False))


def last() -> Outcome | None:
    """The last upload's outcome in this session, or None."""
    kept = st.session_state.get(OWN_MODEL)
    return kept if isinstance(kept, Outcome) else None
