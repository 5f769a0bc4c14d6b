"""A soak: 30 runs cycling the presets in one fresh process grow its memory by at most 10 %.

That measurement is `make test-long`'s (marker `long`); `make test` runs the smoke: 8 runs of 8
different presets, so the pool (POOL_SIZE trainers) evicts one for each run past its size, with a
loose bound: the readings after evicting stay within half again the peak before.

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
from sharecore.nn import trainer
from tests.support import ROOT

pytestmark = pytest.mark.slow

RUNS, STEPS = 30, 20
TARGET_PERCENT = 10.0
SMOKE_RUNS, SMOKE_STEPS = 8, 5
# The smoke's bound: the runs that evict a trainer stay within half again the peak of those before.
SMOKE_PERCENT = 50.0


def soak(runs: int, steps: int) -> dict:
    """`bench.soak`'s worker in a fresh process: `runs` runs of `steps` steps cycling the presets."""
    assert len(sharecore.presets()) > trainer.POOL_SIZE, "every run must evict a trainer for this to test eviction"
    out = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--worker", json.dumps({"runs": runs, "steps": steps})],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"RSS after each run (MB): {[round(x) for x in r['rss_mb']]}")
    assert len(r["rss_mb"]) == runs
    return r


@pytest.mark.long
def test_thirty_runs_cycling_the_presets_grow_memory_by_at_most_ten_percent():
    r = soak(RUNS, STEPS)
    rss = [round(x) for x in r["rss_mb"]]
    assert growth(r) <= TARGET_PERCENT, f"the peak RSS of a cycle grew {growth(r):.1f} %: {rss}"


def test_eight_runs_of_different_presets_evict_trainers_and_stay_within_half_again_the_peak_before():
    r = soak(SMOKE_RUNS, SMOKE_STEPS)
    rss = r["rss_mb"]
    # Eight different presets: the pool holds the first POOL_SIZE trainers, and every later run evicts one.
    assert len(sharecore.presets()) >= SMOKE_RUNS > trainer.POOL_SIZE
    before_evicting = max(rss[: trainer.POOL_SIZE])
    assert max(rss[trainer.POOL_SIZE :]) <= before_evicting * (1 + SMOKE_PERCENT / 100), (
        f"RSS after each run (MB): {[round(x) for x in rss]}"
    )
