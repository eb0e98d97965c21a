"""An MCP server's tools in the chat loop (a scripted model): the loop validates and runs them, and
a tool error from the server is a ToolExecutionError, fed back to the model with a refused call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from byzer_agents.exceptions import ToolExecutionError
from byzer_agents.mcp import MCPClient, MCPToolError
from tests.chat.conftest import NATIVE


def calls(*made: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """A native reply making ``made`` calls, numbered c0, c1, ..."""
    return {
        "tool_calls": [
            {"id": f"c{index}", "name": name, "arguments": arguments}
            for index, (name, arguments) in enumerate(made)
        ]
    }


@pytest.mark.parametrize("path", ["sync", "async"])
def test_the_loop_runs_mcp_tools_and_feeds_a_server_error_back(
    scripted, client: MCPClient, path: str
) -> None:
    llm, backend = scripted(
        calls(
            ("get_weather", {"city": "Atlantis"}),  # valid: runs, and the server's tool fails
            ("convert_temperature", {"celsius": 18.5, "to": "rankine"}),  # refused here
        ),
        calls(("convert_temperature", {"celsius": 18.5, "to": "fahrenheit"})),
        capabilities=NATIVE,
    )
    options: dict[str, Any] = {"tools": client.tools, "execute_tool": True, "max_retries": 2}
    question = "How warm is it in Atlantis, in Fahrenheit?"
    if path == "sync":
        (response,) = llm.chat_oai(question, **options)
    else:
        (response,) = asyncio.run(llm.achat_oai(question, **options))

    assert response.values == [65.3]
    (error,) = response.tool_errors
    assert isinstance(error, ToolExecutionError) and isinstance(error.__cause__, MCPToolError)
    assert (error.tool_name, error.call_id) == ("get_weather", "c0")
    assert error.reason == (
        "MCPToolError: LookupError: no weather for 'Atlantis'; known: ['paris', 'tokyo']"
    )
    sent_back = [str(message.get("content")) for message in backend.requests[1].messages]
    assert any("no weather for 'Atlantis'" in text for text in sent_back)
    assert any("to: 'rankine' is not one of ['fahrenheit', 'kelvin']" in text for text in sent_back)
