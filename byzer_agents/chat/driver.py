"""Drive a flow's effects: model calls on the backend, tool calls on the runner; ``drive`` for
synchronous callers, ``adrive`` for asyncio. Backend failures reach the flow as ModelCallError.

A backend without native tools is asked through ``core.prompted_backend.with_prompted_tools``,
with the model's function-calling format, so every flow asks for tools one way."""

from __future__ import annotations

import time
from typing import Any

from byzer_agents.chat.effects import Flow, ModelCall, ModelReply, RunTools
from byzer_agents.chat.execution import arun_tools, run_tools
from byzer_agents.chat.results import LLMResponse
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.core.prompted_backend import with_prompted_tools
from byzer_agents.core.protocol import ChatBackend, achat
from byzer_agents.exceptions import ModelCallError
from byzer_agents.types import ChatCompletion

__all__ = ["adrive", "drive"]

# What the flow receives next: a value, or an error to raise where it waits.
_Outcome = tuple[Any, ModelCallError | None]


def drive(
    flow: Flow, backend: ChatBackend, *, tracer: RunTracer, tool_timeout_s: float | None
) -> LLMResponse:
    """Run ``flow`` to its response, in this thread."""
    outcome: _Outcome = (None, None)
    while True:
        effect, result = _advance(flow, outcome)
        if result is not None:
            return result
        if isinstance(effect, ModelCall):
            start = time.perf_counter()
            try:
                answering = with_prompted_tools(backend, effect.tool_format)
                outcome = (_reply(answering.chat(effect.request), start), None)
            except Exception as exc:
                outcome = (None, _as_model_error(tracer.model, exc))
        elif isinstance(effect, RunTools):
            results = run_tools(
                effect.calls, timeout_s=tool_timeout_s, tracer=tracer, parent_id=effect.parent_id
            )
            outcome = (results, None)


async def adrive(
    flow: Flow, backend: ChatBackend, *, tracer: RunTracer, tool_timeout_s: float | None
) -> LLMResponse:
    """Run ``flow`` to its response without blocking the event loop."""
    outcome: _Outcome = (None, None)
    while True:
        effect, result = _advance(flow, outcome)
        if result is not None:
            return result
        if isinstance(effect, ModelCall):
            start = time.perf_counter()
            try:
                answering = with_prompted_tools(backend, effect.tool_format)
                completion = await achat(answering, effect.request)
                outcome = (_reply(completion, start), None)
            except Exception as exc:
                outcome = (None, _as_model_error(tracer.model, exc))
        elif isinstance(effect, RunTools):
            results = await arun_tools(
                effect.calls, timeout_s=tool_timeout_s, tracer=tracer, parent_id=effect.parent_id
            )
            outcome = (results, None)


def _advance(
    flow: Flow, outcome: _Outcome
) -> tuple[ModelCall | RunTools | None, LLMResponse | None]:
    """Hand the flow its last outcome; return its next effect, or its result when it is done."""
    value, error = outcome
    try:
        return (flow.throw(error) if error is not None else flow.send(value)), None
    except StopIteration as stop:
        return None, stop.value


def _reply(completion: ChatCompletion, start: float) -> ModelReply:
    return ModelReply(completion, time.perf_counter() - start)


def _as_model_error(model: str, exc: Exception) -> ModelCallError:
    if isinstance(exc, ModelCallError):
        return exc
    return ModelCallError(model, f"{type(exc).__name__}: {exc}")
