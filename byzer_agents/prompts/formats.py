"""The default prompt formats for models without native tools or structured output: tools offered
in the prompt, a typed answer asked for by its schema, and extraction after a free answer.

Each function keeps Byzer-LLM's name and signature, so a user's replacement (passed to
``setup_function_calling_format_func`` and friends) is a drop-in; ``template=`` swaps the Jinja.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import jinja2

from byzer_agents.prompts.environment import render
from byzer_agents.prompts.placeholders import shape
from byzer_agents.prompts.schema import json_schema
from byzer_agents.tools import Tool, ToolChoice, ToolLike, ToolSet

__all__ = [
    "example_call",
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
    # The forced tool, else the one whose example shows the most arguments.
    example_tool = toolset.get(choice.tool) if choice.tool else None
    if example_tool is None:
        example_tool = max(toolset, key=lambda t: len(t.parameters.get("required", [])))
    example = example_call(example_tool)
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


def example_call(tool: Tool) -> str:
    """The example call the prompt shows: ``tool``'s name and its required arguments, each value a
    ``<placeholder>`` naming its type (see ``placeholders``), so a copy is never a call."""
    arguments = shape(tool.parameters, required_only=True)
    return f'{{"tool_calls": [{{"name": {json.dumps(tool.name)}, "arguments": {arguments}}}]}}'
