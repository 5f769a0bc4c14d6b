"""Another user: a server that is not root (the Dockerfile's user).

Root can write any folder and read any file, so a test of what a server may not write or read runs
its code as UNPRIVILEGED_UID (CI runs as root).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import CI, ROOT

UNPRIVILEGED_UID = 10001


def unprivileged(command: list[str]) -> tuple[list[str], dict]:
    """`command` as UNPRIVILEGED_UID (gid too, no supplementary groups), and the extra `subprocess.run` arguments.

    util-linux's setpriv where it is installed; otherwise Python's own `user`/`group`/`extra_groups`, the same
    system calls. Only root may drop privileges: skipped elsewhere, a failure in CI (CI=true runs as root).
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        why = f"running as uid {UNPRIVILEGED_UID} needs root (to drop privileges), and this process is not root"
        if CI:
            pytest.fail(f"{why}; CI runs as root.")
        pytest.skip(why)
    setpriv = shutil.which("setpriv")
    if setpriv:
        ids = [f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}", "--clear-groups"]
        return [setpriv, *ids, *command], {}
    return command, {"user": UNPRIVILEGED_UID, "group": UNPRIVILEGED_UID, "extra_groups": []}


def run_unprivileged(command: list[str], *, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `command` as UNPRIVILEGED_UID in the checkout's root, with exactly `env` (plus PATH)."""
    _check_unprivileged_python()
    args, extra = unprivileged(command)
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(args, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **extra)


@functools.cache
def _check_unprivileged_python() -> None:
    args, extra = unprivileged([sys.executable, "-c", "import os, sharecore.runs.store; print(os.geteuid())"])
    out = subprocess.run(
        args, env={"PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True, text=True, timeout=120, **extra
    )
    if out.returncode != 0 or out.stdout.strip() != str(UNPRIVILEGED_UID):
        pytest.fail(
            f"uid {UNPRIVILEGED_UID} could not run {sys.executable} on this checkout ({ROOT}): {out.stderr[-500:]}. "
            "The checkout and the Python environment must be readable by other users (not under a 0700 /root)."
        )


def rerun_unprivileged(request: pytest.FixtureRequest) -> bool:
    """Runs the calling test again as UNPRIVILEGED_UID, in a pytest of its own, when this process is root.

    For a test of what a server may not write: root may write anything. Returns True when it ran the
    test that way (and it passed: the caller returns at once), False when this process is not root
    (the test goes on here, as the user it is).
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    home = Path(tempfile.mkdtemp(prefix="sharecore-test-home-"))
    try:
        os.chown(home, UNPRIVILEGED_UID, UNPRIVILEGED_UID)  # ~/.keras, and pytest's tmp_path (PYTEST_DEBUG_TEMPROOT)
        env = {
            key: value
            for key, value in os.environ.items()
            # This process's run store is in root's 0700 temporary folder: the test's pytest makes its own.
            if not key.startswith(("PYTEST_", "SHARECORE_DATA_DIR")) and key not in ("USER", "LOGNAME")
        }
        env |= {"HOME": str(home), "PYTEST_DEBUG_TEMPROOT": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
        command = [
            sys.executable,
            "-m",
            "pytest",
            request.node.nodeid,
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
        ]
        out = run_unprivileged(command, env=env, timeout=600)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert out.returncode == 0 and re.search(r"^1 passed", out.stdout, re.M), (  # passed, not skipped
        f"{request.node.nodeid} as uid {UNPRIVILEGED_UID}:\n{out.stdout[-4000:]}\n{out.stderr[-2000:]}"
    )
    return True
