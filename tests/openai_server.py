"""A small OpenAI-compatible HTTP server that answers from any ChatBackend, so the real ``openai``
SDK can be tested over real HTTP on 127.0.0.1.

It stands in until the project's own server (``byzer_agents.llm_runtime``, a later issue) lands,
and uses only the standard library. It speaks HTTP/1.1 with keep-alive and streams chunked, as
real servers do; serves ``POST /v1/chat/completions`` (plain and ``"stream": true``),
``POST /v1/embeddings`` and ``GET /v1/models``; answers errors with OpenAI's body
``{"error": {"message", "type", "param", "code"}}``; and records every request it received.

Deliberately hostile in one way: a wrong API key is echoed back unmasked in the 401 message (the
real API masks most of it), the worst case a client must keep out of its own errors.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from pydantic import ValidationError

from byzer_agents.core.protocol import ChatBackend
from byzer_agents.types import ChatCompletionChunk, ChatRequest

__all__ = ["ReceivedRequest", "ServerURL", "serve_backend"]

# ChatRequest fields a client may send as they are; `extra` is ours, not OpenAI's.
_REQUEST_FIELDS = frozenset(ChatRequest.model_fields) - {"extra"}


@dataclass(frozen=True)
class ReceivedRequest:
    """One HTTP request as the server read it."""

    method: str
    path: str
    body: Any
    """The parsed JSON body; the raw text when it was not JSON; ``None`` without a body."""
    authorization: str | None


class ServerURL(str):
    """The server's base URL (``http://127.0.0.1:PORT/v1``), carrying what the server received."""

    received: list[ReceivedRequest]

    def __new__(cls, url: str, received: list[ReceivedRequest]) -> ServerURL:
        self = super().__new__(cls, url)
        self.received = received
        return self

    def bodies(self, path: str = "/v1/chat/completions") -> list[Any]:
        """The JSON bodies posted to ``path``, oldest first."""
        return [request.body for request in self.received if request.path == path]


class _HTTPError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        error_type: str,
        *,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "error": {"message": message, "type": error_type, "param": param, "code": code}
        }


