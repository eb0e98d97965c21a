"""``byzer-agents mcp serve``: its mistakes read as one line (serving itself is driven by the
client in test_round_trip.py, through the ``stdio_client`` fixture)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from byzer_agents.exceptions import ConfigurationError
from byzer_agents.mcp import load_tools


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "byzer_agents.cli", "mcp", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tests.mcp.nowhere:tools"], "error: no module named 'tests.mcp.nowhere' here"),
        (["tests.mcp.demo_tools:nothing"], "has no attribute 'nothing'; it has ["),
        (["tests.mcp.demo_tools"], "name the tools as MODULE:ATTRIBUTE"),
        (["tests.mcp.demo_tools:tools", "--transport", "sse"], "--transport must be 'stdio'"),
    ],
)
def test_a_wrong_target_or_transport_is_one_line(args: list[str], message: str) -> None:
    result = serve(*args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_load_tools_takes_a_list_a_toolset_or_one_tool() -> None:
    assert load_tools("tests.mcp.demo_tools:tools").names == [
        "divide",
        "get_weather",
        "convert_temperature",
    ]
    assert load_tools("tests.mcp.demo_tools:divide").names == ["divide"]
    with pytest.raises(ConfigurationError):
        load_tools(":tools")


def test_serve_over_http_answers_a_client_until_stopped() -> None:
    import time

    from byzer_agents.mcp import MCPClient, MCPConnectionError
    from tests.mcp.conftest import SERVE_DEMO_TOOLS, free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, *SERVE_DEMO_TOOLS, "--transport", "http", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with MCPClient.http(f"http://127.0.0.1:{port}/mcp", connect_timeout_s=5) as client:
                    assert client.call("divide", {"a": 3, "b": 2}) == 1.5
                break
            except MCPConnectionError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=10)
    assert f"over MCP at http://127.0.0.1:{port}/mcp" in stderr
