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

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from byzer_agents.serve.bodies import (
    ChatCompletionsBody,
    CompletionsBody,
    EmbeddingsBody,
    InvalidField,
)
from byzer_agents.serve.calls import ModelCalls
from byzer_agents.serve.errors import APIError, bad_request, error_response
from byzer_agents.serve.limits import BodySizeLimit

__all__ = ["DEFAULT_ANSWER_RETRIES", "DEFAULT_CAPACITY", "DEFAULT_MAX_BODY_BYTES", "create_app"]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_CAPACITY = 64
"""Requests in flight for a model that does not say how many its replicas take (an in-process
backend); a Ray deployment takes ``num_workers * max_concurrency``."""
DEFAULT_ANSWER_RETRIES = 2
"""Times an answer that does not fit its response_format or tools is asked for again, with the
reason (``extract``'s default ``max_retries``)."""

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
    api = ModelCalls(llm, default_capacity=default_capacity, answer_retries=answer_retries)
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
