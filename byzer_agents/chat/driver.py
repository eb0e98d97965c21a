"""Drive a flow's effects: model calls on the backend, tool calls on the runner; ``drive`` for
synchronous callers, ``adrive`` for asyncio. Backend failures reach the flow as ModelCallError."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from byzer_agents.chat.execution import arun_tools, run_tools
from byzer_agents.chat.flows import Flow, ModelCall, ModelReply, RunTools
from byzer_agents.chat.protocol import AsyncChatBackend, ChatBackend
from byzer_agents.chat.results import LLMResponse
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.exceptions import ModelCallError
from byzer_agents.types import ChatRequest

__all__ = ["adrive", "drive"]


def _as_model_error(model: str, exc: Exception) -> ModelCallError:
    if isinstance(exc, ModelCallError):
        return exc
    return ModelCallError(model, f"{type(exc).__name__}: {exc}")


def drive(
    flow: Flow,
    backend: ChatBackend,
    *,
    tracer: RunTracer,
    tool_timeout_s: float | None,
) -> LLMResponse:
    outcome: Any = None
    failure: BaseException | None = None
    while True:
        try:
            effect = flow.throw(failure) if failure is not None else flow.send(outcome)
        except StopIteration as stop:
            result: LLMResponse = stop.value
            return result
        outcome, failure = None, None
        if isinstance(effect, ModelCall):
            start = time.perf_counter()
            try:
                completion = backend.chat(effect.request)
            except Exception as exc:
                failure = _as_model_error(tracer.model, exc)
                continue
            outcome = ModelReply(completion, time.perf_counter() - start)
        elif isinstance(effect, RunTools):
            outcome = run_tools(
                effect.calls, timeout_s=tool_timeout_s, tracer=tracer, parent_id=effect.parent_id
            )


async def adrive(
    flow: Flow,
    backend: ChatBackend,
    *,
    tracer: RunTracer,
    tool_timeout_s: float | None,
) -> LLMResponse:
    outcome: Any = None
    failure: BaseException | None = None
    while True:
        try:
            effect = flow.throw(failure) if failure is not None else flow.send(outcome)
        except StopIteration as stop:
            result: LLMResponse = stop.value
            return result
        outcome, failure = None, None
        if isinstance(effect, ModelCall):
            start = time.perf_counter()
            try:
                completion = await _achat(backend, effect.request)
            except Exception as exc:
                failure = _as_model_error(tracer.model, exc)
                continue
            outcome = ModelReply(completion, time.perf_counter() - start)
        elif isinstance(effect, RunTools):
            outcome = await arun_tools(
                effect.calls, timeout_s=tool_timeout_s, tracer=tracer, parent_id=effect.parent_id
            )


async def _achat(backend: ChatBackend, request: ChatRequest) -> Any:
    if isinstance(backend, AsyncChatBackend):
        return await backend.achat(request)
    return await asyncio.to_thread(backend.chat, request)
