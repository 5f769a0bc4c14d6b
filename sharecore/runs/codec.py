"""The run store's row codec: a `TrainResult` as the columns of one SQLite row, and back.

The spec, the settings and the parameter counts are JSON; the record frames are Parquet
(`FRAMES`); the weights and the state a run continues from are compressed NumPy ``.npz``
archives; the scalars are columns of their own. Plain pandas, pyarrow and NumPy: no SQLite policy here.

A row is read back only within what its run could hold under the server's caps (`check_unpacked_sizes`:
from the zip and Parquet metadata, before anything is unpacked), and a kept state only when it can be
continued (`check_state`): a row altered in the file is a message, not a gigabyte or a traceback.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sharecore.core.config import TrainConfig
from sharecore.core.limits import Limits
from sharecore.core.results import RECORD_COLUMNS, TrainResult, TrainState
from sharecore.core.spec import ModelSpec

FRAMES = tuple(RECORD_COLUMNS)  # history, gradients, divergence, heldout: each kept as Parquet
# Every field of TrainResult and where it is kept; tests/runs/test_store.py checks this covers them all.
STORED_FIELDS = (
    *("spec", "config", "device", "steps_done", "stop_reason", "seconds", "dataset", "params", "compile_seconds"),
    *FRAMES,
    "weights",
    "state",
)


MB = 2**20
# What the arrays of a run with P parameters (tied and untied together) unpack to, at most: its weights at
# start and end (2 x P) and its state (the variables and an optimizer's two slots each, 3 x P), as float64.
_BYTES_PER_PARAM = 8 * 3
# Rows a record frame can have beyond max_recorded_rows: history and held-out rows, 2 variants per step.
_ROWS_PER_STEP = 4
_BYTES_PER_ROW = 1024  # a record row unpacked: a few numbers and short names (about 100 bytes), with room
_SLACK_BYTES = MB  # indexes, names and small arrays of any run
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
_STATE_KEY = re.compile(r"[^/]{1,100}/(var|opt)/[0-9]{1,6}")  # 'tied/var/0': training._state_arrays' names


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, compression="zstd", index=True)
    return buffer.getvalue()


def _frame(blob: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(blob))


def _arrays_bytes(arrays: Mapping[str, np.ndarray], meta: Any) -> bytes:
    """An npz of `arrays` (named a0, a1, ... so any name is safe) and a JSON index of their names and `meta`."""
    names = list(arrays)
    index = json.dumps({"names": names, "meta": meta}).encode()
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        __index__=np.frombuffer(index, dtype=np.uint8),
        **{f"a{i}": np.asarray(arrays[name]) for i, name in enumerate(names)},
    )
    return buffer.getvalue()


def _arrays(blob: bytes) -> tuple[dict[str, np.ndarray], Any]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        index = json.loads(archive["__index__"].tobytes().decode())
        return {name: archive[f"a{i}"] for i, name in enumerate(index["names"])}, index["meta"]


def _weights_bytes(weights: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]) -> bytes:
    flat = {
        json.dumps([phase, variant, name]): array
        for phase, variants in weights.items()
        for variant, arrays in variants.items()
        for name, array in arrays.items()
    }
    # The nesting keeps phases and variants that hold no arrays.
    shape = {phase: list(variants) for phase, variants in weights.items()}
    return _arrays_bytes(flat, shape)


def _weights(blob: bytes) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    flat, shape = _arrays(blob)
    weights: dict[str, dict[str, dict[str, np.ndarray]]] = {
        phase: {variant: {} for variant in variants} for phase, variants in shape.items()
    }
    for key, array in flat.items():
        phase, variant, name = json.loads(key)
        weights[phase][variant][name] = array
    return weights


def _state_bytes(state: TrainState) -> bytes:
    return _arrays_bytes(state.arrays, {"steps_done": state.steps_done, "rng": state.rng})


def _state(blob: bytes) -> TrainState:
    arrays, meta = _arrays(blob)
    return TrainState(steps_done=meta["steps_done"], arrays=arrays, rng=meta["rng"])


class TooLarge(ValueError):
    """A row's data would unpack to more than its run could hold under the server's caps."""


def check_unpacked_sizes(row: Mapping[str, Any], limits: Limits) -> None:
    """Refuses a row whose data would unpack to more than its run could hold under `limits`, before unpacking it.

    The arrays of a run may take `_BYTES_PER_PARAM` per parameter it reports (at most twice `max_params`:
    tied and untied); a record frame at most `max_recorded_rows` plus `_ROWS_PER_STEP` x `max_steps` rows.
    Sizes come from the zip directory and each array's .npy header, and from the Parquet footer.

    Raises:
        TooLarge: (a ValueError) naming the column, what it would unpack to and the limit.
        ValueError: for a blob whose metadata cannot be read (damage).
    """
    try:
        params = sum(int(count) for count in json.loads(row["params"]).values())
    except (ValueError, TypeError, AttributeError):
        raise ValueError("its parameter counts are not the JSON a run keeps") from None
    params = min(max(params, 0), 2 * limits.max_params)
    array_limit = _BYTES_PER_PARAM * params + _SLACK_BYTES
    for column in ("weights", "state"):
        if row[column] is not None:
            size = _npz_unpacked_bytes(row[column], column)
            if size > array_limit:
                raise TooLarge(
                    f"its {column} would unpack to {size / MB:.1f} MiB, more than the {array_limit / MB:.1f} MiB a "
                    f"run of {params:,} parameters takes (max_params is {limits.max_params:,} here), so it was not opened"
                )
    rows_limit = limits.max_recorded_rows + _ROWS_PER_STEP * (limits.max_steps + 1)
    for column in FRAMES:
        rows, size = _parquet_unpacked(row[column], column)
        if rows > rows_limit or size > rows_limit * _BYTES_PER_ROW + _SLACK_BYTES:
            raise TooLarge(
                f"its {column} records would unpack to {rows:,} rows and {size / MB:.1f} MiB, more than a run "
                f"within this server's caps records ({rows_limit:,} rows), so it was not opened"
            )


def _npz_unpacked_bytes(blob: bytes, column: str) -> int:
    """What an .npz archive's arrays take unpacked, from its zip directory and the arrays' headers."""
    total = 0
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = _NPY_HEADERS.get(version)
                    if read_header is None:
                        raise ValueError(f"member {info.filename!r} is .npy format {version}")
                    shape, _, dtype = read_header(member)  # the header only: nothing is allocated
                claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
                total += max(info.file_size, claimed)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"its {column} are not an .npz archive a run keeps ({err})") from None
    return total


def _parquet_unpacked(blob: bytes, column: str) -> tuple[int, int]:
    """(rows, bytes) a Parquet blob unpacks to, from its footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(io.BytesIO(blob)).metadata
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ValueError(f"its {column} records are not Parquet ({err})") from None
    return meta.num_rows, sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def check_state(state: TrainState, steps_done: int) -> None:
    """Refuses a kept state that `train(..., resume=...)` could not carry on from, in words.

    Raises:
        ValueError: for a step count other than the run's, a batch generator's state NumPy cannot take,
            or an array that is not a named, plain numeric variable.
    """
    if isinstance(state.steps_done, bool) or not isinstance(state.steps_done, int) or state.steps_done != steps_done:
        raise ValueError(f"its state says {state.steps_done!r} steps were done, but the run did {steps_done}")
    try:
        np.random.PCG64().state = state.rng  # what training's batch generator is given
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"its state's batch order is not a NumPy PCG64 state ({type(err).__name__}: {err})") from None
    for key, array in state.arrays.items():
        if not _STATE_KEY.fullmatch(key):
            raise ValueError(f"its state holds {key[:60]!r}, which is not a variable's name ('tied/var/0', ...)")
        if array.dtype.kind not in "biuf":
            raise ValueError(f"its state's {key} holds {array.dtype} values, not numbers of a model's variable")


