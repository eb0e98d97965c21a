"""Prompts: typed-answer schemas, the Jinja prompt formats, ``@prompt``, model chat templates."""

from byzer_agents.prompts.chat_templates import ChatTemplate, Templates
from byzer_agents.prompts.decorator import ChatClient, PromptFunction, prompt
from byzer_agents.prompts.formats import (
    function_calling_format,
    response_class_format,
    response_class_format_after_chat,
)
from byzer_agents.prompts.schema import json_schema

__all__ = [
    "ChatClient",
    "ChatTemplate",
    "PromptFunction",
    "Templates",
    "function_calling_format",
    "json_schema",
    "prompt",
    "response_class_format",
    "response_class_format_after_chat",
]
