"""Models saved by an earlier version of sharecore keep loading, with their ties.

tests/data/seed-mixed-tied-0.1.keras was saved by sharecore 0.1 (its layers lived in `sharecore.nn.layers`),
with three inputs and the outputs they gave beside it (-io.npy: 10 input columns, then the outputs).
"""

from __future__ import annotations

import numpy as np

import sharecore
from tests.support import ROOT

DATA = ROOT / "tests" / "data"


def test_a_model_saved_by_sharecore_0_1_loads_with_its_tie_and_computes_what_it_did():
    model = sharecore.load_model(DATA / "seed-mixed-tied-0.1.keras")
    assert model.count_params() == 50  # W (10, 5) once: the README's count for seed-mixed tied
    assert len(model.trainable_variables) == 1, "the dense and the conv use still read one variable"
    io = np.load(DATA / "seed-mixed-tied-0.1-io.npy")
    x, saved = io[:, :10], io[:, 10:]
    np.testing.assert_allclose(np.asarray(model(x)), saved, rtol=1e-5, atol=1e-6)
