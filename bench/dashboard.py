"""Section `dashboard`: the Streamlit app in headless Chromium, timed the way a person meets it.

Uses the system Chromium (`apt-get install chromium`) through Playwright; never downloads a
browser. Skips, saying why, when Chromium, Playwright, the app or its Train button is missing.
The server is started by the tests' launcher (tests/support/server.py), with the same Chromium flags.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import REPO, Headline, Mode, Section, median, memory_mb, note, table
from tests.support.server import APP, CHROMIUM, CHROMIUM_ARGS, Server, run_server

# A chart the page shows: not the hidden one a session's second run ends with (`ui.startup.warm_up_charts`).
SHOWN_CHART = '[data-testid="stPlotlyChart"]:not(.st-key-startup-warm-up-chart *)'
CHART = f"{SHOWN_CHART} svg"
TRAIN_BUTTON = re.compile(r"(^|\s)Train$")  # its text is the icon's ligature name, then 'Train'
RECORD_EVERY = "Record every (steps)"  # a Train-page setting: changing it reruns without training
TIMEOUT_MS = 180_000
TARGETS = {"train": 3.0, "rerun": 0.5, "rss_mb": 1200.0, "rss_growth": 0.10}

# Streamlit marks its root element with the script's state; this records every change of it,
# with the page's clock, so that a rerun's end is seen even when it comes and goes quickly.
OBSERVER = """
window.__states = []; window.__sawRunning = false;
new MutationObserver((mutations) => {
  for (const m of mutations) {
    const state = m.target.getAttribute('data-test-script-state');
    window.__states.push([state, performance.now()]);
    if (state === 'running') window.__sawRunning = true;
  }
}).observe(document, {attributes: true, subtree: true, attributeFilter: ['data-test-script-state']});
"""
IDLE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return window.__sawRunning && app && app.getAttribute('data-test-script-state') === 'notRunning';
}"""
# A finished run: the script is idle, no progress bar, the Train button is enabled again, the
# result panel and its chart are drawn.
TRAINED = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!window.__sawRunning || !app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector('[data-testid="stProgress"]')) return false;
  const train = [...document.querySelectorAll('button')].find((b) => /(^|\\s)Train$/.test(b.innerText.trim()));
  if (!train || train.disabled) return false;
  if (!document.body.innerText.includes('Final loss, tied')) return false;
  return !!document.querySelector('[data-testid="stPlotlyChart"]:not(.st-key-startup-warm-up-chart *) svg');
}"""


class Skip(Exception):
    """The section cannot run here; the message says why."""


# A what-if server: Streamlit ends every script run (each 0.5 s tick of the Train page's live
# fragment too) with gc.collect(2) (`runner.postScriptGC`) and keras.backend.clear_session().
# ui/startup.py softens both (clear_session waits while a run trains; gc.freeze() after the imports);
# this variant turns both off entirely, to show what they still cost. Not the app as shipped.
WHAT_IF_ARGS = ["--runner.postScriptGC", "false"]
WHAT_IF_PATCH = (
    "import streamlit.runtime.scriptrunner.script_runner as runner; runner._clean_problem_modules = lambda: None; "
)


@contextlib.contextmanager
def _server(log: Path, what_if: bool) -> Iterator[Server]:
    """`streamlit run` on a free port (optionally the what-if variant), not waited for: the caller times
    its start. Its process group is ended at the end."""
    options = {"args": WHAT_IF_ARGS, "before_streamlit": WHAT_IF_PATCH} if what_if else {}
    with run_server(log, cwd=REPO, wait=False, report=False, **options) as server:
        yield server


def _goto_when_up(page, url: str, proc: subprocess.Popen, deadline: float) -> None:
    while True:
        if proc.poll() is not None:
            raise Skip(f"the Streamlit server exited with code {proc.returncode} before serving the app")
        try:
            page.goto(url, wait_until="domcontentloaded", timeout=5000)
            return
        except Exception:  # connection refused until the server listens
            if time.perf_counter() > deadline:
                raise Skip("the Streamlit server did not answer within 3 minutes") from None
            time.sleep(0.1)


def _train(page, timeout_s: float) -> float:
    """Clicks Train and waits for the finished run's charts; returns the seconds it took.

    Raises:
        TimeoutError: (Playwright's) when the charts take longer than `timeout_s`.
    """
    page.evaluate("window.__sawRunning = false")
    start = time.perf_counter()
    page.get_by_role("button", name=TRAIN_BUTTON).click()
    page.wait_for_function(TRAINED, timeout=timeout_s * 1000, polling="raf")
    return time.perf_counter() - start


def _rerun(page, value: int) -> float:
    """Sets 'Record every' to `value` (reruns, does not train); returns the seconds until the script is idle."""
    field = page.get_by_label(RECORD_EVERY, exact=True)
    page.evaluate("window.__sawRunning = false; window.__states = []")
    start = page.evaluate("performance.now()")
    field.fill(str(value))
    field.press("Enter")
    page.wait_for_function(IDLE, timeout=TIMEOUT_MS, polling="raf")
    end = page.evaluate("window.__states.filter((s) => s[0] === 'notRunning').at(-1)[1]")
    return (end - start) / 1000


def _check_ready() -> None:
    if not CHROMIUM:
        raise Skip("Chromium is missing (apt-get install -y chromium)")
    if not (REPO / APP).exists():
        raise Skip(f"{APP} is not there yet")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        raise Skip(f"Playwright is not installed ({err}); make bench installs requirements-dev.txt") from None


def measure(mode: Mode, log: Path, out: dict, what_if: bool = False) -> None:
    """Drives the app once, putting what it measures into `out` as it goes.

    A Train click that takes longer than the mode's limit is recorded as that limit with
    `out['train_timed_out']` set, and the later runs are skipped: the target is 3 s, so a
    longer wait only spends the run's time budget.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    runs = {"smoke": 2, "quick": 5, "full": 10}[mode.name]
    reruns = {"smoke": 2, "quick": 4, "full": 6}[mode.name]
    train_limit = {"smoke": 60.0, "quick": 20.0, "full": 180.0}[mode.name]
    label = "dashboard (what-if)" if what_if else "dashboard"
    out.update(runs=runs, train_limit=train_limit)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.add_init_script(OBSERVER)
            start = time.perf_counter()
            with _server(log, what_if) as server:
                proc, base = server.proc, server.url
                _goto_when_up(page, f"{base}/build", proc, start + 180)
                out["served"] = time.perf_counter() - start
                page.wait_for_selector(CHART, timeout=TIMEOUT_MS)
                out["first_chart"] = time.perf_counter() - start
                note(f"{label}: served after {out['served']:.1f} s, first chart after {out['first_chart']:.1f} s")
                page.goto(f"{base}/train", wait_until="domcontentloaded")
                try:
                    page.get_by_role("button", name=TRAIN_BUTTON).wait_for(timeout=60_000)
                except PlaywrightTimeout:
                    raise Skip("the Train page shows no 'Train' button yet") from None
                page.wait_for_function(IDLE, timeout=TIMEOUT_MS, polling="raf")
                # The first Train click of a fresh server is the start-up section's subject; here the
                # server first finishes loading TensorFlow and compiling the default trainer.
                out["settled"] = _wait_until_idle(proc.pid) - start
                try:
                    out["train_first"] = _train(page, train_limit)
                except PlaywrightTimeout:
                    out["train_first"], out["train_timed_out"] = train_limit, True
                    out["rss_1"] = memory_mb(proc.pid)
                    note(f"{label}: first Train -> charts took more than {train_limit:.0f} s; stopping here")
                    return
                note(f"{label}: first Train -> charts {out['train_first']:.2f} s")
                out["rss_1"] = memory_mb(proc.pid)
                out["reruns"] = [_rerun(page, v) for v in [2, 1] * (reruns // 2)]
                note(f"{label}: reruns " + ", ".join(f"{t:.2f}" for t in out["reruns"]))
                out["train_warm"] = [_train(page, train_limit) for _ in range(runs - 1)]
                note(f"{label}: later runs " + ", ".join(f"{t:.2f}" for t in out["train_warm"]))
                out["rss_n"] = memory_mb(proc.pid)
        finally:
            browser.close()


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_until_idle(pid: int, window_s: float = 1.0, busy: float = 0.1, limit_s: float = 120.0) -> float:
    """Waits until the process used under `busy` of a core over `window_s` (at most `limit_s`); returns when."""
    deadline = time.perf_counter() + limit_s
    last = _cpu_seconds(pid)
    while time.perf_counter() < deadline:
        time.sleep(window_s)
        now = _cpu_seconds(pid)
        if now - last < busy * window_s:
            break
        last = now
    return time.perf_counter()


def _secs(m: dict, key: str) -> str:
    if key == "train_first" and m.get("train_timed_out"):
        return f"> {m['train_limit']:.0f} s (gave up)"
    return f"{m[key]:.2f} s" if key in m else "not reached"


def _rows(m: dict) -> list[list[str]]:
    rows = [
        ["start `streamlit run` -> first page served", _secs(m, "served"), ""],
        ["start `streamlit run` -> first chart (Build page)", _secs(m, "first_chart"), ""],
        ["start `streamlit run` -> server idle (TensorFlow loaded, default trainer compiled)", _secs(m, "settled"), ""],
        ["click Train -> result charts, first run (default preset)", _secs(m, "train_first"), "<= 3 s"],
    ]
    if "train_warm" in m:
        rows.append(
            [f"click Train -> result charts, runs 2-{m['runs']} (median)", f"{median(m['train_warm']):.2f} s", "<= 3 s"]
        )
    if "reruns" in m:
        rows.append(
            [
                f"rerun after a setting change, no training (median of {len(m['reruns'])})",
                f"{median(m['reruns']):.2f} s",
                "<= 0.5 s",
            ]
        )
    if "rss_1" in m:
        rows.append(["server peak RSS after 1 run", f"{m['rss_1']['VmHWM']:,.0f} MB", "<= 1,200 MB"])
    if "rss_n" in m:
        growth = m["rss_n"]["VmHWM"] / m["rss_1"]["VmHWM"] - 1
        rows.append(
            [
                f"server peak RSS after {m['runs']} runs",
                f"{m['rss_n']['VmHWM']:,.0f} MB ({growth:+.1%})",
                "growth <= 10%",
            ]
        )
    return rows


def _headlines(m: dict, prefix: str) -> list[Headline]:
    out = []
    if "train_first" in m:
        out.append(
            Headline(f"{prefix}Train -> charts, first run", m["train_first"], "<= 3 s", m["train_first"] <= 3, " s")
        )
    if "train_warm" in m:
        warm = median(m["train_warm"])
        out.append(Headline(f"{prefix}Train -> charts, later runs", warm, "<= 3 s", warm <= 3, " s"))
    if "reruns" in m:
        rerun = median(m["reruns"])
        out.append(Headline(f"{prefix}rerun without training", rerun, "<= 0.5 s", rerun <= 0.5, " s"))
    if "rss_1" in m:
        rss1 = m["rss_1"]["VmHWM"]
        out.append(Headline(f"{prefix}server peak RSS after 1 run", rss1, "<= 1200 MB", rss1 <= 1200, " MB"))
    if "rss_n" in m:
        growth = m["rss_n"]["VmHWM"] / m["rss_1"]["VmHWM"] - 1
        out.append(
            Headline(f"{prefix}peak RSS growth over {m['runs']} runs", 100 * growth, "<= 10 %", growth <= 0.10, " %")
        )
    return out


def _drive(mode: Mode, what_if: bool) -> tuple[dict, str | None]:
    """Measures one server; returns the measurements and, if it stopped early, why."""
    log = Path(tempfile.gettempdir()) / f"sharecore-bench-streamlit{'-what-if' if what_if else ''}.log"
    m: dict = {}
    try:
        measure(mode, log, m, what_if)
    except Skip:
        raise
    except Exception as err:  # a half-built app: report, do not crash the other sections
        first = str(err).splitlines()[0][:300] if str(err) else ""
        return m, f"stopped after an error while driving the app ({type(err).__name__}: {first}); server log: `{log}`"
    return m, None


def run(mode: Mode, out_dir: Path | None, what_if: bool | None = None) -> Section:
    """The app as shipped, and (full mode, or `what_if=True`) the what-if server beside it."""
    section = Section("Dashboard: the app in headless Chromium")
    try:
        _check_ready()
        m, error = _drive(mode, what_if=False)
    except Skip as why:
        section.add(f"Skipped: {why}.")
        return section
    section.add(
        f"`streamlit run {APP} --server.headless true --server.port <free>` with the repository's "
        "`.streamlit/config.toml`, driven by Playwright in the system Chromium (headless); wall-clock "
        "times from this process. **Train**: the default preset and settings (`seed-dense`, 60 steps, "
        "tied and untied), from the click until the script is idle, the Train button is enabled again "
        "and the result panel's chart is drawn; the live panel polls every 0.5 s, so a run shows up to "
        "0.5 s after it ends. The first click waits until the server is idle (under 10 % of a core for 1 s: "
        "TensorFlow loaded in the background and the default trainer compiled); a click before that is the "
        "`startup` section's subject. **Rerun**: 'Record every' changed and committed with Enter, until Streamlit "
        "marks the script idle (the page's clock). **RSS**: the server's VmHWM (peak resident memory) "
        f"from /proc. A Train click is given up after {m.get('train_limit', 0):.0f} s in this mode.",
        "",
        *table(["what", "measured", "target"], _rows(m)),
    )
    if "train_warm" in m:
        section.add(
            "",
            "Every later run: "
            + ", ".join(f"{t:.2f}" for t in m["train_warm"])
            + " s; every rerun: "
            + ", ".join(f"{t:.2f}" for t in m["reruns"])
            + " s.",
        )
    if error:
        section.add("", f"The measurement {error}.")
    section.headlines += _headlines(m, "dashboard: ")
    if what_if is None:
        what_if = mode.name == "full"
    if what_if:
        w, w_error = _drive(mode, what_if=True)
        section.add(
            "",
            "**What-if**, not the app as shipped: the same server with Streamlit's two after-every-run "
            "clean-ups switched off entirely (`--runner.postScriptGC false`, and `_clean_problem_modules`, "
            "which calls `keras.backend.clear_session()`, replaced by a no-op). Both run after every script "
            "run, each 0.5 s tick of the live panel included; left alone they starved the training thread "
            "(a full garbage collection holding the GIL, TensorFlow's kernel cache emptied under it: the "
            "first default run took over 2 minutes before `ui/startup.py` deferred `clear_session` during runs and "
            "froze the import-time objects with `gc.freeze()`). The difference between the two tables is "
            "what the clean-ups still cost with that mitigation.",
            "",
            *table(["what", "measured (what-if)", "target"], _rows(w)),
        )
        if w_error:
            section.add("", f"The what-if measurement {w_error}.")
        section.headlines += _headlines(w, "dashboard what-if: ")
    return section
