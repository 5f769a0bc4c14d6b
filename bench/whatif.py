"""Section `whatif`: the workshop's what-if loop (issue 10), through Streamlit's AppTest.

Every part runs in a fresh Python process (`python -m bench.whatif --worker ...`) with a run
store of its own (`SHARECORE_DATA_DIR` in a temporary folder), so that neither the store nor
the memory of one part leaks into another:

* **loop**: the Lab page, default preset (`seed-dense`) and settings (60 steps). A round sets the
  learning rate (0.01 -> 0.02, then back) with the slider, clicks Train, waits for the session's
  run to end (reading `BackgroundRun.done` every `POLL_S`, without rerunning the page), then
  reruns once: the rerun that collects the run, keeps it and draws the overlay with it. The
  round's time runs from the setting change to the end of that rerun, which is checked to draw
  the new run. Measured on the app as shipped (TensorFlow loaded and the default trainer
  compiled by the server's warm-up before the first click) and with `SHARECORE_WARM_UP=0`, where
  the first click compiles the trainer.
* **store**: real runs of the default experiment at ten learning rates, trained once with
  `sharecore.train` and saved into eight AppTest sessions' workspaces (each session gets its own,
  as each browser does); each session opens the Compare page with its ten runs shown. Then the
  resident memory of the process (before and after, per session), the time of a rerun of the
  Compare page (10 runs shown) and of the Lab page (10 listed, 4 shown), and the bytes one run
  takes in the store, for the default run and the presets at their default settings.

AppTest runs the page's script in this process as a server does, but it has no browser: a
browser adds sending the page's deltas and drawing the charts, and its live panel notices that
a run ended at its next 0.5 s tick (here: within `POLL_S`). AppTest would also run each page
twice per rerun (see `_route_like_a_server`); the workers route it once, as a server does.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import REPO, Headline, Mode, Section, median, note, table
from bench.compile import in_fresh_process, worker_main

APP = "streamlit_app.py"
POLL_S = 0.02  # how often a round reads whether the session's run has ended
LEARNING_RATES = (0.02, 0.01)  # a round sets the first, the next one the second, and so on: always a change
TARGETS = {"loop_s": 3.0, "rerun_s": 0.5, "run_mb": 1.0}
LOSS_TITLE = "Loss of each run"
KEPT = 10  # runs kept per workspace
SESSIONS = 8  # AppTest sessions (browsers) in the memory part
LAB_SHOWN = 4  # runs the Lab overlays (ui.kept.MAX_SHOWN)
KEPT_RATES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.005, 0.002, 0.001, 0.5, 0.0005)  # one kept run per rate


def _plan(mode: Mode) -> dict:
    """Rounds and parts per mode: quick about 3 minutes, full about 5 (on this shared 2-core machine)."""
    if mode.name == "smoke":
        return {"loop_rounds": 2, "cold_rounds": 0, "reruns": 2, "sessions": 2, "kept": 3, "sizes": ["seed-dense"]}
    heavy = ["seed-dense", "seed-conv", "tied-lm"]
    if mode.name == "quick":
        return {"loop_rounds": 4, "cold_rounds": 2, "reruns": 5, "sessions": SESSIONS, "kept": KEPT, "sizes": heavy}
    # sizes None: every preset
    return {"loop_rounds": 8, "cold_rounds": 3, "reruns": 9, "sessions": SESSIONS, "kept": KEPT, "sizes": None}


# ----------------------------------------------------------------------------- pure helpers
def learning_rate_for(round_: int) -> float:
    """The learning rate round `round_` (0, 1, ...) sets: it differs from the one before it."""
    return LEARNING_RATES[round_ % len(LEARNING_RATES)]


def first_and_warm(seconds: Sequence[float]) -> tuple[float, float]:
    """(the first round, the median of the later ones); NaN for a part that is missing."""
    first = seconds[0] if seconds else float("nan")
    return first, median(seconds[1:])


def drawn_runs(figure: dict, title: str = LOSS_TITLE) -> set[str]:
    """The run labels a comparison figure (plotly JSON) draws: its traces are named '<label> · <variant>'.

    Returns an empty set for a figure with another title.
    """
    text = ((figure.get("layout") or {}).get("title") or {}).get("text") or ""
    if title not in text:
        return set()
    return {t["name"].rsplit(" · ", 1)[0] for t in figure.get("data", []) if " · " in t.get("name", "")}


def increments(readings: Sequence[float]) -> list[float]:
    """Each reading minus the one before it (readings[0] is the baseline): what each step added."""
    return [b - a for a, b in zip(readings, readings[1:])]


def top_entries(stats_text: str, count: int = 12) -> list[str]:
    """The first `count` function rows of a `pstats` listing (sorted already), without its header."""
    lines = stats_text.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if line.strip().startswith("ncalls")), len(lines))
    return [line.rstrip() for line in lines[start:] if line.strip()][:count]


# ----------------------------------------------------------------------------- in the worker process
def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _route_like_a_server() -> None:
    """Makes every AppTest run route its page as a server does, through `st.navigation` alone.

    AppTest resets `PagesManager.uses_pages_directory` before each run, and with a `pages/` folder
    beside the app Streamlit then runs the page file by itself first: `ui.routing.frame` sends it back
    through the router with `st.rerun()`, so every `AppTest.run()` was two script runs and two
    clean-ups (`keras.backend.clear_session()`, a full garbage collection each). A server clears the
    flag at its first `st.navigation` call, for good; this clears it after each reset.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager.__init__, "routes_like_a_server", False):
        return
    original = PagesManager.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    init.routes_like_a_server = True
    PagesManager.__init__ = init


