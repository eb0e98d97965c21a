"""The server's answers in OpenAI's shapes: several completions merged into one response with
``n`` choices, a checked answer replayed as server-sent events, chunks as chat or legacy text
completion events, and embeddings as floats or base64."""

from __future__ import annotations

import array
import base64
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi.responses import StreamingResponse

from byzer_agents.core.call_attempts import take_call_attempts
from byzer_agents.serve.usage import UsageTotal
from byzer_agents.types import (
    ChatCompletion,
    ChatCompletionChunk,
    make_chunk,
    make_tool_call_chunk,
)

__all__ = [
    "chat_chunk",
    "encoded",
    "merged",
    "replayed",
    "sse_event",
    "text_chunk",
    "text_completion",
]


def merged(model: str, completions: list[ChatCompletion]) -> dict[str, Any]:
    """One chat completion holding each completion's first choice, in order, and their usage
    summed."""
    take_call_attempts(completions[0])
    first = completions[0].model_dump(mode="json")
    first["model"] = model
    first["choices"] = []
    usage = UsageTotal()
    for index, completion in enumerate(completions):
        take_call_attempts(completion)  # how it was obtained is for traces, not for clients
        choice = completion.choices[0].model_dump(mode="json")
        choice["index"] = index
        first["choices"].append(choice)
        usage.add(completion)
    first["usage"] = usage.counts
    return first


def text_completion(
    model: str, prompts: Sequence[str], completions: Sequence[ChatCompletion], *, echo: bool
) -> dict[str, Any]:
    """A legacy ``text_completion``: one choice per completion, answering the prompt beside it
    (written before its answer when ``echo``), and their usage summed."""
    choices: list[dict[str, Any]] = []
    usage = UsageTotal()
    for prompt, completion in zip(prompts, completions, strict=True):
        take_call_attempts(completion)
        choice = completion.choices[0]
        text = choice.message.content or ""
        choices.append(
            {
                "index": len(choices),
                "text": prompt + text if echo else text,
                "logprobs": None,
                "finish_reason": _text_finish(choice.finish_reason),
            }
        )
        usage.add(completion)
    return {
        "id": f"cmpl-{uuid.uuid4().hex[:24]}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage.counts,
    }


def replayed(model: str, completion: ChatCompletion, include_usage: bool) -> StreamingResponse:
    """A whole, checked answer as server-sent events: its content or tool calls in one chunk,
    then the finish reason, then (when asked) the usage."""
    take_call_attempts(completion)
    choice, named = completion.choices[0], completion.id
    calls = [call for call in choice.message.tool_calls or () if call.type == "function"]
    chunks = [
        make_tool_call_chunk(model=model, completion_id=named, tool_calls=calls)
        if calls
        else make_chunk(model=model, completion_id=named, content=choice.message.content or ""),
        make_chunk(model=model, completion_id=named, finish_reason=choice.finish_reason),
    ]
    if include_usage and completion.usage is not None:
        chunks.append(make_chunk(model=model, completion_id=named, usage=completion.usage))
    return StreamingResponse(
        iter([*(sse_event(chat_chunk(chunk)) for chunk in chunks), "data: [DONE]\n\n"]),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def sse_event(data: dict[str, Any]) -> str:
    """``data`` as one server-sent event."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def chat_chunk(chunk: ChatCompletionChunk) -> dict[str, Any]:
    """A chat completion chunk as OpenAI sends it (``finish_reason: null`` kept)."""
    return chunk.model_dump(mode="json", exclude_none=True) | {"choices": _choices(chunk)}


def _choices(chunk: ChatCompletionChunk) -> list[dict[str, Any]]:
    # exclude_none would drop finish_reason: null, which OpenAI's chunks carry.
    return [
        choice.model_dump(mode="json", exclude_none=True) | {"finish_reason": choice.finish_reason}
        for choice in chunk.choices
    ]


def text_chunk(chunk: ChatCompletionChunk) -> dict[str, Any] | None:
    """A chat completion chunk as a legacy ``text_completion`` event."""
    choices = [
        {
            "index": 0,
            "text": choice.delta.content or "",
            "logprobs": None,
            "finish_reason": _text_finish(choice.finish_reason),
        }
        for choice in chunk.choices
    ]
    shaped: dict[str, Any] = {
        "id": chunk.id,
        "object": "text_completion",
        "created": chunk.created,
        "model": chunk.model,
        "choices": choices,
    }
    if chunk.usage is not None:
        shaped["usage"] = chunk.usage.model_dump(mode="json", exclude_none=True)
    return shaped


def _text_finish(reason: str | None) -> str | None:
    return "length" if reason == "length" else None if reason is None else "stop"


def encoded(vector: list[float], encoding_format: str | None) -> list[float] | str:
    """An embedding as the client asked for it: floats, or base64 of float32s."""
    if encoding_format == "base64":
        return base64.b64encode(array.array("f", vector).tobytes()).decode("ascii")
    return vector
