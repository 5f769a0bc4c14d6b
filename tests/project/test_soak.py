"""A soak: 30 runs cycling the presets in one fresh process grow its memory by at most 10 %.

Seven presets do not fit the six idle trainers of the pool, so every run compiles a trainer and
evicts one: what an evicted trainer (its models, its traced graph) leaves behind shows up here.
Growth compares the peak RSS over the last cycle of presets with the peak over the second, as
`bench.soak.growth` does: the first cycle pays TensorFlow's and the pool's one-time costs, and a
reading right after a conv net's run sits tens of MB above one after a dense net's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import sharecore
from bench.soak import growth
from sharecore.nn import training
from tests.support import ROOT

pytestmark = pytest.mark.slow

RUNS, STEPS = 30, 20
TARGET_PERCENT = 10.0


def test_thirty_runs_cycling_the_presets_grow_memory_by_at_most_ten_percent():
    assert len(sharecore.presets()) > training.POOL_SIZE, "every run must evict a trainer for this to test eviction"
    out = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--worker", json.dumps({"runs": RUNS, "steps": STEPS})],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    rss = [round(x) for x in r["rss_mb"]]
    print(f"RSS after each run (MB): {rss}")
    assert len(rss) == RUNS
    assert growth(r) <= TARGET_PERCENT, f"the peak RSS of a cycle grew {growth(r):.1f} %: {rss}"
