"""``TraceStore``: record every model call and tool execution to SQLite, and read them back.

Durability is the point: each record is its own committed transaction before the method returns,
in WAL mode with ``synchronous=NORMAL``, so killing the process loses nothing already recorded
(a power cut may lose the last few commits, which the WAL makes safe to lose). One connection is
shared by every thread behind a lock, so parallel tool executions can record at once.
Everything stored passes through :func:`~byzer_agents.traces.redaction.redact` first.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from byzer_agents.traces.export import export_sft
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
from byzer_agents.traces.schema import migrate

__all__ = ["TraceStore"]

_BUSY_TIMEOUT_MS = 10_000
_EVENT_COLUMNS = (
    "id, run_id, step, parent_id, kind, created_at, latency_s, status, model, attempt, "
    "request, response, usage, tool_name, arguments, result, error"
)
_EVENT_ORDER = "ORDER BY step, created_at, rowid"


class TraceStore:
    """A SQLite file of runs and their events; ``":memory:"`` gives a throwaway in-memory one."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path if str(path) == ":memory:" else Path(path)
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: autocommit, so every INSERT is committed when execute returns.
        connection = sqlite3.connect(
            self.path,
            timeout=_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA foreign_keys = ON")
            migrate(connection)
        except BaseException:
            connection.close()
            raise
        self._connection: sqlite3.Connection | None = connection

    def __repr__(self) -> str:
        return f"TraceStore({str(self.path)!r})"

    # -- writing ---------------------------------------------------------------------------

    def new_run(
        self, kind: str, model: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> str:
        """Start a run (``kind``: what runs, e.g. ``"chat_oai"``); return its id."""
        run_id = uuid.uuid4().hex
        self._execute(
            "INSERT INTO runs (id, kind, model, status, started_at, metadata) "
            "VALUES (?, ?, ?, 'running', ?, ?)",
            (run_id, kind, model, time.time(), _to_json(metadata)),
        )
        return run_id

    def finish_run(self, run_id: str, status: RunStatus) -> None:
        """Mark a run finished with ``status`` (``"ok"``, ``"error"`` or ``"cancelled"``)."""
        _check_choice("run status", status, RUN_STATUSES)
        cursor = self._execute(
            "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
            (status, time.time(), run_id),
        )
        if cursor.rowcount == 0:
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
            self._execute(
                f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({_marks(values)})", values
            )
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

    def close(self) -> None:
        """Close the database (checkpointing the WAL into the main file); safe to call twice."""
        with self._lock:
            if self._connection is not None:
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

    def _execute(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        with self._lock:
            return self._open().execute(sql, params)

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        with self._lock:
            return self._open().execute(sql, params).fetchall()

    def _events(self, clause: str, params: tuple[Any, ...]) -> list[TraceEvent]:
        rows = self._fetch(f"SELECT {_EVENT_COLUMNS} FROM events {clause}", params)
        return [TraceEvent.from_row(row) for row in rows]

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError(f"{self!r} is closed; open a new TraceStore on the same path")
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
        raise ValueError(f"{what} {value!r} is not one of {', '.join(map(repr, allowed))}")


def _marks(values: Collection[Any]) -> str:
    return ", ".join("?" * len(values))
