"""Every error byzer-agents raises on purpose: each says what was wrong, with which value,
and what would be right."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ArgumentError",
    "ByzerAgentsError",
    "PromptTemplateError",
    "ToolArgumentsError",
    "ToolDefinitionError",
]


class ByzerAgentsError(Exception):
    """Base class of the errors raised by byzer-agents."""


class ToolDefinitionError(ByzerAgentsError, TypeError):
    """A function or schema cannot become a tool (raised when the tool is defined, not called)."""


@dataclass(frozen=True)
class ArgumentError:
    """One bad argument of a tool call."""

    field: str
    """Dotted path of the bad value (``"location.city"``, ``"dates.0"``); ``""``: the whole call."""
    message: str
    """What was expected."""
    value: Any = None
    """The value the caller gave, when there was one."""

    def __str__(self) -> str:
        where = self.field or "arguments"
        return f"{where}: {self.message}"


class ToolArgumentsError(ByzerAgentsError, ValueError):
    """A tool was called with arguments that do not fit its schema.

    ``errors`` names every bad field, so the chat loop can show them all to the model at once.
    """

    def __init__(self, tool_name: str, errors: list[ArgumentError]) -> None:
        self.tool_name = tool_name
        self.errors = errors
        details = "; ".join(str(error) for error in errors)
        super().__init__(f"invalid arguments for tool {tool_name!r}: {details}")


class PromptTemplateError(ByzerAgentsError, ValueError):
    """A prompt template failed to compile or to render (a syntax error, a missing variable)."""
