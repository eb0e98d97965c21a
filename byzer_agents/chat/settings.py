"""What one chat call runs under: ``ChatSettings`` (the model, its capabilities, sampling, retries,
the tracer) and ``PromptFormats`` (the replaceable prompt formats for models without native tools
or structured output)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from byzer_agents.chat.config import GenerationConfig
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.core.protocol import Capabilities
from byzer_agents.prompts import (
    ChatTemplate,
    function_calling_format,
    response_class_format,
    response_class_format_after_chat,
)
from byzer_agents.types import ChatRequest, Message

__all__ = ["ChatSettings", "PromptFormats"]


@dataclass(frozen=True)
class PromptFormats:
    """The prompt formats for models without native tools or structured output; each replaceable
    (Byzer-LLM's ``setup_function_calling_format_func`` and friends)."""

    function_calling: Callable[..., str] = function_calling_format
    """Writes the offered tools into the last user message (``core.prompted_tools``)."""
    response_class: Callable[[str, Any], str] = response_class_format
    response_class_after_chat: Callable[[Any], str] = response_class_format_after_chat


@dataclass(frozen=True)
class ChatSettings:
    """The model one chat call asks, and how: its capabilities, sampling, prompt formats, retries
    and tracer, and what every request to it carries."""

    model: str
    capabilities: Capabilities
    tracer: RunTracer
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    formats: PromptFormats = field(default_factory=PromptFormats)
    max_retries: int = 2
    chat_template: ChatTemplate | None = None
    """Sent with every request: the template a local backend renders the prompt with."""
    max_model_len: int | None = None
    """Sent with every request: the context length the caller holds the model to."""

    @property
    def answer_mode(self) -> Literal["json_schema", "prompt"]:
        """How a typed answer is asked for: ``response_format`` where the backend honours it (or
        constrains decoding), else its schema written into the prompt."""
        caps = self.capabilities
        return "json_schema" if caps.json_schema_output or caps.constrained_decoding else "prompt"

    def request(self, messages: list[Message], **fields: Any) -> ChatRequest:
        """A request of ``messages`` with these settings' fields, plus ``fields``."""
        return ChatRequest(
            messages=messages,
            model=self.model,
            chat_template=self.chat_template,
            max_model_len=self.max_model_len,
            **self.generation.request_fields(),
            **fields,
        )
