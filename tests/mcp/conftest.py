"""An MCP server of ``demo_tools`` two ways: the CLI as a stdio subprocess, and streamable HTTP
on a free loopback port (uvicorn in a thread); and a client of each."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from byzer_agents.mcp import MCPClient, http_app
from tests.chat.conftest import scripted, trace_store  # noqa: F401 - the loop's fixtures
from tests.mcp import demo_tools

SERVE_DEMO_TOOLS = ["-m", "byzer_agents.cli", "mcp", "serve", "tests.mcp.demo_tools:tools"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def stdio_client() -> Iterator[MCPClient]:
    """Our client of ``byzer-agents mcp serve tests.mcp.demo_tools:tools`` (stdio)."""
    with MCPClient.stdio(sys.executable, [*SERVE_DEMO_TOOLS, "--transport", "stdio"]) as client:
        yield client


@pytest.fixture(scope="session")
def http_url() -> Iterator[str]:
    """The URL of the demo tools served over streamable HTTP in this process."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        http_app(demo_tools.tools), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the MCP HTTP server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def http_client(http_url: str) -> Iterator[MCPClient]:
    """Our client of the HTTP server."""
    with MCPClient.http(http_url, headers={"Authorization": "Bearer s3cret"}) as client:
        yield client


@pytest.fixture(params=["stdio", "http"])
def client(request: pytest.FixtureRequest) -> MCPClient:
    """Each transport in turn."""
    return request.getfixturevalue(f"{request.param}_client")
