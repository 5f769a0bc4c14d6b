"""Section `soak`: a server's memory over many runs of different specs (issue 8.4).

One fresh Python process (`python -m bench.soak --worker ...`) trains the presets in turn,
`sharecore.presets()` over and over (30 runs of 20 steps in the full mode), as visitors clicking
through them would, and reads its RSS after every run. Seven presets do not fit the six idle
trainers of the pool (`sharecore.nn.trainer.POOL_SIZE`), so every run evicts a trainer: what an
evicted trainer leaves behind shows up as growth. **Growth** is the peak RSS over the last cycle
of presets against the peak over the second one (see `windows`).

The same is measured on the code of `bench.compile.REFERENCE_COMMIT` when the mode asks for it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import Headline, Mode, Section, note, table
from bench.compile import REFERENCE_COMMIT, in_fresh_process, reference_source, worker_main

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
    from sharecore.core.config import TrainConfig

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


def windows(r: dict) -> tuple[slice, slice]:
    """(the baseline window, the last window) of runs whose peaks `growth` compares.

    A window is one cycle of the presets, so both hold each preset once: RSS read after a conv
    net's run is tens of MB above the same process after a dense one (transient buffers), and a
    single reading would compare different presets. The baseline is the second cycle, when the
    pool is full (six idle trainers for seven presets: every run evicts one) and TensorFlow's
    one-time costs are paid; with fewer than three cycles it is the first.
    """
    n, total = r["presets"], len(r["rss_mb"])
    first = slice(n, 2 * n) if total >= 3 * n else slice(0, min(n, total))
    return first, slice(max(0, total - n), total)


def growth(r: dict) -> float:
    """Peak RSS over the last cycle of presets against the baseline cycle's (`windows`), in percent."""
    first, last = windows(r)
    base = max(r["rss_mb"][first])
    return 100 * (max(r["rss_mb"][last]) - base) / base


def _row(label: str, r: dict) -> list:
    first, last = windows(r)
    return [
        label,
        r["rss_mb"][0],
        max(r["rss_mb"][first]),
        max(r["rss_mb"][last]),
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
    first, last = windows(ours)
    header = [
        "code",
        "RSS after run 1 (MB)",
        f"peak, runs {first.start + 1}-{first.stop} (MB)",
        f"peak, runs {last.start + 1}-{last.stop} (MB)",
        "after gc at the end (MB)",
        "growth of the peak",
        "run 1 to the last run",
        "total s",
    ]
    rows = [_row("this code", ours)]
    if reference is not None:
        rows.append(_row(f"commit `{REFERENCE_COMMIT}`", reference))
    section.add(
        f"{runs} runs of {steps} steps cycling the {ours['presets']} presets (`sharecore.presets()`, seed = run "
        "number, CPU) in one fresh process; RSS read after each run, with no forced garbage collection "
        "(one is forced at the end). **Growth of the peak** compares the highest RSS over the last cycle of "
        f"presets with the highest over runs {first.start + 1}-{first.stop} (`bench.soak.windows`: each window "
        "holds every preset once, after the pool has filled). Target: at most "
        f"{TARGET:g} %. Every reading: {', '.join(f'{x:.0f}' for x in ours['rss_mb'])} MB.",
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
    worker_main("bench.soak", worker, {"runs": 30, "steps": 20})
