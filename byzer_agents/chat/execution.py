"""Run validated tool calls, each at most once per chat call: concurrently (threads for sync,
gather for async), in call order, with a time limit.

A tool that raises or times out becomes a result carrying a ``ToolExecutionError`` (or
``ToolTimeoutError``), never an exception. A call that ran is final: ``ToolOutcomes`` remembers
it by tool and validated arguments, so a retry that repeats it reuses its outcome, and a timed-out
call, which may still be running, is never started a second time. Only a tool that declares
itself safe to repeat (``@tool(retries=n)``) is run again, by the tool itself. Two outcomes are
not final, and the model may make the call again: the tool raised ``ModelRetry`` (a
``ToolRetryRequestedError``), or its call was refused approval (a ``ToolCallDeniedError``,
decided here by ``decide`` / ``adecide`` before anything runs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from pydantic_core import to_jsonable_python

from byzer_agents.chat.effects import Approver
from byzer_agents.chat.results import ToolCall, ToolResult
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.exceptions import (
    ConfigurationTypeError,
    ModelRetry,
    ToolCallDeniedError,
    ToolExecutionError,
    ToolRetryRequestedError,
    ToolTimeoutError,
)
from byzer_agents.tools import RunContext

__all__ = ["ToolOutcomes", "adecide", "arun_tools", "decide", "is_final", "run_tools"]

NO_APPROVER = (
    "this tool needs a person's approval and no approver was given "
    "(pass approve= to the Agent or to its run)"
)


def is_final(result: ToolResult) -> bool:
    """Whether a call's outcome stands for good: not a ``ModelRetry`` and not a refusal."""
    return not isinstance(result.error, ToolRetryRequestedError | ToolCallDeniedError)


class ToolOutcomes:
    """The outcome of every tool call that ran in one chat call, keyed by what makes two calls
    the same (the tool, and its validated arguments), in the order they ran."""

    def __init__(self) -> None:
        self._by_identity: dict[tuple[str, str], ToolResult] = {}

    def not_yet_run(self, calls: Sequence[ToolCall]) -> list[ToolCall]:
        """The calls to run: those without a final outcome, each distinct call once."""
        fresh: dict[tuple[str, str], ToolCall] = {}
        for call in calls:
            identity = _identity(call)
            known = self._by_identity.get(identity)
            if known is None or not is_final(known):
                fresh.setdefault(identity, call)
        return list(fresh.values())

    def record(self, results: Sequence[ToolResult]) -> None:
        """Keep the outcomes of calls that ran: a final outcome stays; one that is not final
        (``is_final``) gives way to the call's next outcome."""
        for result in results:
            identity = _identity(result.call)
            known = self._by_identity.get(identity)
            if known is None or not is_final(known):
                self._by_identity.pop(identity, None)
                self._by_identity[identity] = result

    def of(self, call: ToolCall) -> ToolResult | None:
        """The outcome of ``call``, or of the identical call that ran before it."""
        return self._by_identity.get(_identity(call))

    @property
    def results(self) -> list[ToolResult]:
        """Every outcome kept, in the order the calls ran."""
        return list(self._by_identity.values())


