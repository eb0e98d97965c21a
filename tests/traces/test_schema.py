"""Migrations: applied once, on open, in one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from byzer_agents.traces import TraceStore
from byzer_agents.traces.schema import MIGRATIONS, migrate, schema_version


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def test_opening_a_new_file_applies_every_migration(db_path: Path) -> None:
    TraceStore(db_path).close()
    with _connect(db_path) as connection:
        assert schema_version(connection) == len(MIGRATIONS)
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert {"runs", "events"} <= tables


def test_events_have_indexes_on_run_tool_and_status(db_path: Path) -> None:
    TraceStore(db_path).close()
    with _connect(db_path) as connection:
        indexed = {
            row[0].split("_", 1)[1]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='events' "
                "AND name NOT LIKE 'sqlite_%'"
            )
        }
    assert {"run_id", "tool_name", "status"} <= indexed


def test_migrating_again_changes_nothing(db_path: Path) -> None:
    TraceStore(db_path).close()
    with _connect(db_path) as connection:
        schema_before = connection.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        assert migrate(connection) == len(MIGRATIONS)
        assert migrate(connection) == len(MIGRATIONS)
        schema_after = connection.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert schema_after == schema_before


def test_reopening_keeps_the_recorded_data(db_path: Path) -> None:
    with TraceStore(db_path) as store:
        run_id = store.new_run("chat_oai", model="m")
        event_id = store.record_tool_call(
            run_id=run_id,
            step=1,
            tool_name="t",
            arguments={},
            result=1,
            status="ok",
            latency_s=0.0,
        )
    with TraceStore(db_path) as store:
        assert [run.id for run in store.runs()] == [run_id]
        event = store.get(event_id)
        assert event is not None and event.result == 1


def test_a_failing_migration_leaves_the_file_at_its_old_version(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    broken = (*MIGRATIONS, "CREATE TABLE extra (x INTEGER);\nCREATE TABLE runs (y INTEGER);\n")
    with _connect(path) as connection:
        migrate(connection)
        with pytest.raises(sqlite3.OperationalError, match="already exists"):
            migrate(connection, broken)
        assert schema_version(connection) == len(MIGRATIONS)
        extra = connection.execute("SELECT name FROM sqlite_master WHERE name = 'extra'")
        assert extra.fetchall() == []


def test_a_file_from_a_newer_version_is_refused(db_path: Path) -> None:
    TraceStore(db_path).close()
    with _connect(db_path) as connection:
        connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(ValueError, match="newer"):
        TraceStore(db_path)
