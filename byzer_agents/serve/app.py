"""The OpenAI-compatible HTTP API over an ``LLM``'s models: every deployment on the Ray cluster, and
any backend registered on it.

Why FastAPI under uvicorn, not Ray Serve's ingress: deployments are plain named actors
(docs/decisions.md, 1), so the server is just another client of them: one process, started and
stopped on its own, holding no replica. Typed outputs reach HTTP clients as they reach ``extract``:
a ``json_schema`` response_format or tools go into the same ``ChatRequest`` the Python API sends, so
a local model answers them under constrained decoding, and every answer is checked against its
schema and asked again when it does not fit (typed_answers.py). What the server answers instead of
a result is OpenAI's error shape with OpenAI's status: 400 for the client's mistakes, naming the
field; 422 for an answer that never fitted its schema; 429 when the model is at its limit; 500 only
for the server's own faults.
"""

from __future__ import annotations

import array
import asyncio
import base64
import functools
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from byzer_agents.core.call_attempts import take_call_attempts
from byzer_agents.core.protocol import ChatBackend, achat
from byzer_agents.exceptions import (
    ExtractionError,
    ModelCallError,
    ModelNotFoundError,
    ToolCallError,
    ToolDefinitionError,
)
from byzer_agents.llm_runtime.structured_output import OutputSpec
from byzer_agents.serve.bodies import (
    ChatCompletionsBody,
    CompletionsBody,
    EmbeddingsBody,
    InvalidField,
)
from byzer_agents.serve.errors import APIError, bad_request, error_response, model_not_found
from byzer_agents.serve.limits import (
    EMBEDDING_INPUTS_PER_PLACE,
    MAX_COMPLETIONS_PER_REQUEST,
    MAX_EMBEDDING_INPUTS,
    BodySizeLimit,
    InFlightLimits,
)
from byzer_agents.serve.model_stream import EventStreamResponse, ModelStream
from byzer_agents.serve.typed_answers import checked_completion, request_spec
from byzer_agents.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    make_chunk,
    make_tool_call_chunk,
)

