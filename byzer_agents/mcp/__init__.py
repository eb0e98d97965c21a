"""MCP (the Model Context Protocol) both ways: serve our ``@tool`` functions to any MCP host
(``serve``, ``byzer-agents mcp serve module:tools``), and use any MCP server's tools as our
``Tool``s (``MCPClient.stdio(...)`` / ``MCPClient.http(...)``).

Needs the ``mcp`` package (``pip install 'byzer-agents[mcp]'``); ``import byzer_agents`` never
loads it.
"""

try:
    import mcp as _mcp_sdk  # noqa: F401 - here, to name the extra when it is missing
except ModuleNotFoundError as _missing:  # pragma: no cover - the extra is installed in the tests
    raise ModuleNotFoundError(
        f"byzer_agents.mcp needs the MCP SDK ({_missing.name}): pip install 'byzer-agents[mcp]'",
        name=_missing.name,
    ) from None

from byzer_agents.mcp.client import MCPClient
from byzer_agents.mcp.results import MCPConnectionError, MCPToolError
from byzer_agents.mcp.server import Transport, http_app, load_tools, mcp_server, serve

__all__ = [
    "MCPClient",
    "MCPConnectionError",
    "MCPToolError",
    "Transport",
    "http_app",
    "load_tools",
    "mcp_server",
    "serve",
]
