"""The activation estimate of a language model against the memory its training really takes (fresh processes).

`python -m bench.memory` trains a run in a fresh process that has done what a server does first
(imported the app, loaded TensorFlow, trained the warm-up) and reports its peak resident memory
over that baseline: the oracle here. Each case takes a minute or more: `make test-long`.
"""

from __future__ import annotations

import pytest

from bench.memory import Case, largest_vocab, measure
from sharecore.core.config import TrainConfig
from sharecore.core.limits import MB, Limits, activation_bytes
from sharecore.core.plan import plan
from sharecore.core.spec import ModelSpec

pytestmark = pytest.mark.long
ROOMY = Limits(max_params=10**9, max_activation_mb=10**6, max_input_size=10**9)


def wide_embedding() -> Case:
    """A tied LM whose parameters, not its logits, take the memory: vocab 2,000 x dim 250."""
    spec = ModelSpec.from_dict(
        {
            "name": "wide_embedding",
            "input_shape": [1],
            "input_vocab": 2000,
            "tensors": [{"name": "E", "shape": [2000, 250]}],
            "uses": [
                {"name": "embed", "op": "embedding", "tensor": "E"},
                {"name": "block", "op": "dense", "kernel_shape": [250, 250], "activation": "tanh", "bias": "none"},
                {"name": "logits", "op": "dense", "tensor": "E", "rule": {"kind": "transpose"}, "bias": "none"},
            ],
        }
    )
    return Case("wide", "vocab 2,000 x dim 250", spec, TrainConfig(steps=4, batch_size=1, dataset="tokens"))


@pytest.mark.parametrize(
    "case",
    [largest_vocab(Limits(), 4), wide_embedding()],
    ids=["largest vocab the default caps allow", "wide embedding"],
)
def test_language_model_estimate_covers_the_measured_peak_and_is_not_far_above_it(case):
    estimate_mb = activation_bytes(plan(case.spec), case.config) / 1e6
    measured = measure(case, 1, ROOMY)
    over_baseline_mb = (measured["peak"] - measured["baseline"]) * MB / 1e6  # bench reports MiB
    assert over_baseline_mb <= estimate_mb, (
        f"{case.what}: {over_baseline_mb:.0f} MB measured, {estimate_mb:.0f} MB estimated"
    )
    assert over_baseline_mb >= estimate_mb / 4, f"{case.what}: the estimate is far above what it measures"
