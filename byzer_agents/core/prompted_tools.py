"""Tools offered in the prompt, and tool calls read back out of the reply: the one way a model
without native tool calling gets tools.

Writing (``prompt_with_tools``): earlier tool calls and results become text
(``tool_history_as_text``), and the offered tools and ``tool_choice`` are written into the last
user message by a replaceable format (``prompts.formats.function_calling_format`` by default;
Byzer-LLM's ``setup_function_calling_format_func`` replaces it). Reading (``tool_calls_in_text``):
calls found in the reply in any shape ``core.parsing`` reads, as OpenAI tool calls.

Two callers, one format: ``PromptedToolsBackend`` (``prompted_backend.py``) wraps an endpoint
without native tools, and the local engines' prompt renderer (``llm_runtime/chat_prompt.py``)
uses these where a chat template has no place for tools.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from openai.types.chat import ChatCompletionMessageFunctionToolCall

from byzer_agents.core.parsing import parse_tool_calls
from byzer_agents.prompts.formats import function_calling_format
from byzer_agents.tools import ToolLike, ToolSet
from byzer_agents.types import ChatRequest, Message, make_tool_call

__all__ = [
    "ToolFormat",
    "offers_tools",
    "prompt_with_tools",
    "tool_calls_in_text",
    "tool_history_as_text",
    "with_last_user_text",
]

ToolFormat: TypeAlias = Callable[..., str]
"""``(prompt, tools, tool_choice) -> str``: the last user message with the tools offered in it
(Byzer-LLM's function-calling format signature; ``tools`` is a list of ``Tool``)."""


def offers_tools(request: ChatRequest) -> bool:
    """Whether ``request`` lets the model call a tool (tools given, ``tool_choice`` not "none")."""
    return bool(request.tools) and request.tool_choice != "none"


def prompt_with_tools(
    messages: Sequence[Message],
    tools: Sequence[ToolLike] | ToolSet,
    tool_choice: Any = None,
    *,
    tool_format: ToolFormat = function_calling_format,
) -> list[Message]:
    """``messages`` as a model without tools reads them: earlier calls and results as text, and
    ``tools`` (unless none, or ``tool_choice="none"``) offered in the last user message by
    ``tool_format``; if the conversation does not end with a user text, the offer is added as
    one."""
    written = tool_history_as_text(messages)
    if not tools or tool_choice == "none":
        return written
    offered = list(tools if isinstance(tools, ToolSet) else ToolSet(tools))
    return with_last_user_text(written, lambda text: tool_format(text, offered, tool_choice))


def tool_history_as_text(messages: Sequence[Message]) -> list[Message]:
    """Tool calls and results written as text, for a model that knows no tools: calls in the
    fenced ``{"tool_calls": [...]}`` form the prompt format asks for, results as user messages."""
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
            written.append(dict(message))
    return written


def with_last_user_text(
    messages: Sequence[Message], rewrite: Callable[[str], str]
) -> list[Message]:
    """The messages with the last one, a user text, rewritten; else the rewrite of "" added as a
    user message."""
    written = [dict(message) for message in messages]
    last = written[-1] if written else None
    if last is not None and last.get("role") == "user" and isinstance(last.get("content"), str):
        last["content"] = rewrite(last["content"])
    else:
        written.append({"role": "user", "content": rewrite("")})
    return written


def tool_calls_in_text(
    text: str, *, first_number: int | None = None
) -> list[ChatCompletionMessageFunctionToolCall]:
    """The tool calls a model wrote freely in ``text``, in any of the shapes ``core.parsing``
    reads; empty when there are none. A call without an id gets ``call_<n>`` numbered from
    ``first_number`` when it is given (ids that stay distinct over a conversation), else a
    random one."""
    return [
        make_tool_call(
            call.name,
            call.arguments
            if isinstance(call.arguments, str)
            else json.dumps(call.arguments, ensure_ascii=False),
            call.id or (None if first_number is None else f"call_{first_number + index}"),
        )
        for index, call in enumerate(parse_tool_calls(text) or [])
    ]


def _json_or_text(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except (json.JSONDecodeError, RecursionError):
            return arguments
    return arguments if arguments is not None else {}
