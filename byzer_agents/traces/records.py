"""The typed rows a ``TraceStore`` returns: ``TraceRun`` and ``TraceEvent``, frozen."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, cast

__all__ = [
    "EVENT_STATUSES",
    "RUN_STATUSES",
    "EventKind",
    "EventStatus",
    "RunStatus",
    "TraceEvent",
    "TraceRun",
]

EventKind = Literal["model_call", "tool_call"]
EventStatus = Literal["ok", "invalid", "error"]
"""``ok``: accepted; ``invalid``: answered, but the answer failed parsing or validation (a model
call) or the arguments did (a tool call); ``error``: no answer (the endpoint or the tool raised)."""
RunStatus = Literal["running", "ok", "error", "cancelled", "interrupted"]
"""``interrupted``: the process recording the run ended (killed, crashed) before the run did;
found when a store was next opened on the same host, so its ``finished_at`` stays unknown."""

EVENT_STATUSES: tuple[EventStatus, ...] = ("ok", "invalid", "error")
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "ok", "error", "cancelled", "interrupted")


@dataclass(frozen=True, kw_only=True)
class TraceRun:
    """One run of the chat loop or an agent: the events it recorded share its ``id``."""

    id: str
    kind: str
    """What ran: ``"chat_oai"``, ``"agent"``, ..."""
    model: str | None
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    metadata: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TraceRun:
        """The run a ``runs`` row holds."""
        return cls(
            id=row["id"],
            kind=row["kind"],
            model=row["model"],
            status=cast(RunStatus, row["status"]),
            started_at=_datetime(row["started_at"]),
            finished_at=None if row["finished_at"] is None else _datetime(row["finished_at"]),
            metadata=_json(row["metadata"]),
        )


@dataclass(frozen=True, kw_only=True)
class TraceEvent:
    """One model call or one tool execution, as stored (secrets already masked)."""

    id: str
    run_id: str
    step: int
    """The loop's turn: a model call and the tool calls it asked for share a step."""
    parent_id: str | None
    """The event this one follows from, e.g. the model call whose tool_calls ran this tool."""
    kind: EventKind
    created_at: datetime
    latency_s: float
    status: EventStatus
    model: str | None
    attempt: int | None
    """1 for the first try of a step, 2 for its first retry, ... (model calls only)."""
    request: dict[str, Any] | None
    """The OpenAI-shaped request: messages, tools, tool_choice, response_format, sampling."""
    response: dict[str, Any] | None
    """The ``ChatCompletion`` as a dict; ``None`` when the call failed."""
    usage: dict[str, Any] | None
    tool_name: str | None
    arguments: Any
    result: Any
    error: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TraceEvent:
        """The event an ``events`` row holds."""
        return cls(
            id=row["id"],
            run_id=row["run_id"],
            step=row["step"],
            parent_id=row["parent_id"],
            kind=cast(EventKind, row["kind"]),
            created_at=_datetime(row["created_at"]),
            latency_s=row["latency_s"],
            status=cast(EventStatus, row["status"]),
            model=row["model"],
            attempt=row["attempt"],
            request=_json(row["request"]),
            response=_json(row["response"]),
            usage=_json(row["usage"]),
            tool_name=row["tool_name"],
            arguments=_json(row["arguments"]),
            result=_json(row["result"]),
            error=row["error"],
        )


def _datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)
