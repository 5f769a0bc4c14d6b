"""Section `capacity`: N workshop participants on one server, each training within one minute (issue 21.3).

Each participant is a Streamlit session over the app's own websocket (`bench.sessions`) with its
own workspace cookie and seed. Without a room, it opens the Train page with its seed in the
address (``?preset=seed-conv&seed=<n>``). With ``--room`` (a workshop), a facilitator first opens
a room in the store (seed-conv with its default settings), and each participant opens the room's
link (``/room?room=CODE``), types a display name, presses Join (the room's experiment becomes its
own) and types its seed into the sidebar. Then it opens Train, clicks Train at a random moment
within the first `--within` seconds, and waits for the finished run's 'Final loss, tied' as a
reader of the page would see it; in a room it then hands the run in on the Room page and waits
for the page to say so. Its **wait** is the time from its click to the result on its page (queue,
compile, training, the fragment's poll and the full rerun that draws the result).

Afterwards the run store is read: **nothing lost** means each participant's workspace holds
exactly one run (and, in a room, the board holds its hand-in); **nothing mixed** means that run has
the participant's seed, the final loss its page showed is the stored run's, and its hand-in
carries its name and its own run. Meanwhile each server process's resident memory is sampled,
with its kernel peak (VmHWM), and the load average.

The servers are started here with the hosted profile (deploy/hosted-demo.env): one by default,
``--processes 2`` for two on two ports (participants take them in turn), on a fresh SQLite store or
on the PostgreSQL database ``--database-url`` names (its `SHARECORE_DATABASE_URL`). Or pass
``--servers URL1,URL2`` to spread the participants over servers already running (their store must
be the one `--data-dir` or the environment names, as `RunStore.from_env` reads it).

Run it: ``python -m bench.capacity --participants 30 --room`` (prints a JSON report), or through
``python -m bench --only capacity``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from streamlit.proto.Alert_pb2 import Alert

from bench.common import REPO, Headline, Mode, Section, memory_mb, note, table
from bench.sessions import Page, Session

PROFILE = REPO / "deploy" / "hosted-demo.env"
WORKSPACE_COOKIE = "sharecore_workspace"  # ui.kept.WORKSPACE_COOKIE (bench does not import the app)
FINAL_TIED = "Final loss, tied"
WAIT_TARGET_S = 30.0  # the worst wait a participant should see


def hosted_profile() -> dict[str, str]:
    """The KEY=VALUE lines of deploy/hosted-demo.env."""
    pairs = {}
    for line in PROFILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


# ----------------------------------------------------------------------------- one participant
@dataclass
class Participant:
    """One person at the workshop: their seed, their browser's workspace and what they saw."""

    index: int
    server: str
    seed: int
    workspace: str
    click_at: float  # seconds after the start when they click Train
    name: str = ""  # their display name in a room
    opened_s: float | None = None  # the Train page's first script run
    wait_s: float | None = None  # click -> the result drawn on their page
    shown_loss: str | None = None  # the 'Final loss, tied' their page showed
    handed_in: bool = False  # their Room page said the run was handed in
    error: str | None = None


def _trained(page: Page) -> bool:
    return page.find("metric", FINAL_TIED) is not None


async def open_train(session: Session, who: Participant, preset: str) -> None:
    start = time.monotonic()
    await session.open("train", f"preset={preset}&seed={who.seed}")
    # A server still loading TensorFlow draws the page without its Train button, then reruns it.
    await session.wait_until(lambda page: page.find("button", "Train") is not None, 300)
    who.opened_s = time.monotonic() - start


async def join(session: Session, who: Participant, code: str) -> None:
    """Opens the room's link, types a display name, presses Join, then types the participant's seed into
    the sidebar (joining made the room's experiment, its seed too, the session's)."""
    await session.open("room", f"room={code}")
    await session.fill("Your name on the board", who.name)
    await session.click("Join")
    await session.wait_until(lambda page: _alert(page, "You joined room"), 120)
    await session.enter("Seed", who.seed)


async def hand_in(session: Session, who: Participant, code: str) -> None:
    """Back on the Room page, hands in the kept run it offers (the only one: the run just trained)."""
    await session.open("room", f"room={code}")
    await session.click("Hand in")
    await session.wait_until(lambda page: _alert(page, "Handed in to room"), 120)
    who.handed_in = True


def _alert(page: Page, start: str) -> bool:
    return any(e.kind == "alert" and e.message.body.startswith(start) for e in page.elements.values())


