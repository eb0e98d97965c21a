"""The OpenAI chat-completions shapes every layer speaks: requests as ``ChatRequest``, answers as
the ``openai`` SDK's own ``ChatCompletion`` / ``ChatCompletionChunk`` models, not re-invented."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import (
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
    Function,
)
from openai.types.completion_usage import CompletionUsage
from pydantic import BaseModel, ConfigDict, Field

from byzer_agents.prompts.chat_templates import ChatTemplate

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatRequest",
    "CompletionUsage",
    "FinishReason",
    "Message",
    "make_chunk",
    "make_completion",
    "make_tool_call",
    "make_tool_call_chunk",
]

Message = dict[str, Any]
"""One OpenAI chat message: ``{"role": ..., "content": ..., "tool_calls"?: ..., ...}``."""

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class ChatRequest(BaseModel):
    """One chat-completions request, as every backend receives it."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message]
    model: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    """``{"type": "json_object"}`` or ``{"type": "json_schema", "json_schema": {...}}``."""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1)
    extra: dict[str, Any] = Field(default_factory=dict)
    """Backend-specific options (Byzer-LLM's ``llm_config`` keys that are not sampling ones)."""
    chat_template: ChatTemplate | None = None
    """The template a local backend renders this request's prompt with, instead of its own
    (``ByzerLLM.setup_template``). Endpoints that render their own prompts (OpenAI-compatible
    servers, SaaS) refuse a request that sets it."""
    parallel_tool_calls: bool | None = None
    """False: at most one tool call in the answer (OpenAI's field; local engines hold the model to
    it). None: the endpoint's default, several allowed."""
    constrained_decoding: bool | None = None
    """False: a local engine lets the model write freely instead of holding it to the request's
    schema (``llm_config={"constrained_decoding": False}``, for measuring the model alone). None or
    True: constrained wherever the engine can. Endpoints ignore it."""
    max_model_len: int | None = Field(default=None, ge=1)
    """A context length the caller holds this request to (``ByzerLLM.setup_max_model_length``):
    a local backend refuses a prompt and ``max_tokens`` that exceed it (see
    ``llm_runtime/context_length.py``); its own, when smaller, still holds. Endpoints that count
    no tokens here refuse a request that sets it."""

    def openai_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``client.chat.completions.create``, without unset ones."""
        return self.model_dump(
            exclude_none=True,
            exclude={"extra", "chat_template", "max_model_len", "constrained_decoding"},
            exclude_defaults=False,
        )


def make_tool_call(
    name: str, arguments: str, call_id: str | None = None
) -> ChatCompletionMessageFunctionToolCall:
    """One function tool call, as the SDK's type (a fresh ``call_...`` id unless given)."""
    return ChatCompletionMessageFunctionToolCall(
        id=call_id or f"call_{uuid.uuid4().hex[:24]}",
        type="function",
        function=Function(name=name, arguments=arguments),
    )


def make_completion(
    *,
    model: str,
    content: str | None = None,
    tool_calls: Sequence[ChatCompletionMessageFunctionToolCall] | None = None,
    finish_reason: FinishReason | None = None,
    usage: CompletionUsage | Mapping[str, int] | None = None,
) -> ChatCompletion:
    """A one-choice ChatCompletion, as local backends and test doubles produce them."""
    if finish_reason is None:
        finish_reason = "tool_calls" if tool_calls else "stop"
    if usage is not None and not isinstance(usage, CompletionUsage):
        usage = CompletionUsage.model_validate(dict(usage))
    message = ChatCompletionMessage(
        role="assistant", content=content, tool_calls=list(tool_calls) if tool_calls else None
    )
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
        object="chat.completion",
        created=int(time.time()),
        model=model,
        choices=[Choice(index=0, message=message, finish_reason=finish_reason)],
        usage=usage,
    )


def make_chunk(
    *,
    model: str,
    completion_id: str,
    content: str | None = None,
    finish_reason: FinishReason | None = None,
    usage: CompletionUsage | None = None,
) -> ChatCompletionChunk:
    """One streamed delta of a one-choice completion."""
    choices = (
        []
        if usage is not None and content is None and finish_reason is None
        else [ChunkChoice(index=0, delta=ChoiceDelta(content=content), finish_reason=finish_reason)]
    )
    return ChatCompletionChunk(
        id=completion_id,
        object="chat.completion.chunk",
        created=int(time.time()),
        model=model,
        choices=choices,
        usage=usage,
    )


def make_tool_call_chunk(
    *,
    model: str,
    completion_id: str,
    tool_calls: Sequence[ChatCompletionMessageFunctionToolCall],
) -> ChatCompletionChunk:
    """One streamed chunk carrying whole tool calls (local backends send a call once complete)."""
    deltas = [
        ChoiceDeltaToolCall(
            index=index,
            id=call.id,
            type="function",
            function=ChoiceDeltaToolCallFunction(
                name=call.function.name, arguments=call.function.arguments
            ),
        )
        for index, call in enumerate(tool_calls)
    ]
    return ChatCompletionChunk(
        id=completion_id,
        object="chat.completion.chunk",
        created=int(time.time()),
        model=model,
        choices=[ChunkChoice(index=0, delta=ChoiceDelta(role="assistant", tool_calls=deltas))],
    )
