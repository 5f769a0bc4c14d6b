"""A run's records are the numbers the trainer gave before it was made faster.

The oracle is `tests/nn/data/records_main.npz`, written by `tests/nn/data/make_records_main.py`
with main's trainer at commit 6db9b10 (before held-out scoring moved into the compiled chunk,
records into preallocated arrays and chunk sizes to a time budget): history, gradients and
divergence at every recorded step, held-out loss and accuracy at the steps it scored, and the end
weights (of two of the three runs: the digits model's would take the fixture over 100 kB). Held-out
scores are compared at the steps both scored: that trainer scored at the end of every chunk.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sharecore
from tests.nn.data.make_records_main import CASES  # the runs the fixture holds, by the name its arrays are stored under
from tests.support import ROOT

FIXTURE = ROOT / "tests" / "nn" / "data" / "records_main.npz"
TOL = 1e-6

KEYS = {
    "history": ["step", "variant"],
    "gradients": ["step", "variant", "tensor", "use"],
    "divergence": ["step", "variant", "tensor", "use_a", "use_b"],
    "heldout": ["step", "variant"],
}


@pytest.fixture(scope="module")
def stored() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as z:
        return {k: z[k] for k in z.files}


def _frame(stored: dict[str, np.ndarray], case: str, frame: str) -> pd.DataFrame:
    prefix = f"{case}/{frame}/"
    return pd.DataFrame({k[len(prefix) :]: v for k, v in stored.items() if k.startswith(prefix)})


@pytest.mark.parametrize("case", list(CASES))
def test_records_equal_those_of_the_trainer_before_it_was_made_faster(stored, case):
    name, config = CASES[case]
    result = sharecore.train(sharecore.preset(name), config)
    assert result.steps_done == config.steps and result.stop_reason is None
    for frame, keys in KEYS.items():
        before, now = _frame(stored, case, frame), getattr(result, frame)
        assert list(now.columns) == list(before.columns), frame
        if frame == "heldout":  # the steps both scored: step 0, the last, and the schedule's
            both = now.merge(before, on=keys, suffixes=("_now", "_before"))
            assert {0, config.steps} <= set(both.step)
            assert len(both) >= 2 * 3
        else:  # every row, in the same order
            assert len(now) == len(before), frame
            for key in keys:
                assert list(now[key]) == list(before[key]), (frame, key)
            both = now.join(before, rsuffix="_before", lsuffix="_now")
        for column in before.columns:
            if column in keys:
                continue
            np.testing.assert_allclose(
                both[f"{column}_now"], both[f"{column}_before"], rtol=TOL, atol=TOL, equal_nan=True, err_msg=column
            )
    weights = {k: v for k, v in stored.items() if k.startswith(f"{case}/end/")}
    for key, value in weights.items():
        _, _, variant, tensor = key.split("/")
        np.testing.assert_allclose(result.weights["end"][variant][tensor], value, rtol=TOL, atol=TOL, err_msg=key)
    assert bool(weights) == (case != "digits")