def _open(page: str | None = None, **query: str):
    """A fresh AppTest session (one browser tab, its own workspace), on `page`."""
    from streamlit.testing.v1 import AppTest

    _route_like_a_server()
    at = AppTest.from_file(str(REPO / APP), default_timeout=120)
    at.query_params.update(query)
    at.run()
    if page is not None:
        at.switch_page(f"pages/{page}.py").run()
    if at.exception:
        raise RuntimeError(f"the {page or 'home'} page raised: {at.exception[0].message}")
    return at


def _figures(at) -> list[dict]:
    import json

    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def _wait_for_server_warm_up(limit_s: float = 300) -> float:
    """Waits until ui.startup's loader thread (TensorFlow, then the default trainer's compile) has ended; returns when."""
    from ui import startup

    startup.start_loading_tensorflow()
    deadline = time.perf_counter() + limit_s
    while startup._LOADER.is_alive() and time.perf_counter() < deadline:
        time.sleep(0.1)
    return time.perf_counter()


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _timed_run(at) -> float:
    return _timed(at.run)


def loop_worker(rounds: int, warm_up: bool, data_dir: str, profile: bool = False) -> dict:
    """The Lab's change -> Train -> overlay loop, `rounds` times, in this (fresh) process."""
    os.environ["SHARECORE_DATA_DIR"] = data_dir
    os.environ["SHARECORE_WARM_UP"] = "1" if warm_up else "0"
    from ui import kept

    started = time.perf_counter()
    at = _open("lab")
    opened = time.perf_counter() - started
    settled = _wait_for_server_warm_up() - started
    out: dict = {"warm_up": warm_up, "opened_s": opened, "settled_s": settled, "rounds": []}
    profiler = _ScriptProfile() if profile else None
    # With a profile, one more round is profiled at its final rerun and left out of the timings.
    for i in range(rounds + (profiler is not None)):
        profiled = i == rounds
        lr = learning_rate_for(i)
        t0 = time.perf_counter()
        at.select_slider(key="lab.cfg.learning_rate").set_value(lr).run()
        t1 = time.perf_counter()
        at.button(key="lab.train").click().run()
        t2 = time.perf_counter()
        run = at.session_state["run"]
        if run is None:
            raise RuntimeError(f"Train started no run: {at.session_state['run_error']}")
        while not run.done:
            time.sleep(POLL_S)
        t3 = time.perf_counter()
        if profiled:
            profiler.enable_next()
        at.run()  # the rerun the live panel asks for once the run has ended
        t4 = time.perf_counter()
        if at.exception or at.session_state["run"] is not None:
            raise RuntimeError(f"round {i}: the run was not collected ({at.exception})")
        res = at.session_state["result"]
        setting = at.session_state["config"].learning_rate
        run_id = at.session_state["current_run_id"]
        labels = {info.id: info.label for info in kept.run_store().runs(at.session_state["workspace"])}
        drawn = set().union(*(drawn_runs(f) for f in _figures(at)))
        if labels.get(run_id) not in drawn or res.config.learning_rate != lr or setting != lr:
            raise RuntimeError(f"round {i}: the overlay does not draw the new run {labels.get(run_id)!r}: {drawn}")
        if profiled:
            break
        out["rounds"].append(
            {
                "lr": lr,
                "set_s": t1 - t0,
                "click_s": t2 - t1,
                "wait_s": t3 - t2,
                "final_s": t4 - t3,
                "total_s": t4 - t0,
                "train_s": res.seconds,
                "compile_s": res.compile_seconds,
                "steps": res.steps_done,
                "shown": len(drawn),
            }
        )
    if profiler is not None:
        out["profile"] = profiler.report()
    out["rss_mb"] = _rss_mb()
    return out


