"""The SQLite side of ``TraceStore``: opening a trace database (WAL, ``synchronous=NORMAL``,
foreign keys, migrated), how long a statement waits for another process's lock, why a file could
not be opened, and marking ``interrupted`` the runs whose process is gone."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator

from byzer_agents.exceptions import TraceStoreError
from byzer_agents.traces.schema import check_owned, migrate
from byzer_agents.traces.writers import Writer, is_alive

__all__ = ["BUSY_TIMEOUT_MS", "WRITE_WAIT_MS", "busy_timeout", "open_database"]

logger = logging.getLogger("byzer_agents.traces")

BUSY_TIMEOUT_MS = 10_000
"""How long opening and the last write at ``close`` wait for another process's lock."""
WRITE_WAIT_MS = 2_000
"""How long a record (or a read) waits for the lock; then a record waits in memory instead. The
caller's answer waits with it; other writers hold the lock for milliseconds."""


def open_database(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A connection to the trace database at ``path`` (``":memory:"``: a throwaway one), in
    autocommit mode and shared across threads (the store locks around it), its schema migrated
    and its dead runs marked ``interrupted``.

    Raises:
        TraceStoreError: the file is not a SQLite database, is damaged, belongs to another
            application, was written by a newer byzer-agents, or cannot be opened.
    """
    # isolation_level=None: autocommit, so every INSERT is committed when execute returns.
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        connection.row_factory = sqlite3.Row
        check_owned(connection)  # before the journal mode changes anything in the file
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
        migrate(connection)
        _mark_interrupted_runs(connection, str(path))
        connection.execute(f"PRAGMA busy_timeout = {WRITE_WAIT_MS}")
    except sqlite3.Error as exc:
        connection.close()
        raise TraceStoreError(os.fspath(path), _open_failure(exc)) from exc
    except BaseException:
        connection.close()
        raise
    return connection


@contextlib.contextmanager
def busy_timeout(connection: sqlite3.Connection, milliseconds: int) -> Iterator[None]:
    """Wait at most ``milliseconds`` for another process's lock inside the block."""
    connection.execute(f"PRAGMA busy_timeout = {milliseconds}")
    try:
        yield
    finally:
        connection.execute(f"PRAGMA busy_timeout = {WRITE_WAIT_MS}")


def _mark_interrupted_runs(connection: sqlite3.Connection, where: str) -> None:
    """Mark ``interrupted`` the running runs whose writer on this host is gone. Best effort:
    when the database is busy, the next open does it."""
    rows = connection.execute(
        "SELECT id, writer_host, writer_pid, writer_started FROM runs "
        "WHERE status = 'running' AND writer_pid IS NOT NULL"
    ).fetchall()
    gone = [
        (row["id"],)
        for row in rows
        if not is_alive(Writer(row["writer_host"], row["writer_pid"], row["writer_started"]))
    ]
    if not gone:
        return
    store = f"TraceStore({where!r})"
    try:
        with busy_timeout(connection, WRITE_WAIT_MS):
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(
                    "UPDATE runs SET status = 'interrupted' WHERE id = ? AND status = 'running'",
                    gone,
                )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
    except sqlite3.OperationalError as exc:
        logger.info("%s: left %d dead runs 'running' for now (%s)", store, len(gone), exc)
        return
    logger.info("%s: marked %d runs of processes that are gone 'interrupted'", store, len(gone))


def _open_failure(error: sqlite3.Error) -> str:
    """Why a file could not be opened as a trace database, and what to do."""
    name = getattr(error, "sqlite_errorname", "")  # Python 3.11+; the text before that
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or any(
        words in str(error) for words in ("not a database", "malformed")
    ):
        return (
            f"it is not a SQLite database, or it is damaged ({error}); "
            "move it aside or give another path"
        )
    if name in ("SQLITE_BUSY", "SQLITE_LOCKED") or "locked" in str(error):
        return (
            f"another process held it locked for {BUSY_TIMEOUT_MS // 1000} s ({error}); "
            "try again when it is done, or give another path"
        )
    return f"it cannot be opened ({error})"
