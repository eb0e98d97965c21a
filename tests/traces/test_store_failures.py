"""TraceStore when things go wrong: a locked or damaged file costs no record the caller cannot
see counted, a killed writer's runs are marked, and a file that is not ours is refused by name."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from byzer_agents.exceptions import TraceStoreError
from byzer_agents.traces import TraceStore
from byzer_agents.traces.schema import MIGRATIONS, migrate
from byzer_agents.traces.writers import Writer, is_alive, this_process

REPO_ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def _locked(db_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the write lock (as another process's long transaction)."""
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield holder
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _record(store: TraceStore, run_id: str, step: int) -> str:
    return store.record_tool_call(
        run_id=run_id,
        step=step,
        tool_name="t",
        arguments={"n": step},
        result=step,
        status="ok",
        latency_s=0.0,
    )


def _damage_table(db_path: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with noise; the header and schema stay readable."""
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        (root,) = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()
        (page_size,) = connection.execute("PRAGMA page_size").fetchone()
    with open(db_path, "r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xa5" * page_size)


# --- a locked or damaged file ------------------------------------------------------------------


def test_records_wait_in_memory_while_another_connection_holds_the_lock(
    store: TraceStore, db_path: Path
) -> None:
    run_id = store.new_run("chat_oai")
    with _locked(db_path):
        started = time.monotonic()
        event_ids = [_record(store, run_id, step) for step in (1, 2, 3)]
        store.finish_run(run_id, "ok")
        elapsed = time.monotonic() - started
        assert store.pending_records == 4
    # One wait for the lock (2 s), not one per record, and no error.
    assert elapsed < 8
    assert store.dropped_records == 0
    # The next read writes what waited, in order.
    run = store.run(run_id)
    assert run is not None and run.status == "ok"
    assert [event.id for event in store.events(run_id)] == event_ids
    assert store.pending_records == 0


def test_a_store_opens_while_another_connection_holds_the_lock(db_path: Path) -> None:
    TraceStore(db_path).close()
    with _locked(db_path):
        started = time.monotonic()
        with TraceStore(db_path) as store:
            assert store.runs() == []
        assert time.monotonic() - started < 5


def test_records_past_the_memory_limit_are_dropped_counted_and_logged(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with TraceStore(db_path, max_pending=2) as store:
        run_id = store.new_run("chat_oai")
        with _locked(db_path), caplog.at_level(logging.WARNING, "byzer_agents.traces"):
            for step in (1, 2, 3, 4):
                _record(store, run_id, step)
        assert (store.pending_records, store.dropped_records) == (2, 2)
        assert "dropped 1 trace record(s)" in caplog.text
        assert [event.step for event in store.events(run_id)] == [1, 2]


def test_records_a_damaged_table_refuses_are_dropped_and_counted_at_close(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with TraceStore(db_path) as store:
        store.finish_run(store.new_run("chat_oai"), "ok")
    _damage_table(db_path, "runs")
    store = TraceStore(db_path)
    with caplog.at_level(logging.WARNING, "byzer_agents.traces"):
        run_id = store.new_run("chat_oai")  # no error: the record waits
        store.finish_run(run_id, "ok")
        assert store.pending_records == 2
        store.close()
    assert (store.pending_records, store.dropped_records) == (0, 2)
    assert "malformed" in caplog.text
    assert "dropped 2 trace record(s): the store was closed" in caplog.text


def test_mistakes_of_the_caller_still_raise(store: TraceStore) -> None:
    with pytest.raises(LookupError, match="no run with id 'nope'"):
        _record(store, "nope", 1)
    assert (store.pending_records, store.dropped_records) == (0, 0)


# --- files that are not a trace database -------------------------------------------------------


def test_another_applications_database_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE users (id INTEGER, name TEXT)")
        connection.commit()
    before = path.read_bytes()
    with pytest.raises(TraceStoreError, match="another application") as raised:
        TraceStore(path)
    assert raised.value.path == str(path)
    assert str(path) in str(raised.value) and "users" in str(raised.value)
    assert path.read_bytes() == before  # not even its journal mode was changed


def test_a_database_with_a_schema_version_but_other_tables_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE runs (id INTEGER)")
        connection.execute("PRAGMA user_version = 1")
    with pytest.raises(TraceStoreError, match=r"another application.*runs"):
        TraceStore(path)


def test_a_file_that_is_not_sqlite_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 200)
    with pytest.raises(TraceStoreError, match="not a SQLite database") as raised:
        TraceStore(path)
    assert raised.value.path == str(path)


# --- runs whose process is gone --------------------------------------------------------------

_LEAVE_A_RUN = textwrap.dedent(
    """
    import os, sys
    from byzer_agents.traces import TraceStore

    store = TraceStore(sys.argv[1])
    print(store.new_run("chat_oai"), flush=True)
    if sys.argv[2] == "wait":
        sys.stdin.readline()
        store.close()
    os._exit(0)  # no close, no finish: as if killed mid-run
    """
)


def _run_in_child(db_path: Path, mode: str) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _LEAVE_A_RUN, str(db_path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def test_a_run_whose_process_died_is_marked_interrupted_when_opened(db_path: Path) -> None:
    child, run_id = _run_in_child(db_path, "exit")
    child.wait(timeout=30)
    with TraceStore(db_path) as store:
        run = store.run(run_id)
    assert run is not None and run.status == "interrupted"
    assert run.finished_at is None


def test_a_run_of_a_live_process_is_left_running(db_path: Path) -> None:
    child, run_id = _run_in_child(db_path, "wait")
    try:
        with TraceStore(db_path) as store:
            run = store.run(run_id)
            assert run is not None and run.status == "running"
            store.finish_run(run_id, "ok")  # the live process may still finish it
            finished = store.run(run_id)
            assert finished is not None and finished.status == "ok"
    finally:
        child.communicate("\n", timeout=30)


def _insert_run(db_path: Path, run_id: str, writer: Writer | None) -> None:
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as connection:
        connection.execute(
            "INSERT INTO runs (id, kind, status, started_at, writer_host, writer_pid, "
            "writer_started) VALUES (?, 'chat_oai', 'running', 0, ?, ?, ?)",
            (run_id, *((writer.host, writer.pid, writer.started) if writer else (None,) * 3)),
        )


def test_a_reused_pid_does_not_keep_a_dead_run_running(db_path: Path) -> None:
    TraceStore(db_path).close()
    me = this_process()
    assert me.started is not None, "this test needs /proc (Linux)"
    _insert_run(db_path, "reused", Writer(me.host, me.pid, me.started - 1))
    _insert_run(db_path, "mine", me)
    with TraceStore(db_path) as store:
        statuses = {run.id: run.status for run in store.runs()}
    assert statuses == {"reused": "interrupted", "mine": "running"}


def test_runs_of_another_host_or_of_no_known_writer_are_left_running(db_path: Path) -> None:
    TraceStore(db_path).close()
    dead_pid = _dead_pid()
    _insert_run(db_path, "elsewhere", Writer("another-host", dead_pid, None))
    _insert_run(db_path, "unknown", None)  # written before writers were recorded
    with TraceStore(db_path) as store:
        assert {run.status for run in store.runs()} == {"running"}


def test_a_first_version_file_is_migrated_and_its_running_runs_kept(tmp_path: Path) -> None:
    db_path = tmp_path / "v1.db"
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as connection:
        migrate(connection, MIGRATIONS[:1])
        connection.execute(
            "INSERT INTO runs (id, kind, status, started_at) VALUES ('old', 'chat_oai', "
            "'running', 0)"
        )
    with TraceStore(db_path) as store:
        run = store.run("old")
        assert run is not None and run.status == "running"
        new = store.run(store.new_run("chat_oai"))
        assert new is not None and new.status == "running"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def test_a_writer_is_alive_while_its_process_runs() -> None:
    me = this_process()
    assert is_alive(me)
    assert me.host.startswith(socket.gethostname())
    assert not is_alive(Writer(me.host, _dead_pid(), None))
    assert is_alive(Writer("another-host", os.getpid() + 10**6, None))


def test_records_waiting_at_exit_are_written_without_close(tmp_path: Path) -> None:
    db_path = tmp_path / "exit.db"
    TraceStore(db_path).close()
    script = textwrap.dedent(
        f"""
        import sys
        from byzer_agents.traces import TraceStore
        store = TraceStore({str(db_path)!r})
        run_id = store.new_run("chat_oai")
        print(run_id, flush=True)
        sys.stdin.readline()  # the test holds the lock until now
        store.finish_run(run_id, "ok")
        print(store.pending_records, flush=True)
        sys.stdin.readline()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert child.stdin is not None and child.stdout is not None
    run_id = child.stdout.readline().strip()
    with _locked(db_path):
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "1"  # the finish waits in memory
    child.stdin.write("\n")  # the lock is gone: the process ends without close()
    child.stdin.flush()
    assert child.wait(timeout=30) == 0
    with TraceStore(db_path) as reopened:
        run = reopened.run(run_id)
        assert run is not None and run.status == "ok"
