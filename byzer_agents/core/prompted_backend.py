"""``PromptedToolsBackend``: an endpoint without native tool calling, made to answer as one that
has it, so the chat loop asks every model for tools the same way.

A request's tools and earlier calls are written into the prompt (``prompted_tools``), the
endpoint answers in text, and calls found in that text come back as ``message.tool_calls``. The
loop wraps such a backend with ``with_prompted_tools``; the local engines write tools into
their prompts themselves (``llm_runtime/chat_prompt.py``, with the same functions), and report
native tools.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from byzer_agents.core.prompted_tools import (
    ToolFormat,
    offers_tools,
    prompt_with_tools,
    tool_calls_in_text,
)
from byzer_agents.core.protocol import Capabilities, ChatBackend, achat, astream
from byzer_agents.prompts.formats import function_calling_format
from byzer_agents.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    CompletionUsage,
    FinishReason,
    make_chunk,
    make_tool_call_chunk,
)

__all__ = ["PromptedToolsBackend", "with_prompted_tools"]


def with_prompted_tools(
    backend: ChatBackend, tool_format: ToolFormat = function_calling_format
) -> ChatBackend:
    """``backend`` itself when it takes tools (natively, or under constrained decoding), else
    ``backend`` wrapped so that it does, with the tools written by ``tool_format``."""
    caps = backend.capabilities
    if caps.native_tools or caps.constrained_decoding:
        return backend
    return PromptedToolsBackend(backend, tool_format=tool_format)


class PromptedToolsBackend:
    """A ChatBackend that takes ``tools`` / ``tool_choice`` and answers with
    ``message.tool_calls`` over a ``backend`` that only reads and writes text. An answer that may
    call tools is streamed whole once it is complete, as the local engines stream it."""

    def __init__(
        self, backend: ChatBackend, *, tool_format: ToolFormat = function_calling_format
    ) -> None:
        self.backend = backend
        self.tool_format = tool_format

    @property
    def capabilities(self) -> Capabilities:
        """The wrapped backend's, with native tools."""
        return dataclasses.replace(self.backend.capabilities, native_tools=True)

    def prompted(self, request: ChatRequest) -> ChatRequest:
        """``request`` as the wrapped backend reads it: no tool fields, the tools and the earlier
        calls and results written into the messages."""
        messages = prompt_with_tools(
            request.messages,
            (request.tools or []) if offers_tools(request) else [],
            request.tool_choice,
            tool_format=self.tool_format,
        )
        return request.model_copy(
            update={
                "messages": messages,
                "tools": None,
                "tool_choice": None,
                "parallel_tool_calls": None,
            }
        )

    def chat(self, request: ChatRequest) -> ChatCompletion:
        """The wrapped backend's answer, with the calls it wrote read out as tool calls."""
        return self._with_calls(request, self.backend.chat(self.prompted(request)))

    async def achat(self, request: ChatRequest) -> ChatCompletion:
        """``chat`` without blocking the event loop."""
        return self._with_calls(request, await achat(self.backend, self.prompted(request)))

    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        """The wrapped backend's chunks; an answer that may call tools comes whole at its end."""
        chunks = self.backend.stream(self.prompted(request))
        if not offers_tools(request):
            yield from chunks
            return
        gathered = _Gathered()
        try:
            for chunk in chunks:
                gathered.add(chunk)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        yield from gathered.chunks(self._calls(request, gathered.text))

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        """``stream`` without blocking the event loop."""
        chunks = astream(self.backend, self.prompted(request))
        gathered = _Gathered()
        try:
            async for chunk in chunks:
                if offers_tools(request):
                    gathered.add(chunk)
                else:
                    yield chunk
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        if offers_tools(request):
            for chunk in gathered.chunks(self._calls(request, gathered.text)):
                yield chunk

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """The wrapped backend's embeddings."""
        return self.backend.embed(texts)

    def meta(self) -> dict[str, Any]:
        """The wrapped backend's description."""
        return self.backend.meta()

    def _calls(self, request: ChatRequest, text: str) -> list[Any]:
        if not offers_tools(request):
            return []
        # Numbered after the calls already in the conversation, so ids stay distinct in it.
        earlier = sum(len(message.get("tool_calls") or []) for message in request.messages)
        return tool_calls_in_text(text, first_number=earlier)

    def _with_calls(self, request: ChatRequest, completion: ChatCompletion) -> ChatCompletion:
        choice = completion.choices[0] if completion.choices else None
        if choice is None:
            return completion
        calls = self._calls(request, choice.message.content or "")
        if not calls:
            return completion
        message = choice.message.model_copy(update={"content": None, "tool_calls": calls})
        finish = "tool_calls" if choice.finish_reason == "stop" else choice.finish_reason
        answered = choice.model_copy(update={"message": message, "finish_reason": finish})
        # model_copy keeps the completion's extra fields (the call attempts a worker carried back).
        return completion.model_copy(update={"choices": [answered]})


class _Gathered:
    """A streamed answer held until it is complete: its text, finish reason and usage."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.completion_id = ""
        self.model = ""
        self.finish_reason: FinishReason | None = None
        self.usage: CompletionUsage | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.completion_id = self.completion_id or chunk.id
        self.model = self.model or chunk.model
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                self.pieces.append(choice.delta.content)
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason

    def chunks(self, calls: list[Any]) -> Iterator[ChatCompletionChunk]:
        """The answer as whole chunks: the calls (or the text), the finish reason, the usage."""
        model, completion_id = self.model, self.completion_id
        if calls:
            yield make_tool_call_chunk(model=model, completion_id=completion_id, tool_calls=calls)
        elif self.text:
            yield make_chunk(model=model, completion_id=completion_id, content=self.text)
        finish: FinishReason = self.finish_reason or "stop"
        if calls and finish == "stop":
            finish = "tool_calls"
        yield make_chunk(model=model, completion_id=completion_id, finish_reason=finish)
        if self.usage is not None:
            yield make_chunk(model=model, completion_id=completion_id, usage=self.usage)
