"""The chat -> parse -> validate -> execute loop, written once as generators of effects.

A flow yields ``ModelCall`` and ``RunTools`` effects and receives their results (``effects.py``);
the drivers in ``driver.py`` carry them out, synchronously or with asyncio. So the retry and
feedback logic exists once for ``chat_oai`` and ``achat_oai`` alike, and can be tested without
any I/O. This module is the front door: ``plain_flow`` and ``after_chat_flow`` live here,
``tool_flow`` in ``tool_calls.py``, ``typed_flow`` in ``typed_answers.py``.

Per model, the best way first (docs/architecture.md): constrained decoding or native tool calls /
``response_format`` when the backend has them; tools for a backend without native tools are
written into its prompt by one adapter (``core.prompted_backend``), and a typed answer's schema
by the Jinja prompt formats. An answer that does not parse or validate goes back to the model as
a message, up to ``max_retries`` times; then ExtractionError / ToolCallError carry every attempt.
"""

from __future__ import annotations

from typing import Any

from byzer_agents.chat.effects import (
    Flow,
    ModelCall,
    ModelReply,
    RunTools,
    Tally,
    ask_model,
    reply_text,
)
from byzer_agents.chat.results import LLMCompletion, LLMResponse
from byzer_agents.chat.settings import ChatSettings, PromptFormats
from byzer_agents.chat.tool_calls import tool_flow
from byzer_agents.chat.typed_answers import typed_answer_from_text, typed_flow
from byzer_agents.types import Message

__all__ = [
    "ChatSettings",
    "Flow",
    "ModelCall",
    "ModelReply",
    "PromptFormats",
    "RunTools",
    "after_chat_flow",
    "plain_flow",
    "tool_flow",
    "typed_answer_from_text",
    "typed_flow",
]


def plain_flow(settings: ChatSettings, messages: list[Message]) -> Flow:
    """Ask once and answer with the model's text."""
    tally = Tally()
    request = settings.request(list(messages))
    reply = yield from ask_model(settings, request, 1, tally)
    settings.tracer.model_call(
        request, reply.completion, latency_s=reply.latency_s, attempt=1, status="ok"
    )
    return LLMResponse(
        output=reply_text(reply.completion),
        input=list(messages),
        metadata=tally.metadata(settings, reply.completion),
        response=LLMCompletion.of(reply.completion),
    )


def after_chat_flow(settings: ChatSettings, messages: list[Message], answer_type: Any) -> Flow:
    """Answer freely first, then extract ``answer_type`` from that answer (two traced calls)."""
    free = yield from plain_flow(settings, messages)
    follow_up = [
        *messages,
        {"role": "assistant", "content": free.output},
        {"role": "user", "content": settings.formats.response_class_after_chat(answer_type)},
    ]
    typed = yield from typed_flow(settings, follow_up, answer_type, format_last_message=False)
    typed.input = list(messages)
    typed.metadata["attempts"] += free.metadata["attempts"]
    typed.metadata["latency_s"] += free.metadata["latency_s"]
    for key, count in free.metadata["usage"].items():
        typed.metadata["usage"][key] += count
    typed.metadata["free_answer"] = free.output
    return typed