async def train(session: Session, who: Participant, started: float, timeout: float) -> None:
    """Clicks Train at the participant's moment and waits for the result on the page."""
    await asyncio.sleep(max(0.0, started + who.click_at - time.monotonic()))
    clicked = time.monotonic()
    await session.click("Train")
    await session.wait_until(_trained, timeout)
    who.wait_s = time.monotonic() - clicked
    metric = session.page.find("metric", FINAL_TIED)
    who.shown_loss = getattr(metric.message, "body", None) if metric else None
    problems = [e.text for e in session.page.elements.values() if e.kind == "alert" and e.message.format == Alert.ERROR]
    if problems:  # st.error beside the result: the store could not keep it, a setting was refused
        who.error = problems[0][:200]


@dataclass
class Flow:
    """What every participant does, in order: join the room (if there is one), open Train, train, hand in."""

    preset: str = "seed-conv"
    room: str | None = None  # the room's code; None: the participants only train
    timeout_s: float = 600.0  # one participant's wait before it counts as lost

    async def run(self, who: Participant, started: float) -> None:
        session = Session(who.server, {WORKSPACE_COOKIE: who.workspace})
        try:
            await session.connect()
            if self.room:
                await join(session, who, self.room)
            await open_train(session, who, self.preset)  # after joining, its address changes nothing
            await train(session, who, started, self.timeout_s)
            if self.room:
                await hand_in(session, who, self.room)
        except Exception as err:  # one participant's failure is a finding, not the end of the test
            who.error = f"{type(err).__name__}: {err}"[:300]
        finally:
            await session.close()


# ----------------------------------------------------------------------------- the servers
class Sampler:
    """Samples the resident memory of some processes (and the load average) every `every` seconds."""

    def __init__(self, pids: dict[str, int], every: float = 0.5) -> None:
        self.pids = pids
        self.every = every
        self.peak = dict.fromkeys(pids, 0.0)
        self.first = {url: _rss(pid) for url, pid in pids.items()}
        self.load_peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            for url, pid in self.pids.items():
                self.peak[url] = max(self.peak[url], _rss(pid))
            self.load_peak = max(self.load_peak, os.getloadavg()[0])


def _rss(pid: int) -> float:
    try:
        return memory_mb(pid)["VmRSS"]
    except (OSError, KeyError):
        return 0.0


def _pid_listening_on(url: str) -> int | None:
    """The process that listens on `url`'s port on this machine, if it is one of ours."""
    import psutil

    port = int(url.rsplit(":", 1)[1].split("/")[0])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


# ----------------------------------------------------------------------------- the store
def open_room(environ: dict[str, str], preset: str) -> str:
    """What the facilitator does first: opens a room on `preset` with its default settings; returns its code."""
    import sharecore
    from sharecore.runs.entries import new_key
    from sharecore.runs.rooms import Rooms
    from sharecore.runs.store import RunStore
    from sharecore.share.urlstate import default_config

    spec = sharecore.preset(preset)
    rooms = Rooms.from_env(RunStore.from_env(environ), environ)
    return rooms.open(new_key(), spec, default_config(spec), preset=preset).code


def check_store(people: list[Participant], environ: dict[str, str], room: str | None = None) -> dict:
    """Reads every participant's workspace (and the room's board) back: nothing lost, nothing mixed."""
    from sharecore.runs.rooms import Rooms
    from sharecore.runs.store import RunStore

    store = RunStore.from_env(environ)
    rooms = Rooms.from_env(store, environ)
    board = rooms.handins(rooms.find(room), hidden=True) if room else []
    return judge(people, {who.workspace: store.runs(who.workspace) for who in people}, store.load, board, room)


def judge(people: list[Participant], runs: dict, load, board: list, room: str | None) -> dict:
    """The verdict on each participant from what the store holds.

    Args:
        runs: workspace -> its kept runs (`RunStore.runs`).
        load: `RunStore.load`.
        board: the room's hand-ins (`Rooms.handins`); ignored without `room`.

    Returns:
        lost (no run kept, or in a room no hand-in on the board), mixed (a run of another seed, a final loss
        other than the one the page showed, a hand-in under another name or of a run not in the participant's
        list), more_than_one (several runs kept, or several hand-ins): lists of participant indexes.
    """
    lost, mixed, extra = set(), set(), set()
    for who in people:
        theirs = runs[who.workspace]
        if not theirs:
            lost.add(who.index)
            continue
        if len(theirs) > 1:
            extra.add(who.index)
        stored = load(theirs[0].id, who.workspace).result
        loss = stored.summary()["final_loss"].get("tied")
        shown_matches = who.shown_loss is None or loss is None or f"{loss:.4g}" == who.shown_loss
        if stored.config.seed != who.seed or not shown_matches:
            mixed.add(who.index)
        if room is None:
            continue
        handed = [h for h in board if h.participant == who.workspace]
        if not handed:
            lost.add(who.index)
        elif len(handed) > 1:
            extra.add(who.index)
        if any(h.name != who.name or h.run_id != theirs[0].id for h in handed):
            mixed.add(who.index)
    return {"lost": sorted(lost), "mixed": sorted(mixed), "more_than_one": sorted(extra)}


