"""The trace database's tables, as numbered migrations applied on open.

``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``; the version lives in
``PRAGMA user_version``. Migrations are only ever appended: a released one is never edited, since
files written by older versions must still open. All pending migrations run in one transaction, so
a failure leaves the file at the version it had.
"""

from __future__ import annotations

import sqlite3

from byzer_agents.exceptions import ConfigurationError, TraceStoreError

__all__ = ["MIGRATIONS", "TRACE_TABLES", "check_owned", "migrate", "schema_version"]

MIGRATIONS: tuple[str, ...] = (
    # 1: runs and their events (model calls and tool executions).
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        model TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        started_at REAL NOT NULL,
        finished_at REAL,
        metadata TEXT
    );
    CREATE INDEX runs_started_at ON runs (started_at);

    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs (id),
        step INTEGER NOT NULL,
        parent_id TEXT REFERENCES events (id),
        kind TEXT NOT NULL CHECK (kind IN ('model_call', 'tool_call')),
        created_at REAL NOT NULL,
        latency_s REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ok', 'invalid', 'error')),
        model TEXT,
        attempt INTEGER,
        request TEXT,
        response TEXT,
        usage TEXT,
        tool_name TEXT,
        arguments TEXT,
        result TEXT,
        error TEXT
    );
    CREATE INDEX events_run_id ON events (run_id, step, created_at);
    CREATE INDEX events_tool_name ON events (tool_name);
    CREATE INDEX events_status ON events (status);
    """,
    # 2: the process recording each run (traces/writers.py), so a run its killed process left
    # 'running' is marked 'interrupted' when the store is next opened.
    """
    ALTER TABLE runs ADD COLUMN writer_host TEXT;
    ALTER TABLE runs ADD COLUMN writer_pid INTEGER;
    ALTER TABLE runs ADD COLUMN writer_started REAL;
    CREATE INDEX runs_running ON runs (status) WHERE status = 'running';
    """,
)
TRACE_TABLES = ("runs", "events")


def schema_version(connection: sqlite3.Connection) -> int:
    """The number of migrations applied to the database behind ``connection``."""
    version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    return version


def migrate(connection: sqlite3.Connection, migrations: tuple[str, ...] = MIGRATIONS) -> int:
    """Apply the migrations the database lacks, all in one transaction; return the new version.

    ``connection`` must be in autocommit mode (``isolation_level=None``) so that this function
    owns the transaction. Running it again is a no-op. A database written by a newer version of
    byzer-agents (more migrations than this one knows) is refused rather than misread, and so is
    another application's database: both with a ``TraceStoreError`` naming the file.
    """
    check_owned(connection)
    if schema_version(connection) == len(migrations):
        return len(migrations)  # no write lock taken: a file another process holds still opens
    # IMMEDIATE takes the write lock before reading the version, so two processes opening the
    # same new file cannot both decide to create the tables.
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(connection)
        if version > len(migrations):
            raise TraceStoreError(
                _path(connection),
                f"it is at schema version {version}, newer than the {len(migrations)} this "
                "byzer-agents knows; upgrade byzer-agents to open it",
            )
        for number, script in enumerate(migrations[version:], start=version + 1):
            for statement in _statements(script):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(migrations)


def check_owned(connection: sqlite3.Connection) -> None:
    """Refuse, with a ``TraceStoreError`` naming the file, a database another application made:
    one with tables but no schema version of ours, or without the trace tables. Writing our
    tables (or a journal mode) into it would meddle with another program's data."""
    version = schema_version(connection)
    tables = sorted(
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    )
    if version == 0 and not tables:
        return  # a new, empty file
    if version == 0 or not set(TRACE_TABLES) <= set(tables):
        shown = ", ".join(tables[:10]) + (
            f" and {len(tables) - 10} more" if len(tables) > 10 else ""
        )
        raise TraceStoreError(
            _path(connection),
            f"this SQLite file belongs to another application (its tables: {shown or 'none'}; "
            f"a trace database has {' and '.join(TRACE_TABLES)}); give the trace store a path "
            "of its own",
        )


def _path(connection: sqlite3.Connection) -> str:
    """The file behind ``connection`` (``:memory:`` for an in-memory database)."""
    for _, name, file in connection.execute("PRAGMA database_list"):
        if name == "main":
            return str(file) or ":memory:"
    return ":memory:"


def _statements(script: str) -> list[str]:
    """Split ``script`` into single statements (``execute`` runs one; ``executescript`` would
    commit the open transaction first)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ConfigurationError(
            f"migration ends with an incomplete SQL statement: {pending.strip()!r}"
        )
    return statements
