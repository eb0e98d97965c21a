"""The one retry policy for requests to OpenAI-compatible endpoints, and the record of every
request it sends (``CallAttempt``), written with tenacity.

Retried: 429 and 5xx answers, connection errors, timeouts, and answers cut off before they were
complete. Never retried: any other 4xx, since the same request would be refused again. Between
attempts the server's own ``Retry-After`` is honoured (``retry-after-ms``, or ``retry-after`` in
seconds or as an HTTP date); without one the wait is exponential backoff with jitter. No wait is
longer than ``max_wait_s``: a server asking for more ends the retries at once, so the caller (or a
fallback deployment) can act instead of sleeping. The openai SDK's own retries are switched off
(``max_retries=0``) wherever this policy is used, so there is one policy, not two multiplied.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import openai
import tenacity

from byzer_agents.exceptions import CallAttempt, ConfigurationError

__all__ = [
    "TRANSPORT_ERRORS",
    "AttemptRecorder",
    "RetryPolicy",
    "is_retryable",
    "retry_after_s",
    "status_code_of",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)


def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP library's own errors (openai 3.x uses httpx2; 1.x and 2.x, httpx). The SDK wraps
    them only while it sends a request: a stream that breaks while it is read raises them raw."""
    errors = []
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


TRANSPORT_ERRORS = _transport_errors()


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a SaaS request is retried (429, 5xx, connection errors)."""

    retries: int = 2
    """Attempts after the first; 0: one request only."""
    backoff_s: float = 0.5
    """The first backoff; it doubles each retry, plus up to as much again of random jitter."""
    max_wait_s: float = 30.0
    """The longest pause between attempts; a longer Retry-After ends the retries."""

    def __post_init__(self) -> None:
        for name, value in (
            ("retries", self.retries),
            ("backoff_s", self.backoff_s),
            ("max_wait_s", self.max_wait_s),
        ):
            if value < 0:
                raise ConfigurationError(f"RetryPolicy.{name} must be 0 or more; got {value}")


def status_code_of(error: BaseException) -> int | None:
    """The HTTP status of an SDK error; None for anything else."""
    return error.status_code if isinstance(error, openai.APIStatusError) else None


def is_retryable(error: BaseException) -> bool:
    """429, 5xx, a lost connection, a timeout, a cut-off answer: yes. Any other error: no."""
    if isinstance(error, openai.APIStatusError):
        return error.status_code == 429 or error.status_code >= 500
    return isinstance(error, (openai.APIConnectionError, *TRANSPORT_ERRORS))


def retry_after_s(error: BaseException, *, now: datetime | None = None) -> float | None:
    """The wait the server asked for, in seconds: ``retry-after-ms`` (OpenAI's), else
    ``retry-after`` as seconds or as an HTTP date; None when it asked for none (or nonsense)."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    seconds = _number(value)
    if seconds is not None or not value:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number >= 0 and number != float("inf") else None


class AttemptRecorder:
    """Runs one call under a RetryPolicy, recording each request it sends as a CallAttempt.

    ``describe`` turns an error into the text recorded and logged for it; it must scrub secrets.
    After a failure the last error is raised as it was, and ``records`` holds every attempt.
    """

    def __init__(
        self, policy: RetryPolicy, *, deployment: str, describe: Callable[[BaseException], str]
    ) -> None:
        self.policy = policy
        self.deployment = deployment
        self.records: list[CallAttempt] = []
        self._describe = describe
        # backoff_s, 2 x backoff_s, 4 x ..., each plus up to backoff_s of jitter.
        self._backoff = tenacity.wait_exponential(
            multiplier=policy.backoff_s, max=policy.max_wait_s
        ) + tenacity.wait_random(0, policy.backoff_s)

    def run(self, send: Callable[[], T]) -> T:
        """Call ``send`` under the policy, recording each attempt."""
        retrying = tenacity.Retrying(**self._tenacity_options())
        return retrying(self._recorded, send)

    async def arun(self, send: Callable[[], Awaitable[T]]) -> T:
        """``run`` for a coroutine function."""
        retrying = tenacity.AsyncRetrying(**self._tenacity_options())
        return await retrying(self._arecorded, send)

    def _tenacity_options(self) -> dict[str, Any]:
        return {
            "stop": self._stop,
            "wait": self._wait,
            "retry": tenacity.retry_if_exception(is_retryable),
            "before_sleep": self._before_sleep,
            "reraise": True,
        }

    def _recorded(self, send: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            result = send()
        except Exception as error:
            self._record(start, error)
            raise
        self._record(start, None)
        return result

    async def _arecorded(self, send: Callable[[], Awaitable[T]]) -> T:
        start = time.perf_counter()
        try:
            result = await send()
        except Exception as error:
            self._record(start, error)
            raise
        self._record(start, None)
        return result

    def _record(self, start: float, error: BaseException | None) -> None:
        self.records.append(
            CallAttempt(
                deployment=self.deployment,
                attempt=len(self.records) + 1,
                latency_s=time.perf_counter() - start,
                error=None if error is None else self._describe(error),
                status_code=None if error is None else status_code_of(error),
            )
        )

    def _asked_wait(self, state: tenacity.RetryCallState) -> float | None:
        error = state.outcome.exception() if state.outcome is not None else None
        return retry_after_s(error) if error is not None else None

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number > self.policy.retries:
            return True
        asked = self._asked_wait(state)
        return asked is not None and asked > self.policy.max_wait_s

    def _wait(self, state: tenacity.RetryCallState) -> float:
        asked = self._asked_wait(state)
        return asked if asked is not None else min(self._backoff(state), self.policy.max_wait_s)

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        pause = state.next_action.sleep if state.next_action is not None else 0.0
        last = self.records[-1]
        self.records[-1] = replace(last, waited_s=pause)
        logger.info(
            "%s: attempt %d of %d failed (%s); retrying in %.2f s",
            self.deployment,
            last.attempt,
            self.policy.retries + 1,
            last.error,
            pause,
        )