class _ScriptProfile:
    """cProfile of the next script run AppTest starts (it runs the page in a thread of its own)."""

    def __init__(self) -> None:
        import cProfile

        from streamlit.testing.v1.local_script_runner import LocalScriptRunner

        self.profile = cProfile.Profile()
        self.armed = False
        original = LocalScriptRunner._run_script_thread
        outer = self

        def run_script_thread(runner) -> None:
            if not outer.armed:
                return original(runner)
            outer.armed = False
            outer.profile.enable()
            try:
                return original(runner)
            finally:
                outer.profile.disable()

        LocalScriptRunner._run_script_thread = run_script_thread

    def enable_next(self) -> None:
        self.armed = True

    def report(self, count: int = 15) -> list[str]:
        import io
        import pstats

        text = io.StringIO()
        pstats.Stats(self.profile, stream=text).sort_stats("cumulative").print_stats(60)
        return top_entries(text.getvalue(), count)


def _train_kept(kept: int) -> list:
    """`kept` real runs of the default experiment (seed-dense, 60 steps), one per learning rate."""
    import sharecore
    from sharecore.share import urlstate

    spec = sharecore.preset(urlstate.DEFAULT_PRESET)
    base = urlstate.default_config(spec)
    return [sharecore.train(spec, dataclasses.replace(base, learning_rate=lr)) for lr in KEPT_RATES[:kept]]


def _column_bytes(store, run_id: str) -> dict[str, int]:
    """What each blob of a kept run takes (SQLite's length()), and the total the store counts."""
    import sqlite3

    columns = ("history", "gradients", "divergence", "heldout", "weights", "state", "bytes")
    with sqlite3.connect(store.path) as db:
        row = db.execute(
            "SELECT "
            + ", ".join(f"coalesce(length({c}), 0)" if c != "bytes" else c for c in columns)
            + " FROM runs WHERE id = ?",
            (run_id,),
        ).fetchone()
    return dict(zip(columns, row))


