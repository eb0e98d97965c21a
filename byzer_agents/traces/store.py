"""``TraceStore``: record every model call and tool execution to SQLite, and read them back.

Durability is the point: each record is its own committed transaction before the method returns,
in WAL mode with ``synchronous=NORMAL``, so killing the process loses nothing already recorded
(a power cut may lose the last few commits, which the WAL makes safe to lose). One connection is
shared by every thread behind a lock, so parallel tool executions can record at once.
Everything stored passes through :func:`~byzer_agents.traces.redaction.redact` first.

Tracing never costs the caller an answer: a record the database does not take within
``WRITE_WAIT_MS`` (``traces/database.py``; another process holds it locked, it is damaged or
full) waits in memory (``traces/pending.py``) and is written before the next one, or at
``close``; past the limit it is dropped, counted in ``dropped_records`` and logged. Errors that
are the caller's (an unknown run id, a bad status) still raise. A process that ends without
``close`` still writes what waits (an exit hook closes every store that holds records in memory).

A run records which process writes it (``traces/writers.py``). When a store is opened, the
``running`` runs whose process on this host is gone (killed, crashed) are marked
``interrupted``; a run of a live process, here or on another host, is left alone.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from byzer_agents.exceptions import ConfigurationError, TraceStoreError
from byzer_agents.traces.database import BUSY_TIMEOUT_MS, busy_timeout, open_database
from byzer_agents.traces.export import export_sft
from byzer_agents.traces.pending import PendingWrites, is_retryable
from byzer_agents.traces.records import (
    EVENT_STATUSES,
    RUN_STATUSES,
    EventKind,
    EventStatus,
    RunStatus,
    TraceEvent,
    TraceRun,
)
from byzer_agents.traces.redaction import redact
from byzer_agents.traces.writers import this_process

__all__ = ["TraceStore"]

logger = logging.getLogger("byzer_agents.traces")

_MAX_PENDING = 1_000
_EVENT_COLUMNS = (
    "id, run_id, step, parent_id, kind, created_at, latency_s, status, model, attempt, "
    "request, response, usage, tool_name, arguments, result, error"
)
_EVENT_ORDER = "ORDER BY step, created_at, rowid"


class TraceStore:
    """A SQLite file of runs and their events; ``":memory:"`` gives a throwaway in-memory one.

    Args:
        path: The database file; it and its folders are created when missing.
        max_pending: How many records may wait in memory while the database does not take them.

    Raises:
        TraceStoreError: the file is not a SQLite database, is damaged, belongs to another
            application, was written by a newer byzer-agents, or cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_pending: int = _MAX_PENDING) -> None:
        self.path = path if str(path) == ":memory:" else Path(path)
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pending = PendingWrites(repr(self), limit=max_pending)
        connection = open_database(self.path)
        self._connection: sqlite3.Connection | None = connection
        _open_stores.add(self)

    def __repr__(self) -> str:
        return f"TraceStore({str(self.path)!r})"

    # -- writing ---------------------------------------------------------------------------

    def new_run(
        self, kind: str, model: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> str:
        """Start a run (``kind``: what runs, e.g. ``"chat_oai"``); return its id."""
        run_id = uuid.uuid4().hex
        writer = this_process()
        self._write(
            "INSERT INTO runs (id, kind, model, status, started_at, metadata, writer_host, "
            "writer_pid, writer_started) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            (
                run_id,
                kind,
                model,
                time.time(),
                _to_json(metadata),
                writer.host,
                writer.pid,
                writer.started,
            ),
        )
        return run_id

    def finish_run(self, run_id: str, status: RunStatus) -> None:
        """Mark a run finished with ``status`` (``"ok"``, ``"error"``, ``"cancelled"``, ...)."""
        _check_choice("run status", status, RUN_STATUSES)
        cursor = self._write(
            "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
            (status, time.time(), run_id),
        )
        if cursor is not None and cursor.rowcount == 0:
            raise LookupError(f"no run with id {run_id!r} in {self!r}; new_run() gives one")

    def record_model_call(
        self,
        *,
        run_id: str,
        step: int,
        request: Mapping[str, Any] | BaseModel,
        response: Mapping[str, Any] | BaseModel | None,
        model: str,
        usage: Mapping[str, Any] | BaseModel | None,
        latency_s: float,
        attempt: int,
        status: EventStatus,
        error: str | None = None,
        parent_id: str | None = None,
    ) -> str:
        """Record one model call (committed before this returns); return the event id.

        ``request`` is the OpenAI-shaped request (messages, tools, tool_choice, response_format,
        sampling parameters); ``response`` the ``ChatCompletion`` (a model or its dict), ``None``
        when the endpoint failed.
        """
        return self._record_event(
            kind="model_call",
            run_id=run_id,
            step=step,
            parent_id=parent_id,
            latency_s=latency_s,
            status=status,
            model=model,
            attempt=attempt,
            request=request,
            response=response,
            usage=usage,
            error=error,
        )

    def record_tool_call(
        self,
        *,
        run_id: str,
        step: int,
        tool_name: str,
        arguments: Any,
        result: Any,
        status: EventStatus,
        error: str | None = None,
        latency_s: float,
        parent_id: str | None = None,
    ) -> str:
        """Record one tool execution (committed before this returns); return the event id.

        ``arguments`` and ``result`` may be any Python values: they are stored as JSON through
        pydantic (models, dataclasses, datetimes, ...), and as their ``repr`` where that fails.
        """
        return self._record_event(
            kind="tool_call",
            run_id=run_id,
            step=step,
            parent_id=parent_id,
            latency_s=latency_s,
            status=status,
            tool_name=tool_name,
            arguments=arguments,
            result=result,
            error=error,
        )

    def _record_event(
        self,
        *,
        kind: EventKind,
        run_id: str,
        step: int,
        parent_id: str | None,
        latency_s: float,
        status: EventStatus,
        model: str | None = None,
        attempt: int | None = None,
        request: Any = None,
        response: Any = None,
        usage: Any = None,
        tool_name: str | None = None,
        arguments: Any = None,
        result: Any = None,
        error: str | None = None,
    ) -> str:
        _check_choice("event status", status, EVENT_STATUSES)
        event_id = uuid.uuid4().hex
        values = (
            event_id,
            run_id,
            step,
            parent_id,
            kind,
            time.time(),
            float(latency_s),
            status,
            model,
            attempt,
            _to_json(request),
            _to_json(response),
            _to_json(usage),
            tool_name,
            _to_json(arguments),
            _to_json(result),
            None if error is None else redact(error),
        )
        try:
            self._write(f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({_marks(values)})", values)
        except sqlite3.IntegrityError as exc:
            missing = self._missing_reference(run_id, parent_id)
            if missing is None:
                raise
            raise missing from exc
        return event_id

    def _missing_reference(self, run_id: str, parent_id: str | None) -> LookupError | None:
        """Name the unknown id behind a foreign-key failure, which SQLite does not."""
        if not self._fetch("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
            return LookupError(f"no run with id {run_id!r} in {self!r}; new_run() gives one")
        if parent_id is not None and self.get(parent_id) is None:
            return LookupError(
                f"no event with id {parent_id!r} in {self!r} to be parent_id; "
                "pass the id a record_* call returned, or None"
            )
        return None

    # -- reading ---------------------------------------------------------------------------

    def runs(self, limit: int | None = 100) -> list[TraceRun]:
        """The most recent runs first, at most ``limit`` of them (``None``: all)."""
        rows = self._fetch(
            "SELECT * FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [TraceRun.from_row(row) for row in rows]

    def run(self, run_id: str) -> TraceRun | None:
        """The run with this id, or ``None``."""
        rows = self._fetch("SELECT * FROM runs WHERE id = ?", (run_id,))
        return TraceRun.from_row(rows[0]) if rows else None

    def events(self, run_id: str) -> list[TraceEvent]:
        """Every event of a run, in step order (and recording order within a step)."""
        return self._events(f"WHERE run_id = ? {_EVENT_ORDER}", (run_id,))

    def by_tool(self, name: str) -> list[TraceEvent]:
        """Every execution of the tool called ``name``, oldest first."""
        return self._events("WHERE tool_name = ? ORDER BY created_at, rowid", (name,))

    def failed(self) -> list[TraceEvent]:
        """Every event whose status is not ``ok`` (invalid answers, errors), oldest first."""
        return self._events("WHERE status != 'ok' ORDER BY created_at, rowid", ())

    def get(self, event_id: str) -> TraceEvent | None:
        """The event with this id, or ``None``."""
        events = self._events("WHERE id = ?", (event_id,))
        return events[0] if events else None

    def iter_events(
        self,
        *,
        kind: EventKind | None = None,
        statuses: Collection[EventStatus] | None = None,
        run_ids: Collection[str] | None = None,
        batch_size: int = 500,
    ) -> Iterator[TraceEvent]:
        """Stream events in recording order, filtered by kind, status and run.

        Reads ``batch_size`` rows at a time and lets go of the lock between batches, so a long
        export never holds up the threads that are recording.
        """
        where = ["rowid > ?"]
        params: list[Any] = []
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        for column, allowed in (("status", statuses), ("run_id", run_ids)):
            if allowed is not None:
                allowed = list(allowed)
                where.append(f"{column} IN ({_marks(allowed)})")
                params.extend(allowed)
        sql = (
            f"SELECT rowid, {_EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} "
            "ORDER BY rowid LIMIT ?"
        )
        last_rowid = 0
        while True:
            rows = self._fetch(sql, (last_rowid, *params, batch_size))
            for row in rows:
                yield TraceEvent.from_row(row)
            if len(rows) < batch_size:
                return
            last_rowid = rows[-1]["rowid"]

    # -- export and lifetime ---------------------------------------------------------------

    def export_sft(
        self,
        path: str | os.PathLike[str],
        *,
        run_ids: Collection[str] | None = None,
        include_failed: bool = False,
    ) -> int:
        """Write accepted model calls as OpenAI chat fine-tuning JSONL; see :func:`export_sft`."""
        return export_sft(self, path, run_ids=run_ids, include_failed=include_failed)

    @property
    def pending_records(self) -> int:
        """Records waiting in memory for the database to take them (0 when all is written)."""
        return len(self._pending)

    @property
    def dropped_records(self) -> int:
        """Records this store gave up on (the database refused them past the memory limit, or
        until ``close``), and those its callers reported with ``count_dropped``."""
        return self._pending.dropped

    def count_dropped(self, reason: str, records: int = 1) -> None:
        """Count (and log) records a caller could not hand to this store, e.g. the chat loop's
        tracer when a record call raised: they show in ``dropped_records`` with the store's own."""
        with self._lock:
            self._pending.drop(records, reason)

    def close(self) -> None:
        """Write what waits in memory (waiting up to 10 s for a lock), then close the database
        (checkpointing the WAL into the main file); what still waits is dropped and counted.
        Safe to call twice."""
        with self._lock:
            if self._connection is None:
                return
            if self._pending:
                with busy_timeout(self._connection, BUSY_TIMEOUT_MS):
                    self._pending.write(self._connection)
                self._pending.give_up("the store was closed before the database took them")
            with contextlib.suppress(sqlite3.Error):  # a damaged file still lets go of its handle
                self._connection.close()
            self._connection = None

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _write(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor | None:
        """Run one INSERT or UPDATE, committed on return; or, when the database will not take it
        (or earlier records still wait), keep it in memory and return None."""
        with self._lock:
            connection = self._open()
            if self._pending and not self._write_pending(connection):
                self._pending.keep(sql, params, sqlite3.OperationalError("records are waiting"))
                return None
            try:
                return connection.execute(sql, params)
            except sqlite3.Error as exc:
                if not is_retryable(exc):
                    raise
                self._pending.keep(sql, params, exc)
                return None

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        with self._lock:
            connection = self._open()
            if self._pending:
                self._write_pending(connection)  # so that a read sees what was recorded
            return connection.execute(sql, params).fetchall()

    def _write_pending(self, connection: sqlite3.Connection) -> bool:
        """Try what waits without waiting for a lock; True when nothing is left waiting."""
        with busy_timeout(connection, 0):
            return self._pending.write(connection)

    def _events(self, clause: str, params: tuple[Any, ...]) -> list[TraceEvent]:
        rows = self._fetch(f"SELECT {_EVENT_COLUMNS} FROM events {clause}", params)
        return [TraceEvent.from_row(row) for row in rows]

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            raise TraceStoreError(
                str(self.path), "this store is closed; open a new TraceStore on the same path"
            )
        return self._connection


def _to_json(value: Any) -> str | None:
    """``value`` as redacted JSON text; ``None`` stays SQL NULL."""
    if value is None:
        return None
    if isinstance(value, Mapping) and not isinstance(value, dict):
        value = dict(value)  # to_json knows dicts, not every Mapping
    try:
        # to_json, not to_jsonable_python: only the former writes NaN and inf as JSON can read.
        jsonable = json.loads(to_json(value, fallback=repr, inf_nan_mode="strings"))
    except Exception:  # a circular reference, a __repr__ that raises, ...
        jsonable = _safe_repr(value)
    return json.dumps(redact(jsonable), ensure_ascii=False)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__qualname__}>"


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigurationError(f"{what} {value!r} is not one of {', '.join(map(repr, allowed))}")


def _marks(values: Collection[Any]) -> str:
    return ", ".join("?" * len(values))


_open_stores: weakref.WeakSet[TraceStore] = weakref.WeakSet()
"""Stores not yet garbage-collected, so records waiting in memory are written at exit."""


@atexit.register
def _write_waiting_records_at_exit() -> None:
    for store in list(_open_stores):
        if store.pending_records:
            store.close()
