"""Divergence where uses read slices of one tensor: disjoint, partly overlapping and identical.

A pair is compared on the entries both uses read. A pair that reads no common entry has nothing
to compare: it is left out of the records (and the page says so), never recorded as NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import sharecore
from sharecore import cli
from sharecore.core.config import TrainConfig
from sharecore.core.spec import ModelSpec
from sharecore.share import urlstate
from sharecore.viz import plots
from tests.support.apptest import APP, train_until_done

CONFIG = TrainConfig(steps=6, batch_size=8, seed=2)
# W is (10, 8); each use reads 4 of its columns, from these: a and d read the same columns, a and b
# (and b and c, b and d) share 2, a and c (and c and d) lie side by side. Pair -> columns shared:
STARTS = {"a": 0, "b": 2, "c": 4, "d": 0}
PAIRS = {("a", "b"): 2, ("a", "c"): 0, ("a", "d"): 4, ("b", "c"): 2, ("b", "d"): 2, ("c", "d"): 0}


def sliced_spec(starts: dict[str, int]) -> ModelSpec:
    uses = [
        {
            "name": name,
            "op": "dense",
            "tensor": "W",
            "rule": {"kind": "slice", "begin": [0, start], "size": [10, 4]},
            "source": "input",
            "activation": "tanh",
        }
        for name, start in starts.items()
    ]
    return ModelSpec.from_dict(
        {
            "name": "slices",
            "input_shape": [10],
            "tensors": [{"name": "W", "shape": [10, 8]}],
            "uses": uses,
            "outputs": list(starts),
        }
    )


def overlap_oracle(wa: np.ndarray, wb: np.ndarray, w0: np.ndarray, a0: int, b0: int) -> tuple[float, float]:
    """||Wa - Wb|| / ||W0|| and cos(Wa, Wb) on the columns of W both read, in NumPy."""
    lo, hi = max(a0, b0), min(a0, b0) + 4
    xa, xb, x0 = wa[:, lo - a0 : hi - a0], wb[:, lo - b0 : hi - b0], w0[:, lo:hi]
    relative = np.linalg.norm(xa - xb) / np.linalg.norm(x0)
    return float(relative), float(np.sum(xa * xb) / (np.linalg.norm(xa) * np.linalg.norm(xb)))


@pytest.fixture(scope="module")
def result():
    return sharecore.train(sliced_spec(STARTS), CONFIG)


def test_pairs_that_share_no_entry_are_left_out_and_no_row_is_nan(result):
    rows = result.divergence
    assert not rows[["relative_distance", "cosine"]].isna().any().any()
    recorded = set(zip(rows.use_a, rows.use_b))
    assert recorded == {pair for pair, shared in PAIRS.items() if shared}


def test_tied_pairs_are_exactly_zero_and_cosine_one(result):
    tied = result.divergence[result.divergence.variant == "tied"]
    assert (tied.relative_distance == 0).all()
    np.testing.assert_allclose(tied.cosine, 1.0, rtol=1e-6)


@pytest.mark.parametrize("pair", [p for p, shared in PAIRS.items() if shared])
def test_untied_divergence_is_measured_on_the_overlap_only(result, pair):
    a, b = pair
    end = result.weights["end"]["untied"]
    w0 = result.weights["start"]["tied"]["W"]
    expected = overlap_oracle(end[a], end[b], w0, STARTS[a], STARTS[b])
    last = result.divergence[
        (result.divergence.variant == "untied")
        & (result.divergence.use_a == a)
        & (result.divergence.use_b == b)
        & (result.divergence.step == CONFIG.steps)
    ]
    assert len(last) == 1
    np.testing.assert_allclose(last[["relative_distance", "cosine"]].iloc[0], expected, rtol=1e-4, atol=1e-6)
    assert expected[0] > 0  # the copies did drift, so the check is not 0 == 0


def test_the_divergence_page_names_the_pairs_left_out():
    spec = sliced_spec(STARTS)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(urlstate.encode_state("seed-dense", spec, TrainConfig(steps=4, batch_size=8)))
    at.run()
    at.switch_page("pages/train.py").run()
    train_until_done(at)
    at.switch_page("pages/divergence.py").run()
    assert not at.exception
    notes = " ".join(i.value for i in at.info)
    assert "a and c" in notes and "c and d" in notes and "b and c" not in notes


def pairs_in(fig) -> set[tuple[str, str]]:
    return {tuple(t.meta["pair"]) for t in fig.data}


def test_the_chart_draws_exactly_the_recorded_pairs_and_names_the_ones_left_out(result):
    spec = sliced_spec(STARTS)
    fig = plots.divergence_chart(result.divergence, "W", spec=spec)
    assert pairs_in(fig) == set(zip(result.divergence.use_a, result.divergence.use_b))
    assert {t.meta["variant"] for t in fig.data} == {"tied", "untied"}
    subtitle = fig.layout.title.subtitle.text
    assert "a ↔ c" in subtitle and "c ↔ d" in subtitle and "a ↔ b" not in subtitle


def test_the_heatmap_leaves_pairs_without_a_common_entry_blank_not_zero(result):
    fig = plots.divergence_heatmap(result.divergence, "W", CONFIG.steps, spec=sliced_spec(STARTS))
    z, uses = fig.data[0].z, list(fig.data[0].x)
    assert uses == list(STARTS)
    for (a, b), shared in PAIRS.items():
        i, j = uses.index(a), uses.index(b)
        assert (z[i][j] is None) == (not shared) and (z[j][i] is None) == (not shared)
    assert all(z[i][i] == 0 for i in range(len(uses)))


def test_uses_that_share_no_entry_at_all_record_no_rows_and_the_chart_says_why():
    # The case: W (10, 8), one use reads columns 0-3, the other 4-7.
    spec = sliced_spec({"a": 0, "b": 4})
    result = sharecore.train(spec, CONFIG)
    assert result.divergence.empty
    assert result.stop_reason is None and np.isfinite(result.history.loss).all()
    fig = plots.divergence_chart(result.divergence, "W", spec=spec)
    assert not fig.data
    assert "No two uses of W read a common entry" in fig.layout.annotations[0].text


def test_the_cli_csv_holds_the_pairs_the_chart_draws(tmp_path):
    path = tmp_path / "slices.json"
    path.write_text(sliced_spec(STARTS).to_json())
    out = tmp_path / "run"
    assert cli.main(["train", str(path), "--steps", "3", "--batch-size", "8", "--out", str(out)]) == 0
    csv = pd.read_csv(out / "divergence.csv")
    assert not csv[["relative_distance", "cosine"]].isna().any().any()
    assert (csv[csv.variant == "tied"].relative_distance == 0).all()
    fig = plots.divergence_chart(csv, "W", spec=sliced_spec(STARTS))
    assert pairs_in(fig) == set(zip(csv.use_a, csv.use_b)) == {pair for pair, shared in PAIRS.items() if shared}
