"""The one protocol every model endpoint answers: local or SaaS, in-process, behind a Ray handle
or behind HTTP. The chat loop depends on this and nothing else of a backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from byzer_agents.types import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = ["AsyncChatBackend", "Capabilities", "ChatBackend", "achat", "astream"]


@dataclass(frozen=True)
class Capabilities:
    """What an endpoint can do, so the loop picks the best way to get tool calls and typed answers
    (constrained decoding, then native, then prompting)."""

    native_tools: bool = False
    """Takes ``tools`` / ``tool_choice`` and answers with ``message.tool_calls``."""
    json_schema_output: bool = False
    """Honours ``response_format={"type": "json_schema", ...}``."""
    constrained_decoding: bool = False
    """A grammar forces tool calls and typed answers to fit their schema: they always parse."""
    streaming: bool = True
    embeddings: bool = False


@runtime_checkable
class ChatBackend(Protocol):
    """A deployed model, as the loop sees it."""

    @property
    def capabilities(self) -> Capabilities:
        """What this endpoint can do."""
        ...

    def chat(self, request: ChatRequest) -> ChatCompletion:
        """The whole answer to ``request``."""
        ...

    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        """The answer to ``request`` as it is written; closing the stream stops the decode."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text (a chat-only model refuses)."""
        ...

    def meta(self) -> dict[str, Any]:
        """What the endpoint is and how it runs (Byzer-LLM's ``get_meta``)."""
        ...


@runtime_checkable
class AsyncChatBackend(Protocol):
    """Optional async twins; backends without them are driven through a worker thread."""

    async def achat(self, request: ChatRequest) -> ChatCompletion:
        """``chat`` without blocking the event loop."""
        ...

    def astream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        """``stream`` without blocking the event loop."""
        ...


async def achat(backend: ChatBackend, request: ChatRequest) -> ChatCompletion:
    """``backend``'s answer without blocking the event loop: its own ``achat`` where it has one,
    else its ``chat`` on a worker thread."""
    if isinstance(backend, AsyncChatBackend):
        return await backend.achat(request)
    return await asyncio.to_thread(backend.chat, request)


async def astream(backend: ChatBackend, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
    """``backend``'s chunks without blocking the event loop: its own ``astream`` where it has
    one, else its ``stream`` read one chunk at a time on a worker thread. A caller that stops
    early closes the backend's stream too, so its decode stops rather than running on."""
    if isinstance(backend, AsyncChatBackend):
        own_chunks = backend.astream(request)
        try:
            async for chunk in own_chunks:
                yield chunk
        finally:
            aclose = getattr(own_chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        return
    chunks = iter(backend.stream(request))

    def next_chunk() -> ChatCompletionChunk | None:
        return next(chunks, None)

    try:
        while (item := await asyncio.to_thread(next_chunk)) is not None:
            yield item
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
