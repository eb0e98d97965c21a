"""Our tools as an MCP server: each ``Tool``'s name, description and JSON Schema are listed, a
call's arguments are validated by the Tool before its function runs, and whatever goes wrong (bad
arguments, naming each field; an unknown tool; the function raising) comes back as an MCP tool
error (``isError`` with the message), never as a protocol failure, so the calling model can read it.

Served over stdio (``serve(tools)``: what an MCP host starts as a subprocess) or streamable HTTP
(``serve(tools, transport="http")``, or ``http_app`` to mount the ASGI app yourself).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any, Literal, cast

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from pydantic_core import to_jsonable_python

from byzer_agents.exceptions import ConfigurationError, ToolArgumentsError
from byzer_agents.tools import Tool, ToolLike, ToolSet

__all__ = ["Transport", "http_app", "load_tools", "mcp_server", "serve"]

logger = logging.getLogger(__name__)

Transport = Literal["stdio", "http"]
_TRANSPORTS: tuple[Transport, ...] = ("stdio", "http")
DEFAULT_NAME = "byzer-agents"
DEFAULT_PORT = 8765
MCP_PATH = "/mcp"


def mcp_server(tools: Iterable[ToolLike] | ToolLike, *, name: str = DEFAULT_NAME) -> Server[Any]:
    """An MCP (lowlevel) ``Server`` offering ``tools``: a list or ToolSet of tools, functions or
    schema definitions, or a single one."""
    toolset = _as_toolset(tools)
    listed = [_mcp_tool(tool) for tool in toolset]

    async def list_tools(_context: Any, _params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(_context: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return await _run(toolset, params.name, params.arguments)

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


def http_app(
    tools: Iterable[ToolLike] | ToolLike,
    *,
    name: str = DEFAULT_NAME,
    host: str = "127.0.0.1",
    path: str = MCP_PATH,
) -> Any:
    """The streamable-HTTP ASGI (Starlette) app serving ``tools`` at ``path``. ``host`` is where it
    will listen: on loopback, requests naming another host are refused (DNS rebinding)."""
    return mcp_server(tools, name=name).streamable_http_app(streamable_http_path=path, host=host)


def serve(
    tools: Iterable[ToolLike] | ToolLike,
    transport: Transport = "stdio",
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    name: str = DEFAULT_NAME,
) -> None:
    """Serve ``tools`` over MCP until the client goes (stdio) or the process is stopped (http, at
    ``http://HOST:PORT/mcp``). Over stdio, stdout carries the protocol: a tool's prints go to
    stderr while it serves."""
    if transport not in _TRANSPORTS:
        raise ConfigurationError(f"transport must be one of {list(_TRANSPORTS)}; got {transport!r}")
    if transport == "stdio":
        server = mcp_server(tools, name=name)
        anyio.run(_serve_stdio, server)
        return
    import uvicorn

    app = http_app(tools, name=name, host=host)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def load_tools(target: str) -> ToolSet:
    """The tools that ``module:attribute`` names (a list or ToolSet of tools, or one tool), the
    module imported from the current directory as well as the installed packages."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"name the tools as MODULE:ATTRIBUTE (e.g. 'my_tools:tools'); got {target!r}"
        )
    if os.getcwd() not in sys.path:  # as `python -m` would: the project the user is in
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as missing:
        if missing.name is None or not module_name.startswith(missing.name):
            raise  # the module is there, and something it imports is not
        raise ConfigurationError(
            f"no module named {module_name!r} here ({os.getcwd()}) or among the installed "
            f"packages, for the tools {target!r}"
        ) from None
    try:
        value = getattr(module, attribute)
    except AttributeError:
        public = [key for key in vars(module) if not key.startswith("_")]
        raise ConfigurationError(
            f"module {module_name!r} has no attribute {attribute!r}; it has {public}"
        ) from None
    return _as_toolset(value)


# --- internals --------------------------------------------------------------------------------


async def _serve_stdio(server: Server[Any]) -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def _as_toolset(tools: Any) -> ToolSet:
    if isinstance(tools, ToolSet):
        return tools
    if isinstance(tools, (list, tuple)):
        return ToolSet(cast(Iterable[ToolLike], tools))
    return ToolSet([tools])


def _mcp_tool(tool: Tool[..., Any]) -> types.Tool:
    return types.Tool(name=tool.name, description=tool.description, input_schema=tool.parameters)


async def _run(
    toolset: ToolSet, name: str, arguments: dict[str, Any] | None
) -> types.CallToolResult:
    tool = toolset.get(name)
    if tool is None:
        return _error(f"unknown tool {name!r}; this server has {toolset.names}")
    try:
        validated = tool.validate(arguments)
    except ToolArgumentsError as exc:
        return _error(str(exc))
    try:
        value = await tool.acall_validated(validated)
    except Exception as exc:  # the tool's failure is the caller's answer, not the server's
        logger.info("tool %r raised %s", tool.name, type(exc).__name__)
        return _error(f"{type(exc).__name__}: {exc}")
    return _result(value)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )


def _result(value: Any) -> types.CallToolResult:
    """Text for every client; a dict value also as structured content (MCP's is an object)."""
    jsonable = to_jsonable_python(value, fallback=str)
    text = jsonable if isinstance(jsonable, str) else json.dumps(jsonable, ensure_ascii=False)
    structured = jsonable if isinstance(jsonable, dict) else None
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured
    )
