"""Section `startup`: how soon the CLI answers and a fresh server shows something, before and after.

"Before" is another commit of this repository (default: the last one that imported TensorFlow
with `import sharecore`; set SHARECORE_BENCH_BEFORE to another), checked out into a temporary
git worktree and run with the same Python. The two sides alternate, round by round, in one run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import REPO, Headline, Mode, Section, median, note, table
from bench.dashboard import CHROMIUM, CHROMIUM_ARGS, SHOWN_CHART, TRAIN_BUTTON, TRAINED, Skip
from tests.support.server import start_server, stop_server

BEFORE_REF = os.environ.get("SHARECORE_BENCH_BEFORE", "337e05b")
TARGETS = {"cli_s": 0.5, "cli_mb": 150.0, "home_s": 3.0, "chart_s": 8.0}
HOME_TITLE = "Tied vs untied weights"
NAV_LINK = '[data-testid="stSidebarNavLink"]'
# Runs `python -m sharecore ARGS` in this process, then prints its peak RSS (KiB) on stderr.
CLI = (
    "import resource, runpy, sys\n"
    "sys.argv = ['sharecore', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('sharecore', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    # VmHWM is this program's own peak: ru_maxrss also counts the parent's memory when the process was
    # started by vfork (Python's subprocess does), so bench's 600 MB showed in every command's figure.
    "hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')]\n"
    "print('maxrss_kb', hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)
COMMANDS = {"presets": ["presets"], "params seed-conv": ["params", "seed-conv"]}
_SHOWN_SVG = json.dumps(f"{SHOWN_CHART} svg")  # not the hidden chart
ANY_CHART = f"() => !!document.querySelector({_SHOWN_SVG})"
ABOVE_FLOOR_S = 2.0  # the first chart after Train may come at most this long after the floor


@contextlib.contextmanager
def _worktree(ref: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sharecore-before-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=REPO, check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO, capture_output=True)


def _cli(root: Path, argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `python -m sharecore ...` in `root`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CLI, *argv], cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    line = [x for x in out.stderr.splitlines() if x.startswith("maxrss_kb")]
    if out.returncode or not line:
        raise RuntimeError(f"`sharecore {' '.join(argv)}` in {root} failed: {out.stderr[-500:]}")
    return seconds, int(line[-1].split()[1]) / 1024


def _floor_app() -> Path:
    """A one-line Streamlit app with the Home page's title: what Streamlit and Chromium alone take."""
    root = Path(tempfile.mkdtemp(prefix="sharecore-floor-"))
    (root / "streamlit_app.py").write_text(f"import streamlit as st\n\nst.title({HOME_TITLE!r})\n")
    return root


# In a fresh process: `import tensorflow` alone, then the first compile of the default experiment's trainer
# (what a fresh server's warm-up does), each timed.
FIRST_COMPILE = (
    "import time\n"
    "t = time.perf_counter()\n"
    "import tensorflow\n"
    "imported = time.perf_counter() - t\n"
    "import sharecore\n"
    "from sharecore.core.config import TrainConfig\n"
    "from sharecore.nn.trainer import warm_up\n"
    "from sharecore.share.urlstate import DEFAULT_PRESET\n"
    "t = time.perf_counter()\n"
    "warm_up(sharecore.preset(DEFAULT_PRESET), TrainConfig())\n"
    "print(imported, time.perf_counter() - t)\n"
)


