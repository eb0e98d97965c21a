"""The prompt a local chat model reads for a request: its chat template rendered over the messages,
with the tools and the answer's format written in where the template has no place for them.

Shared by the local backends (transformers, DeepSpeed, vLLM) so a model reads the same prompt
whichever engine runs it. Tools go into the prompt, and calls are read back out of the reply, by
``core.prompted_tools``: the one way every model without a place for tools gets them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from byzer_agents.core.prompted_tools import offers_tools, prompt_with_tools, with_last_user_text
from byzer_agents.prompts.chat_templates import ChatTemplate
from byzer_agents.prompts.environment import render
from byzer_agents.types import ChatRequest, Message

__all__ = ["offers_tools", "render_chat_prompt"]


def render_chat_prompt(template: ChatTemplate, request: ChatRequest) -> str:
    """The prompt text for ``request``: tools go through the template when it takes them, else
    into the last user message (with earlier calls and results written as text); a
    ``response_format`` is asked for in the last user message."""
    messages: list[Message] = [dict(message) for message in request.messages]
    tools = request.tools if offers_tools(request) else None
    if not _takes_tools(template):
        messages = prompt_with_tools(messages, tools or [], request.tool_choice)
        tools = None
    if request.response_format:
        messages = with_last_user_text(
            messages, lambda text: _answer_format(text, request.response_format or {})
        )
    return template.render(messages, tools=tools, add_generation_prompt=True)


def _takes_tools(template: ChatTemplate) -> bool:
    return "tools" in template.source


def _answer_format(text: str, response_format: Mapping[str, Any]) -> str:
    """The user text with the answer's format asked for, as ``response_format`` says."""
    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return render("response_class.j2", prompt=text, schema=schema)
    if kind == "json_object":
        return f"{text}\n\nReply with only a JSON object, and nothing else.".strip()
    return text
