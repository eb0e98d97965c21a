"""``SessionThread``: an event loop in a background thread that holds one async session open,
so sync code in any thread can call into it.

The MCP SDK's transports are anyio context managers: the task that opens one must close it. One
task on this loop opens the session, hands it out, and waits to be told to close; calls are
submitted to the loop from other threads as coroutines of their own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any, TypeVar

from byzer_agents.exceptions import UsageError
from byzer_agents.mcp.results import MCPConnectionError, describe_error

__all__ = ["SessionThread"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_CLOSE_TIMEOUT_S = 10.0


class SessionThread:
    """A daemon thread running an event loop, and the one task on it that keeps a session open
    between ``start`` and ``stop``."""

    def __init__(
        self, connect: Callable[[AsyncExitStack], Awaitable[Any]], *, describe: str
    ) -> None:
        self._connect = connect
        self._describe = describe
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="byzer-agents-mcp", daemon=True
        )
        self._closing = asyncio.Event()
        self._ready: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._owner: concurrent.futures.Future[None] | None = None
        self.session: Any = None
        """The open session (set by ``start``)."""

    def start(self, *, timeout_s: float) -> None:
        """Open the session; raises MCPConnectionError saying why when it cannot within
        ``timeout_s`` seconds."""
        self._thread.start()
        self._owner = asyncio.run_coroutine_threadsafe(self._hold(), self._loop)
        try:
            self.session = self._ready.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise MCPConnectionError(
                f"the MCP server ({self._describe}) did not answer within {timeout_s:g} s"
            ) from None
        except Exception as exc:
            raise MCPConnectionError(
                f"could not connect to the MCP server ({self._describe}): {describe_error(exc)}"
            ) from exc

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coroutine`` on the session's loop; its future, to wait on or cancel."""
        if self._loop.is_closed():
            coroutine.close()
            raise UsageError(f"the MCP session ({self._describe}) is closed")
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise UsageError("an MCP tool was called from its own session's event loop")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def run(self, coroutine: Coroutine[Any, Any, T], *, timeout_s: float | None) -> T:
        """Run ``coroutine`` on the session's loop and wait for its result (cancelled when the
        wait ends early: a timeout, Ctrl-C)."""
        future = self.submit(coroutine)
        try:
            return future.result(timeout=timeout_s)
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        """Close the session (its transport, and a subprocess with it), then the loop."""
        if self._loop.is_closed() or not self._thread.is_alive():
            return
        owner = self._owner
        if owner is not None and not owner.done():
            if self._ready.done():
                self._loop.call_soon_threadsafe(self._closing.set)
            else:
                owner.cancel()  # still connecting: nothing to close gracefully
            if threading.current_thread() is self._thread:
                return  # collected on the loop's own thread: the loop ends the session itself
            try:
                owner.result(timeout=_CLOSE_TIMEOUT_S)
            except concurrent.futures.TimeoutError:
                owner.cancel()
                logger.warning("the MCP session (%s) did not close in time", self._describe)
            except BaseException as exc:  # closing a broken session: say so, and go on
                logger.debug("closing the MCP session (%s): %s", self._describe, exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_CLOSE_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    async def _hold(self) -> None:
        try:
            async with AsyncExitStack() as stack:
                session = await self._connect(stack)
                self._ready.set_result(session)
                await self._closing.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc if isinstance(exc, Exception) else _cancelled(exc))
            raise


def _cancelled(exc: BaseException) -> Exception:
    return MCPConnectionError(f"the connection was stopped ({type(exc).__name__})")
