"""Drive a flow's effects: model calls on the backend, approvals by the approver, tool calls on
the runner; ``drive`` for synchronous callers, ``adrive`` for asyncio. Backend failures reach the
flow as ModelCallError; ``Emit`` effects are for watchers (``agents.streaming``), and pass here.

A backend without native tools is asked through ``core.prompted_backend.with_prompted_tools``,
with the model's function-calling format, so every flow asks for tools one way."""

from __future__ import annotations

import time
from typing import Any, TypeVar

from byzer_agents.chat.effects import (
    Approve,
    Approver,
    Effect,
    EffectFlow,
    ModelCall,
    ModelReply,
    RunTools,
)
from byzer_agents.chat.execution import adecide, arun_tools, decide, run_tools
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.core.prompted_backend import with_prompted_tools
from byzer_agents.core.protocol import ChatBackend, achat
from byzer_agents.exceptions import ModelCallError
from byzer_agents.types import ChatCompletion

__all__ = [
    "Outcome",
    "adrive",
    "advance",
    "aeffect_outcome",
    "as_model_error",
    "drive",
    "effect_outcome",
    "model_reply",
]

ResultT = TypeVar("ResultT")

Outcome = tuple[Any, ModelCallError | None]
"""What the flow receives next: a value, or an error to raise where it waits."""


def drive(
    flow: EffectFlow[ResultT],
    backend: ChatBackend,
    *,
    tracer: RunTracer,
    tool_timeout_s: float | None,
    approve: Approver | None = None,
) -> ResultT:
    """Run ``flow`` to its result, in this thread; ``approve`` decides the calls of tools that
    require approval (without one, they are refused)."""
    outcome: Outcome = (None, None)
    while True:
        done, effect, result = advance(flow, outcome)
        if done:
            return result  # the flow's return value
        if isinstance(effect, ModelCall):
            start = time.perf_counter()
            try:
                answering = with_prompted_tools(backend, effect.tool_format)
                outcome = (model_reply(answering.chat(effect.request), start), None)
            except Exception as exc:
                outcome = (None, as_model_error(tracer.model, exc))
        else:
            outcome = effect_outcome(effect, tracer, tool_timeout_s, approve)


async def adrive(
    flow: EffectFlow[ResultT],
    backend: ChatBackend,
    *,
    tracer: RunTracer,
    tool_timeout_s: float | None,
    approve: Approver | None = None,
) -> ResultT:
    """Run ``flow`` to its result without blocking the event loop."""
    outcome: Outcome = (None, None)
    while True:
        done, effect, result = advance(flow, outcome)
        if done:
            return result  # the flow's return value
        if isinstance(effect, ModelCall):
            start = time.perf_counter()
            try:
                answering = with_prompted_tools(backend, effect.tool_format)
                completion = await achat(answering, effect.request)
                outcome = (model_reply(completion, start), None)
            except Exception as exc:
                outcome = (None, as_model_error(tracer.model, exc))
        else:
            outcome = await aeffect_outcome(effect, tracer, tool_timeout_s, approve)


def effect_outcome(
    effect: Effect | None,
    tracer: RunTracer,
    tool_timeout_s: float | None,
    approve: Approver | None,
) -> Outcome:
    """What a flow receives for an effect other than a model call: the results of ``RunTools``,
    the decisions of ``Approve``, nothing for the rest (``Emit``)."""
    if isinstance(effect, RunTools):
        results = run_tools(
            effect.calls,
            timeout_s=tool_timeout_s,
            tracer=tracer,
            parent_id=effect.parent_id,
            context=effect.context,
        )
        return results, None
    if isinstance(effect, Approve):
        return decide(effect.calls, approve), None
    return None, None


async def aeffect_outcome(
    effect: Effect | None,
    tracer: RunTracer,
    tool_timeout_s: float | None,
    approve: Approver | None,
) -> Outcome:
    """``effect_outcome`` without blocking the event loop."""
    if isinstance(effect, RunTools):
        results = await arun_tools(
            effect.calls,
            timeout_s=tool_timeout_s,
            tracer=tracer,
            parent_id=effect.parent_id,
            context=effect.context,
        )
        return results, None
    if isinstance(effect, Approve):
        return await adecide(effect.calls, approve), None
    return None, None


def advance(flow: EffectFlow[Any], outcome: Outcome) -> tuple[bool, Effect | None, Any]:
    """Hand the flow its last outcome: ``(False, next effect, None)``, or ``(True, None,
    result)`` when it is done."""
    value, error = outcome
    try:
        return False, (flow.throw(error) if error is not None else flow.send(value)), None
    except StopIteration as stop:
        return True, None, stop.value


def model_reply(completion: ChatCompletion, start: float) -> ModelReply:
    """The reply to a model call that started at ``start`` (``time.perf_counter``)."""
    return ModelReply(completion, time.perf_counter() - start)


def as_model_error(model: str, exc: Exception) -> ModelCallError:
    """``exc`` as the ModelCallError a flow receives."""
    if isinstance(exc, ModelCallError):
        return exc
    return ModelCallError(model, f"{type(exc).__name__}: {exc}")
