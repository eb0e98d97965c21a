"""The work behind each route: resolve the model, hold its places in the in-flight limit, call
it (every answer checked against a ``response_format`` or tools the request gave), and shape the
answer. What fails on the way leaves as an ``APIError`` (``errors.as_api_error``)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from byzer_agents.core.protocol import ChatBackend, achat
from byzer_agents.exceptions import ModelNotFoundError
from byzer_agents.llm_runtime.structured_output import OutputSpec
from byzer_agents.serve.bodies import ChatCompletionsBody, CompletionsBody, EmbeddingsBody
from byzer_agents.serve.errors import as_api_error, bad_request, error_line, model_not_found
from byzer_agents.serve.limits import (
    EMBEDDING_INPUTS_PER_PLACE,
    MAX_COMPLETIONS_PER_REQUEST,
    MAX_EMBEDDING_INPUTS,
    InFlightLimits,
)
from byzer_agents.serve.model_stream import EventStreamResponse, ModelStream
from byzer_agents.serve.shapes import (
    chat_chunk,
    encoded,
    merged,
    replayed,
    sse_event,
    text_chunk,
    text_completion,
)
from byzer_agents.serve.typed_answers import checked_completion, request_spec
from byzer_agents.types import ChatCompletion, ChatCompletionChunk, ChatRequest

if TYPE_CHECKING:
    from byzer_agents.llm import LLM

__all__ = ["ModelCalls"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ModelCalls:
    """The routes' work for one ``LLM``: resolve the model, hold a place in its limit, call it,
    shape the answer.

    Args:
        llm: Whose models (deployments and registered backends) are served.
        default_capacity: Requests in flight for a model that does not say how many it takes.
        answer_retries: Times an answer that does not fit its schema is asked for again.
    """

    def __init__(self, llm: LLM, *, default_capacity: int, answer_retries: int) -> None:
        self.llm = llm
        self.limits = InFlightLimits()
        self.default_capacity = default_capacity
        self.answer_retries = answer_retries

    async def chat(self, body: ChatCompletionsBody, model: str) -> Any:
        """``/v1/chat/completions`` (and Azure's route, which names the model in its path)."""
        if not model:
            raise bad_request("you must name a model", param="model")
        try:
            request = body.chat_request(model)
        except ValueError as exc:
            raise bad_request(error_line(exc), param="messages") from None
        spec = request_spec(request)  # a bad schema is refused before any model is asked
        backend = await self._backend(model)
        capacity = self._capacity(backend)
        if body.stream:
            if body.n != 1:
                raise bad_request("stream=true takes n=1 only", param="n")
            if spec is None:
                return self._sse(model, backend, request, body.include_usage, chat_chunk)
            # A typed answer is checked whole before any of it is sent: streamed as generated,
            # one that does not fit would be on the wire already.
            with self.limits.hold(model, capacity):
                completion = await _called(self._answer(backend, request, spec))
            return replayed(model, completion, body.include_usage)
        with self.limits.hold(model, capacity, places=body.n) as at_once:
            answer = functools.partial(self._answer, backend, request, spec)
            completions = await _called(_at_most(at_once, [answer] * body.n))
        return merged(model, completions)

    async def _answer(
        self, backend: ChatBackend, request: ChatRequest, spec: OutputSpec | None
    ) -> ChatCompletion:
        if spec is None:
            return await achat(backend, request)
        return await checked_completion(backend, request, spec, retries=self.answer_retries)

    async def complete(self, body: CompletionsBody) -> Any:
        """Legacy completions: each prompt goes to the model as one user message (the models here
        are chat models, reached through their chat template)."""
        prompts = body.prompts()
        generations = len(prompts) * body.n
        if not prompts:
            raise bad_request("prompt must be a string or a non-empty list of them", param="prompt")
        if generations > MAX_COMPLETIONS_PER_REQUEST:
            raise bad_request(
                f"{len(prompts)} prompts x n={body.n} asks for {generations} completions; one "
                f"request takes at most {MAX_COMPLETIONS_PER_REQUEST} (prompts x n): split it",
                param="prompt",
                code="too_many_completions",
            )
        requests = [
            ChatRequest(
                model=body.model,
                messages=[{"role": "user", "content": prompt}],
                **body.sampling_fields(),
            )
            for prompt in prompts
        ]
        backend = await self._backend(body.model)
        if body.stream:
            if body.n != 1 or len(prompts) != 1:
                raise bad_request("stream=true takes one prompt and n=1", param="stream")
            return self._sse(body.model, backend, requests[0], body.include_usage, text_chunk)
        asked = [pair for pair in zip(prompts, requests, strict=True) for _ in range(body.n)]
        capacity = self._capacity(backend)
        with self.limits.hold(body.model, capacity, places=generations) as at_once:
            completions = await _called(
                _at_most(at_once, [functools.partial(achat, backend, r) for _, r in asked])
            )
        answered = [prompt for prompt, _ in asked]
        return text_completion(body.model, answered, completions, echo=body.echo)

    async def embed(self, body: EmbeddingsBody) -> dict[str, Any]:
        """``/v1/embeddings``: one vector per input, in order."""
        texts = body.texts()
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise bad_request(
                f"input has {len(texts)} items; one request takes at most {MAX_EMBEDDING_INPUTS}: "
                "split it",
                param="input",
                code="too_many_inputs",
            )
        if any(not isinstance(text, str) or not text for text in texts):
            raise bad_request("input must be a non-empty string or list of them", param="input")
        backend = await self._backend(body.model)
        places = -(-len(texts) // EMBEDDING_INPUTS_PER_PLACE)
        with self.limits.hold(body.model, self._capacity(backend), places=places):
            vectors = await _called(run_in_threadpool(backend.embed, texts))
        return {
            "object": "list",
            "model": body.model,
            "data": [
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": encoded(vector, body.encoding_format),
                }
                for index, vector in enumerate(vectors)
            ],
            # The protocol's embed() returns vectors only; token counts are not reported.
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }

    async def _backend(self, model: str) -> ChatBackend:
        try:
            return await run_in_threadpool(self.llm.backend, model)
        except ModelNotFoundError as missing:
            raise model_not_found(model, missing.available) from None

    def _capacity(self, backend: ChatBackend) -> int:
        workers = getattr(backend, "workers", None)
        spec = getattr(backend, "spec", None) if workers else None
        if workers and spec is not None:
            return len(workers) * int(spec.infer_params.max_concurrency)
        return self.default_capacity

    def _sse(
        self,
        model: str,
        backend: ChatBackend,
        request: ChatRequest,
        include_usage: bool,
        shape: Callable[[ChatCompletionChunk], dict[str, Any] | None],
    ) -> StreamingResponse:
        self.limits.acquire(model, self._capacity(backend))  # a 429 comes before the stream
        # The place is given back when the model has stopped, not when the client has left.
        source = ModelStream(backend, request, on_stopped=lambda: self.limits.release(model))

        async def events() -> AsyncIterator[str]:
            try:
                async for chunk in source.chunks():
                    if chunk.usage is not None and not include_usage:
                        if not chunk.choices:
                            continue
                        chunk = chunk.model_copy(update={"usage": None})
                    shaped = shape(chunk)
                    if shaped is not None:
                        yield sse_event(shaped)
                yield "data: [DONE]\n\n"
            except Exception as exc:  # the status is sent: the error goes in the stream
                error = as_api_error(exc)
                logger.warning("stream from %r failed: %s", model, error.message)
                yield sse_event(error.body())

        return EventStreamResponse(events(), source=source)


async def _at_most(limit: int, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Every call's result, in order, with no more than ``limit`` running at once."""
    gate = asyncio.Semaphore(limit)

    async def gated(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return await asyncio.gather(*(gated(call) for call in calls))


async def _called(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except Exception as exc:
        raise as_api_error(exc) from exc
