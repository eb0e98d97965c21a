"""The prompt a local chat model reads for a request: its chat template rendered over the messages,
with the tools and the answer's format written in where the template has no place for them.

Shared by the local backends (transformers, DeepSpeed, vLLM) so a model reads the same prompt
whichever engine runs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from byzer_agents.prompts.chat_templates import ChatTemplate
from byzer_agents.prompts.environment import render
from byzer_agents.prompts.formats import function_calling_format
from byzer_agents.types import ChatRequest, Message

__all__ = ["offers_tools", "render_chat_prompt"]


def render_chat_prompt(template: ChatTemplate, request: ChatRequest) -> str:
    """The prompt text for ``request``: tools go through the template when it takes them, else
    into the last user message (with earlier calls and results written as text); a
    ``response_format`` is asked for in the last user message."""
    messages: list[Message] = [dict(message) for message in request.messages]
    tools = request.tools if offers_tools(request) else None
    if not _takes_tools(template):
        messages = _tool_history_as_text(messages)
        if tools:
            offered, choice = list(tools), request.tool_choice
            messages = _with_last_user_text(
                messages, lambda text: function_calling_format(text, offered, choice)
            )
        tools = None
    if request.response_format:
        messages = _with_last_user_text(
            messages, lambda text: _answer_format(text, request.response_format or {})
        )
    return template.render(messages, tools=tools, add_generation_prompt=True)


def offers_tools(request: ChatRequest) -> bool:
    return bool(request.tools) and request.tool_choice != "none"


def _takes_tools(template: ChatTemplate) -> bool:
    return "tools" in template.source


def _with_last_user_text(messages: list[Message], rewrite: Callable[[str], str]) -> list[Message]:
    """The messages with the last one, a user text, rewritten; else the rewrite of "" added."""
    messages = [dict(message) for message in messages]
    last = messages[-1] if messages else None
    if last is not None and last.get("role") == "user" and isinstance(last.get("content"), str):
        last["content"] = rewrite(last["content"])
    else:
        messages.append({"role": "user", "content": rewrite("")})
    return messages


def _tool_history_as_text(messages: list[Message]) -> list[Message]:
    """Tool calls and results written as text, for templates that know no tools: calls in the
    JSON form the prompt format asks for, results as user messages."""
    names: dict[str, str] = {}
    written: list[Message] = []
    for message in messages:
        calls = message.get("tool_calls")
        if message.get("role") == "assistant" and calls:
            entries = []
            for call in calls:
                function = call.get("function") or {}
                names[str(call.get("id"))] = str(function.get("name"))
                entries.append(
                    {
                        "name": function.get("name"),
                        "arguments": _json_or_text(function.get("arguments")),
                    }
                )
            block = "```json\n" + json.dumps({"tool_calls": entries}, ensure_ascii=False) + "\n```"
            content = message.get("content")
            written.append(
                {"role": "assistant", "content": f"{content}\n\n{block}" if content else block}
            )
        elif message.get("role") == "tool":
            name = names.get(str(message.get("tool_call_id")), "the tool")
            written.append(
                {"role": "user", "content": f"Result of {name}: {message.get('content')}"}
            )
        else:
            written.append(message)
    return written


def _json_or_text(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments if arguments is not None else {}


def _answer_format(text: str, response_format: Mapping[str, Any]) -> str:
    """The user text with the answer's format asked for, as ``response_format`` says."""
    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return render("response_class.j2", prompt=text, schema=schema)
    if kind == "json_object":
        return f"{text}\n\nReply with only a JSON object, and nothing else.".strip()
    return text
