"""``ScriptedBackend``: replays replies given in advance and records every request, to test the
loop's logic (retries, feedback, parallel calls) without a model. Never a stand-in for the real
path's tests."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

from byzer_agents.core.protocol import Capabilities
from byzer_agents.exceptions import ConfigurationError, ConfigurationTypeError
from byzer_agents.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    CompletionUsage,
    make_chunk,
    make_completion,
    make_tool_call,
    make_tool_call_chunk,
)

__all__ = ["Reply", "ScriptExhaustedError", "ScriptedBackend"]

Reply: TypeAlias = (
    "str | Mapping[str, Any] | ChatCompletion | BaseException | Callable[[ChatRequest], Any]"
)
"""A scripted reply: text; ``{"content": ..., "tool_calls": [{"name", "arguments"}]}``; a whole
ChatCompletion; an exception to raise; or a function of the request returning one of these."""


class ScriptExhaustedError(AssertionError):
    """The loop asked for more replies than the script holds."""


class ScriptedBackend:
    """Replies in order, one per request. ``delay_s`` stands for a slow model: ``chat`` takes
    that long, and a stream spends it between its pieces (``pieces_streamed`` counts the pieces
    sent, so a test sees when a stream stopped)."""

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        model: str = "scripted",
        capabilities: Capabilities | None = None,
        embedding_dim: int = 8,
        delay_s: float = 0.0,
    ) -> None:
        if delay_s < 0:
            raise ConfigurationError(f"delay_s must be 0 or more; got {delay_s}")
        self.model = model
        self._replies = list(replies)
        self._capabilities = capabilities or Capabilities(embeddings=True)
        self._embedding_dim = embedding_dim
        self._delay_s = delay_s
        self._lock = threading.Lock()
        self.requests: list[ChatRequest] = []
        self.pieces_streamed = 0

    @property
    def capabilities(self) -> Capabilities:
        """The capabilities this test double claims (set when built)."""
        return self._capabilities

    def add(self, *replies: Reply) -> None:
        """Queue more replies, after those left."""
        with self._lock:
            self._replies.extend(replies)

    def chat(self, request: ChatRequest) -> ChatCompletion:
        """The next scripted reply as a completion (an error reply is raised)."""
        completion = self._next_completion(request)
        time.sleep(self._delay_s)
        return completion

    def _next_completion(self, request: ChatRequest) -> ChatCompletion:
        with self._lock:
            self.requests.append(request)
            if not self._replies:
                raise ScriptExhaustedError(
                    f"the script of {self.model!r} has no reply left for request "
                    f"#{len(self.requests)}: {request.messages[-1]!r:.300}"
                )
            reply = self._replies.pop(0)
        return self._completion(reply, request)

    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        """The next scripted reply, as stream chunks."""
        completion = self._next_completion(request)
        text = completion.choices[0].message.content or ""
        pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
        for piece in pieces:
            time.sleep(self._delay_s / max(len(pieces), 1))
            with self._lock:
                self.pieces_streamed += 1
            yield make_chunk(model=self.model, completion_id=completion.id, content=piece)
        calls = completion.choices[0].message.tool_calls
        if calls:
            yield make_tool_call_chunk(
                model=self.model,
                completion_id=completion.id,
                tool_calls=calls,  # type: ignore[arg-type]  # scripted calls are all functions
            )
        yield make_chunk(
            model=self.model,
            completion_id=completion.id,
            finish_reason=completion.choices[0].finish_reason,
        )
        if completion.usage is not None:
            yield make_chunk(model=self.model, completion_id=completion.id, usage=completion.usage)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Deterministic unit vectors from a hash of each text (equal texts, equal vectors)."""
        vectors = []
        for text in texts:
            digest = hashlib.sha256(text.encode()).digest()
            raw = [digest[i % len(digest)] - 127.5 for i in range(self._embedding_dim)]
            norm = sum(value * value for value in raw) ** 0.5
            vectors.append([value / norm for value in raw])
        return vectors

    def meta(self) -> dict[str, Any]:
        """What this double is, and how many replies are left."""
        return {
            "model_deploy_type": "scripted",
            "backend": "scripted",
            "model": self.model,
            "max_model_len": 4096,
            "replies_left": len(self._replies),
        }

    def _completion(self, reply: Reply, request: ChatRequest) -> ChatCompletion:
        if callable(reply) and not isinstance(reply, (BaseException, type)):
            reply = reply(request)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, ChatCompletion):
            return reply
        if isinstance(reply, str):
            return make_completion(model=self.model, content=reply, usage=_usage(request, reply))
        if isinstance(reply, Mapping):
            calls = [
                make_tool_call(
                    call["name"],
                    call["arguments"]
                    if isinstance(call.get("arguments"), str)
                    else json.dumps(call.get("arguments", {})),
                    call.get("id"),
                )
                for call in reply.get("tool_calls", [])
            ]
            content = reply.get("content")
            return make_completion(
                model=self.model,
                content=content,
                tool_calls=calls,
                finish_reason=reply.get("finish_reason"),
                usage=_usage(request, content or json.dumps(reply.get("tool_calls", []))),
            )
        raise ConfigurationTypeError(
            f"cannot replay {reply!r}: give text, a dict, a ChatCompletion or an error"
        )


def _usage(request: ChatRequest, output: str) -> CompletionUsage:
    # Word counts stand in for tokens: enough for tests that usage is carried and summed.
    prompt = sum(len(str(message.get("content") or "").split()) for message in request.messages)
    completion = len(output.split())
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )
