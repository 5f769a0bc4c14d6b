"""The one Streamlit server launcher, and Chromium's launch flags, for the tests and bench.

`run_server` starts `streamlit run streamlit_app.py` on a free port of 127.0.0.1 in a process
group of its own, waits for /_stcore/health, and at the end kills the group (the server and any
process it started) and keeps the log. `start_server` and `stop_server` are its halves, for
servers started together (tests/browser/test_fresh_server.py) or timed from the launch (bench).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import CI, ROOT

# The system Chromium (Debian's `chromium` package); Playwright never downloads a browser here.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APP = "streamlit_app.py"
# A server that does not time a fresh server's first Train skips the warm-up compile of the default
# experiment: it only costs CPU that the tests beside it need, and a server stopped during the compile
# waits for it to end before it exits (ui.startup._wait_for_loader_at_exit).
NO_WARM_UP = {"SHARECORE_WARM_UP": "0"}
# The server is shared with whatever else runs on the machine; TensorFlow's first import dominates.
SERVER_START_S = 90


class ServerError(RuntimeError):
    """The server exited, or was not healthy in time; the message ends with its log."""


@dataclass
class Server:
    url: str  # http://127.0.0.1:<port>
    log: Path  # the server's stdout and stderr
    started: float  # time.monotonic() when `streamlit run` was launched
    proc: subprocess.Popen | None = None
    timings: dict[str, float] = field(default_factory=dict)  # what a report quotes, in seconds

    @property
    def pid(self) -> int:
        """The pid of the `streamlit run` process (the leader of its process group)."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def require_chromium() -> str:
    """The Chromium path; skips without one on a user's machine, fails in CI (CI=true)."""
    import pytest

    if CHROMIUM:
        return CHROMIUM
    if CI:
        pytest.fail("Chromium is required in CI (CI=true) but was not found; .ci/run installs it with apt.")
    pytest.skip("Chromium not installed (apt-get install chromium); browser tests run in CI.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_server(
    log: Path,
    *,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    before_streamlit: str | None = None,
) -> Server:
    """Launches `streamlit run streamlit_app.py` on a free port of 127.0.0.1 without waiting for it.

    Args:
        log: the file that gets the server's stdout and stderr.
        cwd: the checkout whose app runs (bench times other revisions in worktrees of their own).
        env: variables set on top of this process's environment (e.g. SHARECORE_WARM_UP="0").
        args: more `streamlit run` options (e.g. ["--runner.postScriptGC", "false"]).
        before_streamlit: Python code run in the server's process before Streamlit's own main
            (bench's what-if variant patches Streamlit this way); None runs `python -m streamlit`.
    """
    port = free_port()
    environ = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    streamlit_args = [
        "run",
        APP,
        "--server.headless=true",
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        # Other people edit the sources while tests run: a reload mid-test would reset sessions.
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
        *args,
    ]
    if before_streamlit is None:
        command = [sys.executable, "-m", "streamlit", *streamlit_args]
    else:
        main = f"import runpy, sys; sys.argv = ['streamlit', *{streamlit_args!r}]; runpy.run_module('streamlit', run_name='__main__')"
        command = [sys.executable, "-c", f"{before_streamlit}\n{main}"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            command, cwd=cwd, env=environ, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(url=f"http://127.0.0.1:{port}", log=log, started=started, proc=proc)


def wait_until_healthy(server: Server, timeout_s: float = SERVER_START_S) -> None:
    """Waits for the server's /_stcore/health; raises ServerError if it exits or takes longer."""
    deadline = server.started + timeout_s
    while not healthy(server.url):
        if server.proc is not None and server.proc.poll() is not None:
            raise ServerError(f"streamlit run exited with code {server.proc.returncode}:\n{server.log_tail()}")
        if time.monotonic() > deadline:
            raise ServerError(f"streamlit run was not healthy within {timeout_s:.0f} s:\n{server.log_tail()}")
        time.sleep(0.1)
    server.timings.setdefault("server start -> healthy", time.monotonic() - server.started)


def stop_server(server: Server) -> None:
    """Ends the server's process group: SIGTERM, then SIGKILL after 10 s. The log stays."""
    proc = server.proc
    if proc is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(10)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def run_server(log: Path, *, wait: bool = True, report: bool = True, **options) -> Iterator[Server]:
    """A fresh server (`start_server`'s options), healthy when `wait`; stopped at the end.

    With `report`, prints the server's timings at the end (pytest shows them with -s or on failure).
    """
    server = start_server(log, **options)
    try:
        if wait:
            wait_until_healthy(server)
        yield server
    finally:
        stop_server(server)
        if report:
            for name, seconds in server.timings.items():
                print(f"browser timing: {name}: {seconds:.1f} s")
