"""Errors as OpenAI writes them: ``{"error": {"message", "type", "param", "code"}}`` with the HTTP
status OpenAI uses, so any OpenAI client raises its own typed exception for them; and what the
library raises while answering, turned into them (``as_api_error``)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import JSONResponse

from byzer_agents.exceptions import (
    ExtractionError,
    ModelCallError,
    ToolCallError,
    ToolDefinitionError,
)

__all__ = [
    "APIError",
    "as_api_error",
    "bad_request",
    "error_line",
    "error_response",
    "model_not_found",
]

logger = logging.getLogger(__name__)


class APIError(Exception):
    """An answer the server gives instead of a result."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI sends for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def error_response(error: APIError) -> JSONResponse:
    """``error`` as the HTTP response: its status, its headers, OpenAI's body."""
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    """The 400 for a request the client got wrong, naming the field (``param``) when one is."""
    return APIError(400, message, param=param, code=code)


def model_not_found(model: str, available: list[str]) -> APIError:
    """The 404 for a model no deployment answers to, listing the ones that do."""
    return APIError(
        404,
        f"The model {model!r} does not exist; the models served here: {available or 'none'}",
        param="model",
        code="model_not_found",
    )


def as_api_error(exc: Exception) -> APIError:
    """A backend's failure as the HTTP answer: its refusal of the request is the client's 400,
    an answer that never fitted its schema a 422, an upstream model's failure a 502, anything else
    a 500 that says no more than its kind."""
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
        return bad_request(error_line(exc), param="tools")
    if isinstance(exc, ModelCallError):
        return APIError(502, str(exc), type="api_error", code="upstream_error")
    if isinstance(exc, ValueError):
        return bad_request(error_line(exc))
    logger.exception("request failed")
    return APIError(500, f"the model failed: {type(exc).__name__}", type="server_error")


def error_line(exc: BaseException) -> str:
    """The line that names the error in what ``exc`` says (the last: a traceback's text ends with
    it), or its class name when it says nothing."""
    cause = getattr(exc, "cause", None)  # Ray wraps a worker's exception; say the worker's words
    text = str(cause if isinstance(cause, BaseException) else exc)
    return text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