def _final_loss(history: pd.DataFrame) -> dict[str, float]:
    if history.empty or "step" not in history or "loss" not in history:
        return {}
    last = history[history.step == history.step.max()]
    return {str(r.variant): float(r.loss) for r in last.itertuples()}


def encode(result: TrainResult, *, keep_weights: bool) -> dict[str, Any]:
    """The columns of a run row (without its id, owner, label, created and preset).

    Args:
        result: the run.
        keep_weights: keep its weights and state (False: the run cannot be continued from its row).

    Returns:
        Column name -> value, with `can_continue` and `bytes` (what the row's data takes).
    """
    row: dict[str, Any] = {
        "spec_name": result.spec.name,
        "steps_done": int(result.steps_done),
        "dataset": result.dataset,
        "final_loss": json.dumps(_final_loss(result.history)),
        "device": result.device,
        "stop_reason": result.stop_reason,
        "seconds": float(result.seconds),
        "compile_seconds": float(result.compile_seconds),
        "spec": json.dumps(result.spec.to_dict()),
        "config": json.dumps(result.config.to_dict()),
        "params": json.dumps({str(k): int(v) for k, v in result.params.items()}),
        **{name: _frame_bytes(getattr(result, name)) for name in FRAMES},
        "weights": _weights_bytes(result.weights) if keep_weights else None,
        "state": _state_bytes(result.state) if keep_weights and result.state is not None else None,
    }
    row["can_continue"] = int(row["state"] is not None)
    row["bytes"] = sum(len(v) for v in row.values() if isinstance(v, (str, bytes)))
    return row


def decode(row: Mapping[str, Any]) -> TrainResult:
    """The `TrainResult` of a run row (a `sqlite3.Row` of the runs table, or any mapping of its columns)."""
    return TrainResult(
        spec=ModelSpec.from_dict(json.loads(row["spec"])),
        config=TrainConfig.from_dict(json.loads(row["config"])),
        device=row["device"],
        steps_done=row["steps_done"],
        stop_reason=row["stop_reason"],
        seconds=row["seconds"],
        dataset=row["dataset"],
        params=json.loads(row["params"]),
        compile_seconds=row["compile_seconds"],
        weights=_weights(row["weights"]) if row["weights"] is not None else {},
        state=_state(row["state"]) if row["state"] is not None else None,
        **{name: _frame(row[name]) for name in FRAMES},
    )


def decode_final_loss(text: str) -> dict[str, float]:
    """The `final_loss` column (variant -> last training loss); {} for a value that is not such JSON."""
    try:
        value = json.loads(text)
        return {str(k): float(v) for k, v in value.items()}
    except (ValueError, TypeError, AttributeError):
        return {}
