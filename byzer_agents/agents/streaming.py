"""The driver behind ``Agent.stream``: the same effects ``chat.driver`` carries out, with each
model turn streamed, so the run's events come as they happen: text deltas and partial outputs
while the model writes, the flow's own events (tool calls started and finished), and last the
``FinalOutput``. ``stream_run`` for synchronous callers, ``astream_run`` for asyncio."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from byzer_agents.agents.results import AgentEvent, FinalOutput, PartialOutput, TextDelta
from byzer_agents.chat.driver import (
    Outcome,
    advance,
    aeffect_outcome,
    as_model_error,
    effect_outcome,
    model_reply,
)
from byzer_agents.chat.effects import Approver, EffectFlow, Emit, ModelCall
from byzer_agents.chat.streaming import PartialAnswers
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.core.prompted_backend import with_prompted_tools
from byzer_agents.core.protocol import ChatBackend, astream
from byzer_agents.prompts import json_schema
from byzer_agents.types import (
    ChatCompletion,
    ChatCompletionChunk,
    CompletionUsage,
    make_completion,
    make_tool_call,
)

__all__ = ["CompletionAssembler", "astream_run", "stream_run"]


class CompletionAssembler:
    """A streamed answer put back together as one ChatCompletion, with the events its chunks
    make on the way (``TextDelta``, and ``PartialOutput`` for an object output type)."""

    def __init__(self, model: str, step: int, output_type: Any) -> None:
        self._model = model
        self._step = step
        self._text: list[str] = []
        self._calls: dict[int, dict[str, str]] = {}
        self._finish_reason: Any = None
        self._usage: CompletionUsage | None = None
        wants_partials = output_type is not str and json_schema(output_type).get("type") == "object"
        self._partials = PartialAnswers(output_type) if wants_partials else None

    def add(self, chunk: ChatCompletionChunk) -> list[AgentEvent]:
        """Take one chunk; the events it makes."""
        events: list[AgentEvent] = []
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices[:1]:
            delta = choice.delta
            if delta.content:
                self._text.append(delta.content)
                events.append(TextDelta(self._step, delta.content))
                partial = self._partials.add(delta.content) if self._partials else None
                if partial is not None:
                    events.append(PartialOutput(self._step, partial))
            for call in delta.tool_calls or []:
                slot = self._calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function is not None:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
            if choice.finish_reason is not None:
                self._finish_reason = choice.finish_reason
        return events

    def completion(self) -> ChatCompletion:
        """The whole answer."""
        calls = [
            make_tool_call(slot["name"], slot["arguments"] or "{}", slot["id"] or None)
            for _, slot in sorted(self._calls.items())
        ]
        text = "".join(self._text)
        return make_completion(
            model=self._model,
            content=text if text or not calls else None,
            tool_calls=calls,
            finish_reason=self._finish_reason,
            usage=self._usage,
        )


def stream_run(
    flow: EffectFlow[Any],
    backend: ChatBackend,
    *,
    tracer: RunTracer,
    tool_timeout_s: float | None,
    approve: Approver | None,
    output_type: Any,
) -> Iterator[AgentEvent]:
    """Drive ``flow`` in this thread, yielding its events; the last is its ``FinalOutput``."""
    outcome: Outcome = (None, None)
    step = 0
    while True:
        done, effect, result = advance(flow, outcome)
        outcome = (None, None)
        if done:
            yield FinalOutput(result)
            return
        if isinstance(effect, Emit):
            yield effect.event
        elif isinstance(effect, ModelCall):
            step += 1
            start = time.perf_counter()
            assembler = CompletionAssembler(tracer.model, step, output_type)
            answering = with_prompted_tools(backend, effect.tool_format)
            try:
                chunks = answering.stream(effect.request)
                try:
                    for chunk in chunks:
                        yield from assembler.add(chunk)
                finally:
                    getattr(chunks, "close", lambda: None)()
                outcome = (model_reply(assembler.completion(), start), None)
            except Exception as exc:
                outcome = (None, as_model_error(tracer.model, exc))
        else:
            outcome = effect_outcome(effect, tracer, tool_timeout_s, approve)


async def astream_run(
    flow: EffectFlow[Any],
    backend: ChatBackend,
    *,
    tracer: RunTracer,
    tool_timeout_s: float | None,
    approve: Approver | None,
    output_type: Any,
) -> AsyncIterator[AgentEvent]:
    """``stream_run`` without blocking the event loop."""
    outcome: Outcome = (None, None)
    step = 0
    while True:
        done, effect, result = advance(flow, outcome)
        outcome = (None, None)
        if done:
            yield FinalOutput(result)
            return
        if isinstance(effect, Emit):
            yield effect.event
        elif isinstance(effect, ModelCall):
            step += 1
            start = time.perf_counter()
            assembler = CompletionAssembler(tracer.model, step, output_type)
            answering = with_prompted_tools(backend, effect.tool_format)
            try:
                chunks = astream(answering, effect.request)
                try:
                    async for chunk in chunks:
                        for event in assembler.add(chunk):
                            yield event
                finally:
                    await chunks.aclose()  # type: ignore[attr-defined]
                outcome = (model_reply(assembler.completion(), start), None)
            except Exception as exc:
                outcome = (None, as_model_error(tracer.model, exc))
        else:
            outcome = await aeffect_outcome(effect, tracer, tool_timeout_s, approve)
