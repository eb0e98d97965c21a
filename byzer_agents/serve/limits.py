"""What the server refuses rather than queues: request bodies over a size limit (413), requests
asking for more work than one request may (400), and requests to a model whose replicas are all at
their limit of requests in flight (429 with Retry-After).

A request holds one place in its model's limit per generation it runs at once: ``n`` choices, or
prompts x ``n`` on ``/v1/completions``, hold that many (up to the capacity; past it they take
turns); an embeddings request one per batch the embedder runs. So a 1,000-prompt request counts as
the work it is, not as one request."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byzer_agents.serve.errors import APIError, error_response

__all__ = [
    "EMBEDDING_INPUTS_PER_PLACE",
    "MAX_COMPLETIONS_PER_REQUEST",
    "MAX_EMBEDDING_INPUTS",
    "BodySizeLimit",
    "InFlightLimits",
]

MAX_COMPLETIONS_PER_REQUEST = 128
"""``/v1/completions``: prompts x ``n``, the generations one request may ask for."""
MAX_EMBEDDING_INPUTS = 2048
"""``/v1/embeddings``: the inputs one request may send (OpenAI's own limit)."""
EMBEDDING_INPUTS_PER_PLACE = 32
"""An embeddings request holds one place per this many inputs: the embedding backend's batch."""


class BodySizeLimit:
    """ASGI middleware: a body longer than ``max_bytes`` gets 413 and is never kept: a declared
    length (Content-Length) over the limit at once, a chunked body as soon as it passes it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # The refused body is read and dropped (up to a bound) before the 413 is sent: a client
        # still writing would otherwise see a reset connection, which SDKs retry, not a 413.
        self.max_drain_bytes = 8 * max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.max_bytes:
                await _drain(receive, self.max_drain_bytes)
                await error_response(self._too_large())(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        # Undeclared length (chunked): read it here, up to the limit, and hand the app the body
        # whole; the app would read it all anyway to parse the JSON.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                if message.get("more_body", False):
                    await _drain(receive, self.max_drain_bytes)
                await error_response(self._too_large())(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> APIError:
        return APIError(
            413,
            f"The request body is over this server's limit of {self.max_bytes} bytes",
            code="request_too_large",
        )


async def _drain(receive: Receive, limit: int) -> None:
    """Read and drop the rest of a request body, ``limit`` bytes at most."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class InFlightLimits:
    """Requests in flight per model, each model up to its capacity (its replicas times the
    requests each takes at once). Over capacity a request is refused at once with 429: a client
    retrying after a second is better served than one waiting in an unbounded queue."""

    RETRY_AFTER_S = 1

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}

    def acquire(self, model: str, capacity: int, places: int = 1) -> None:
        """Take ``places`` (at most ``capacity``) in ``model``'s limit, or raise the 429 when they
        are not free. Each acquire is matched by one ``release`` of the same places."""
        places = min(places, capacity)
        with self._lock:
            busy = self._in_flight.get(model, 0)
            if busy + places > capacity:
                needs = "" if places == 1 else f"; this request needs {places} of them"
                raise APIError(
                    429,
                    f"The model {model!r} is serving {busy} requests of its limit of {capacity}"
                    f"{needs}; retry after {self.RETRY_AFTER_S} s",
                    type="rate_limit_error",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": str(self.RETRY_AFTER_S)},
                )
            self._in_flight[model] = busy + places

    def release(self, model: str, places: int = 1) -> None:
        """Give back places taken by ``acquire`` (as many as it took: ``min(places, capacity)``)."""
        with self._lock:
            self._in_flight[model] -= places

    @contextlib.contextmanager
    def hold(self, model: str, capacity: int, places: int = 1) -> Iterator[int]:
        """Places in ``model``'s limit while inside; yields how many were taken (at most
        ``capacity``), the generations that may run at once."""
        taken = min(places, capacity)
        self.acquire(model, capacity, taken)
        try:
            yield taken
        finally:
            self.release(model, places=taken)

    def snapshot(self) -> dict[str, Any]:
        """Places held now, per model (what ``/health`` reports as ``in_flight``)."""
        with self._lock:
            return dict(self._in_flight)