def store_worker(sessions: int, kept: int, reruns: int, sizes: list[str] | None, data_dir: str, profile: bool) -> dict:
    """Sessions with kept runs: memory, Compare and Lab reruns, bytes per run, in this (fresh) process."""
    import gc

    os.environ["SHARECORE_DATA_DIR"] = data_dir
    import sharecore
    from sharecore.share import urlstate
    from ui import kept

    first = _open()  # the server's first page: starts loading TensorFlow, then the warm-up
    _wait_for_server_warm_up()
    results = _train_kept(kept)
    labels = [f"lr {r.config.learning_rate:g}" for r in results]
    store = kept.run_store()
    gc.collect()
    out: dict = {"kept": kept, "sessions": [], "baseline_mb": _rss_mb()}
    open_sessions = [first]
    rss = [out["baseline_mb"]]
    for s in range(sessions):
        at = first if s == 0 else _open()
        if s:
            open_sessions.append(at)
        workspace = at.session_state["workspace"]
        ids = [store.save(workspace, res, label, preset="seed-dense").run_id for res, label in zip(results, labels)]
        at.session_state["shown_runs"] = list(ids)
        last = profile and s == sessions - 1
        if last:
            profiler = _ScriptProfile()
            profiler.enable_next()
        start = time.perf_counter()
        at.switch_page("pages/compare.py").run()
        seconds = time.perf_counter() - start
        if last:
            out["profile_first"] = profiler.report()
        drawn = set().union(*(drawn_runs(f) for f in _figures(at)))
        if at.exception or len(drawn) != kept:
            raise RuntimeError(f"session {s}: the Compare page drew {sorted(drawn)} ({at.exception})")
        rss.append(_rss_mb())
        out["sessions"].append({"open_s": seconds, "rss_mb": rss[-1], "profiled": last})
        note(f"whatif: session {s + 1}: Compare with {kept} runs, RSS {rss[-1]:,.0f} MB")
    gc.collect()
    out["after_gc_mb"] = _rss_mb()
    out["gc_s"] = median([_timed(gc.collect) for _ in range(5)])  # what a clean-up's full collection costs

    # Reruns without training: the first session's Compare page (all runs shown), then its Lab page.
    at = open_sessions[0]
    out["compare_reruns"] = [_timed_run(at) for _ in range(reruns)]
    ids = at.session_state["shown_runs"]
    at.session_state["shown_runs"] = list(ids[:LAB_SHOWN])
    at.switch_page("pages/lab.py").run()
    drawn = set().union(*(drawn_runs(f) for f in _figures(at)))
    if at.exception or len(drawn) != min(LAB_SHOWN, kept):
        raise RuntimeError(f"the Lab drew {sorted(drawn)} ({at.exception})")
    out["lab_listed"] = len(store.runs(at.session_state["workspace"]))
    out["lab_shown"] = len(drawn)
    out["lab_reruns"] = [_timed_run(at) for _ in range(reruns)]
    if profile:
        profiler = _ScriptProfile()
        for page in ("compare", "lab"):
            at.session_state["shown_runs"] = list(ids if page == "compare" else ids[:LAB_SHOWN])
            at.switch_page(f"pages/{page}.py").run()
            profiler.enable_next()
            at.run()
            out[f"profile_{page}"] = profiler.report()
            profiler.profile = __import__("cProfile").Profile()

    # Bytes per run: the default run, and presets at their default settings.
    runs = results[:1]  # the default run: learning rate 0.01 is KEPT_RATES[0]
    for name in sharecore.presets() if sizes is None else sizes:
        if name == urlstate.DEFAULT_PRESET:
            continue
        spec = sharecore.preset(name)
        runs.append(sharecore.train(spec, urlstate.default_config(spec)))
    workspace = open_sessions[0].session_state["workspace"]
    out["sizes"] = []
    for res in runs:
        run_id = store.save(workspace, res, f"size {res.spec.name}", preset=res.spec.name).run_id
        out["sizes"].append(
            {"preset": res.spec.name, "steps": res.steps_done, "dataset": res.dataset, **_column_bytes(store, run_id)}
        )
    out["file_mb"] = sum(p.stat().st_size for p in Path(store.path).parent.glob("runs.sqlite3*")) / 2**20
    out["runs_in_file"] = len(out["sizes"]) + sessions * kept
    return out


def worker(part: str, **kwargs) -> dict:
    if part == "loop":
        return loop_worker(**kwargs)
    return store_worker(**kwargs)


# ----------------------------------------------------------------------------- in the bench process
def _secs(x: float) -> str:
    return f"{x:.2f}" if x == x else "n/a"


def _loop_rows(label: str, r: dict) -> list[list]:
    rows = []
    for i, rd in enumerate(r["rounds"]):
        rows.append(
            [
                f"{label}, round {i + 1}" + (" (first)" if i == 0 else ""),
                f"{rd['lr']:g}",
                _secs(rd["set_s"]),
                _secs(rd["click_s"]),
                _secs(rd["wait_s"]),
                _secs(rd["final_s"]),
                f"**{rd['total_s']:.2f}**",
                _secs(rd["train_s"]),
                _secs(rd["compile_s"]),
            ]
        )
    return rows


