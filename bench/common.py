"""What every benchmark section shares: run modes, alternating rounds, medians, Markdown."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mode:
    """How long a benchmark run may take. `scale` multiplies every section's step counts."""

    name: str  # 'smoke' | 'quick' | 'full'
    rounds: int  # alternating rounds per comparison (A B, A B, ...)
    scale: float  # steps per timed run, relative to 'quick'


MODES = {
    "smoke": Mode("smoke", rounds=1, scale=0.05),
    "quick": Mode("quick", rounds=3, scale=1.0),
    "full": Mode("full", rounds=7, scale=4.0),
}


def steps(mode: Mode, quick: int, minimum: int = 4) -> int:
    """A timed run's step count in this mode, given its count in quick mode."""
    return max(minimum, round(quick * mode.scale))


@dataclass
class Section:
    """One section of RESULTS.md: its Markdown and the headline ratios it measured."""

    title: str
    body: list[str] = field(default_factory=list)
    headlines: list[Headline] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, *lines: str) -> None:
        self.body.extend(lines)


@dataclass(frozen=True)
class Headline:
    """One measured figure with its target, e.g. a ratio of medians that should be >= 0.95."""

    what: str
    value: float
    target: str  # e.g. '>= 0.95'
    met: bool | None  # None: no target
    unit: str = ""  # '' for a ratio

    def cells(self) -> list[str]:
        mark = "" if self.met is None else ("yes" if self.met else "**no**")
        value = f"{self.value:.2f}{self.unit}" if self.value == self.value else "n/a"
        return [self.what, value, self.target, mark]


# ----------------------------------------------------------------------------- measuring
def alternate(cases: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Runs every case once per round, in order (A B C, A B C, ...); returns each case's results.

    Each case returns a throughput (steps per second) for one timed run. Alternating means a
    slow spell on a shared machine hits every case, not just the one that happened to run then.
    """
    out: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            out[name].append(case())
    return out


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median of `a` over median of `b`."""
    mb = median(b)
    return median(a) / mb if mb else float("nan")


def best_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Best (highest) throughput of `a` over best of `b`: on a shared machine interference only
    slows a run down, so the best round is the least disturbed one. A cross-check of the medians."""
    return max(a) / max(b) if a and b and max(b) else float("nan")


def spread(a: Sequence[float], b: Sequence[float]) -> str:
    """The range of the per-round ratios a[i] / b[i], e.g. '0.91-1.02'."""
    per_round = [x / y for x, y in zip(a, b) if y]
    if not per_round:
        return "n/a"
    return f"{min(per_round):.2f}-{max(per_round):.2f}"


_START = time.perf_counter()


def note(message: str) -> None:
    """A progress line on stderr, with the seconds since the benchmark started."""
    print(f"[bench {time.perf_counter() - _START:6.1f} s] {message}", file=sys.stderr, flush=True)


class Stopwatch:
    """`with Stopwatch() as sw: ...` then `sw.seconds`."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


# ----------------------------------------------------------------------------- Markdown
def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table; floats are printed with 3 significant digits unless already strings."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            if v != v:
                return "n/a"
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


# ----------------------------------------------------------------------------- the machine
def memory_mb(pid: int | str = "self") -> dict[str, float]:
    """A process's current (VmRSS) and peak (VmHWM) resident memory, in MiB (Linux /proc)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_line() -> str:
    """The GPUs TensorFlow sees, and so where runs with device 'auto' (every section's default) go."""
    from sharecore.nn.tfimport import tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "none visible to TensorFlow: every run here is on the CPU"
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return f"{', '.join(names)}: runs with device 'auto' (every section but `gpu`'s CPU side) go to GPU:0"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def load_average() -> str:
    """The load average (1, 5, 15 min), written out."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def source_state() -> str:
    """The commit of the sharecore being measured, and whether its files differ from it."""
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = " + uncommitted changes" if _git("status", "--porcelain", "--untracked-files=no", "sharecore") else ""
    return f"commit {commit or 'unknown'}{dirty}"


def machine_lines(mode: Mode, load_at_start: str, source_at_start: str) -> list[str]:
    """The machine, versions, date and load: the context every number below needs. The sources and the load are
    taken when the run starts (`load_average`, `source_state`: the run measures the code it imported then, and
    a long run's load changes), the load again at the end."""
    import numpy as np

    from sharecore.nn.tfimport import keras, tf

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        import streamlit

        st_version = streamlit.__version__
    except ImportError:
        st_version = "not installed"
    rows = [
        ["Date (UTC)", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")],
        ["Mode", f"`{mode.name}` ({mode.rounds} alternating rounds per comparison)"],
        ["CPU", f"{cpu_model()}, {os.cpu_count()} logical cores ({usable} usable)"],
        ["GPU", gpu_line()],
        ["Load average at start; at the end (1, 5, 15 min)", f"{load_at_start}; {load_average()}"],
        ["OS", platform.platform()],
        [
            "Versions",
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
            f"NumPy {np.__version__}, Streamlit {st_version}",
        ],
        ["sharecore", source_at_start],
        ["Command", "`python -m bench " + " ".join(sys.argv[1:]) + "`"],
    ]
    return table(["", ""], rows)
