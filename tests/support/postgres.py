"""A throwaway PostgreSQL cluster for the tests: `initdb` in a temporary folder, `postgres` on a free port of 127.0.0.1.

One cluster per pytest process (`cluster`, started on first use and stopped at exit); each test gets
a schema of its own in it (`Cluster.new_url`), so the tests never see each other's runs and no
database has to be created per test. The cluster runs without fsync: the tests stop and start it
cleanly, and nothing in it outlives the session.

`initdb` refuses to run as root: as root (CI's containers) the cluster belongs to the system user
``postgres`` (Debian's package makes it) and its programs run through ``runuser``. The programs are
found on PATH or in Debian's /usr/lib/postgresql/<version>/bin. Without them a test skips, saying
how to install them; in CI (CI=true, .ci/run installs Debian's ``postgresql``) it fails instead.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import CI
from tests.support.server import free_port

PROGRAMS = ("initdb", "postgres", "pg_ctl")
START_S = 60  # a busy 2-core machine: initdb and the first start take a few seconds


class ClusterMissing(RuntimeError):
    """PostgreSQL's programs (or, as root, the user to run them as) are not on this machine."""


def _bin_dir() -> Path:
    """The folder of initdb, postgres and pg_ctl: PATH first, then Debian's versioned folders (newest first)."""
    on_path = [shutil.which(name) for name in PROGRAMS]
    if all(on_path):
        return Path(str(on_path[0])).resolve().parent
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True):
        if all((folder / name).exists() for name in PROGRAMS):
            return folder
    raise ClusterMissing(
        "PostgreSQL's programs (initdb, postgres, pg_ctl) were not found on PATH or in /usr/lib/postgresql/*/bin; "
        "install them with apt-get install postgresql (Debian) to run the PostgreSQL cases."
    )


@dataclass
class Cluster:
    """A running cluster: `new_url()` gives a fresh schema's URL; `stop()` and `start()` take the server away
    and bring it back on the same port with the same data."""

    bin: Path
    folder: Path  # holds data/ and the server's socket; removed at the end
    port: int
    user: str | None  # the system user the programs run as (as root), else None
    proc: subprocess.Popen | None = None
    _schemas: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else list(args)

    def start(self) -> None:
        with (self.folder / "server.log").open("ab") as log:  # the server keeps its own copy of the handle
            self.proc = subprocess.Popen(
                self._command(
                    str(self.bin / "postgres"),
                    *("-D", str(self.folder / "data"), "-p", str(self.port), "-k", str(self.folder)),
                    *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"),
                    *("-c", "synchronous_commit=off", "-c", "max_connections=100"),
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_S
        while not self._accepts():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def _accepts(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Stops the server as an administrator would (fast shutdown: sessions are cut, commits are kept)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        subprocess.run(
            self._command(str(self.bin / "pg_ctl"), "stop", "-D", str(self.folder / "data"), "-m", "fast", "-w"),
            capture_output=True,
            timeout=60,
        )
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()

    def new_url(self) -> str:
        """The URL of a new, empty schema of its own (its search_path), for one test's store."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._schemas)}"
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"CREATE SCHEMA {name}")
        return f"{self.url}?options=-csearch_path%3D{name}"

    def log_tail(self, chars: int = 3000) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster() -> Cluster:
    """initdb in a new temporary folder, then the server on a free port; as root, as the user postgres.

    Raises:
        ClusterMissing: without PostgreSQL's programs (or, as root, the user postgres).
    """
    bin_dir = _bin_dir()
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            raise ClusterMissing(
                "the tests run as root, where initdb needs the system user 'postgres' (Debian's postgresql package "
                "makes it); install the package or run the tests as another user."
            ) from None
    folder = Path(tempfile.mkdtemp(prefix="sharecore-pg-"))
    if user:
        shutil.chown(folder, user)
    cluster = Cluster(bin=bin_dir, folder=folder, port=free_port(), user=user)
    done = subprocess.run(
        cluster._command(
            str(bin_dir / "initdb"),
            *("-D", str(folder / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"),
        ),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    try:
        cluster.start()
    except BaseException:
        cluster.remove()
        raise
    return cluster


_CLUSTER: Cluster | None = None


def cluster() -> Cluster:
    """This process's cluster, started on the first call and removed when the process exits.

    Skips the calling test without PostgreSQL's programs, saying how to install them; fails it in CI.
    """
    import pytest

    global _CLUSTER
    if _CLUSTER is None:
        try:
            _CLUSTER = start_cluster()
        except ClusterMissing as err:
            if CI:
                pytest.fail(f"PostgreSQL is required in CI (CI=true): {err} .ci/run installs it.")
            pytest.skip(str(err))
        atexit.register(_CLUSTER.remove)
    if _CLUSTER.proc is None or _CLUSTER.proc.poll() is not None:
        _CLUSTER.start()  # a test that stopped it and failed before starting it again
    return _CLUSTER
