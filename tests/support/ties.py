"""`assert_tie_holds`: the checks every weight-sharing family's build test makes, in one harness.

In the spirit of Keras's `run_layer_test`: given a spec, it builds the tied and the untied model
and checks, against `sharecore.param_report` and the spec itself (not against the models' own
account of themselves), that

1. the parameter counts are exact: Keras's `count_params()` equals the report's totals (and the
   caller's expected figures, when given), and so does the number of trainable weights;
2. the tied model holds one variable per stored tensor (`tensor_<name>/kernel`) and no copy, the
   untied one a copy per use of a stored tensor (`copy_<use>/kernel`) and no stored tensor;
3. tied and untied compute the same function at init, and not a trivially zero one;
4. the tied model saved and loaded (Keras's own loader, safe mode) keeps its counts, its one
   variable per tensor and its outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

import sharecore
from sharecore.core.spec import ModelSpec
from sharecore.nn.data import random_inputs


@dataclass
class TiePair:
    tied: keras.Model
    untied: keras.Model
    x: np.ndarray  # the batch both were called on
    loaded: keras.Model | None = None  # the tied model after a save and a load, when saved


def _kernels(model: keras.Model, prefix: str) -> list[str]:
    return sorted(v.path for v in model.trainable_weights if v.path.startswith(prefix) and v.path.endswith("/kernel"))


def assert_tie_holds(
    spec: ModelSpec,
    *,
    counts: tuple[int, int, int, int] | None = None,
    params: tuple[int, int] | None = None,
    seed: int = 3,
    x: np.ndarray | None = None,
    exact: bool = True,
    rtol: float = 1e-6,
    atol: float = 1e-7,
    nonzero: bool = True,
    tmp_path: Path | None = None,
) -> TiePair:
    """Checks the tie of `spec` (see the module docstring) and returns the models it built.

    Args:
        spec: the model to build, tied and untied.
        counts: the expected (tied params, untied params, tied trainable weights, untied trainable
            weights), written out by the caller from the spec's shapes.
        params: the expected (tied params, untied params) alone, where the caller does not count weights.
        seed: the initial values' seed, the same for both models.
        x: the batch both models are called on; 4 random inputs of the spec by default.
        exact: tied and untied outputs must be bit for bit equal, which holds where both run the
            same kernels on the same values (the untied copies start as the tied views); False
            allows float32 rounding (`rtol`, `atol`) where they run different kernels.
        nonzero: the outputs at init must not all be (nearly) zero; generated specs whose outputs
            may be tiny turn this off.
        tmp_path: a folder to save the tied model in; None skips the save and load.
    """
    report = sharecore.param_report(spec)
    tied, untied = sharecore.build(spec, tied=True, seed=seed), sharecore.build(spec, tied=False, seed=seed)

    # 1. Exact counts, against the report (and the caller's figures).
    assert (tied.count_params(), untied.count_params()) == (report.tied_total, report.untied_total)
    if counts is not None:
        found = (tied.count_params(), untied.count_params(), len(tied.trainable_weights), len(untied.trainable_weights))
        assert found == counts, f"(tied, untied params, tied, untied trainable weights): {found} != {counts}"
    if params is not None:
        assert (tied.count_params(), untied.count_params()) == params

    # 2. One variable per stored tensor when tied; one copy per use of a stored tensor when untied.
    stored = sorted(f"tensor_{t.name}/kernel" for t in spec.tensors)
    copies = sorted(f"copy_{u.name}/kernel" for u in spec.uses if u.tensor is not None)
    assert _kernels(tied, "tensor_") == stored and _kernels(tied, "copy_") == []
    assert _kernels(untied, "copy_") == copies and _kernels(untied, "tensor_") == []

    # 3. The same function at init, and not one that is zero everywhere (which any two models share).
    x = random_inputs(spec, 4, np.random.default_rng(0)) if x is None else x
    out_tied, out_untied = np.asarray(tied(x)), np.asarray(untied(x))
    if nonzero:
        assert np.abs(out_tied).max() > 1e-3, "the outputs at init are (nearly) zero: nothing is compared"
    if exact:
        np.testing.assert_array_equal(out_tied, out_untied)
    else:
        np.testing.assert_allclose(out_tied, out_untied, rtol=rtol, atol=atol)

    # 4. A saved and loaded tied model keeps its tie and its outputs (the same weights and kernels: exact).
    loaded = None
    if tmp_path is not None:
        path = tmp_path / "tied.keras"
        tied.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        assert loaded.count_params() == tied.count_params()
        assert len(loaded.trainable_weights) == len(tied.trainable_weights)
        assert _kernels(loaded, "tensor_") == stored and _kernels(loaded, "copy_") == []
        np.testing.assert_array_equal(np.asarray(loaded(x)), out_tied)
    return TiePair(tied=tied, untied=untied, x=x, loaded=loaded)
