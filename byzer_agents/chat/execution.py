"""Run validated tool calls: concurrently (threads for sync, gather for async), in call order,
with a time limit; a tool that raises or times out becomes an error result, never an exception."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Sequence

from byzer_agents.chat.results import ToolCall, ToolResult
from byzer_agents.chat.tracing import RunTracer

__all__ = ["arun_tools", "run_tools"]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _invoke(call: ToolCall) -> ToolResult:
    start = time.perf_counter()
    try:
        value = call.tool.invoke(call.arguments)
    except Exception as exc:
        return ToolResult(call, error=_describe(exc), latency_s=time.perf_counter() - start)
    return ToolResult(call, value=value, latency_s=time.perf_counter() - start)


def _record(results: Sequence[ToolResult], tracer: RunTracer, parent_id: str | None) -> None:
    for result in results:
        tracer.tool_call(
            tool_name=result.call.name,
            arguments=result.call.raw_arguments,
            result=result.value,
            error=result.error,
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
    if len(calls) == 1 and timeout_s is None:
        results = [_invoke(calls[0])]
    else:
        futures = [_shared_pool().submit(_invoke, call) for call in calls]
        concurrent.futures.wait(futures, timeout=timeout_s)
        results = []
        for call, future in zip(calls, futures, strict=True):
            if future.done():
                results.append(future.result())
            else:
                future.cancel()  # one still queued never starts; a running one is left to finish
                timeout = f"timed out after {timeout_s} s"
                results.append(ToolResult(call, error=timeout, latency_s=timeout_s or 0.0))
    _record(results, tracer, parent_id)
    return results


async def arun_tools(
    calls: Sequence[ToolCall],
    *,
    timeout_s: float | None,
    tracer: RunTracer,
    parent_id: str | None,
) -> list[ToolResult]:
    async def one(call: ToolCall) -> ToolResult:
        start = time.perf_counter()
        try:
            value = await asyncio.wait_for(call.tool.ainvoke(call.arguments), timeout_s)
        except asyncio.TimeoutError:
            return ToolResult(
                call, error=f"timed out after {timeout_s} s", latency_s=timeout_s or 0
            )
        except Exception as exc:
            return ToolResult(call, error=_describe(exc), latency_s=time.perf_counter() - start)
        return ToolResult(call, value=value, latency_s=time.perf_counter() - start)

    results = list(await asyncio.gather(*(one(call) for call in calls)))
    _record(results, tracer, parent_id)
    return results
