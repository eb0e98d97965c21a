"""``MCPClient``: a session with one MCP server, a stdio subprocess or a streamable-HTTP endpoint,
whose tools come back as our ``Tool``s, for ``llm.chat_oai(tools=client.tools,
execute_tool=True)`` or an Agent.

The MCP SDK is async and its session must be opened and closed by one task, so each client runs
its session on an event loop of its own, in a background thread: the tools are plain functions
that any thread (a script, the chat loop's workers, ``asyncio.to_thread``) may call. ``with`` or
``async with`` opens the session and closes it (and the server's subprocess) on the way out;
a client left open is closed when it is collected or when the interpreter exits.

Secrets stay out of sight: the environment given to a subprocess and the HTTP headers appear
in no repr and no log line, only their names.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from byzer_agents.exceptions import UsageError
from byzer_agents.mcp.results import tool_value
from byzer_agents.mcp.session_thread import SessionThread
from byzer_agents.tools import Tool, ToolSet

if TYPE_CHECKING:
    from mcp.client.stdio import StdioServerParameters

__all__ = ["MCPClient"]

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 30.0
_HTTP_TIMEOUT_S = 30.0
_HTTP_READ_TIMEOUT_S = 300.0


class MCPClient:
    """A session with one MCP server; ``tools`` are its tools as byzer-agents ``Tool``s.

    Make one with ``MCPClient.stdio(command, args, env=...)`` or ``MCPClient.http(url,
    headers=...)``, then use it in ``with`` (or ``async with``)::

        with MCPClient.stdio("python", ["-m", "my_server"]) as client:
            llm.chat_oai(question, tools=client.tools, execute_tool=True)
    """

    def __init__(
        self,
        *,
        stdio: StdioServerParameters | None = None,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        call_timeout_s: float | None = None,
        connect_timeout_s: float = _CONNECT_TIMEOUT_S,
    ) -> None:
        if (stdio is None) == (url is None):
            raise UsageError("an MCPClient speaks to one server: give stdio parameters or a url")
        self._stdio = stdio
        self._url = url
        self._headers = dict(headers or {})
        self._call_timeout_s = call_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._thread: SessionThread | None = None
        self._tools = ToolSet()

    @classmethod
    def stdio(
        cls,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        call_timeout_s: float | None = None,
        connect_timeout_s: float = _CONNECT_TIMEOUT_S,
    ) -> MCPClient:
        """A client that starts ``command args`` and speaks MCP over its stdin/stdout. ``env``
        is added to the few variables the SDK passes on (PATH, HOME, ...), not to all of ours."""
        from mcp.client.stdio import StdioServerParameters

        parameters = StdioServerParameters(
            command=command, args=list(args), env=dict(env) if env else None, cwd=cwd
        )
        return cls(
            stdio=parameters, call_timeout_s=call_timeout_s, connect_timeout_s=connect_timeout_s
        )

    @classmethod
    def http(
        cls,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        call_timeout_s: float | None = None,
        connect_timeout_s: float = _CONNECT_TIMEOUT_S,
    ) -> MCPClient:
        """A client of the streamable-HTTP MCP endpoint at ``url`` (``http://host:port/mcp``),
        sending ``headers`` (an ``Authorization`` token, ...) with every request."""
        return cls(
            url=url,
            headers=headers,
            call_timeout_s=call_timeout_s,
            connect_timeout_s=connect_timeout_s,
        )

    # --- the session --------------------------------------------------------------------------

    def open(self) -> MCPClient:
        """Connect, and read the server's tools; raises MCPConnectionError when it cannot."""
        if self._thread is not None:
            return self
        thread = SessionThread(self._connect, describe=self._describe())
        try:
            thread.start(timeout_s=self._connect_timeout_s)
            listed = thread.run(_list_tools(thread.session), timeout_s=self._connect_timeout_s)
            self._tools = ToolSet(self._as_tool(definition) for definition in listed)
        except BaseException:
            thread.stop()
            raise
        self._thread = thread
        self._finalizer = weakref.finalize(self, thread.stop)
        logger.info("connected to MCP server %s: tools %s", self._describe(), self._tools.names)
        return self

    def close(self) -> None:
        """End the session (and stop the server's subprocess); the tools can no longer be called."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._finalizer.detach()
            thread.stop()

    @property
    def tools(self) -> ToolSet:
        """The server's tools, as listed when the session opened."""
        self._require_open()
        return self._tools

    def call(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Call the server's tool ``name`` as is (no validation here: the server's own) and return
        its value; raises MCPToolError when the server answers with a tool error."""
        thread = self._require_open()
        result = thread.run(self._call_tool(thread, name, arguments), timeout_s=None)
        return tool_value(name, result)

    async def acall(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """``call`` for asyncio: awaits the call running on the session's loop (cancelling the
        await cancels the request)."""
        thread = self._require_open()
        result = await asyncio.wrap_future(thread.submit(self._call_tool(thread, name, arguments)))
        return tool_value(name, result)

    def __enter__(self) -> MCPClient:
        return self.open()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> MCPClient:
        return await asyncio.to_thread(self.open)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        state = "open" if self._thread is not None else "closed"
        return f"MCPClient({self._describe()}, {state})"

    # --- internals ----------------------------------------------------------------------------

    def _describe(self) -> str:
        """Where the server is, without secrets: env and header names only, no URL query."""
        if self._stdio is not None:
            command = " ".join([self._stdio.command, *self._stdio.args])
            env = f", env={sorted(self._stdio.env)}" if self._stdio.env else ""
            return f"stdio: {command!r}{env}"
        parts = urlsplit(str(self._url))
        host = parts.netloc.rpartition("@")[2]  # no user:password
        url = urlunsplit((parts.scheme, host, parts.path, "", ""))
        headers = f", headers={sorted(self._headers)}" if self._headers else ""
        return f"http: {url}{headers}"

    async def _call_tool(
        self, thread: SessionThread, name: str, arguments: Mapping[str, Any] | None
    ) -> Any:
        return await thread.session.call_tool(
            name, dict(arguments or {}), read_timeout_seconds=self._call_timeout_s
        )

    def _require_open(self) -> SessionThread:
        if self._thread is None:
            raise UsageError(
                f"the MCP session with {self._describe()} is not open; use `with client:` "
                "(or `async with`), or call client.open() first"
            )
        return self._thread

    async def _connect(self, stack: AsyncExitStack) -> Any:
        """Open the transport and the session on ``stack`` (entered and left by one task)."""
        from mcp import ClientSession

        if self._stdio is not None:
            from mcp.client.stdio import stdio_client

            streams = await stack.enter_async_context(stdio_client(self._stdio))
        else:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            # The SDK's own timeouts: a server may hold a response stream open for minutes.
            timeout = httpx2.Timeout(_HTTP_TIMEOUT_S, read=_HTTP_READ_TIMEOUT_S)
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=self._headers, timeout=timeout)
            )
            streams = await stack.enter_async_context(
                streamable_http_client(str(self._url), http_client=http)
            )
        read_stream, write_stream = streams[0], streams[1]
        session = await stack.enter_async_context(ClientSession(read_stream, write_stream))
        await session.initialize()
        return session

    def _as_tool(self, definition: Any) -> Tool[..., Any]:
        name = definition.name

        def call_server(**arguments: Any) -> Any:
            return self.call(name, arguments)

        call_server.__name__ = call_server.__qualname__ = name
        schema = dict(definition.input_schema or {"type": "object", "properties": {}})
        return Tool.from_schema(
            {
                "name": name,
                "description": definition.description or definition.title or "",
                "parameters": schema,
            },
            fn=call_server,
        )


async def _list_tools(session: Any) -> list[Any]:
    """Every tool the server lists, over all its pages."""
    import mcp_types as types

    listed: list[Any] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        listed.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return listed