# ----------------------------------------------------------------------------- one load test
def load_test(
    participants: int,
    within_s: float,
    servers: list[str] | None = None,
    data_dir: str | None = None,
    flow: Flow | None = None,
    seed: int = 0,
    rounds: int = 1,
    settle_s: float = 5.0,
    *,
    processes: int = 1,
    database_url: str | None = None,
    room: bool = False,
) -> dict:
    """`participants` sessions, each clicking Train within `within_s` seconds; see the module docstring.

    Without `servers`, starts `processes` `streamlit run`s with the hosted profile on one store (a fresh
    SQLite file of their own, or `database_url`), waits for their warm-up to settle, and stops them at
    the end. With `room`, a room is opened first and every participant joins it and hands in. With
    `rounds` > 1, as many groups of new participants come one after the other (the report is the last
    round's, with every round's waits and the peak over all); `settle_s` after the last session closed,
    the servers' RSS is read again (Streamlit keeps a closed tab's session for 120 s, and `ui.sweep`
    looks every 30 s).
    """
    from bench.dashboard import _wait_until_idle
    from tests.support.server import run_server, wait_until_healthy

    flow = flow or Flow()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="sharecore-capacity-") as tmp:
        environ = {**hosted_profile(), "SHARECORE_DATA_DIR": data_dir or tmp}
        if database_url:
            environ["SHARECORE_DATABASE_URL"] = database_url
        if room:
            flow.room = open_room(environ, flow.preset)
        if servers:
            return _rounds(rounds, settle_s, participants, within_s, servers, environ, flow, rng)
        logs = [Path(tmp) / f"server-{i}.log" for i in range(processes)]
        with contextlib.ExitStack() as stack:
            started = [
                stack.enter_context(run_server(log, cwd=REPO, wait=False, report=False, env=environ)) for log in logs
            ]
            for server in started:
                wait_until_healthy(server, 180)
                # The first page load imports TensorFlow and trains the warm-up; wait until it has settled.
                asyncio.run(_warm(server.url))
                _wait_until_idle(server.pid, window_s=2.0, limit_s=180)
            pids = {server.url: server.pid for server in started}
            report = _rounds(rounds, settle_s, participants, within_s, list(pids), environ, flow, rng, pids)
            report["room"] = flow.room
            report["store"] = "PostgreSQL" if database_url else "SQLite"
            tails = [log.read_text(errors="replace")[-1500:] for log in logs]
            report["server_log_tail"] = tails if report["errors"] else []
            return report


async def _warm(url: str) -> None:
    session = Session(url)
    await session.connect()
    await session.open("train", "preset=seed-dense")
    await session.close()


def _rounds(rounds: int, settle_s: float, *args, **kwargs) -> dict:
    """`_drive` `rounds` times, then the RSS once the servers have had `settle_s` to give memory back."""
    reports = [_drive(*args, **kwargs) for _ in range(rounds)]
    last = reports[-1]
    last["rounds"] = rounds
    last["waits_by_round_s"] = [r["waits_s"] for r in reports]
    last["rss_peak_mb"] = {url: max(r["rss_peak_mb"][url] for r in reports) for url in last["rss_peak_mb"]}
    last["lost"] = sorted({f"round {i + 1}: #{n}" for i, r in enumerate(reports) for n in r["lost"]})
    last["mixed"] = sorted({f"round {i + 1}: #{n}" for i, r in enumerate(reports) for n in r["mixed"]})
    last["errors"] = [e for r in reports for e in r["errors"]]
    time.sleep(max(0.0, settle_s - 5.0))
    last["settle_s"] = settle_s
    last["rss_settled_mb"] = {url: _rss(pid) for url, pid in last.pop("_pids").items()}
    return last


def _drive(
    participants: int,
    within_s: float,
    servers: list[str],
    environ: dict[str, str],
    flow: Flow,
    rng: random.Random,
    pids: dict[str, int] | None = None,
) -> dict:
    from sharecore.runs.entries import new_key

    pids = pids or {url: pid for url in servers if (pid := _pid_listening_on(url)) is not None}
    people = [
        Participant(
            i,
            servers[i % len(servers)],
            seed=1000 + i,
            workspace=new_key(),
            click_at=rng.uniform(0, within_s),
            name=f"Participant {i:02d}",
        )
        for i in range(participants)
    ]

    async def everyone() -> None:
        started = time.monotonic()
        await asyncio.gather(*(flow.run(who, started) for who in people))

    load_before = os.getloadavg()
    start = time.monotonic()
    with Sampler(pids) as sampler:
        asyncio.run(everyone())
    seconds = time.monotonic() - start
    # Every session has closed: what the servers hold a few seconds later is what they keep.
    time.sleep(5)
    after = {url: _rss(pid) for url, pid in pids.items()}
    waits = sorted(w.wait_s for w in people if w.wait_s is not None)
    store = check_store(people, environ, flow.room)
    return {
        "participants": participants,
        "within_s": within_s,
        "servers": servers,
        "seconds": seconds,
        "wait_median_s": statistics.median(waits) if waits else None,
        "wait_worst_s": waits[-1] if waits else None,
        "waits_s": [round(w, 2) for w in waits],
        "finished": len(waits),
        "handed_in": sum(who.handed_in for who in people),
        "errors": [f"#{w.index}: {w.error}" for w in people if w.error],
        "rss_start_mb": sampler.first,
        "rss_peak_mb": sampler.peak,
        "vmhwm_mb": {url: _hwm(pid) for url, pid in pids.items()},
        "rss_after_mb": after,
        "load_before": load_before,
        "load_peak_1min": sampler.load_peak,
        "load_after": os.getloadavg(),
        "_pids": pids,
        **store,
    }


