"""Chat examples -> the exact text a model is trained on: each assistant message becomes one
(prompt, completion) pair, the prompt rendered by the runtime's own renderer.

Train and serve must see the same text. So the prompt of every target is
``llm_runtime.chat_prompt.render_chat_prompt`` over the messages before it, with the example's
tools and ``tool_choice`` — the very function the transformers, DeepSpeed and vLLM backends call at
inference — and the completion is what the runtime reads back as that answer:

- a tool call is the compact JSON object that constrained decoding generates,
  ``{"tool_calls":[{"name":"...","arguments":{...}}]}``, arguments in the order of the tool's
  schema (the grammar writes properties in schema order), so a trained model and the grammar agree
  token for token; the loop's tolerant parser reads the same object in free generation;
- a text answer is the text, which starts with neither ``{`` nor whitespace, as the grammar of
  ``tool_choice="auto"`` requires of free text;
- each completion ends with the template's end-of-turn marker, so the model learns to stop.

Loss falls on the completion only (the trainer masks the prompt).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from byzer_agents.finetune.examples import ChatExample
from byzer_agents.llm_runtime.chat_prompt import render_chat_prompt
from byzer_agents.prompts.chat_templates import ChatTemplate
from byzer_agents.types import ChatRequest, Message

__all__ = ["TrainingText", "assistant_text", "render_example", "render_examples"]


@dataclass(frozen=True)
class TrainingText:
    """One target: the prompt the model reads and the completion it should write."""

    prompt: str
    completion: str
    source: str = ""


def render_examples(
    examples: Iterable[ChatExample], template: ChatTemplate, *, tool_choice: str = "auto"
) -> list[TrainingText]:
    """Every assistant turn of every example, rendered (see the module's docstring)."""
    return [
        text
        for example in examples
        for text in render_example(example, template, tool_choice=tool_choice)
    ]


def render_example(
    example: ChatExample, template: ChatTemplate, *, tool_choice: str = "auto"
) -> list[TrainingText]:
    """One ``TrainingText`` per assistant message of ``example``: the prompt is the runtime's
    rendering of the messages before it, the completion its answer and the end-of-turn marker."""
    tools = [dict(tool) for tool in example.tools] or None
    schemas = _parameter_schemas(example.tools)
    end = template.stop[0] if template.stop else ""
    texts = []
    for index, message in enumerate(example.messages):
        if message.get("role") != "assistant":
            continue
        request = ChatRequest(
            messages=[dict(m) for m in example.messages[:index]],
            tools=tools,
            tool_choice=tool_choice if tools else None,
        )
        completion = assistant_text(message, schemas) + end
        texts.append(
            TrainingText(render_chat_prompt(template, request), completion, example.source)
        )
    return texts


def assistant_text(message: Message, schemas: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """What the runtime reads back as ``message``: its tool calls as one compact JSON object
    (arguments in schema order where ``schemas`` has the tool's parameters), else its text."""
    calls = message.get("tool_calls") or []
    if not calls:
        return str(message.get("content") or "").strip()
    entries = []
    for call in calls:
        function = call.get("function") or {}
        name = str(function.get("name"))
        arguments = function.get("arguments") or {}
        if isinstance(arguments, str):
            arguments = json.loads(arguments or "{}")
        schema = (schemas or {}).get(name)
        entries.append(
            {
                "name": name,
                "arguments": _in_schema_order(arguments, schema) if schema else arguments,
            }
        )
    return json.dumps({"tool_calls": entries}, separators=(",", ":"), ensure_ascii=False)


def _parameter_schemas(tools: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    schemas = {}
    for tool in tools:
        function = tool.get("function") or {}
        if function.get("name"):
            schemas[str(function["name"])] = function.get("parameters") or {}
    return schemas


def _in_schema_order(value: Any, schema: Mapping[str, Any] | None) -> Any:
    """``value`` with object keys in the order ``schema`` declares them (undeclared keys after),
    recursively through properties and array items."""
    if not isinstance(schema, Mapping):
        return value
    if isinstance(value, dict):
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return value
        ordered = {
            key: _in_schema_order(value[key], properties.get(key))
            for key in properties
            if key in value
        }
        ordered.update({key: item for key, item in value.items() if key not in ordered})
        return ordered
    if isinstance(value, list):
        return [_in_schema_order(item, schema.get("items")) for item in value]
    return value
