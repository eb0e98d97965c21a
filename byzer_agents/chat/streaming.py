"""Streaming: text deltas as they arrive, and typed answers as partial instances that fill in while
the JSON streams (the last one validated in full).

Both are bounded: a stream is stopped with ModelStreamTooLongError once it runs past what the
request allows (twice its ``max_tokens`` in chunks, or ``MAX_STREAM_CHARS``), since a server that
ignores the limit would otherwise stream forever; and partial values are re-read at a pace that
keeps the total work linear in the answer's length (``PartialAnswers``).
"""

from __future__ import annotations

import functools
import typing
from collections.abc import AsyncIterator, Iterator
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from byzer_agents.core.parsing import MAX_SEARCH_CHARS, parse_partial_json
from byzer_agents.core.protocol import ChatBackend, astream
from byzer_agents.exceptions import ModelStreamTooLongError
from byzer_agents.prompts.schema import type_adapter
from byzer_agents.types import ChatCompletionChunk, ChatRequest

__all__ = ["MAX_STREAM_CHARS", "PartialAnswers", "astream_text", "partial_value", "stream_text"]

MAX_STREAM_CHARS = MAX_SEARCH_CHARS
"""A stream is stopped past this many characters (about 250k tokens, more than any one reply)."""
_CHUNKS_PER_TOKEN = 2
"""Chunks allowed per token of ``max_tokens``: a chunk carries a token or more, so a stream with
twice as many chunks is one whose server ignores the limit."""
_EXTRA_CHUNKS = 16
"""Chunks allowed beyond those: the role, the finish reason, the usage."""
_READS_PER_CHAR = 16
_FREE_READS = 1_000_000
"""Characters of partial JSON read before the pace of re-reading slows (about a third of a
second): answers of a few KB are re-read on every piece."""


class _StreamBound:
    """Counts a stream's chunks and characters, and stops it past the request's limits."""

    def __init__(self, request: ChatRequest) -> None:
        self._model = request.model or "the model"
        tokens = request.max_tokens
        self._max_chunks = (
            tokens * _CHUNKS_PER_TOKEN + _EXTRA_CHUNKS if tokens else MAX_STREAM_CHARS
        )
        self._max_tokens = tokens
        self._chunks = 0
        self._pieces: list[str] = []
        self._chars = 0

    def text_of(self, chunk: ChatCompletionChunk) -> str:
        """The chunk's text; ModelStreamTooLongError when the stream has run past its limits."""
        self._chunks += 1
        text = _delta(chunk)
        if self._chunks > self._max_chunks:
            limit = (
                f"max_tokens={self._max_tokens} ({self._chunks:,} chunks)"
                if self._max_tokens
                else f"{self._max_chunks:,} chunks"
            )
            self._stop(f"the stream went past {limit} and was stopped")
        if self._chars + len(text) > MAX_STREAM_CHARS:
            self._stop(
                f"the stream went past {MAX_STREAM_CHARS:,} characters and was stopped; set "
                "max_tokens to bound a long answer"
            )
        self._chars += len(text)
        self._pieces.append(text)
        return text

    def _stop(self, message: str) -> None:
        raise ModelStreamTooLongError(self._model, message, partial="".join(self._pieces))


def _delta(chunk: ChatCompletionChunk) -> str:
    if not chunk.choices:
        return ""
    return chunk.choices[0].delta.content or ""


def stream_text(backend: ChatBackend, request: ChatRequest) -> Iterator[str]:
    """The text deltas of ``backend``'s stream, stopped past the request's limits (the backend's
    stream is closed then, as when the caller stops reading)."""
    bound = _StreamBound(request)
    chunks = backend.stream(request)
    try:
        for chunk in chunks:
            text = bound.text_of(chunk)
            if text:
                yield text
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


async def astream_text(backend: ChatBackend, request: ChatRequest) -> AsyncIterator[str]:
    """``stream_text`` without blocking the event loop."""
    bound = _StreamBound(request)
    chunks = astream(backend, request)
    try:
        async for chunk in chunks:
            text = bound.text_of(chunk)
            if text:
                yield text
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


class PartialAnswers:
    """The typed answer so far while its JSON streams in: ``add`` each piece of text and get a
    new partial value when there is one (see ``partial_value``), None otherwise.

    Reading the whole text again for every piece costs quadratic time (an answer of 9,840
    pieces took 20 s), so the text is re-read only while all the reading done stays within
    ``_READS_PER_CHAR`` times its length plus ``_FREE_READS``: a long answer's partials come
    every sixteenth or so of its length, and the last value is read by the caller in full.
    """

    def __init__(self, answer_type: Any) -> None:
        self._answer_type = answer_type
        self._pieces: list[str] = []
        self._length = 0
        self._read = 0
        self._last: Any = None

    @property
    def text(self) -> str:
        """All the text added so far."""
        if len(self._pieces) > 1:
            self._pieces = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    def add(self, piece: str) -> Any | None:
        """Take the next piece; the new partial value when there is one, else None."""
        self._pieces.append(piece)
        self._length += len(piece)
        if self._read + self._length > _READS_PER_CHAR * self._length + _FREE_READS:
            return None
        self._read += self._length
        partial = partial_value(self._answer_type, self.text)
        if partial is None or partial == self._last:
            return None
        self._last = partial
        return partial


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
    trimmed: set[int | str] = set()
    for _ in range(2 * len(fields) + 1):
        try:
            return partial.model_validate(fields)
        except ValidationError as exc:
            bad = {error["loc"][0] for error in exc.errors() if error["loc"]} & set(fields)
            if not bad:
                return None
            for key in bad:
                value = fields[key]
                if isinstance(value, list) and value and key not in trimmed:
                    # A list's last item is the one still arriving: keep the items before it,
                    # so a list grows N -> N+1 while streaming instead of N -> None -> N+1.
                    fields[key] = value[:-1]
                    trimmed.add(key)
                else:
                    del fields[key]
    return None


@functools.lru_cache(maxsize=128)
def _optional_fields_model(model: type[BaseModel]) -> type[BaseModel]:
    optional = {
        name: (typing.Optional[info.annotation], None)  # noqa: UP045 - built at run time
        for name, info in model.model_fields.items()
    }
    return create_model(f"Partial{model.__name__}", __base__=model, **optional)  # type: ignore[call-overload]
