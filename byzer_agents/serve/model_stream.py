"""A model's stream as the server sends it, run so that a client who leaves stops the model.

Why a task of its own: on a disconnect Starlette cancels the response, and a cancelled scope
cancels every await after it, so cleanup written inside the response could not wait for the model
to stop. Here the model's stream is read by a separate task (or, for an in-process backend, one
thread) into a queue. Stopping it cancels that task, which closes the backend's stream: a Ray
deployment cancels its worker's generation and waits until the worker has stopped
(``RayDeployment.astream``). ``on_stopped`` runs only then, so the request keeps its place in the
server's in-flight limit for as long as the model still works on it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from byzer_agents.core.protocol import AsyncChatBackend, ChatBackend
from byzer_agents.types import ChatCompletionChunk, ChatRequest

__all__ = ["EventStreamResponse", "ModelStream"]

_END = object()


class ModelStream:
    """``backend``'s chunks for ``request``, read from the moment this is made until they end or
    ``stop()``; ``on_stopped`` runs once the backend has stopped, however it ended. Made inside
    a running event loop."""

    def __init__(
        self, backend: ChatBackend, request: ChatRequest, *, on_stopped: Callable[[], None]
    ) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._stopping = threading.Event()
        self._in_thread = not isinstance(backend, AsyncChatBackend)
        self._task = asyncio.get_running_loop().create_task(self._read(backend, request))
        self._task.add_done_callback(lambda _: on_stopped())

    async def chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        """The chunks in order; the backend's error, if it failed, is raised after the last."""
        while (item := await self._queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        """Stop the backend (idempotent; nothing to do once it has ended)."""
        self._stopping.set()
        if not self._in_thread:
            # A thread cannot be cancelled; it sees ``_stopping`` at its next chunk, and the task
            # waiting for it must not end before it does.
            self._task.cancel()

    async def _read(self, backend: ChatBackend, request: ChatRequest) -> None:
        try:
            if self._in_thread:
                loop = asyncio.get_running_loop()
                await asyncio.to_thread(self._read_in_thread, backend, request, loop)
            else:
                assert isinstance(backend, AsyncChatBackend)
                async for chunk in backend.astream(request):
                    self._queue.put_nowait(chunk)
        except Exception as error:
            self._queue.put_nowait(error)
        finally:
            self._queue.put_nowait(_END)

    def _read_in_thread(
        self, backend: ChatBackend, request: ChatRequest, loop: asyncio.AbstractEventLoop
    ) -> None:
        chunks = backend.stream(request)
        try:
            for chunk in chunks:
                if self._stopping.is_set():
                    break
                loop.call_soon_threadsafe(self._queue.put_nowait, chunk)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # a generator's own cleanup stops its generation


class EventStreamResponse(StreamingResponse):
    """Server-sent events that stop ``source`` when the response ends, however it ends: sent
    whole, the client gone, or never started."""

    def __init__(self, content: AsyncIterator[str], *, source: ModelStream) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._source.stop()
