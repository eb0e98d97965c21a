"""Every error byzer-agents raises on purpose: each says what was wrong, with which value,
and what would be right."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ArgumentError",
    "Attempt",
    "ByzerAgentsError",
    "ExtractionError",
    "ModelCallError",
    "ModelNotFoundError",
    "NoJSONFoundError",
    "PromptTemplateError",
    "ToolArgumentsError",
    "ToolCallError",
    "ToolDefinitionError",
]


class ByzerAgentsError(Exception):
    """Base class of the errors raised by byzer-agents."""


class ToolDefinitionError(ByzerAgentsError, TypeError):
    """A function or schema cannot become a tool (raised when the tool is defined, not called)."""


@dataclass(frozen=True)
class ArgumentError:
    """One bad argument of a tool call."""

    field: str
    """Dotted path of the bad value (``"location.city"``, ``"dates.0"``); ``""``: the whole call."""
    message: str
    """What was expected."""
    value: Any = None
    """The value the caller gave, when there was one."""

    def __str__(self) -> str:
        where = self.field or "arguments"
        return f"{where}: {self.message}"


class ToolArgumentsError(ByzerAgentsError, ValueError):
    """A tool was called with arguments that do not fit its schema.

    ``errors`` names every bad field, so the chat loop can show them all to the model at once.
    """

    def __init__(self, tool_name: str, errors: list[ArgumentError]) -> None:
        self.tool_name = tool_name
        self.errors = errors
        details = "; ".join(str(error) for error in errors)
        super().__init__(f"invalid arguments for tool {tool_name!r}: {details}")


class PromptTemplateError(ByzerAgentsError, ValueError):
    """A prompt template failed to compile or to render (a syntax error, a missing variable)."""


class NoJSONFoundError(ByzerAgentsError, ValueError):
    """A model's answer holds no JSON value, not even a repairable one."""

    _QUOTED_CHARS = 80

    def __init__(self, text: str) -> None:
        self.text = text
        start = text[: self._QUOTED_CHARS] + ("..." if len(text) > self._QUOTED_CHARS else "")
        super().__init__(
            "no JSON value found (looked for a ```json or ``` block, a {...} object or [...] "
            f"array among the text, or a bare JSON value) in text starting {start!r}"
        )


class ModelNotFoundError(ByzerAgentsError, LookupError):
    """No deployment answers to the model name asked for."""

    def __init__(self, model: str | None, available: list[str]) -> None:
        self.model = model
        self.available = available
        super().__init__(
            f"no model named {model!r}; available: {available or 'none (deploy one first)'}"
        )


class ModelCallError(ByzerAgentsError, RuntimeError):
    """The model endpoint failed to answer (connection, HTTP status, timeout), after its retries."""

    def __init__(self, model: str, message: str, *, status_code: int | None = None) -> None:
        self.model = model
        self.status_code = status_code
        status = f" (HTTP {status_code})" if status_code is not None else ""
        super().__init__(f"model {model!r} failed{status}: {message}")


@dataclass(frozen=True)
class Attempt:
    """One try of the loop: what the model wrote and why it was not accepted."""

    output: str
    """The model's raw text, or its tool calls as JSON."""
    error: str


class _AttemptsError(ByzerAgentsError):
    what = "an answer"

    def __init__(self, model: str, attempts: list[Attempt]) -> None:
        self.model = model
        self.attempts = attempts
        last = attempts[-1].error if attempts else "no attempt was made"
        super().__init__(
            f"model {model!r} gave no valid {self.what} in {len(attempts)} attempt(s); "
            f"last error: {last}"
        )


class ExtractionError(_AttemptsError, ValueError):
    """No attempt produced a valid typed answer; ``attempts`` holds each raw output and error."""

    what = "typed answer"


class ToolCallError(_AttemptsError, ValueError):
    """No attempt produced tool calls that could all run: unknown tools, bad arguments, tools
    that raised or timed out. ``attempts`` holds each raw output and error."""

    what = "tool calls"
