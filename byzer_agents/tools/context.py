"""``RunContext``: what a tool may ask to receive besides its arguments while an agent runs it
(the run's dependencies, its id, the step). A tool asks for it with a parameter annotated
``RunContext[MyDeps]``; that parameter is left out of the tool's schema and filled in when the
tool runs, never by the model."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["RunContext", "is_run_context"]

DepsT = TypeVar("DepsT")


@dataclass(frozen=True)
class RunContext(Generic[DepsT]):
    """The run a tool call belongs to: ``deps`` (what ``agent.run(task, deps=...)`` was given),
    the trace ``run_id``, the ``step`` (model turn) that made the call and the call's id."""

    deps: DepsT
    run_id: str | None = None
    step: int = 0
    tool_call_id: str | None = None
    event_id: str | None = None
    """The traced model call that made this tool call: a delegated agent's run points to it."""
    trace_store: Any = None
    """The trace store of the run (a ``TraceStore``), where a delegated agent records too."""


def is_run_context(annotation: Any) -> bool:
    """Whether a parameter's annotation asks for the run's context (``RunContext`` or
    ``RunContext[...]``)."""
    return annotation is RunContext or typing.get_origin(annotation) is RunContext
