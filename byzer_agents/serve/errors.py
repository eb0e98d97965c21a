"""Errors as OpenAI writes them: ``{"error": {"message", "type", "param", "code"}}`` with the HTTP
status OpenAI uses, so any OpenAI client raises its own typed exception for them."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

__all__ = ["APIError", "error_response"]


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
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def model_not_found(model: str, available: list[str]) -> APIError:
    return APIError(
        404,
        f"The model {model!r} does not exist; the models served here: {available or 'none'}",
        param="model",
        code="model_not_found",
    )
