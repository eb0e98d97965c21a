"""Run validated tool calls, each at most once per chat call: concurrently (threads for sync,
gather for async), in call order, with a time limit.

A tool that raises or times out becomes a result carrying a ``ToolExecutionError`` (or
``ToolTimeoutError``), never an exception. A call that ran is final: ``ToolOutcomes`` remembers
it by tool and validated arguments, so a retry that repeats it reuses its outcome, and a timed-out
call, which may still be running, is never started a second time. Only a tool that declares
itself safe to repeat (``@tool(retries=n)``) is run again, by the tool itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from pydantic_core import to_jsonable_python

from byzer_agents.chat.results import ToolCall, ToolResult
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.exceptions import ToolExecutionError, ToolTimeoutError

__all__ = ["ToolOutcomes", "arun_tools", "run_tools"]


class ToolOutcomes:
    """The outcome of every tool call that ran in one chat call, keyed by what makes two calls
    the same (the tool, and its validated arguments), in the order they ran."""

    def __init__(self) -> None:
        self._by_identity: dict[tuple[str, str], ToolResult] = {}

    def not_yet_run(self, calls: Sequence[ToolCall]) -> list[ToolCall]:
        """The calls to run: those not run before, each distinct call once."""
        fresh: dict[tuple[str, str], ToolCall] = {}
        for call in calls:
            identity = _identity(call)
            if identity not in self._by_identity:
                fresh.setdefault(identity, call)
        return list(fresh.values())

    def record(self, results: Sequence[ToolResult]) -> None:
        """Keep the outcomes of calls that ran (the first outcome of each call stays)."""
        for result in results:
            self._by_identity.setdefault(_identity(result.call), result)

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
    error = ToolExecutionError(call.name, call.id, f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _invoke(call: ToolCall) -> ToolResult:
    start = time.perf_counter()
    try:
        value = call.tool.call_validated(call.arguments)
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
) -> list[ToolResult]:
    """Run ``calls`` at once on the shared pool, each traced; a call past ``timeout_s`` is
    reported as timed out (it runs on if it started), never started again."""
    if len(calls) == 1 and timeout_s is None:
        results = [_invoke(calls[0])]
    else:
        futures = [_shared_pool().submit(_invoke, call) for call in calls]
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
) -> list[ToolResult]:
    """``run_tools`` without blocking the event loop."""

    async def one(call: ToolCall) -> ToolResult:
        start = time.perf_counter()
        # asyncio.wait, not wait_for: a tool that itself raises TimeoutError has not timed out.
        running = asyncio.ensure_future(call.tool.acall_validated(call.arguments))
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
