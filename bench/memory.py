"""Section `memory`: a server's peak resident memory while two runs at the caps train at once.

The README states a memory budget for a hosted server with the default caps and two trainers
(`SHARECORE_MAX_CONCURRENT_RUNS=2`). Each measurement here is a fresh Python process
(`python -m bench.memory '<json>'`) that does what a dashboard server does before anyone trains:
imports `ui` (Streamlit, sharecore, pandas, plotly), loads TensorFlow and trains the warm-up
run. Its resident memory then is the **baseline**. It then starts one or two
`sharecore.runs.runner.BackgroundRun`s (the dashboard's trainers and queue) of one of the largest
specs the caps allow, and reports its peak resident memory (VmHWM in /proc/self/status). The
worst specs are built from a `Limits`, so the same worst cases are measured at the old and the
new defaults. A real server (`streamlit run`, opened in Chromium) is measured too, for its own
baseline: the Streamlit runtime adds to the in-process one.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path

import sharecore
from bench.common import REPO, Headline, Mode, Section, memory_mb, note, table
from sharecore.core.config import TEACHER_POOL_SIZE, TrainConfig
from sharecore.core.limits import (
    Limits,
    activation_values,
    check_limits,
    env_variable,
    recorded_rows,
)
from sharecore.core.plan import plan
from sharecore.core.spec import ModelSpec

# The README's budget for one server: its baseline plus two runs at the caps training at once.
BUDGET_MB = 1150
# The defaults before issue 8 (item 5): two runs at these caps took 1.5 GB and more.
BEFORE = Limits(max_params=2_000_000, max_activation_mb=256, max_uses=32, max_recorded_rows=10**12)
AFTER = Limits()
POLL_S = 0.05  # how often a child looks whether its runs have ended (the kernel keeps the peak)


# ----------------------------------------------------------------------------- the worst specs
@dataclass(frozen=True)
class Case:
    """One worst case: a spec and settings at the caps, and what makes it the worst."""

    key: str
    what: str
    spec: ModelSpec
    config: TrainConfig


def largest_dense(limits: Limits, steps: int) -> Case:
    """One dense use with its own kernel of `max_params` parameters (tied and untied are the same size)."""
    inputs = min(1000, limits.max_input_size)
    units = max(1, limits.max_params // inputs)
    spec = ModelSpec.from_dict(
        {
            "name": "largest_dense",
            "input_shape": [inputs],
            "uses": [{"name": "dense", "op": "dense", "kernel_shape": [inputs, units]}],
        }
    )
    return Case(
        "dense",
        f"one dense kernel ({inputs}, {units}): {inputs * units:,} parameters",
        spec,
        TrainConfig(steps=steps, batch_size=limits.max_batch_size),
    )


def largest_activations(limits: Limits, steps: int, batch: int | None = None, kernel: int = 3) -> Case:
    """A `kernel` x `kernel` conv, 16 channels in and out, on the largest square image `max_activation_mb` allows at `batch`.

    At the largest batch (the default) the training step holds the most; at batch 1 the image is
    the largest, and the data pool the most.
    """
    channels, batch = 16, batch or limits.max_batch_size

    def spec(side: int) -> ModelSpec:
        return ModelSpec.from_dict(
            {
                "name": "largest_activations",
                "input_shape": [side, side, channels],
                "tensors": [{"name": "K", "shape": [kernel, kernel, channels, channels]}],
                "uses": [{"name": "conv", "op": "conv2d", "tensor": "K", "activation": "relu"}],
            }
        )

    side = 1
    while _fits(spec(side + 1), TrainConfig(steps=steps, batch_size=batch), limits):
        side += 1
    key = "activations" if batch == limits.max_batch_size else "pool"
    return Case(
        key if kernel == 3 else f"{key} {kernel}x{kernel}",
        f"a {kernel}x{kernel} conv on ({side}, {side}, {channels}) images, batch {batch}",
        spec(side),
        TrainConfig(steps=steps, batch_size=batch),
    )


def most_uses(limits: Limits, steps: int) -> Case:
    """`max_uses` dense uses in a chain, all of one square tensor as large as `max_params` allows untied."""
    uses = limits.max_uses
    width = max(1, math.isqrt(limits.max_params // uses))
    spec = ModelSpec.from_dict(
        {
            "name": "most_uses",
            "input_shape": [width],
            "tensors": [{"name": "W", "shape": [width, width]}],
            "uses": [{"name": f"d{i}", "op": "dense", "tensor": "W", "activation": "tanh"} for i in range(uses)],
        }
    )
    return Case(
        "uses",
        f"{uses} uses of one ({width}, {width}) tensor, batch {limits.max_batch_size}",
        spec,
        TrainConfig(steps=steps, batch_size=limits.max_batch_size),
    )


def longest_record(limits: Limits, steps: int) -> Case:
    """`max_uses` uses of one (2, 2) tensor for `max_steps` steps, recorded as often as `max_recorded_rows` allows.

    Every recorded step records a row per use and per pair of uses, for each variant; a tiny tensor
    trains fast enough to reach `max_steps` well within `max_run_seconds`.
    """
    uses = limits.max_uses
    spec = ModelSpec.from_dict(
        {
            "name": "longest_record",
            "input_shape": [2],
            "tensors": [{"name": "W", "shape": [2, 2]}],
            "uses": [{"name": f"d{i}", "op": "dense", "tensor": "W", "activation": "tanh"} for i in range(uses)],
        }
    )
    every = next(
        k
        for k in range(1, limits.max_steps + 1)
        if _fits(spec, TrainConfig(steps=limits.max_steps, batch_size=1, record_every=k), limits)
    )
    config = TrainConfig(steps=limits.max_steps, batch_size=1, record_every=every)
    rows = recorded_rows(plan(spec), config)
    return Case(
        "record",
        f"{uses} uses of one (2, 2) tensor, {limits.max_steps:,} steps recorded every {every} ({rows:,} rows)",
        spec,
        config,
    )


def largest_preset_batch(limits: Limits, steps: int, name: str = "seed-conv") -> Case:
    """A preset at the largest batch size the caps allow it (the conv preset is the heaviest)."""
    spec = sharecore.preset(name)
    batch = max(b for b in range(1, limits.max_batch_size + 1) if _fits(spec, TrainConfig(batch_size=b), limits))
    return Case("preset", f"{name} at batch {batch}", spec, TrainConfig(steps=steps, batch_size=batch))


def largest_vocab(limits: Limits, steps: int) -> Case:
    """A tied language model (preset tied-lm's shape) of dim 1 on one-token sequences, with the largest
    vocabulary the caps allow: its memory is the logits of the 'tokens' held-out pass, (128, vocab)."""

    def spec(vocab: int) -> ModelSpec:
        return ModelSpec.from_dict(
            {
                "name": "largest_vocab",
                "input_shape": [1],
                "input_vocab": vocab,
                "tensors": [{"name": "E", "shape": [vocab, 1]}],
                "uses": [
                    {"name": "embed", "op": "embedding", "tensor": "E"},
                    {"name": "block", "op": "dense", "kernel_shape": [1, 1], "activation": "tanh", "bias": "none"},
                    {"name": "logits", "op": "dense", "tensor": "E", "rule": {"kind": "transpose"}, "bias": "none"},
                ],
            }
        )

    config = TrainConfig(steps=steps, batch_size=1, dataset="tokens")
    low, high = 2, limits.max_params  # the largest vocab that fits, by bisection (the estimate grows with it)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if _fits(spec(mid), config, limits) else (low, mid - 1)
    return Case("vocab", f"a tied LM of vocab {low:,} x dim 1 on one-token sequences, batch 1", spec(low), config)


CASES: dict[str, Callable[[Limits, int], Case]] = {
    "dense": largest_dense,
    "activations": largest_activations,
    "activations 1x1": lambda limits, steps: largest_activations(limits, steps, kernel=1),
    "pool": lambda limits, steps: largest_activations(limits, steps, batch=1),
    "preset": largest_preset_batch,
    "uses": most_uses,
    "record": longest_record,
    "vocab": largest_vocab,
}


def _old_activation_bytes(spec: ModelSpec, config: TrainConfig) -> int:
    """The activation estimate before issue 8 (every op alike: 3 x batch plus the teacher pool)."""
    samples = 3 * config.batch_size + (TEACHER_POOL_SIZE if config.dataset == "teacher" else 0)
    return activation_values(plan(spec)) * 4 * samples


def _runnable(limits: Limits) -> Limits:
    """The caps a measurement runs under: BEFORE's activation cap was counted by the old estimate."""
    return replace(limits, max_activation_mb=10**6) if limits is BEFORE else limits


def _fits(spec: ModelSpec, config: TrainConfig, limits: Limits) -> bool:
    try:
        check_limits(spec, config, _runnable(limits))
    except ValueError:
        return False
    return limits is not BEFORE or _old_activation_bytes(spec, config) <= BEFORE.max_activation_mb * 2**20


def worst_cases(limits: Limits, steps: int) -> list[Case]:
    """The worst cases at `limits`, each checked to be allowed by them."""
    cases = [make(limits, steps) for make in CASES.values()]
    for case in cases:
        if not _fits(case.spec, case.config, limits):
            raise ValueError(f"the worst case {case.key!r} goes past a cap: {case.what}")
    return cases


# ----------------------------------------------------------------------------- one measurement
def child(request: dict) -> dict:
    """In a fresh process: the server's imports and warm-up, then the runs of `request`, all at once."""
    import sharecore
    import ui.routing  # noqa: F401  (what every page imports: Streamlit, sharecore, pandas, plotly)
    from sharecore.runs.runner import BackgroundRun

    sharecore.import_tensorflow()
    BackgroundRun(sharecore.preset("seed-dense"), TrainConfig(steps=1)).start().wait()  # ui's warm-up
    baseline = memory_mb()
    runs = [BackgroundRun(ModelSpec.from_dict(r["spec"]), TrainConfig.from_dict(r["config"])) for r in request["runs"]]
    start = time.perf_counter()
    for run in runs:
        run.start()
    while any(run.running for run in runs):
        time.sleep(POLL_S)
    seconds = time.perf_counter() - start
    errors = [run.error for run in runs if run.error]
    if errors:
        raise RuntimeError(f"a run failed: {errors[0]}")
    return {
        "baseline": baseline["VmRSS"],
        "peak": memory_mb()["VmHWM"],
        "seconds": seconds,
        "steps": [run.result.steps_done for run in runs],
        "stopped": [run.result.stop_reason for run in runs if run.result.stop_reason],
    }


def measure(case: Case, copies: int, limits: Limits) -> dict:
    """Runs `copies` runs of `case` at once in a fresh process with `limits` as its caps."""
    request = {"runs": [{"spec": case.spec.to_dict(), "config": case.config.to_dict()}] * copies}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SHARECORE_MAX_CONCURRENT_RUNS": "2"}
    runnable = _runnable(limits)
    env.update({env_variable(f.name): str(getattr(runnable, f.name)) for f in fields(Limits)})
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory", json.dumps(request)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"measuring {case.key} x{copies} failed: {out.stderr.strip()[-600:]}")
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------- a real server
def server_baseline() -> float | None:
    """A fresh `streamlit run`'s resident memory after a Train page has loaded TensorFlow and the warm-up ran."""
    from bench.dashboard import CHROMIUM, CHROMIUM_ARGS, TRAIN_BUTTON, Skip, _goto_when_up, _server

    if not CHROMIUM:
        return None
    from playwright.sync_api import sync_playwright

    log = Path("/tmp") / "sharecore-bench-memory-streamlit.log"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            with _server(log, what_if=False) as server:
                proc = server.proc
                try:
                    _goto_when_up(page, f"{server.url}/train", proc, time.perf_counter() + 180)
                except Skip:
                    return None
                button = page.get_by_role("button", name=TRAIN_BUTTON)
                button.wait_for(timeout=180_000)
                # The warm-up trains in the background once TensorFlow is loaded; wait for it to settle.
                settled, last = time.perf_counter(), 0.0
                deadline = time.perf_counter() + 120
                while time.perf_counter() < deadline:
                    rss = memory_mb(proc.pid)["VmRSS"]
                    if abs(rss - last) > 2:
                        settled, last = time.perf_counter(), rss
                    elif time.perf_counter() - settled > 5 and rss > 500:
                        break
                    time.sleep(0.5)
                return memory_mb(proc.pid)["VmRSS"]
        finally:
            browser.close()


# ----------------------------------------------------------------------------- the section
def plan_jobs(mode: Mode) -> list[tuple[str, str, int]]:
    """(side, case key, runs at once) to measure in `mode`.

    Quick mode (about 3 minutes) measures two runs at once, the budget's figure, at the new defaults
    for every case and at the old ones for four; full mode measures one run alone too, and everything
    but two old 'record' runs at once (5 minutes and 3.4 GB, measured once: one alone shows the point).
    """
    if mode.name == "smoke":
        return [("after", "dense", 2)]
    if mode.name == "quick":
        return [("after", key, 2) for key in CASES] + [
            ("before", key, 2) for key in ("dense", "uses", "activations", "preset")
        ]
    every = [(side, key, copies) for side in ("before", "after") for key in CASES for copies in (1, 2)]
    return [job for job in every if job != ("before", "record", 2)]


def run(mode: Mode) -> Section:
    section = Section("Memory: two runs at the caps on one server")
    steps = {"smoke": 2, "quick": 6, "full": 10}[mode.name]
    sides = {"before": BEFORE, "after": AFTER}
    cases = {side: {c.key: c for c in worst_cases(limits, steps)} for side, limits in sides.items()}
    jobs = plan_jobs(mode)
    results: dict[tuple[str, str, int], dict | str] = {}

    def one(job: tuple[str, str, int]) -> None:
        side, key, copies = job
        try:
            results[job] = m = measure(cases[side][key], copies, sides[side])
            note(f"memory: {side} {key} x{copies}: peak {m['peak']:,.0f} MB (baseline {m['baseline']:,.0f})")
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            results[job] = str(err).strip().splitlines()[-1][:200]
            note(f"memory: {side} {key} x{copies}: {err}")

    # Two processes at a time: the figures are memory, not speed. The longest jobs go first.
    with ThreadPoolExecutor(max_workers=2) as pool:
        server = pool.submit(server_baseline) if mode.name != "smoke" else None
        list(pool.map(one, sorted(jobs, key=lambda j: (j[1] != "record", j[2] == 1))))
        server_mb = server.result() if server is not None else None
    if server_mb is not None:
        note(f"memory: a real server's baseline: {server_mb:,.0f} MB")

    baselines = [r["baseline"] for r in results.values() if isinstance(r, dict)]
    in_process = min(baselines) if baselines else float("nan")
    section.add(
        "Each cell is a fresh process that imports what the dashboard imports (`ui`), loads TensorFlow and "
        "trains the warm-up run (its resident memory then is the **baseline**), then trains one run of the "
        "spec, or two at once, through `sharecore.runs.runner.BackgroundRun` as the dashboard does. The cell is "
        "the process's peak resident memory (VmHWM) in MiB and, in brackets, its increase over the baseline. "
        f"Runs train {steps} steps (memory peaks in the first ones), except 'record', which trains `max_steps` "
        "steps because what it records grows with every step. Two processes run at a time. "
        f"Defaults before: `{_caps(BEFORE)}`; after: `{_caps(AFTER)}`.",
        "",
    )
    worst: dict[str, float] = {}
    rows = []
    for key in CASES:
        if not any(job[1] == key for job in jobs):
            continue
        row = [f"**{key}**: " + " / ".join(dict.fromkeys(cases[side][key].what for side in sides))]
        for side in sides:
            for copies in (1, 2):
                r = results.get((side, key, copies))
                if isinstance(r, dict):
                    cell = f"{r['peak']:,.0f} (+{r['peak'] - r['baseline']:,.0f})"
                    if r["stopped"]:  # e.g. the time cap: the run recorded less than the case asks
                        cell += f", stopped at step {min(r['steps']):,} of {cases[side][key].config.steps:,}"
                    row.append(cell)
                    if copies == 2:
                        worst[side] = max(worst.get(side, 0.0), r["peak"] - r["baseline"])
                else:
                    row.append("" if r is None else f"failed: {r}")
        rows.append(row)
    header = ["spec at the caps (before / after)", *[f"{side}: {n}" for side in sides for n in ("alone", "two")]]
    section.add(f"In-process baseline: {in_process:,.0f} MiB.", "", *table(header, rows), "")
    section.add(
        "The convolution cases ('activations', 'pool') are built as the largest square image the activation "
        "estimate allows; their memory is not monotonic in that estimate (a smaller image at the same batch "
        "can take more), so a 'before' cell there is a lower bound for the old defaults.",
        "",
    )
    if server_mb is not None:
        section.add(
            "A real server (`streamlit run`, its Train page opened in Chromium, TensorFlow loaded and the "
            f"warm-up trained) holds **{server_mb:,.0f} MiB**, {server_mb - in_process:+,.0f} MiB beside the "
            "in-process baseline.",
            "",
        )
    base = server_mb if server_mb is not None else in_process
    for side in sides:
        if side not in worst:
            continue
        total = base + worst[side]
        section.add(
            f"- {side}: the server's baseline {base:,.0f} + the worst two runs at once measured here "
            f"(+{worst[side]:,.0f}) = **{total:,.0f} MiB** (budget {BUDGET_MB:,} MiB)."
        )
        if side == "after":
            section.headlines.append(
                Headline(
                    "memory: server baseline + two runs at the default caps",
                    total,
                    f"<= {BUDGET_MB} MB",
                    total <= BUDGET_MB,
                    " MB",
                )
            )
    return section


def _caps(limits: Limits) -> str:
    names = ("max_params", "max_activation_mb", "max_uses", "max_recorded_rows", "max_batch_size", "max_steps")
    return ", ".join(f"{n}={getattr(limits, n):,}" for n in names)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(json.dumps(child(json.loads(sys.argv[1]))))
