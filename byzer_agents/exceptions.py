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
    "ClusterConnectionError",
    "ConfigurationError",
    "ConfigurationTypeError",
    "ContextLengthError",
    "ExtractionError",
    "FinetuneDataError",
    "FinetuneError",
    "JSONTooLargeError",
    "MaxStepsExceededError",
    "ModelCallError",
    "ModelCoolingDownError",
    "ModelNotFoundError",
    "ModelRateLimitError",
    "ModelRetry",
    "ModelStreamBrokenError",
    "ModelStreamTooLongError",
    "ModelTimeoutError",
    "NoDefaultModelError",
    "NoJSONFoundError",
    "PromptTemplateError",
    "ToolArgumentsError",
    "ToolCallDeniedError",
    "ToolCallError",
    "ToolDefinitionError",
    "ToolExecutionError",
    "ToolRetryRequestedError",
    "ToolTimeoutError",
    "TraceStoreError",
    "UnprotectedServerError",
    "UnsupportedSchemaError",
    "UsageError",
    "UsageLimitExceededError",
    "UserError",
]


class ByzerAgentsError(Exception):
    """Base class of the errors raised by byzer-agents."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as they are (args and attributes), whatever the subclass's __init__ takes, so an
        # error raised in a Ray worker reaches the driver as itself, not as an unpicklable blob.
        return _rebuild_error, (type(self), self.args, self.__dict__)


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python


def _rebuild_error(
    cls: type[ByzerAgentsError], args: tuple[Any, ...], state: dict[str, Any]
) -> ByzerAgentsError:
    # BaseException.__new__ refuses a class that also derives from a builtin with its own layout
    # (TimeoutError's OSError): build from the nearest builtin base, as object.__reduce__ would.
    base: Any = cls
    while base.__flags__ & _HEAPTYPE:
        base = base.__base__
    error: ByzerAgentsError = base.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class UserError(ByzerAgentsError):
    """byzer-agents was asked for something that cannot work: a setting, an argument, a call in a
    state that does not allow it. The message names the value and what is allowed. Nothing about
    the model or the network: fixing the call fixes it, and retrying unchanged never will.

    Each concrete class is also the builtin error Python code expects (``ValueError`` for a bad
    value, ``TypeError`` for a wrong kind of thing, ``RuntimeError`` for a wrong moment), so
    ``except ValueError`` keeps working beside ``except ByzerAgentsError``."""


class ConfigurationError(UserError, ValueError):
    """A setting or argument with a value that is not allowed (an unknown backend, a negative
    count, a model name no deployment answers to in a setting that needs one)."""


class ConfigurationTypeError(UserError, TypeError):
    """An argument of a kind that is not allowed (a string where a class is needed, a function
    where a tool must be)."""


class UsageError(UserError, RuntimeError):
    """A call made when it cannot be served: before what it needs exists (a model not yet
    deployed, an optional package not installed), or after the object was closed."""


class ToolDefinitionError(UserError, TypeError):
    """A function or schema cannot become a tool (raised when the tool is defined, not called)."""


class UnsupportedSchemaError(UserError, ValueError):
    """A JSON schema from outside (a ``response_format``, a tool's parameters) that is refused
    before anything walks it: nested too deep, too large to compile into a grammar, a ``$ref`` that
    is not local, does not resolve or loops, or, under ``strict``, a keyword constrained decoding
    does not enforce. ``limit`` names which (``"depth"``, ``"size"``, ``"$ref"``, ``"keyword"``)."""

    def __init__(self, message: str, *, limit: str) -> None:
        self.limit = limit
        super().__init__(message)


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


class FinetuneError(UserError, ValueError):
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


class PromptTemplateError(UserError, ValueError):
    """A prompt template failed to compile or to render (a syntax error, a missing variable)."""


class ContextLengthError(UserError, ValueError):
    """A request does not fit the model's context length: its prompt, or its prompt and
    ``max_tokens``, are more tokens than the model (or ``setup_max_model_length``) allows."""

    def __init__(
        self, message: str, *, prompt_tokens: int, max_tokens: int | None, limit: int
    ) -> None:
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.limit = limit
        super().__init__(message)


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


class JSONTooLargeError(NoJSONFoundError):
    """A model's answer held JSON too long or nested too deep to read; ``reason`` says which,
    with the limit. Read as no answer (the loop feeds it back to the model), never at a cost
    beyond what writing the reply cost (``core/parsing.py``)."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        start = text[: self._QUOTED_CHARS] + ("..." if len(text) > self._QUOTED_CHARS else "")
        ByzerAgentsError.__init__(self, f"no JSON value read: {reason} (text starting {start!r})")


class ModelNotFoundError(ByzerAgentsError, LookupError):
    """No deployment answers to the model name asked for."""

    def __init__(self, model: str | None, available: list[str]) -> None:
        self.model = model
        self.available = available
        super().__init__(
            f"no model named {model!r}; available: {available or 'none (deploy one first)'}"
        )


class NoDefaultModelError(ModelNotFoundError):
    """No model was named and this LLM cannot pick one: none is set as the default and there is
    not exactly one to choose from."""

    def __init__(self, available: list[str]) -> None:
        self.model = None
        self.available = available
        if available:
            fix = (
                f"there are {len(available)}: {available}; pass model=NAME, or set one once with "
                "LLM(default_model=NAME) or, on a ByzerLLM, llm.setup_default_model_name(NAME)"
            )
        else:
            fix = "there are none: deploy one first (llm.deploy(...) or `byzer-agents deploy`)"
        LookupError.__init__(self, f"no model was named and no default model is set; {fix}")


class TraceStoreError(UserError, ValueError):
    """A trace database that cannot be used: not a SQLite file, another application's database,
    or one written by a newer byzer-agents. ``path`` names the file."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"trace database {path}: {message}")


class UnprotectedServerError(UserError, ValueError):
    """The server was asked to listen beyond loopback with no API key, where anyone who can
    reach the address could call the models; ``host`` is the address asked for."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"refusing to serve on {host} without an API key: anyone who can reach this machine "
            "could call the models. Set BYZER_AGENTS_API_KEY (or pass --api-key), or pass "
            "--allow-unauthenticated-network (allow_unauthenticated_network=True in Python) to "
            "serve without one"
        )