__all__ = ["DEFAULT_ANSWER_RETRIES", "DEFAULT_CAPACITY", "DEFAULT_MAX_BODY_BYTES", "create_app"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_CAPACITY = 64
"""Requests in flight for a model that does not say how many its replicas take (an in-process
backend); a Ray deployment takes ``num_workers * max_concurrency``."""
DEFAULT_ANSWER_RETRIES = 2
"""Times an answer that does not fit its response_format or tools is asked for again, with the
reason (``extract``'s default ``max_retries``)."""

T = TypeVar("T")

if TYPE_CHECKING:
    from byzer_agents.llm import LLM


def create_app(
    llm: LLM,
    *,
    api_key: str | SecretStr | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    default_capacity: int = DEFAULT_CAPACITY,
    answer_retries: int = DEFAULT_ANSWER_RETRIES,
) -> FastAPI:
    """The ASGI app serving ``llm``'s models. With ``api_key``, every route but ``/health`` needs
    ``Authorization: Bearer <key>`` (or Azure's ``api-key`` header). ``answer_retries``: how many
    times an answer that does not fit its schema is asked for again before the client gets 422."""
    secret = api_key if isinstance(api_key, SecretStr) or api_key is None else SecretStr(api_key)
    api = _API(llm, default_capacity=default_capacity, answer_retries=answer_retries)
    app = FastAPI(title="byzer-agents", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    authorized = Depends(_authorization(secret))

    @app.exception_handler(APIError)
    async def api_error(_: Request, error: APIError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(_validation_error(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(_http_error(request, error))

    @app.exception_handler(Exception)
    async def server_fault(_: Request, error: Exception) -> JSONResponse:
        # Starlette logs the exception after this answer is sent.
        return error_response(
            APIError(500, f"the server failed: {type(error).__name__}", type="server_error")
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "in_flight": api.limits.snapshot()}

    @app.get("/v1/models", dependencies=[authorized])
    async def models() -> dict[str, Any]:
        names = await run_in_threadpool(llm.list_models)
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "byzer-agents"}
                for name in names
            ],
        }

    @app.post("/v1/chat/completions", dependencies=[authorized], response_model=None)
    async def chat_completions(body: ChatCompletionsBody) -> Any:
        return await api.chat(body, body.model)

    @app.post(
        "/openai/deployments/{deployment}/chat/completions",
        dependencies=[authorized],
        response_model=None,
    )
    async def azure_chat_completions(deployment: str, body: ChatCompletionsBody) -> Any:
        return await api.chat(body, deployment)

    @app.post("/v1/completions", dependencies=[authorized], response_model=None)
    async def completions(body: CompletionsBody) -> Any:
        return await api.complete(body)

    @app.post("/v1/embeddings", dependencies=[authorized])
    async def embeddings(body: EmbeddingsBody) -> dict[str, Any]:
        return await api.embed(body)

    return app


class _API:
    """The routes' work: resolve the model, hold a place in its limit, call it, shape the answer."""

    def __init__(self, llm: LLM, *, default_capacity: int, answer_retries: int) -> None:
        self.llm = llm
        self.limits = InFlightLimits()
        self.default_capacity = default_capacity
        self.answer_retries = answer_retries

    async def chat(self, body: ChatCompletionsBody, model: str) -> Any:
        if not model:
            raise bad_request("you must name a model", param="model")
        request = _checked(lambda: body.chat_request(model), param="messages")
        spec = request_spec(request)  # a bad schema is refused before any model is asked
        backend = await self._backend(model)
        capacity = self._capacity(backend)
        if body.stream:
            if body.n != 1:
                raise bad_request("stream=true takes n=1 only", param="n")
            if spec is None:
                return self._sse(model, backend, request, body.include_usage, _chat_chunk)
            # A typed answer is checked whole before any of it is sent: streamed as generated,
            # one that does not fit would be on the wire already.
            with self.limits.hold(model, capacity):
                completion = await _called(self._answer(backend, request, spec))
            return _replayed(model, completion, body.include_usage)
        with self.limits.hold(model, capacity, places=body.n) as at_once:
            answer = functools.partial(self._answer, backend, request, spec)
            completions = await _called(_at_most(at_once, [answer] * body.n))
        return _merged(model, completions)

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
            return self._sse(body.model, backend, requests[0], body.include_usage, _text_chunk)
        asked = [pair for pair in zip(prompts, requests, strict=True) for _ in range(body.n)]
        capacity = self._capacity(backend)
        with self.limits.hold(body.model, capacity, places=generations) as at_once:
            completions = await _called(
                _at_most(at_once, [functools.partial(achat, backend, r) for _, r in asked])
            )
        choices: list[dict[str, Any]] = []
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for (prompt, _), completion in zip(asked, completions, strict=True):
            take_call_attempts(completion)
            choice = completion.choices[0]
            text = choice.message.content or ""
            choices.append(
                {
                    "index": len(choices),
                    "text": prompt + text if body.echo else text,
                    "logprobs": None,
                    "finish_reason": _text_finish(choice.finish_reason),
                }
            )
            _add_usage(usage, completion)
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": choices,
            "usage": usage,
        }

    async def embed(self, body: EmbeddingsBody) -> dict[str, Any]:
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
                {"object": "embedding", "index": index, "embedding": _encoded(vector, body)}
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
                        yield f"data: {json.dumps(shaped, ensure_ascii=False)}\n\n"
                yield "data: [DONE]\n\n"
            except Exception as exc:  # the status is sent: the error goes in the stream
                error = _as_api_error(exc)
                logger.warning("stream from %r failed: %s", model, error.message)
                yield f"data: {json.dumps(error.body(), ensure_ascii=False)}\n\n"

        return EventStreamResponse(events(), source=source)


# --- calling the backends ---------------------------------------------------------------------


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
        raise _as_api_error(exc) from exc


def _as_api_error(exc: Exception) -> APIError:
    """A backend's failure as the HTTP answer: its refusal of the request is the client's 400,
    an upstream model's failure a 502, anything else a 500 that says no more than its kind."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, (ExtractionError, ToolCallError)):
        what, param = (
            ("its tools' schemas", "tools")
            if isinstance(exc, ToolCallError)
            else ("the response_format schema", "response_format")
        )
        last = exc.attempts[-1].error if exc.attempts else "no attempt was made"
        return APIError(
            422,
            f"The model's output did not fit {what} in {len(exc.attempts)} attempts, each "
            f"checked and the reason fed back; the last: {last}",
            type="invalid_output_error",
            param=param,
            code="output_does_not_fit_schema",
        )
    if isinstance(exc, ToolDefinitionError):  # a TypeError, but the request's tools are to blame
        return bad_request(_first_line(exc), param="tools")
    if isinstance(exc, ModelCallError):
        return APIError(502, str(exc), type="api_error", code="upstream_error")
    if isinstance(exc, ValueError):
        return bad_request(_first_line(exc))
    logger.exception("request failed")
    return APIError(500, f"the model failed: {type(exc).__name__}", type="server_error")


def _checked(build: Callable[[], ChatRequest], *, param: str) -> ChatRequest:
    try:
        return build()
    except ValueError as exc:
        raise bad_request(_first_line(exc), param=param) from None


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # Ray wraps a worker's exception; say the worker's words
    text = str(cause if isinstance(cause, BaseException) else exc)
    return text.strip().splitlines()[-1] if text.strip() else type(exc).__name__


# --- shaping the answers ----------------------------------------------------------------------


def _merged(model: str, completions: list[ChatCompletion]) -> dict[str, Any]:
    take_call_attempts(completions[0])
    first = completions[0].model_dump(mode="json")
    first["model"] = model
    first["choices"] = []
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for index, completion in enumerate(completions):
        take_call_attempts(completion)  # how it was obtained is for traces, not for clients
        choice = completion.choices[0].model_dump(mode="json")
        choice["index"] = index
        first["choices"].append(choice)
        _add_usage(usage, completion)
    first["usage"] = usage
    return first


def _replayed(model: str, completion: ChatCompletion, include_usage: bool) -> StreamingResponse:
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
    events = [f"data: {json.dumps(_chat_chunk(c), ensure_ascii=False)}\n\n" for c in chunks]
    return StreamingResponse(
        iter([*events, "data: [DONE]\n\n"]),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _add_usage(total: dict[str, int], completion: ChatCompletion) -> None:
    if completion.usage is not None:
        total["prompt_tokens"] += completion.usage.prompt_tokens
        total["completion_tokens"] += completion.usage.completion_tokens
        total["total_tokens"] += completion.usage.total_tokens


def _chat_chunk(chunk: ChatCompletionChunk) -> dict[str, Any]:
    return chunk.model_dump(mode="json", exclude_none=True) | {"choices": _choices(chunk)}


def _choices(chunk: ChatCompletionChunk) -> list[dict[str, Any]]:
    # exclude_none would drop finish_reason: null, which OpenAI's chunks carry.
    return [
        choice.model_dump(mode="json", exclude_none=True) | {"finish_reason": choice.finish_reason}
        for choice in chunk.choices
    ]


def _text_chunk(chunk: ChatCompletionChunk) -> dict[str, Any] | None:
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


def _encoded(vector: list[float], body: EmbeddingsBody) -> list[float] | str:
    if body.encoding_format == "base64":
        return base64.b64encode(array.array("f", vector).tobytes()).decode("ascii")
    return vector


# --- the edge ---------------------------------------------------------------------------------


def _authorization(secret: SecretStr | None) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        if secret is None:
            return
        given = request.headers.get("api-key") or ""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = token.strip()
        if not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
            raise APIError(
                401,
                "Incorrect or missing API key: send it as 'Authorization: Bearer <key>'",
                type="invalid_request_error",
                code="invalid_api_key",
            )

    return check


def _http_error(request: Request, error: StarletteHTTPException) -> APIError:
    """Starlette's own answers (an unknown route, a method the route does not take) in OpenAI's
    shape and words."""
    route = f"{request.method} {request.url.path}"
    if error.status_code == 404:
        return APIError(404, f"Invalid URL ({route})", code="unknown_url")
    headers = dict(error.headers or {})
    if error.status_code == 405:
        return APIError(
            405, f"Method not allowed ({route})", code="method_not_allowed", headers=headers
        )
    return APIError(error.status_code, str(error.detail), headers=headers)


def _validation_error(error: RequestValidationError) -> APIError:
    problems = error.errors()
    first = problems[0] if problems else {}
    refused = (first.get("ctx") or {}).get("error")
    if isinstance(refused, InvalidField):
        return bad_request(refused.message, param=refused.param, code="invalid_value")
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        return bad_request(
            f"The request body is not valid JSON: {first.get('msg')}", code="invalid_json"
        )
    param = ".".join(location) or None
    detail = "; ".join(
        f"{'.'.join(str(p) for p in problem.get('loc', ()) if p != 'body') or 'body'}: "
        f"{problem.get('msg')}"
        for problem in problems[:5]
    )
    return bad_request(f"Invalid request: {detail}", param=param, code="invalid_value")
