"""Every error byzer-agents raises on purpose: each says what was wrong, with which value,
and what would be right."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ArgumentError",
    "Attempt",
    "ByzerAgentsError",
    "CallAttempt",
    "ExtractionError",
    "FinetuneDataError",
    "FinetuneError",
    "ModelCallError",
    "ModelCoolingDownError",
    "ModelNotFoundError",
    "ModelRateLimitError",
    "ModelStreamBrokenError",
    "ModelTimeoutError",
    "NoJSONFoundError",
    "PromptTemplateError",
    "ToolArgumentsError",
    "ToolCallError",
    "ToolDefinitionError",
]


class ByzerAgentsError(Exception):
    """Base class of the errors raised by byzer-agents."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as they are (args and attributes), whatever the subclass's __init__ takes, so an
        # error raised in a Ray worker reaches the driver as itself, not as an unpicklable blob.
        return _rebuild_error, (type(self), self.args, self.__dict__)


def _rebuild_error(
    cls: type[ByzerAgentsError], args: tuple[Any, ...], state: dict[str, Any]
) -> ByzerAgentsError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


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


class FinetuneError(ByzerAgentsError, ValueError):
    """A fine-tune job was asked for with settings that cannot work (named, with what would)."""


class FinetuneDataError(FinetuneError):
    """Training data that cannot be used: empty, malformed, or missing what the job needs.

    ``source`` names the file (or trace run, or dataset) and ``line`` the line or row, from 1;
    ``field`` the offending field (``"messages.2.tool_calls"``), when one is to blame.
    """

    def __init__(
        self, message: str, *, source: str = "", line: int | None = None, field: str = ""
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        where = source + (f":{line}" if line is not None else "")
        prefix = ", ".join(part for part in (where, f"field {field!r}" if field else "") if part)
        super().__init__(f"{prefix}: {message}" if prefix else message)


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


@dataclass(frozen=True, kw_only=True)
class CallAttempt:
    """One request sent for a model call: a try of the retry policy, on one deployment. A call
    that was retried, or answered by a fallback, is traced as one event per CallAttempt."""

    deployment: str
    """The deployment (or endpoint model) the request went to."""
    attempt: int
    """1 for the first request to this deployment within the call, 2 for its first retry, ..."""
    latency_s: float
    error: str | None = None
    """Why it failed (secrets scrubbed); ``None``: it answered."""
    status_code: int | None = None
    """The HTTP status of a failed request, when the endpoint answered one."""
    waited_s: float = 0.0
    """The pause after this request before the next one (backoff, or the server's Retry-After)."""


class ModelCallError(ByzerAgentsError, RuntimeError):
    """The model endpoint failed to answer (connection, HTTP status, timeout), after its retries.

    ``call_attempts`` holds every request that was sent for the call, oldest first, where the
    backend retried or fell back; empty where it made one request."""

    def __init__(
        self,
        model: str,
        message: str,
        *,
        status_code: int | None = None,
        call_attempts: Sequence[CallAttempt] = (),
    ) -> None:
        self.model = model
        self.status_code = status_code
        self.call_attempts = tuple(call_attempts)
        status = f" (HTTP {status_code})" if status_code is not None else ""
        super().__init__(f"model {model!r} failed{status}: {message}")


class ModelRateLimitError(ModelCallError):
    """The endpoint kept answering 429 (too many requests) until the retries ran out, or asked
    for a longer wait than the retry policy allows. ``retry_after_s``: the wait it asked for."""

    def __init__(
        self,
        model: str,
        message: str,
        *,
        retry_after_s: float | None = None,
        call_attempts: Sequence[CallAttempt] = (),
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(model, message, status_code=429, call_attempts=call_attempts)


class ModelTimeoutError(ModelCallError, TimeoutError):
    """No answer came within the request timeout, on any attempt."""


class ModelStreamBrokenError(ModelCallError):
    """A stream broke off after it had begun: it is not retried (its start was already given to
    the caller), and nothing received is lost: ``partial`` holds the text that arrived."""

    def __init__(
        self,
        model: str,
        message: str,
        *,
        partial: str,
        call_attempts: Sequence[CallAttempt] = (),
    ) -> None:
        self.partial = partial
        super().__init__(
            model,
            f"{message} ({len(partial)} characters had arrived; they are in .partial)",
            call_attempts=call_attempts,
        )


class ModelCoolingDownError(ModelCallError):
    """Every deployment that could answer is cooling down after repeated failures; the first is
    back in ``retry_in_s`` seconds."""

    def __init__(self, model: str, deployments: Sequence[str], *, retry_in_s: float) -> None:
        self.deployments = tuple(deployments)
        self.retry_in_s = retry_in_s
        super().__init__(
            model,
            f"every deployment is cooling down after repeated failures ({', '.join(deployments)});"
            f" the first is back in {retry_in_s:.1f} s",
        )


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
