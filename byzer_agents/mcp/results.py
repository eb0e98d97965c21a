"""What an MCP tool call's answer becomes on our side: a value (structured content, else the text,
read as JSON where it is JSON), or an ``MCPToolError`` carrying the server's message; and the
errors of the MCP client."""

from __future__ import annotations

import json
from typing import Any

from byzer_agents.exceptions import ByzerAgentsError

__all__ = ["MCPConnectionError", "MCPToolError", "describe_error", "tool_value"]


class MCPToolError(ByzerAgentsError, RuntimeError):
    """An MCP server answered a tool call with a tool error (``isError``): the tool refused the
    arguments or failed. ``message`` is the server's text; in the chat loop this becomes the call's
    ``ToolExecutionError``, shown to the model."""

    def __init__(self, tool_name: str, message: str) -> None:
        self.tool_name = tool_name
        self.message = message
        super().__init__(message)


class MCPConnectionError(ByzerAgentsError, ConnectionError):
    """The MCP server could not be reached, or its session could not be opened."""


def tool_value(tool_name: str, result: Any) -> Any:
    """The value of a ``CallToolResult``; raises MCPToolError for a tool error.

    Structured content is the value when there is some. Otherwise text blocks, joined, are the
    value, read as JSON when they are JSON (``"42"`` is 42); other blocks (images, resources)
    come back as their JSON dicts."""
    if result.is_error:
        raise MCPToolError(tool_name, _text(result.content) or "the tool failed (no message)")
    if result.structured_content is not None:
        return result.structured_content
    blocks = list(result.content)
    if blocks and all(block.type == "text" for block in blocks):
        text = _text(blocks)
        try:
            return json.loads(text)
        except ValueError:
            return text
    dumped = [block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in blocks]
    return dumped[0] if len(dumped) == 1 else dumped


def describe_error(error: BaseException) -> str:
    """One line for an error, the first leaf of an exception group (anyio's task groups wrap)."""
    leaves = getattr(error, "exceptions", None)
    while isinstance(leaves, tuple) and leaves:
        error = leaves[0]
        leaves = getattr(error, "exceptions", None)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _text(blocks: Any) -> str:
    return "\n".join(block.text for block in blocks if getattr(block, "type", None) == "text")