def _hwm(pid: int) -> float:
    try:
        return memory_mb(pid)["VmHWM"]
    except (OSError, KeyError):
        return 0.0


# ----------------------------------------------------------------------------- the section
def run(mode: Mode) -> Section:
    section = Section("Capacity: participants training on one server")
    counts = {"smoke": [3], "quick": [10], "full": [10, 20, 30]}[mode.name]
    rows, worst_ok = [], 0
    for n in counts:
        note(f"capacity: {n} participants within 60 s on one hosted-profile server")
        r = load_test(n, 60.0, room=True)
        url = r["servers"][0]
        rows.append(
            [
                n,
                f"{r['finished']}/{n}",
                r["wait_median_s"],
                r["wait_worst_s"],
                r["rss_start_mb"].get(url),
                r["rss_peak_mb"].get(url),
                r["rss_after_mb"].get(url),
                ", ".join(f"{x:.2f}" for x in r["load_before"]) + f" / {r['load_peak_1min']:.2f}",
                len(r["lost"]),
                len(r["mixed"]),
            ]
        )
        if r["wait_worst_s"] is not None and r["wait_worst_s"] <= WAIT_TARGET_S and not r["errors"]:
            worst_ok = max(worst_ok, n)
    header = [
        "participants",
        "finished",
        "median wait (s)",
        "worst wait (s)",
        "RSS before (MB)",
        "RSS peak (MB)",
        "RSS 5 s after all closed (MB)",
        "load avg before / 1-min peak",
        "lost",
        "mixed",
    ]
    section.add(
        "Each participant is a Streamlit session over the app's websocket (`bench.sessions`), with its own "
        "workspace cookie and seed; it joins a room by its link and a display name, opens Train (seed-conv, "
        "60 steps), clicks Train at a random moment within 60 s and hands the run in. The wait runs from the "
        "click to its page drawing the finished run. One `streamlit run` with deploy/hosted-demo.env (one "
        "trainer), SQLite.",
        "",
        *table(header, rows),
    )
    section.headlines.append(
        Headline(
            f"capacity: most participants measured with a worst wait <= {WAIT_TARGET_S:g} s",
            float(worst_ok),
            f">= {max(counts)}",
            worst_ok >= max(counts),
            "",
        )
    )
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=30)
    parser.add_argument("--within", type=float, default=60.0, help="seconds over which the clicks spread")
    parser.add_argument("--servers", default="", help="running servers, URL1,URL2 (default: start one here)")
    parser.add_argument("--data-dir", default=None, help="the servers' SHARECORE_DATA_DIR, to check their store")
    parser.add_argument("--processes", type=int, default=1, help="servers to start here, on one store")
    parser.add_argument("--database-url", default=None, help="the servers' SHARECORE_DATABASE_URL (PostgreSQL)")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="a throwaway PostgreSQL cluster started here (tests/support/postgres.py)",
    )
    parser.add_argument("--room", action="store_true", help="participants join a room and hand in")
    parser.add_argument("--preset", default="seed-conv")
    parser.add_argument("--seed", type=int, default=0, help="of the click moments")
    parser.add_argument("--rounds", type=int, default=1, help="groups of new participants, one after the other")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the last session to read RSS again")
    args = parser.parse_args()
    servers = [s for s in re.split(r"[,\s]+", args.servers) if s]
    flow = Flow(preset=args.preset)
    with contextlib.ExitStack() as stack:
        database_url = args.database_url
        if args.postgres:
            from tests.support.postgres import start_cluster

            cluster = start_cluster()
            stack.callback(cluster.remove)
            database_url = cluster.new_url()
        report = load_test(
            args.participants,
            args.within,
            servers,
            args.data_dir,
            flow,
            args.seed,
            args.rounds,
            args.settle,
            processes=args.processes,
            database_url=database_url,
            room=args.room,
        )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
