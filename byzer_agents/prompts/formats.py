"""The default prompt formats for models without native tools or structured output: tools offered
in the prompt, a typed answer asked for by its schema, and extraction after a free answer.

Each function keeps Byzer-LLM's name and signature, so a user's replacement (passed to
``setup_function_calling_format_func`` and friends) is a drop-in; ``template=`` swaps the Jinja.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jinja2

from byzer_agents.prompts.environment import render
from byzer_agents.prompts.schema import json_schema
from byzer_agents.tools import ToolChoice, ToolLike, ToolSet

__all__ = [
    "example_arguments",
    "function_calling_format",
    "response_class_format",
    "response_class_format_after_chat",
]

Template = str | jinja2.Template | None


def function_calling_format(
    prompt: str,
    tools: Iterable[ToolLike],
    tool_choice: Any = None,
    *,
    template: Template = None,
) -> str:
    """The user message that offers ``tools`` in the prompt and says how to reply with calls.

    ``tool_choice`` is ``"auto"`` (default), ``"none"`` (the prompt is returned as is),
    ``"required"``, or a tool's name, Tool or function (that tool must be called).
    """
    toolset = tools if isinstance(tools, ToolSet) else ToolSet(tools)
    choice = ToolChoice.parse(tool_choice, toolset)
    if choice.mode == "none" or not toolset:
        return prompt
    # The forced tool, else the one whose example shows the most: small models copy examples.
    example_tool = toolset.get(choice.tool) if choice.tool else None
    if example_tool is None:
        example_tool = max(toolset, key=lambda t: len(t.parameters.get("required", [])))
    example = {
        "tool_calls": [
            {"name": example_tool.name, "arguments": example_arguments(example_tool.parameters)}
        ]
    }
    return render(
        template or "function_calling.j2",
        prompt=prompt,
        tools=list(toolset),
        choice=choice,
        example=example,
    )


def response_class_format(prompt: str, cls: Any, *, template: Template = None) -> str:
    """The user message that asks for an answer of type ``cls`` as JSON matching its schema."""
    return render(template or "response_class.j2", prompt=prompt, schema=json_schema(cls))


def response_class_format_after_chat(cls: Any, *, template: Template = None) -> str:
    """The follow-up message that asks the model to restate its free answer as ``cls``."""
    return render(template or "response_class_after_chat.j2", schema=json_schema(cls))


_PLACEHOLDERS: dict[str, Any] = {
    "string": "...",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "array": [],
    "object": {},
    "null": None,
}


def example_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Placeholder arguments with the required properties of ``schema``, for the prompt's example:
    enum values and defaults where the schema has them, a value of the right type otherwise."""
    properties = schema.get("properties", {})
    return {name: _example_value(properties.get(name, {})) for name in schema.get("required", [])}


def _example_value(prop: dict[str, Any]) -> Any:
    if prop.get("enum"):
        return prop["enum"][0]
    if "const" in prop:
        return prop["const"]
    if "default" in prop:
        return prop["default"]
    for key in ("anyOf", "oneOf"):
        options = [option for option in prop.get(key, []) if option.get("type") != "null"]
        if options:
            return _example_value(options[0])
    schema_type = prop.get("type")
    if isinstance(schema_type, list):
        schema_type = next((t for t in schema_type if t != "null"), None)
    if schema_type == "object" and "properties" in prop:
        return example_arguments(prop)
    if schema_type == "string" and prop.get("format") == "date-time":
        return "2024-01-31T09:00:00"
    if schema_type == "string" and prop.get("format") == "date":
        return "2024-01-31"
    return _PLACEHOLDERS.get(schema_type, "...") if isinstance(schema_type, str) else "..."
