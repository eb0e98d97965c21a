"""An OpenAI-compatible HTTP server on 127.0.0.1 that misbehaves on purpose, as SaaS endpoints do,
to test retries, timeouts and fallbacks over real HTTP with the real ``openai`` SDK.

Each request takes the next fault of the server's script: ``Status`` (an error answer, such as
429 with Retry-After, or 500), ``Slow`` (an answer that comes too late), ``CutOff`` (a body or
stream that stops halfway and drops the connection); once the script is spent, every request gets
a plain answer. It serves chat completions (plain and streamed) on any path ending in
``/chat/completions`` (Azure's ``/openai/deployments/<name>/chat/completions`` too) and
``/embeddings``, and records every request it received, when, and how many it held at once.
Standard library only, like ``tests/openai_server.py``; faults are what that server cannot do.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from byzer_agents.types import CompletionUsage, make_chunk, make_completion

__all__ = ["Answer", "CutOff", "Fault", "FaultServer", "Received", "Slow", "Status", "serve_faults"]


@dataclass(frozen=True)
class Answer:
    """A plain answer (also what every request gets once the script is spent)."""

    text: str = "fine"


@dataclass(frozen=True)
class Status:
    """An error answer with OpenAI's error body: ``Status(429, headers={"retry-after": "1"})``."""

    code: int
    message: str = "something went wrong"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Slow:
    """The answer, after ``seconds`` (longer than the client waits, for a timeout)."""

    seconds: float
    text: str = "too late"


@dataclass(frozen=True)
class CutOff:
    """A stream that sends ``after_chunks`` chunks and then drops the connection; a plain answer
    whose body stops halfway (``after_chunks`` is then ignored)."""

    after_chunks: int = 1
    text: str = "one two three four five"


Fault = Answer | Status | Slow | CutOff


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Lower-cased names."""
    body: Any
    at: float
    """``time.monotonic()`` when it arrived."""


class FaultServer:
    """The running server: ``url`` to give a client, ``script`` to queue faults, and what it
    received."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        host, port = cast(tuple[str, int], server.server_address[:2])
        self.url = f"http://{host}:{port}/v1"
        self.root = f"http://{host}:{port}"

    def script(self, *faults: Fault) -> FaultServer:
        """Queue faults for the next requests (after any still queued)."""
        with self._server.lock:
            self._server.faults.extend(faults)
        return self

    def reset(self) -> None:
        """Forget the queued faults and what was received (for a server shared by tests)."""
        with self._server.lock:
            self._server.faults.clear()
            self._server.received.clear()
            self._server.max_in_flight = 0

    @property
    def received(self) -> list[Received]:
        with self._server.lock:
            return list(self._server.received)

    @property
    def max_in_flight(self) -> int:
        """The most requests the server held at once."""
        return self._server.max_in_flight

    def bodies(self) -> list[Any]:
        return [request.body for request in self.received]


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a Slow answer may still sleep when the test ends
    block_on_close = False

    def __init__(self, api_key: str | None, hold_s: float, model: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api_key = api_key
        self.hold_s = hold_s
        self.model = model
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        self.received: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that dropped its connection (after a timeout) is expected here, not a bug.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def next_fault(self) -> Fault:
        with self.lock:
            return self.faults.pop(0) if self.faults else Answer()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw) if raw else None
        server = self.server
        with server.lock:
            server.received.append(
                Received(
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
            )
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            self._respond(parts.path, body if isinstance(body, dict) else {})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout): nothing to tell it
        finally:
            with server.lock:
                server.in_flight -= 1

    def _respond(self, path: str, body: dict[str, Any]) -> None:
        if not self._key_is_right():
            return
        fault = self.server.next_fault()
        if isinstance(fault, Status):
            self._send_json(
                fault.code,
                {"error": {"message": fault.message, "type": "fault", "param": None, "code": None}},
                fault.headers,
            )
            return
        if isinstance(fault, Slow):
            time.sleep(fault.seconds)
        elif self.server.hold_s:
            time.sleep(self.server.hold_s)
        text = fault.text
        if path.endswith("/embeddings"):
            texts = body.get("input") or []
            data = [
                {"object": "embedding", "index": index, "embedding": [float(len(item)), 1.0]}
                for index, item in enumerate(texts)
            ]
            usage = {"prompt_tokens": 1, "total_tokens": 1}
            payload = {"object": "list", "data": data, "model": "m", "usage": usage}
            self._send_json(200, payload)
        elif not path.endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
        elif body.get("stream"):
            self._stream(text, fault.after_chunks if isinstance(fault, CutOff) else None)
        else:
            completion = make_completion(model=self.server.model, content=text, usage=_usage(text))
            payload = completion.model_dump_json().encode()
            if isinstance(fault, CutOff):
                self._send_head(200, "application/json", len(payload))
                self._write(payload[: len(payload) // 2])
                self._drop()
                return
            self._send_head(200, "application/json", len(payload))
            self._write(payload)

    def _key_is_right(self) -> bool:
        expected = self.server.api_key
        given = self.headers.get("Authorization", "").removeprefix("Bearer ") or self.headers.get(
            "api-key", ""
        )
        if expected is None or given == expected:
            return True
        # Hostile on purpose, as in tests/openai_server.py: the wrong key is echoed back whole.
        message = f"Incorrect API key provided: {given}."
        self._send_json(401, {"error": {"message": message, "type": "invalid_request_error"}})
        return False

    def _stream(self, text: str, cut_after: int | None) -> None:
        self._send_head(200, "text/event-stream")
        words = [word + " " for word in text.split()]
        chunks = [
            make_chunk(model=self.server.model, completion_id="fault-1", content=word)
            for word in words
        ]
        chunks.append(
            make_chunk(model=self.server.model, completion_id="fault-1", finish_reason="stop")
        )
        chunks.append(
            make_chunk(model=self.server.model, completion_id="fault-1", usage=_usage(text))
        )
        for index, chunk in enumerate(chunks):
            if cut_after is not None and index == cut_after:
                self._drop()
                return
            self._write_chunk(f"data: {chunk.model_dump_json()}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self._write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Stop mid-answer: the connection goes, without the end of the body."""
        with suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def _send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self._send_head(status, "application/json", len(payload), headers)
        self._write(payload)

    def _send_head(
        self,
        status: int,
        content_type: str,
        length: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _write_chunk(self, payload: bytes) -> None:
        self._write(b"%x\r\n%s\r\n" % (len(payload), payload))

    def _write(self, payload: bytes) -> None:
        self.wfile.write(payload)
        self.wfile.flush()


def _usage(text: str) -> CompletionUsage:
    words = len(text.split())
    return CompletionUsage(prompt_tokens=3, completion_tokens=words, total_tokens=3 + words)


@contextmanager
def serve_faults(
    *faults: Fault, api_key: str | None = None, hold_s: float = 0.0, model: str = "fault"
) -> Iterator[FaultServer]:
    """Serve on a free port of 127.0.0.1 until the block ends, answering the first requests with
    ``faults``. ``api_key``: requests must carry it (Bearer, or Azure's ``api-key``), or get a
    401 echoing what they sent. ``hold_s``: every answer takes that long (to see concurrency)."""
    server = _Server(api_key, hold_s, model)
    server.faults.extend(faults)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield FaultServer(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
