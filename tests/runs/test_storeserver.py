"""The run store on PostgreSQL only: a server that goes away and comes back, migrations run twice and at once,
tables that are not the store's, and messages that never show a password. (Everything the two back ends
share runs on both in tests/runs/test_store.py.)"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from sharecore.runs.keeping import KeepPlan, keep
from sharecore.runs.store import RunStore, StoreUnavailable, new_key
from sharecore.runs.storefile import EXPECTED_TABLES, SCHEMA_VERSION
from sharecore.runs.storeserver import _WRITE_LOCK, shown_url
from tests.support import ROOT, postgres
from tests.support.server import free_port
from tests.support.store import assert_results_equal, hand_made


@pytest.fixture
def cluster() -> postgres.Cluster:
    return postgres.cluster()


def _with_password(url: str, password: str) -> str:
    # The test cluster trusts every local login, so a password in the URL is accepted and ignored.
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@", 1)


def _query(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        cursor = db.execute(sql)
        return cursor.fetchall() if cursor.description else []


def test_a_database_stopped_mid_run_refuses_the_save_clearly_and_loses_nothing_once_it_is_back(cluster):
    url = _with_password(cluster.new_url(), "s3cret-pw")
    store = RunStore(url)
    ws = new_key()
    first = store.save(ws, hand_made(1), "kept before").run_id
    plan = KeepPlan(store=store, workspace=ws, label="trained while the database was away")
    cluster.stop()  # the run is training meanwhile; it ends while the server is away
    try:
        refused = keep(plan, hand_made(2))
        with pytest.raises(StoreUnavailable) as listing:
            store.runs(ws)
    finally:
        cluster.start()
    # Not kept, and the participant is told why in words: which server, that runs kept so far are safe.
    assert refused.run_id is None
    [note] = refused.notes
    for words in (f"127.0.0.1:{cluster.port}", "cannot be reached", "Runs kept so far stay", "SHARECORE_DATABASE_URL"):
        assert words in note and words in str(listing.value), (words, note)
    assert "s3cret-pw" not in note + str(listing.value)
    # Back: the same store object reconnects on its next use, and every acknowledged run is there.
    again = keep(plan, hand_made(2))
    assert again.run_id is not None and again.notes == ()
    assert [r.label for r in store.runs(ws)] == ["trained while the database was away (stopped at 2)", "kept before"]
    assert_results_equal(hand_made(1), store.load(first).result)
    assert_results_equal(hand_made(2), RunStore(url).load(again.run_id).result)


def test_a_server_that_cannot_be_reached_at_start_says_where_and_how_to_fix_it():
    url = f"postgresql://ann:hunter22@127.0.0.1:{free_port()}/sharecore"
    with pytest.raises(StoreUnavailable, match="could not be used") as err:
        RunStore(url)
    message = str(err.value)
    assert "postgresql://ann@127.0.0.1:" in message and "/sharecore" in message
    assert "cannot be reached" in message and "hunter22" not in message


def test_migrations_run_twice_and_from_several_processes_at_once_make_one_store(cluster):
    url = cluster.new_url()
    opened: list[RunStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def open_store() -> None:
        try:
            barrier.wait()
            opened.append(RunStore(url))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 3
    ws = new_key()
    run_id = opened[0].save(ws, hand_made(), "one").run_id
    again = RunStore(url)  # a restart: the tables and the run are found, nothing is made twice
    assert [r.id for r in again.runs(ws)] == [run_id] and again.problem is None
    schema = url.rsplit("%3D", 1)[1]
    assert _query(cluster.url, f"SELECT version FROM {schema}.sharecore_schema") == [(SCHEMA_VERSION,)]
    tables = _query(cluster.url, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'")
    assert sorted(t for (t,) in tables) == sorted([*EXPECTED_TABLES, "sharecore_schema"])


def test_tables_of_another_kind_with_the_stores_names_are_left_alone_and_named(cluster):
    url = cluster.new_url()
    schema = url.rsplit("%3D", 1)[1]
    _query(cluster.url, f"CREATE TABLE {schema}.runs (id INTEGER, note TEXT)")
    with pytest.raises(StoreUnavailable, match="holds tables named runs that are not the run store's"):
        RunStore(url)
    columns = _query(
        cluster.url, f"SELECT column_name FROM information_schema.columns WHERE table_schema = '{schema}' ORDER BY 1"
    )
    assert columns == [("id",), ("note",)]


def test_a_store_made_by_a_newer_sharecore_is_refused_and_left_as_it_is(cluster):
    url = cluster.new_url()
    RunStore(url)
    schema = url.rsplit("%3D", 1)[1]
    _query(cluster.url, f"UPDATE {schema}.sharecore_schema SET version = 99")
    with pytest.raises(StoreUnavailable, match="made by a newer sharecore .schema 99"):
        RunStore(url)


def test_tables_removed_while_the_server_runs_are_made_anew_and_the_store_says_so(cluster):
    url = cluster.new_url()
    store = RunStore(url)
    ws = new_key()
    store.save(ws, hand_made(), "gone")
    schema = url.rsplit("%3D", 1)[1]
    _query(
        cluster.url,
        f"DROP TABLE {schema}.handins, {schema}.rooms, {schema}.entries, {schema}.runs, {schema}.workspaces",
    )
    run_id = store.save(ws, hand_made(), "after").run_id
    assert [r.id for r in store.runs(ws)] == [run_id]
    assert "were removed while the server ran" in (store.problem or "")


def test_a_list_is_read_while_another_process_holds_the_writer_lock_and_a_change_says_it_waited(cluster):
    # runs() marks its workspace as used in passing, waiting 0.2 s at most: a busy writer never delays a list.
    import psycopg

    url = cluster.new_url()
    store = RunStore(url)
    ws = new_key()
    store.save(ws, hand_made(), "listed")
    fresh = RunStore(url)  # has not marked ws as used yet, so its runs() tries to
    with psycopg.connect(url) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
        assert [r.label for r in fresh.runs(ws)] == ["listed"]
        # A change waits for the lock, then says so.
        with pytest.raises(psycopg.errors.LockNotAvailable) as waited, fresh._write(timeout=0.2):
            pass
    assert "Another process holds the store's write lock" in str(fresh.database.unavailable(waited.value))


def test_from_env_opens_the_database_the_url_names(cluster, tmp_path):
    url = cluster.new_url()
    env = {"SHARECORE_DATABASE_URL": url, "SHARECORE_DATA_DIR": str(tmp_path / "unused"), "SHARECORE_KEPT_RUNS": "4"}
    store = RunStore.from_env(env)
    assert (store.path, store.where, store.max_runs_per_workspace) == (None, shown_url(url), 4)
    assert not (tmp_path / "unused").exists(), "no SQLite file is made beside a database"


@pytest.mark.parametrize("url", ["mysql://ann:hunter22@db/sharecore", "sqlite:///tmp/runs.sqlite3"])
def test_from_env_refuses_a_url_that_is_not_postgresql_and_never_shows_its_password(url):
    with pytest.raises(ValueError, match="SHARECORE_DATABASE_URL must be a PostgreSQL URL") as err:
        RunStore.from_env({"SHARECORE_DATABASE_URL": url})
    assert "hunter22" not in str(err.value)


def test_the_sqlite_store_never_imports_the_postgresql_driver(tmp_path):
    # `make run` needs nothing but the file: psycopg is imported only when a URL is set.
    script = (
        "import sys; from sharecore.runs.store import RunStore; "
        f"RunStore.from_env({{'SHARECORE_DATA_DIR': {str(tmp_path)!r}}}).runs('A' * 24); "
        "print('psycopg' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_stores_sqlite_style_sql_means_the_same_on_both_back_ends(store_where):
    # '?' placeholders, a '?' and a '%' inside quotes, and '%' as an operator: what a store's own SQL may hold.
    store = RunStore(store_where)
    ws = new_key()
    store.save(ws, hand_made(), "100% sure?")
    store.save(ws, hand_made(), "not sure")
    with store._read() as db:
        rows = db.execute(
            "SELECT label, pinned FROM entries WHERE label LIKE '%?' AND workspace = ? AND 7 % 2 = ?", (ws, 1)
        ).fetchall()
    assert [(row["label"], row[1]) for row in rows] == [("100% sure?", 0)]
