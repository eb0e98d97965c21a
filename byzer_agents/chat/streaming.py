"""Streaming: text deltas as they arrive, and typed answers as partial instances that fill in while
the JSON streams (the last one validated in full)."""

from __future__ import annotations

import functools
import typing
from collections.abc import AsyncIterator, Iterator
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from byzer_agents.chat.parsing import parse_partial_json
from byzer_agents.chat.protocol import ChatBackend, astream
from byzer_agents.prompts.schema import type_adapter
from byzer_agents.types import ChatCompletionChunk, ChatRequest

__all__ = ["astream_text", "partial_value", "stream_text"]


def _delta(chunk: ChatCompletionChunk) -> str:
    if not chunk.choices:
        return ""
    return chunk.choices[0].delta.content or ""


def stream_text(backend: ChatBackend, request: ChatRequest) -> Iterator[str]:
    for chunk in backend.stream(request):
        text = _delta(chunk)
        if text:
            yield text


async def astream_text(backend: ChatBackend, request: ChatRequest) -> AsyncIterator[str]:
    async for chunk in astream(backend, request):
        text = _delta(chunk)
        if text:
            yield text


def partial_value(answer_type: Any, text: str) -> Any | None:
    """The typed answer so far, from the JSON text received so far; None while nothing fits.

    A pydantic model comes back as an instance of a subclass whose fields are all optional, so
    ``isinstance(partial, Story)`` holds while ``partial.body`` may still be None; fields whose
    value is still incomplete are left out until it validates.
    """
    data = parse_partial_json(_json_start(text))
    if data is None:
        return None
    if isinstance(answer_type, type) and issubclass(answer_type, BaseModel):
        return _partial_model(answer_type, data)
    try:
        return type_adapter(answer_type).validate_python(
            data, experimental_allow_partial="trailing-strings"
        )
    except ValidationError:
        return None


def _json_start(text: str) -> str:
    """Skip a code fence or prose before the JSON starts."""
    starts = [index for index in (text.find("{"), text.find("[")) if index >= 0]
    return text[min(starts) :] if starts else ""


def _partial_model(model: type[BaseModel], data: Any) -> BaseModel | None:
    if not isinstance(data, dict):
        return None
    partial = _optional_fields_model(model)
    fields = {key: value for key, value in data.items() if key in partial.model_fields}
    for _ in range(len(fields) + 1):
        try:
            return partial.model_validate(fields)
        except ValidationError as exc:
            bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
            if not bad & set(fields):
                return None
            fields = {key: value for key, value in fields.items() if key not in bad}
    return None


@functools.lru_cache(maxsize=128)
def _optional_fields_model(model: type[BaseModel]) -> type[BaseModel]:
    optional = {
        name: (typing.Optional[info.annotation], None)  # noqa: UP045 - built at run time
        for name, info in model.model_fields.items()
    }
    return create_model(f"Partial{model.__name__}", __base__=model, **optional)  # type: ignore[call-overload]