def run(mode: Mode, profile: bool | None = None) -> Section:
    section = Section("What-ifs: the Lab's loop, kept runs and the run store (issue 10)")
    plan = _plan(mode)
    loops: dict[str, dict] = {}
    profiling = bool(profile) if profile is not None else mode.name != "smoke"
    with tempfile.TemporaryDirectory(prefix="sharecore-bench-whatif-") as tmp:
        note(f"whatif: loop, {plan['loop_rounds']} rounds on the app as shipped")
        loops["shipped"] = in_fresh_process(
            "bench.whatif",
            {
                "part": "loop",
                "rounds": plan["loop_rounds"],
                "warm_up": True,
                "data_dir": f"{tmp}/loop",
                "profile": profiling,
            },
        )
        if plan["cold_rounds"]:
            note(f"whatif: loop, {plan['cold_rounds']} rounds with SHARECORE_WARM_UP=0")
            loops["no warm-up"] = in_fresh_process(
                "bench.whatif",
                {"part": "loop", "rounds": plan["cold_rounds"], "warm_up": False, "data_dir": f"{tmp}/cold"},
            )
        note(f"whatif: store, {plan['sessions']} sessions x {plan['kept']} runs")
        store = in_fresh_process(
            "bench.whatif",
            {
                "part": "store",
                "sessions": plan["sessions"],
                "kept": plan["kept"],
                "reruns": plan["reruns"],
                "sizes": plan["sizes"],
                "data_dir": f"{tmp}/store",
                "profile": profiling,
            },
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    # 1. change -> Train -> overlay
    shipped = [r["total_s"] for r in loops["shipped"]["rounds"]]
    first, warm = first_and_warm(shipped)
    section.add(
        "### 1. Change a setting -> Train -> the overlay with the new run (Lab page)",
        "",
        "The default experiment (`seed-dense`, 60 steps, tied and untied). A round: the learning-rate slider "
        "(0.01 -> 0.02, then back; each rerun of **set**), a click on Train (**click**: the rerun that starts the "
        "run), the wait until the session's run has ended (**wait**, read every "
        f"{POLL_S * 1000:.0f} ms without rerunning) and the rerun that keeps the run and draws the overlay "
        "(**final**; checked to draw the new run's label). **total** is the round, from the setting change. "
        "**train** and **compile** are the run's own `TrainResult.seconds` and `compile_seconds`. Seconds; the "
        "overlay holds up to 4 runs. A browser adds the deltas' trip and drawing, and its live panel sees the "
        "end at its next 0.5 s tick.",
        "",
        *table(
            ["app, round", "lr", "set", "click", "wait", "final", "total", "train", "compile"],
            [row for label, r in loops.items() for row in _loop_rows(label, r)],
        ),
        "",
        f"Server as shipped: the Lab page answered {loops['shipped']['opened_s']:.1f} s after start, TensorFlow "
        f"and the warm-up compile were done {loops['shipped']['settled_s']:.1f} s after start (before round 1).",
        "",
    )
    if "profile" in loops["shipped"]:
        section.add(
            "cProfile of the final rerun of one more round (not timed above; the script thread, cumulative "
            "seconds, top entries):",
            "",
            "```",
            *loops["shipped"]["profile"],
            "```",
            "",
        )
    section.headlines.append(
        Headline("what-if: change -> Train -> overlay, first round", first, "<= 3 s", first <= TARGETS["loop_s"], " s")
    )
    section.headlines.append(
        Headline(
            "what-if: change -> Train -> overlay, later rounds (median)",
            warm,
            "<= 3 s",
            warm <= TARGETS["loop_s"],
            " s",
        )
    )
    if "no warm-up" in loops:
        cold = loops["no warm-up"]["rounds"][0]["total_s"]
        section.headlines.append(Headline("what-if: first round without the warm-up (compiles)", cold, "", None, " s"))

    # 2. reruns without training
    compare_first = store["sessions"][0]["open_s"]
    cr, lr_ = median(store["compare_reruns"]), median(store["lab_reruns"])
    section.add(
        f"### 2. Reruns without training, {store['kept']} kept runs",
        "",
        *table(
            ["page", "runs shown", "first render (reads the runs from the store)", "rerun, median", "reruns"],
            [
                [
                    "Compare",
                    store["kept"],
                    _secs(compare_first),
                    f"**{cr:.3f}**",
                    ", ".join(f"{x:.3f}" for x in store["compare_reruns"]),
                ],
                [
                    f"Lab ({store['lab_listed']} listed)",
                    store["lab_shown"],
                    "",
                    f"**{lr_:.3f}**",
                    ", ".join(f"{x:.3f}" for x in store["lab_reruns"]),
                ],
            ],
        ),
        "",
        "`AppTest.run()` of the page with nothing changed (seconds): the whole script, the sidebar, reading "
        "the workspace's list from SQLite, the overlays (curves cached per run) and AppTest's own parsing of "
        "what the page sent.",
        "",
    )
    section.headlines.append(
        Headline(f"what-if: Compare rerun, {store['kept']} runs", cr, "<= 0.5 s", cr <= TARGETS["rerun_s"], " s")
    )
    section.headlines.append(
        Headline(f"what-if: Lab rerun, {store['lab_listed']} listed, {store['lab_shown']} shown", lr_, "", None, " s")
    )
    for page, what in (
        ("compare", "one Compare rerun"),
        ("lab", "one Lab rerun"),
        ("first", "the last session's first Compare render (not timed)"),
    ):
        if f"profile_{page}" in store:
            section.add(
                f"cProfile of {what} (the script thread; cumulative seconds, top entries):",
                "",
                "```",
                *store[f"profile_{page}"],
                "```",
                "",
            )

    # 3. bytes per run
    size_rows = []
    for s in store["sizes"]:
        size_rows.append(
            [
                s["preset"],
                s["steps"],
                s["dataset"].split(":")[0],  # 'teacher: a random untied network ...' -> 'teacher'
                *(f"{s[c] / 1024:,.1f}" for c in ("history", "gradients", "divergence", "heldout", "weights", "state")),
                f"**{s['bytes'] / 2**20:.3f}**",
            ]
        )
    default = store["sizes"][0]["bytes"] / 2**20
    heaviest = max(store["sizes"], key=lambda s: s["bytes"])
    section.add(
        "### 3. Bytes per kept run (run store)",
        "",
        "Each preset at its default settings (`urlstate.default_config`), saved once; the columns are "
        "SQLite's `length()` of each blob in KiB, the last is `RunInfo.bytes` (what the store's size cap "
        "counts: the blobs and the JSON columns) in MiB.",
        "",
        *table(
            ["preset", "steps", "data", "history", "gradients", "divergence", "heldout", "weights", "state", "MiB"],
            size_rows,
        ),
        "",
        f"The SQLite file (with its WAL) holds {store['runs_in_file']} runs in {store['file_mb']:.1f} MiB.",
        "",
    )
    section.headlines.append(
        Headline("what-if: stored MiB per default run", default, "<= 1 MB", default <= TARGETS["run_mb"], " MB")
    )
    section.headlines.append(
        Headline(
            f"what-if: stored MiB, heaviest preset ({heaviest['preset']})",
            heaviest["bytes"] / 2**20,
            "<= 1 MB",
            heaviest["bytes"] / 2**20 <= TARGETS["run_mb"],
            " MB",
        )
    )

    # 4. memory
    readings = [store["baseline_mb"], *(s["rss_mb"] for s in store["sessions"])]
    added = increments(readings)
    n = len(store["sessions"])
    section.add(
        f"### 4. Server memory: {n} sessions with {store['kept']} kept runs each",
        "",
        f"One process: TensorFlow loaded, the warm-up compiled, {store['kept']} runs of the default experiment "
        f"trained (learning rates {', '.join(f'{x:g}' for x in KEPT_RATES[: store['kept']])}), then {n} AppTest "
        f"sessions, each with its own workspace holding copies of those {store['kept']} runs (saved anew: every "
        f"session reads its own rows), each opening the Compare page with all {store['kept']} shown. Resident "
        "memory (psutil RSS, MiB) after each session; every session stays open.",
        "",
        *table(
            ["", "RSS MiB", "added MiB", "Compare's first render s"],
            [["before (1 session on Home, runs trained)", readings[0], "", ""]]
            + [
                [
                    f"after session {i + 1}",
                    s["rss_mb"],
                    f"{a:+.0f}",
                    _secs(s["open_s"]) + (" (under cProfile)" if s.get("profiled") else ""),
                ]
                for i, (s, a) in enumerate(zip(store["sessions"], added))
            ]
            + [["after gc.collect()", store["after_gc_mb"], "", ""]],
        ),
        "",
        f"Per session: {statistics.mean(added):.1f} MiB on average ({min(added):+.0f} to {max(added):+.0f}); "
        f"{readings[-1] - readings[0]:+.0f} MiB for all {n}. A full `gc.collect()` in this process then takes "
        f"{store['gc_s']:.3f} s (median of 5): what `keras.backend.clear_session()` added to every rerun before "
        "ui/startup.py passed it `free_memory=False`.",
        "",
        f"_Load average (1, 5, 15 min) at the end of this section: {load}._",
    )
    section.headlines.append(
        Headline(
            f"what-if: RSS added by {n} sessions x {store['kept']} runs",
            readings[-1] - readings[0],
            "",
            None,
            " MB",
        )
    )
    return section


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    worker_main("bench.whatif", worker, {"part": "loop", "rounds": 2, "warm_up": True, "data_dir": "/tmp/x"})