def _tensorflow_and_first_compile_s() -> tuple[float, float]:
    """Wall seconds of `import tensorflow` alone in a fresh process, and of the first compile after it."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(
        [sys.executable, "-c", FIRST_COMPILE], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    imported, compiled = out.stdout.strip().splitlines()[-1].split()
    return float(imported), float(compiled)


def _fresh_server(root: Path, browser, home_only: bool = False) -> dict[str, float]:
    """Seconds from `streamlit run` to Home painted, navigation drawn, and the first chart after
    going to Train and clicking it as soon as it can be clicked."""
    log = Path(tempfile.gettempdir()) / f"sharecore-bench-startup-{root.name}.log"
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    out: dict[str, float] = {}
    start = time.perf_counter()
    server = start_server(log, cwd=root)
    proc, url = server.proc, server.url
    try:
        while True:
            if proc.poll() is not None:
                raise Skip(f"the server in {root} exited with code {proc.returncode}")
            try:
                page.goto(url, wait_until="commit", timeout=5000)
                break
            except Exception:  # refused until it listens
                if time.perf_counter() - start > 180:
                    raise Skip("the server did not answer within 3 minutes") from None
                time.sleep(0.05)
        page.get_by_role("heading", name=HOME_TITLE).wait_for(timeout=180_000)
        out["home"] = time.perf_counter() - start
        if home_only:
            return out
        page.wait_for_function(f"document.querySelectorAll('{NAV_LINK}').length >= 6", timeout=180_000)
        out["nav"] = time.perf_counter() - start
        page.locator(NAV_LINK, has_text="Train").click()
        button = page.get_by_role("button", name=TRAIN_BUTTON)
        button.wait_for(timeout=180_000)
        page.wait_for_function("b => !b.disabled", arg=button.element_handle(), timeout=180_000)
        out["train_enabled"] = time.perf_counter() - start
        page.evaluate("window.__sawRunning = true")  # TRAINED waits for a run that has started
        button.click()
        # The live chart of the first chunk, or the result's chart if the run ended first.
        page.wait_for_function(ANY_CHART, timeout=300_000, polling="raf")
        out["first_chart"] = time.perf_counter() - start
        page.wait_for_function(TRAINED, timeout=300_000, polling="raf")
        out["chart"] = time.perf_counter() - start
    finally:
        context.close()
        stop_server(server)
    return out


def run(mode: Mode) -> Section:
    section = Section("Start-up: the CLI and a fresh server, before and after")
    rounds = {"smoke": 1, "quick": 2, "full": 4}[mode.name]
    cli: dict[tuple[str, str], list[tuple[float, float]]] = {}
    server: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    floor: list[dict[str, float]] = []  # a one-line app's Home painted; `import tensorflow` alone
    try:
        with _worktree(BEFORE_REF) as before:
            sides = {"before": before, "after": REPO}
            for r in range(rounds):
                for side, root in sides.items():
                    for name, argv in COMMANDS.items():
                        cli.setdefault((name, side), []).append(_cli(root, argv))
                note(f"startup: CLI round {r + 1} done")
            if not CHROMIUM:
                raise Skip("Chromium is missing (apt-get install -y chromium)")
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    floor_root = _floor_app()
                    for r in range(rounds):
                        floor.append({"home": _fresh_server(floor_root, browser, home_only=True)["home"]})
                        floor[-1]["tensorflow"], floor[-1]["compile"] = _tensorflow_and_first_compile_s()
                        for side, root in sides.items():
                            m = _fresh_server(root, browser)
                            server[side].append(m)
                            note(
                                f"startup: {side} server round {r + 1}: "
                                + ", ".join(f"{k} {v:.1f} s" for k, v in m.items())
                            )
                finally:
                    browser.close()
    except (Skip, subprocess.CalledProcessError, RuntimeError) as why:
        section.add(f"Stopped: {why}.")
    section.add(
        f"`python -m sharecore ...`: wall time of the whole process and its peak RSS (`VmHWM`), "
        f"{rounds} alternating round(s); before = commit `{BEFORE_REF}` in a temporary worktree, after = this tree.",
        "",
    )
    rows = []
    for name in COMMANDS:
        b, a = cli.get((name, "before"), []), cli.get((name, "after"), [])
        if not a:
            continue
        a_s, a_mb = median([x[0] for x in a]), median([x[1] for x in a])
        rows.append(
            [
                f"`sharecore {name}`",
                f"{median([x[0] for x in b]):.2f} s, {median([x[1] for x in b]):,.0f} MB" if b else "n/a",
                f"{a_s:.2f} s, {a_mb:,.0f} MB",
                "< 0.5 s, < 150 MB",
            ]
        )
        ok = a_s < TARGETS["cli_s"] and a_mb < TARGETS["cli_mb"]
        section.headlines.append(Headline(f"startup: `sharecore {name}` wall time", a_s, "< 0.5 s", ok, " s"))
        section.headlines.append(Headline(f"startup: `sharecore {name}` peak RSS", a_mb, "< 150 MB", ok, " MB"))
    section.add(*table(["command", "before", "after", "target"], rows), "")
    section.add(
        "A fresh `streamlit run streamlit_app.py` per round, driven by Playwright in the system Chromium: "
        "seconds from launching the server to the Home page's title painted, to the six navigation "
        "links drawn, and to the result chart of the default run after following the Train link and "
        "clicking Train as soon as it is enabled (medians).",
        "",
    )
    rows = []
    labels = {
        "home": ("Home painted", "<= 3 s"),
        "nav": ("navigation drawn", ""),
        "train_enabled": ("Train page drawn, its button enabled", ""),
        "first_chart": ("first chart after Train (live or result)", ""),
        "chart": ("result chart after Train", "<= 8 s"),
    }
    for key, (label, target) in labels.items():
        b = [m[key] for m in server["before"] if key in m]
        a = [m[key] for m in server["after"] if key in m]
        if not a:
            continue
        rows.append([f"server start -> {label}", f"{median(b):.1f} s" if b else "n/a", f"{median(a):.1f} s", target])
        if target:
            limit = TARGETS["home_s"] if key == "home" else TARGETS["chart_s"]
            section.headlines.append(
                Headline(f"startup: server start -> {label}", median(a), target, median(a) <= limit, " s")
            )
    section.add(*table(["what", "before", "after", "target"], rows), "")
    if floor:
        home = median([m["home"] for m in floor])
        tf_s = median([m["tensorflow"] for m in floor])
        compile_s = median([m["compile"] for m in floor])
        floor_s = median([m["home"] + m["tensorflow"] + m["compile"] for m in floor])
        section.add(
            "What this machine allows, measured in the same rounds: a one-line Streamlit app (`st.title` of "
            f"the same heading) paints its title **{home:.1f} s** after `streamlit run` starts (Streamlit's "
            f"start-up and Chromium loading its front end, nothing of sharecore); `import tensorflow` alone "
            f"takes **{tf_s:.1f} s** in a fresh process, and the first compile of the default experiment's "
            f"trainer after it (`sharecore.nn.trainer.warm_up`, the server's own warm-up) **{compile_s:.1f} s**. "
            f"Their sum, **{floor_s:.1f} s** (median of the rounds' sums), is the floor of a fresh server's first "
            "chart: one after the other is the best a server could do, as the paint and the import each hold "
            "the same two cores.",
            "",
        )
        first = [m["first_chart"] for m in server["after"] if "first_chart" in m]
        if first:
            above = median(first) - floor_s
            section.add(
                f"First chart after Train, after: {median(first):.1f} s, **{above:+.1f} s** over the floor "
                f"(target: within {ABOVE_FLOOR_S:g} s)."
            )
            section.headlines.append(
                Headline(
                    "startup: first chart after Train minus its floor",
                    above,
                    f"<= {ABOVE_FLOOR_S:g} s",
                    above <= ABOVE_FLOOR_S,
                    " s",
                )
            )
    return section