def _identity(call: ToolCall) -> tuple[str, str]:
    try:
        arguments = json.dumps(to_jsonable_python(call.arguments), sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        arguments = repr(call.arguments)  # validated dicts keep their fields' order
    return call.name, arguments


def _failure(call: ToolCall, exc: Exception) -> ToolExecutionError:
    if isinstance(exc, ModelRetry):
        return ToolRetryRequestedError(call.name, call.id, exc.message)
    error = ToolExecutionError(call.name, call.id, f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _context_of(call: ToolCall, context: RunContext[Any] | None) -> RunContext[Any] | None:
    if context is None or call.tool.context_parameter is None:
        return context
    return dataclasses.replace(context, tool_call_id=call.id)


def _invoke(call: ToolCall, context: RunContext[Any] | None = None) -> ToolResult:
    start = time.perf_counter()
    try:
        value = call.tool.call_validated(call.arguments, _context_of(call, context))
    except Exception as exc:
        return ToolResult(call, error=_failure(call, exc), latency_s=time.perf_counter() - start)
    return ToolResult(call, value=value, latency_s=time.perf_counter() - start)


def _record(results: Sequence[ToolResult], tracer: RunTracer, parent_id: str | None) -> None:
    for result in results:
        tracer.tool_call(
            tool_name=result.call.name,
            arguments=result.call.raw_arguments,
            result=result.value,
            error=str(result.error) if result.error is not None else None,
            latency_s=result.latency_s,
            parent_id=parent_id,
        )


_POOL_SIZE = 32
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _shared_pool() -> concurrent.futures.ThreadPoolExecutor:
    """One pool for every call: starting threads per call cost up to 1 ms. A tool that outlives
    its timeout keeps its worker busy until it returns; the pool is sized to absorb a few."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=_POOL_SIZE, thread_name_prefix="byzer-agents-tool"
            )
        return _pool


def run_tools(
    calls: Sequence[ToolCall],
    *,
    timeout_s: float | None,
    tracer: RunTracer,
    parent_id: str | None,
    context: RunContext[Any] | None = None,
) -> list[ToolResult]:
    """Run ``calls`` at once on the shared pool, each traced; a call past ``timeout_s`` is
    reported as timed out (it runs on if it started), never started again. ``context`` goes to
    the tools that take a ``RunContext``."""
    if len(calls) == 1 and timeout_s is None:
        results = [_invoke(calls[0], context)]
    else:
        futures = [_shared_pool().submit(_invoke, call, context) for call in calls]
        concurrent.futures.wait(futures, timeout=timeout_s)
        results = []
        for call, future in zip(calls, futures, strict=True):
            if future.done():
                results.append(future.result())
                continue
            # One still queued never starts; a running one cannot be stopped, and runs on.
            never_started = future.cancel()
            error = ToolTimeoutError(
                call.name,
                call.id,
                timeout_s=timeout_s,
                still_running=not never_started,
                started=not never_started,
            )
            results.append(ToolResult(call, error=error, latency_s=timeout_s or 0.0))
    _record(results, tracer, parent_id)
    return results


async def arun_tools(
    calls: Sequence[ToolCall],
    *,
    timeout_s: float | None,
    tracer: RunTracer,
    parent_id: str | None,
    context: RunContext[Any] | None = None,
) -> list[ToolResult]:
    """``run_tools`` without blocking the event loop."""

    async def one(call: ToolCall) -> ToolResult:
        start = time.perf_counter()
        # asyncio.wait, not wait_for: a tool that itself raises TimeoutError has not timed out.
        running = asyncio.ensure_future(
            call.tool.acall_validated(call.arguments, _context_of(call, context))
        )
        try:
            done, _ = await asyncio.wait({running}, timeout=timeout_s)
        finally:
            if not running.done():
                running.cancel()
        if not done:
            # An async tool is cancelled where it awaits; a sync one runs on in its thread.
            error = ToolTimeoutError(
                call.name, call.id, timeout_s=timeout_s, still_running=not call.tool.is_async
            )
            return ToolResult(call, error=error, latency_s=timeout_s or 0.0)
        try:
            value: Any = running.result()
        except Exception as exc:
            return ToolResult(
                call, error=_failure(call, exc), latency_s=time.perf_counter() - start
            )
        return ToolResult(call, value=value, latency_s=time.perf_counter() - start)

    results = list(await asyncio.gather(*(one(call) for call in calls)))
    _record(results, tracer, parent_id)
    return results


def decide(calls: Sequence[ToolCall], approve: Approver | None) -> list[str | None]:
    """Ask ``approve`` about each call, one at a time (a person may be answering): ``None``
    where it may run, else why not. Without an approver every call is refused, saying so."""
    return [_reason(call, approve, approve(call) if approve else None) for call in calls]


async def adecide(calls: Sequence[ToolCall], approve: Approver | None) -> list[str | None]:
    """``decide`` for asyncio: an async approver is awaited, a sync one runs in a thread (it
    may wait on ``input()``)."""
    reasons: list[str | None] = []
    for call in calls:
        answer: Any = None
        if approve is not None:
            if inspect.iscoroutinefunction(approve):
                answer = await approve(call)
            else:
                answer = await asyncio.to_thread(approve, call)
                if inspect.isawaitable(answer):
                    answer = await answer
        reasons.append(_reason(call, approve, answer))
    return reasons


def _reason(call: ToolCall, approve: Approver | None, answer: Any) -> str | None:
    if approve is None:
        return NO_APPROVER
    if inspect.isawaitable(answer):
        close = getattr(answer, "close", None)
        if close is not None:
            close()
        raise ConfigurationTypeError(
            f"the approver of tool {call.name!r} is async; run the agent with run_async"
        )
    if answer is True:
        return None
    if isinstance(answer, str) and answer.strip():
        return answer
    return "the call was not approved"
