"""Section `soak`: a server's memory over many runs of different specs (issue 8.4).

One fresh Python process (`python -m bench.soak --worker ...`) trains the presets in turn,
`sharecore.presets()` over and over (30 runs of 20 steps in the full mode), as visitors clicking
through them would, and reads its RSS after every run. Seven presets do not fit the six idle
trainers of the pool (`sharecore.training.POOL_SIZE`), so every run evicts a trainer: what an
evicted trainer leaves behind shows up as growth. **Growth** is the RSS after the last run over
the RSS after the first cycle (each preset trained once, TensorFlow's one-time costs paid).

The same is measured on the code of `bench.compile.REFERENCE_COMMIT` when the mode asks for it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from bench.common import Headline, Mode, Section, note, table
from bench.compile import REFERENCE_COMMIT, in_fresh_process, reference_source

TARGET = 10.0  # percent, as the README promises for a server over several runs


def _plan(mode: Mode) -> tuple[int, int, bool]:
    """(runs, steps per run, whether to measure REFERENCE_COMMIT too)."""
    if mode.name == "full":
        return 30, 20, True
    if mode.name == "quick":
        return 14, 5, False
    return 8, 2, False


def worker(runs: int, steps: int) -> dict:
    """Trains the presets in turn in this (fresh) process; see the module docstring."""
    import gc
    import time

    import psutil

    import sharecore
    from sharecore.spec import TrainConfig

    names = sharecore.presets()
    process = psutil.Process()
    rss, seconds = [], []
    for i in range(runs):
        start = time.perf_counter()
        sharecore.train(sharecore.preset(names[i % len(names)]), TrainConfig(steps=steps, seed=i, device="cpu"))
        seconds.append(time.perf_counter() - start)
        rss.append(process.memory_info().rss / 2**20)
    gc.collect()
    return {"presets": len(names), "rss_mb": rss, "seconds": seconds, "after_gc_mb": process.memory_info().rss / 2**20}


def growth(r: dict) -> float:
    """RSS after the last run over RSS after the first cycle of presets, in percent."""
    base = r["rss_mb"][min(r["presets"], len(r["rss_mb"])) - 1]
    return 100 * (r["rss_mb"][-1] - base) / base


def _row(label: str, r: dict) -> list:
    cycle = min(r["presets"], len(r["rss_mb"]))
    return [
        label,
        r["rss_mb"][0],
        r["rss_mb"][cycle - 1],
        r["rss_mb"][-1],
        r["after_gc_mb"],
        f"{growth(r):.1f} %",
        f"{100 * (r['rss_mb'][-1] - r['rss_mb'][0]) / r['rss_mb'][0]:.1f} %",
        sum(r["seconds"]),
    ]


def run(mode: Mode) -> Section:
    section = Section("Soak: memory over many runs of different specs")
    runs, steps, with_reference = _plan(mode)
    note(f"soak: {runs} runs, this code")
    ours = in_fresh_process("bench.soak", {"runs": runs, "steps": steps})
    reference = None
    if with_reference:
        with tempfile.TemporaryDirectory() as tmp:
            note(f"soak: {runs} runs, commit {REFERENCE_COMMIT}")
            source = reference_source(REFERENCE_COMMIT, Path(tmp))
            reference = in_fresh_process("bench.soak", {"runs": runs, "steps": steps}, source)
    header = [
        "code",
        "RSS after run 1 (MB)",
        f"after run {min(ours['presets'], runs)} (MB)",
        f"after run {runs} (MB)",
        "then after gc (MB)",
        "growth since the first cycle",
        "growth since run 1",
        "total s",
    ]
    rows = [_row("this code", ours)]
    if reference is not None:
        rows.append(_row(f"commit `{REFERENCE_COMMIT}`", reference))
    section.add(
        f"{runs} runs of {steps} steps cycling the {ours['presets']} presets (`sharecore.presets()`, seed = run "
        "number, CPU) in one fresh process; RSS read after each run, with no forced garbage collection "
        f"(the last column but one forces one at the end). Target: growth since the first cycle <= {TARGET:g} %.",
        "",
        *table(header, rows),
    )
    section.headlines.append(
        Headline(
            f"soak: RSS growth over {runs} runs cycling the presets",
            growth(ours),
            f"<= {TARGET:g} %",
            growth(ours) <= TARGET,
            " %",
        )
    )
    return section


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        if os.environ.get("SHARECORE_SOURCE"):
            sys.path.insert(0, os.environ["SHARECORE_SOURCE"])
        point = json.loads(sys.argv[2])
        print(json.dumps(worker(point["runs"], point["steps"])))
    else:
        sys.exit('usage: python -m bench.soak --worker \'{"runs": 30, "steps": 20}\' (or run python -m bench)')
