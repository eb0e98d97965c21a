"""A stand-in for a SaaS provider, on 127.0.0.1, so cookbook 06 runs without an API key: an
OpenAI-compatible ``/chat/completions`` that answers one canned text, and misbehaves as providers
do, by choice: ``failures`` lists the HTTP statuses its first requests get (a 429 comes with
``Retry-After``), then it answers. Standard library only."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Peer:
    url: str
    requests: int = 0
    failures: list[int] = field(default_factory=list)


@contextmanager
def serve_peer(
    answer: str, failures: Sequence[int] = (), *, always: int | None = None
) -> Iterator[Peer]:
    """Serve until the block ends. ``always``: every request gets that status (a provider down)."""
    state = Peer(url="", failures=list(failures))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            state.requests += 1
            status = always or (state.failures.pop(0) if state.failures else 200)
            if status != 200:
                error = {"message": f"stand-in provider says {status}", "type": "stand_in"}
                headers = {"Retry-After": "0.2"} if status == 429 else {}
                return self._send(status, {"error": error}, headers)
            words = len(answer.split())
            self._send(
                200,
                {
                    "id": "chatcmpl-peer",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "peer"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": 5,
                        "completion_tokens": words,
                        "total_tokens": 5 + words,
                    },
                },
            )

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
