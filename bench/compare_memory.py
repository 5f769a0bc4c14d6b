"""A server's memory while one workspace compares many kept runs (issue 21: 29 runs took 430 MB, none came back).

A fresh `streamlit run` with the hosted profile and a store of its own, into which `runs` copies of
one seed-dense run of 2,000 steps (the profile's most, every step recorded) are saved under one
workspace before the server starts. One session (`bench.sessions`) with that workspace's cookie opens Compare and picks them
all; the server's RSS is read before, at its peak, right after the session closed, and `settle_s`
later (Streamlit keeps a closed session 120 s; `ui.sweep` then reaps it).

Run it: ``python -m bench.compare_memory [runs] [settle_s]`` (prints a JSON report).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.capacity import WORKSPACE_COOKIE, Sampler, _rss, _warm, hosted_profile
from bench.common import REPO, memory_mb
from bench.sessions import Session


def fill_store(data_dir: str, runs: int) -> tuple[str, list[str]]:
    """`runs` kept copies of one seed-dense run of 2,000 steps in a new workspace; returns (workspace, labels)."""
    import sharecore
    from sharecore.core.config import TrainConfig
    from sharecore.runs.entries import new_key
    from sharecore.runs.store import RunStore

    store = RunStore.from_env({**hosted_profile(), "SHARECORE_DATA_DIR": data_dir})
    result = sharecore.train(sharecore.preset("seed-dense"), TrainConfig(steps=2000))
    workspace, labels = new_key(), [f"seed-dense run {i + 1}" for i in range(runs)]
    for label in labels:
        store.save(workspace, result, label, preset="seed-dense")
    return workspace, labels


async def compare_all(url: str, workspace: str, labels: list[str]) -> float:
    session = Session(url, {WORKSPACE_COOKIE: workspace})
    await session.connect()
    try:
        await session.open("compare")
        start = time.monotonic()
        await session.choose("Runs to compare", labels, timeout=900)
        return time.monotonic() - start
    finally:
        await session.close()


def measure(runs: int, settle_s: float) -> dict:
    from bench.dashboard import _wait_until_idle
    from tests.support.server import run_server, wait_until_healthy

    with tempfile.TemporaryDirectory(prefix="sharecore-compare-") as tmp:
        workspace, labels = fill_store(tmp, runs)
        environ = {**hosted_profile(), "SHARECORE_DATA_DIR": tmp}
        with run_server(Path(tmp) / "server.log", cwd=REPO, wait=False, report=False, env=environ) as server:
            wait_until_healthy(server, 180)
            asyncio.run(_warm(server.url))  # TensorFlow loads and the warm-up trains after a first page
            _wait_until_idle(server.pid, window_s=2.0, limit_s=120)
            with Sampler({server.url: server.pid}) as sampler:
                seconds = asyncio.run(compare_all(server.url, workspace, labels))
            closed = _rss(server.pid)
            time.sleep(settle_s)
            return {
                "runs": runs,
                "compare_s": seconds,
                "rss_before_mb": sampler.first[server.url],
                "rss_peak_mb": sampler.peak[server.url],
                "vmhwm_mb": memory_mb(server.pid)["VmHWM"],
                "rss_closed_mb": closed,
                "settle_s": settle_s,
                "rss_settled_mb": _rss(server.pid),
                "load_peak_1min": sampler.load_peak,
            }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(measure(int(args[0]) if args else 29, float(args[1]) if len(args) > 1 else 160.0)))
