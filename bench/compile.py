"""Section `compile`: the cost of compiling `train()`'s step against the number of uses of one tensor.

Each point runs in a fresh Python process (`python -m bench.compile --worker ...`), so that
what one compile keeps cannot hide in, or inflate, the next. The worker trains a tiny spec
first, so that TensorFlow's one-time start-up is not counted, then trains a chain of k dense
uses of one (16, 16) tensor W (identity rule) twice:

* **trace s**: `TrainResult.compile_seconds` of the first run (tracing the compiled chunk);
* **first run s** / **second run s**: the whole `train()` call, the first one building,
  tracing and optimising the graph, the second one reusing the pooled trainer;
* **peak MB**: the process's peak RSS during the first run minus its RSS before it
  (Linux's VmHWM, reset just before the run);
* **kept MB**: RSS after the first run (and a garbage collection) minus RSS before it.

The same points are measured on the code of `REFERENCE_COMMIT` (extracted with `git archive`
into a temporary folder), when the section asks for it, so before/after sit side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.common import REPO, Mode, Section, note, table

REFERENCE_COMMIT = "20841a6"  # the last commit before the fixes of issue 8.2 (linear compile) and 8.4 (trainer pool)
WIDTH = 16


def _points(mode: Mode) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(uses to measure on this code, uses to measure on REFERENCE_COMMIT)."""
    if mode.name == "full":
        return (8, 16, 24, 32), (8, 16, 24, 32)
    if mode.name == "quick":
        return (8, 32), (8,)
    return (2, 4), ()


# ----------------------------------------------------------------------------- in the worker process
def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _reset_peak() -> bool:
    """Resets the kernel's peak RSS (VmHWM) of this process; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(uses: int, width: int) -> dict[str, float]:
    """Measures one point in this (fresh) process; see the module docstring."""
    import gc
    import time

    import sharecore
    from sharecore.core.config import TrainConfig
    from sharecore.core.spec import ModelSpec

    def chain(k: int) -> ModelSpec:
        return ModelSpec.from_dict(
            {
                "name": f"chain-{k}x{width}",
                "input_shape": [width],
                "tensors": [{"name": "W", "shape": [width, width]}],
                "uses": [
                    {"name": f"dense_{i}", "op": "dense", "tensor": "W", "activation": "tanh" if i < k else "linear"}
                    for i in range(1, k + 1)
                ],
            }
        )

    config = TrainConfig(steps=2, seed=0, device="cpu")
    sharecore.train(chain(2), config)  # TensorFlow's one-time start-up
    gc.collect()
    before = _rss()
    exact_peak = _reset_peak()
    start = time.perf_counter()
    first = sharecore.train(chain(uses), config)
    first_seconds = time.perf_counter() - start
    peak = _peak()
    gc.collect()
    kept = _rss()
    start = time.perf_counter()
    sharecore.train(chain(uses), config)
    second_seconds = time.perf_counter() - start
    return {
        "uses": uses,
        "trace_s": first.compile_seconds,
        "first_s": first_seconds,
        "second_s": second_seconds,
        "peak_mb": (peak - before) / 2**20 if exact_peak else float("nan"),
        "kept_mb": (kept - before) / 2**20,
        "rss_mb": before / 2**20,
    }


# ----------------------------------------------------------------------------- in the bench process
def reference_source(commit: str, folder: Path) -> Path:
    """Extracts `sharecore/` as of `commit` into `folder`; returns the folder to put first on sys.path."""
    archive = subprocess.run(["git", "archive", commit, "sharecore"], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def in_fresh_process(module: str, args: dict, source: Path | None = None, timeout: float = 900) -> dict:
    """Runs `python -m <module> --worker <json args>` in a new process and returns its JSON answer.

    With `source`, that folder's `sharecore` is imported instead of this checkout's.
    """
    # Up to 32 uses, past the server default cap (max_uses), which is about recorded rows, not compiling.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SHARECORE_MAX_USES": "32"}
    if source is not None:
        env["SHARECORE_SOURCE"] = str(source)
    done = subprocess.run(
        [sys.executable, "-m", module, "--worker", json.dumps(args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} worker {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker_main(module: str, worker: Callable[..., dict], example: dict) -> None:
    """The `--worker` end of `in_fresh_process`: calls `worker(**args)` and prints its JSON answer.

    With SHARECORE_SOURCE set, that folder's `sharecore` is imported (each worker imports it
    inside the function, after this).
    """
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        if os.environ.get("SHARECORE_SOURCE"):
            sys.path.insert(0, os.environ["SHARECORE_SOURCE"])
        print(json.dumps(worker(**json.loads(sys.argv[2]))))
    else:
        sys.exit(f"usage: python -m {module} --worker '{json.dumps(example)}' (or run python -m bench)")


def _cells(r: dict) -> list:
    return [
        r["uses"],
        r["uses"] * (r["uses"] - 1) // 2,
        r["trace_s"],
        r["first_s"],
        r["second_s"],
        r["peak_mb"],
        r["kept_mb"],
    ]


def run(mode: Mode) -> Section:
    section = Section("Compile: tracing cost and memory against the number of uses")
    ours_at, reference_at = _points(mode)
    ours, reference = [], []
    with tempfile.TemporaryDirectory() as tmp:
        source = reference_source(REFERENCE_COMMIT, Path(tmp)) if reference_at else None
        # Each point of this code, then the same point of the reference: a busy spell hits both.
        for k in ours_at:
            note(f"compile: {k} uses, this code")
            ours.append(in_fresh_process("bench.compile", {"uses": k, "width": WIDTH}))
            if k in reference_at:
                note(f"compile: {k} uses, commit {REFERENCE_COMMIT}")
                reference.append(in_fresh_process("bench.compile", {"uses": k, "width": WIDTH}, source))
    header = ["uses", "pairs", "trace s", "first run s", "second run s", "peak MB", "kept MB"]
    section.add(
        f"A chain of k dense uses of one ({WIDTH}, {WIDTH}) tensor W (identity rule), `train()` with 2 steps, "
        "each point in a fresh process after a tiny warm-up run (TensorFlow's one-time start-up not "
        "counted). **trace s** is `TrainResult.compile_seconds`; **first run s** the whole first `train()` "
        "call (build, trace, graph optimisation, 2 steps); **second run s** the same call again, reusing the "
        "compiled trainer; **peak MB** the peak RSS during the first call minus the RSS before it; **kept MB** "
        "the RSS after it (and a garbage collection) minus the RSS before it. Single runs, not medians: read "
        "the trend, not the digits.",
        "",
        "This code:",
        "",
        *table(header, [_cells(r) for r in ours]),
    )
    if reference:
        section.add(
            "",
            f"Before, commit `{REFERENCE_COMMIT}` (every pair of uses computed with its own ops in the compiled step):",
            "",
            *table(header, [_cells(r) for r in reference]),
        )
    by_uses = {r["uses"]: r for r in reference}
    for r in ours:
        if r["uses"] in by_uses:
            old = by_uses[r["uses"]]
            section.add(
                "",
                f"At {r['uses']} uses: first run {old['first_s']:.1f} s -> {r['first_s']:.1f} s, "
                f"peak {old['peak_mb']:.0f} MB -> {r['peak_mb']:.0f} MB, kept {old['kept_mb']:.0f} MB -> "
                f"{r['kept_mb']:.0f} MB.",
            )
    return section


if __name__ == "__main__":
    worker_main("bench.compile", worker, {"uses": 8, "width": 16})
