"""Our tools served over MCP and used back through our client, over stdio (the CLI as a real
subprocess) and streamable HTTP: schemas, a good call, refused arguments, a tool that raises."""

from __future__ import annotations

import asyncio
import sys

import pytest

from byzer_agents import Tool
from byzer_agents.exceptions import ToolArgumentsError, UsageError
from byzer_agents.mcp import MCPClient, MCPConnectionError, MCPToolError
from tests.mcp import demo_tools


def test_the_server_lists_each_tool_with_its_description_and_schema(client: MCPClient) -> None:
    assert client.tools.names == ["divide", "get_weather", "convert_temperature"]
    for served, ours in zip(client.tools, demo_tools.tools, strict=True):
        assert isinstance(served, Tool)
        assert served.description == ours.description
        assert served.parameters == ours.parameters
    to = client.tools.get("convert_temperature").parameters["properties"]["to"]
    assert to["enum"] == ["fahrenheit", "kelvin"]


def test_a_good_call_returns_the_tools_value(client: MCPClient) -> None:
    assert client.tools.get("divide").invoke({"a": 1, "b": 4}) == 0.25
    assert client.tools.get("get_weather").invoke('{"city": "Paris"}') == {
        "city": "Paris",
        "celsius": 18.5,
    }


def test_bad_arguments_are_refused_by_the_server_naming_the_field(client: MCPClient) -> None:
    with pytest.raises(MCPToolError) as refused:
        client.call("convert_temperature", {"celsius": 20, "to": "rankine"})
    assert str(refused.value).startswith("invalid arguments for tool 'convert_temperature': to:")
    assert "'fahrenheit' or 'kelvin'" in str(refused.value)
    with pytest.raises(MCPToolError, match=r"divide.*: b: required argument is missing"):
        client.call("divide", {"a": 1})


def test_the_client_tool_checks_arguments_before_calling(client: MCPClient) -> None:
    with pytest.raises(ToolArgumentsError, match="to: 'rankine' is not one of"):
        client.tools.get("convert_temperature").invoke({"celsius": 20, "to": "rankine"})


def test_a_tool_that_raises_is_a_tool_error_with_its_message(client: MCPClient) -> None:
    with pytest.raises(MCPToolError) as raised:
        client.tools.get("get_weather").invoke({"city": "Atlantis"})
    assert raised.value.tool_name == "get_weather"
    assert str(raised.value) == "LookupError: no weather for 'Atlantis'; known: ['paris', 'tokyo']"
    with pytest.raises(MCPToolError, match="ZeroDivisionError"):
        client.call("divide", {"a": 1, "b": 0})


def test_an_unknown_tool_is_a_tool_error_naming_the_tools(client: MCPClient) -> None:
    with pytest.raises(MCPToolError, match=r"unknown tool 'nope'; this server has \['divide'"):
        client.call("nope", {})


def test_async_callers_use_the_same_tools(client: MCPClient) -> None:
    async def both() -> list[object]:
        return list(
            await asyncio.gather(
                client.tools.get("divide").ainvoke({"a": 9, "b": 3}),
                client.acall("get_weather", {"city": "tokyo"}),
            )
        )

    assert asyncio.run(both()) == [3.0, {"city": "tokyo", "celsius": 24.0}]


def test_secrets_stay_out_of_the_repr(http_client: MCPClient, http_url: str) -> None:
    assert "s3cret" not in repr(http_client)
    assert repr(http_client) == f"MCPClient(http: {http_url}, headers=['Authorization'], open)"
    client = MCPClient.stdio("server", ["--flag"], env={"API_KEY": "hunter2"})
    assert repr(client) == "MCPClient(stdio: 'server --flag', env=['API_KEY'], closed)"


def test_async_with_opens_and_closes_the_session(http_url: str) -> None:
    async def use() -> tuple[float, MCPClient]:
        async with MCPClient.http(http_url) as client:
            return await client.acall("divide", {"a": 1, "b": 2}), client

    value, client = asyncio.run(use())
    assert value == 0.5
    with pytest.raises(UsageError, match="not open"):
        client.tools  # noqa: B018


def test_a_server_that_cannot_start_is_a_connection_error() -> None:
    client = MCPClient.stdio(
        sys.executable, ["-c", "import sys; sys.exit(3)"], connect_timeout_s=20
    )
    with pytest.raises(MCPConnectionError, match="could not connect to the MCP server"):
        client.open()
    assert "closed" in repr(client)


def test_closing_the_client_stops_the_server_subprocess() -> None:
    import psutil

    from tests.mcp.conftest import SERVE_DEMO_TOOLS

    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    with MCPClient.stdio(sys.executable, SERVE_DEMO_TOOLS) as client:
        started = [c for c in me.children(recursive=True) if c.pid not in before]
        assert started and client.call("divide", {"a": 4, "b": 2}) == 2.0
    _, alive = psutil.wait_procs(started, timeout=10)
    assert not alive


def test_secrets_reach_no_log_line(http_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from tests.mcp.conftest import SERVE_DEMO_TOOLS

    caplog.set_level("DEBUG")
    with MCPClient.http(http_url, headers={"Authorization": "Bearer s3cret-h"}) as client:
        client.call("divide", {"a": 1, "b": 1})
    with MCPClient.stdio(sys.executable, SERVE_DEMO_TOOLS, env={"TOKEN": "s3cret-e"}) as client:
        client.call("divide", {"a": 1, "b": 1})
    assert "connected to MCP server" in caplog.text
    assert "s3cret" not in caplog.text