class ClusterConnectionError(ByzerAgentsError, ConnectionError):
    """The Ray cluster could not be joined, and waiting would not help: nothing answers at
    ``address``, or this process cannot reach the local cluster (the message says why)."""

    def __init__(self, address: str, message: str) -> None:
        self.address = address
        super().__init__(f"cannot join the Ray cluster at {address}: {message}")


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


class ModelStreamTooLongError(ModelStreamBrokenError):
    """A stream went on past its limit (the request's ``max_tokens``, or the character cap of
    ``chat/streaming.py``) and was stopped there; ``partial`` holds the text up to the limit."""


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
    """No attempt produced tool calls that all validated (unknown tools, bad arguments, no call
    where one was required). ``attempts`` holds each raw output and error.

    Calls that did validate ran once, and are not lost: ``tool_results`` holds their outcomes
    (``chat.results.ToolResult``), in the order they ran. A tool that raised or timed out is not
    this error: it is reported on the response (``LLMResponse.tool_errors``)."""

    what = "tool calls"

    def __init__(
        self, model: str, attempts: list[Attempt], *, tool_results: Sequence[Any] = ()
    ) -> None:
        super().__init__(model, attempts)
        self.tool_results = list(tool_results)


class ToolExecutionError(ByzerAgentsError, RuntimeError):
    """A tool call validated and ran, and the tool raised. The call is final: the loop does not
    run it again (a tool declares itself safe to retry with ``@tool(retries=n)``).

    ``reason`` is what the tool raised, as ``"ZeroDivisionError: division by zero"``; the
    exception itself is ``__cause__`` (in the process that ran the tool)."""

    def __init__(self, tool_name: str, call_id: str, reason: str) -> None:
        self.tool_name = tool_name
        self.call_id = call_id
        self.reason = reason
        super().__init__(self._describe())

    def _describe(self) -> str:
        return f"tool {self.tool_name!r} (call {self.call_id}) raised {self.reason}"


class ToolTimeoutError(ToolExecutionError, TimeoutError):
    """A tool call did not return within the tool timeout. It is not started again.

    ``still_running``: the call was not stopped (a function runs on in its thread until it
    returns, and its effects may still happen); ``False`` when it was cancelled (an async tool)
    or never started (every tool worker was busy)."""

    def __init__(
        self,
        tool_name: str,
        call_id: str,
        *,
        timeout_s: float | None,
        still_running: bool,
        started: bool = True,
    ) -> None:
        self.timeout_s = timeout_s
        self.still_running = still_running
        self.started = started
        if not started:
            reason = f"waited {timeout_s} s for a free tool worker and was not run"
        elif still_running:
            reason = f"timed out after {timeout_s} s and may still be running"
        else:
            reason = f"timed out after {timeout_s} s and was cancelled"
        super().__init__(tool_name, call_id, reason)

    def _describe(self) -> str:
        return f"tool {self.tool_name!r} (call {self.call_id}) {self.reason}"


class ModelRetry(ByzerAgentsError):
    """Raised by a tool to ask the model to call it again differently: ``message`` goes back to
    the model as the call's error, and the call is not final (the model may make it again)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class ToolRetryRequestedError(ToolExecutionError):
    """A tool raised ``ModelRetry``: the call is not final; the model reads ``reason``."""

    def _describe(self) -> str:
        return f"tool {self.tool_name!r} asks to be called again: {self.reason}"


class ToolCallDeniedError(ToolExecutionError):
    """A tool needing approval was not approved and did not run (``reason`` says why)."""

    def _describe(self) -> str:
        return f"tool {self.tool_name!r} (call {self.call_id}) was not run: {self.reason}"


class _RunLimitError(ByzerAgentsError, RuntimeError):
    """An agent run stopped at a limit: ``steps`` (``agents.results.Step``) and ``usage`` are
    what it did until then."""

    def __init__(self, message: str, *, steps: Sequence[Any], usage: Any) -> None:
        self.steps = list(steps)
        self.usage = usage
        super().__init__(message)


class MaxStepsExceededError(_RunLimitError):
    """An agent run took ``max_steps`` model turns without a valid final output."""


class UsageLimitExceededError(_RunLimitError):
    """An agent run would go past one of its ``UsageLimits`` (tokens, requests, tool calls)."""