class _Server(ThreadingHTTPServer):
    # Handler threads are joined on close; open keep-alive connections are cut first, so none
    # waits for a next request that will never come.
    daemon_threads = False
    block_on_close = True

    def __init__(self, backend: ChatBackend, api_key: str | None, model_name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.backend = backend
        self.api_key = api_key
        self.model_name = model_name
        self.received: list[ReceivedRequest] = []
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as real servers do, so clients reuse them (which is what
    # breaks an async client shared between event loops); streams are sent chunked.
    protocol_version = "HTTP/1.1"
    timeout = 30  # a stray idle connection frees its thread in the end
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer({"/v1/models": self._models})

    def do_POST(self) -> None:
        self._answer(
            {"/v1/chat/completions": self._chat_completions, "/v1/embeddings": self._embeddings}
        )

    def _answer(self, routes: dict[str, Any]) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            body = self._read_body(path)
            self._check_key()
            route = routes.get(path)
            if route is None:
                raise _HTTPError(404, f"no route {self.command} {path}", "invalid_request_error")
            route(body)
        except _HTTPError as error:
            self._send_json(error.status, error.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (a timeout, a stream left early): nothing left to tell it.
            # A backend may raise ConnectionResetError too, to have its stream cut off unfinished.
            self.close_connection = True

    def _read_body(self, path: str) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text) if raw else None
            malformed = None
        except json.JSONDecodeError as error:
            body, malformed = text, error
        self.server.received.append(
            ReceivedRequest(self.command, path, body, self.headers.get("Authorization"))
        )
        if malformed is not None:
            raise _HTTPError(
                400, f"the request body is not valid JSON: {malformed}", "invalid_request_error"
            )
        return body

    def _check_key(self) -> None:
        expected = self.server.api_key
        if expected is None:
            return
        given = self.headers.get("Authorization")
        if given == f"Bearer {expected}":
            return
        if not given:
            message = "You didn't provide an API key (header 'Authorization: Bearer <key>')."
        else:
            message = f"Incorrect API key provided: {given.removeprefix('Bearer ')}."
        raise _HTTPError(401, message, "invalid_request_error", code="invalid_api_key")

    def _models(self, body: Any) -> None:
        model = {"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "test"}
        self._send_json(200, {"object": "list", "data": [model]})

    def _chat_completions(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _HTTPError(400, "the request body must be a JSON object", "invalid_request_error")
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        request = _chat_request(body)
        backend = self.server.backend
        if not stream:
            try:
                completion = backend.chat(request)
            except Exception as error:
                raise _server_error(error) from error
            self._send_bytes(200, "application/json", completion.model_dump_json().encode())
            return
        chunks = backend.stream(request)
        try:
            first = next(chunks, None)  # a backend that fails at once still gets a 500
        except ConnectionResetError:
            raise
        except Exception as error:
            raise _server_error(error) from error
        self._send_head(200, "text/event-stream")
        try:
            if first is not None:
                self._send_event(first, include_usage)
                for chunk in chunks:
                    self._send_event(chunk, include_usage)
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as error:
            # Headers are gone: report the failure as an error event, as OpenAI does.
            self._write_chunk(f"data: {json.dumps(_server_error(error).body)}\n\n".encode())
        else:
            self._write_chunk(b"data: [DONE]\n\n")
        self._write(b"0\r\n\r\n")

    def _embeddings(self, body: Any) -> None:
        if not isinstance(body, dict) or "input" not in body:
            raise _HTTPError(400, "'input' is required", "invalid_request_error", param="input")
        texts = body["input"]
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise _HTTPError(
                400,
                "this server embeds text only: 'input' must be a string or a list of strings",
                "invalid_request_error",
                param="input",
            )
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise _HTTPError(
                400,
                f"encoding_format {encoding!r} is not one of 'float', 'base64'",
                "invalid_request_error",
                param="encoding_format",
            )
        try:
            vectors = self.server.backend.embed(texts)
        except Exception as error:
            raise _server_error(error) from error
        data = [
            {"object": "embedding", "index": index, "embedding": _encode(vector, encoding)}
            for index, vector in enumerate(vectors)
        ]
        tokens = sum(len(text.split()) for text in texts)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or self.server.model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _send_event(self, chunk: ChatCompletionChunk, include_usage: bool) -> None:
        if not include_usage and chunk.usage is not None:
            if not chunk.choices:
                return
            chunk = chunk.model_copy(update={"usage": None})
        self._write_chunk(f"data: {chunk.model_dump_json()}\n\n".encode())

    def _send_json(self, status: int, body: Any) -> None:
        self._send_bytes(status, "application/json", json.dumps(body).encode())

    def _send_bytes(self, status: int, content_type: str, payload: bytes) -> None:
        self._send_head(status, content_type, len(payload))
        self._write(payload)

    def _send_head(self, status: int, content_type: str, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        else:
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, payload: bytes) -> None:
        self._write(b"%x\r\n%s\r\n" % (len(payload), payload))

    def _write(self, payload: bytes) -> None:
        self.wfile.write(payload)
        self.wfile.flush()


def _chat_request(body: dict[str, Any]) -> ChatRequest:
    """The body as a ChatRequest: OpenAI's spellings mapped, fields it does not model ignored
    (``stream`` and ``stream_options`` steer the response instead)."""
    fields = {key: value for key, value in body.items() if key in _REQUEST_FIELDS}
    if fields.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
        fields["max_tokens"] = body["max_completion_tokens"]
    if isinstance(fields.get("stop"), str):
        fields["stop"] = [fields["stop"]]
    try:
        return ChatRequest(**{key: value for key, value in fields.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        raise _HTTPError(
            400,
            f"invalid chat request: {error}",
            "invalid_request_error",
            param=".".join(str(part) for part in first["loc"]) or None,
        ) from error


def _server_error(error: Exception) -> _HTTPError:
    return _HTTPError(500, f"the backend failed: {type(error).__name__}: {error}", "server_error")


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


@contextmanager
def serve_backend(
    backend: ChatBackend, *, api_key: str | None = None, model_name: str = "scripted"
) -> Iterator[ServerURL]:
    """Serve ``backend`` on a free port of 127.0.0.1 until the block ends; yield its base URL.

    With ``api_key``, every request must carry ``Authorization: Bearer <api_key>`` or gets a 401.
    """
    server = _Server(backend, api_key, model_name)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    host, port = cast(tuple[str, int], server.server_address[:2])
    try:
        yield ServerURL(f"http://{host}:{port}/v1", server.received)
    finally:
        server.shutdown()
        server.cut_connections()
        server.server_close()
        thread.join()
