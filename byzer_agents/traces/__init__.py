"""Traces: every model call and tool execution, recorded to SQLite and exported for fine-tuning."""

from byzer_agents.traces.export import export_sft, sft_example
from byzer_agents.traces.records import (
    EventKind,
    EventStatus,
    RunStatus,
    TraceEvent,
    TraceRun,
)
from byzer_agents.traces.redaction import is_secret_key, redact, redact_text
from byzer_agents.traces.store import TraceStore

__all__ = [
    "EventKind",
    "EventStatus",
    "RunStatus",
    "TraceEvent",
    "TraceRun",
    "TraceStore",
    "export_sft",
    "is_secret_key",
    "redact",
    "redact_text",
    "sft_example",
]
