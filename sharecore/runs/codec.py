"""The run store's row codec: a `TrainResult` as the columns of one SQLite row, and back.

The spec, the settings and the parameter counts are JSON; the record frames are Parquet
(`FRAMES`); the weights and the state a run continues from are compressed NumPy ``.npz``
archives; the scalars are columns of their own. Plain pandas, pyarrow and NumPy: no SQLite policy here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sharecore.core.config import TrainConfig
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
