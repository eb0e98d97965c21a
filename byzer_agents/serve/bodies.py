"""The request bodies the server takes, validated at the edge: a wrong type or value is a 400 naming
the field (OpenAI's ``param``), before any model is asked.

Fields OpenAI defines that change nothing here (``user``, ``metadata``, ``store``...) are accepted
and ignored, as OpenAI-compatible servers do, so clients that always send them keep working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from byzer_agents.types import ChatRequest

__all__ = ["ChatCompletionsBody", "CompletionsBody", "EmbeddingsBody"]

MAX_CHOICES = 8
"""``n`` at most: each choice is a generation of its own."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChatMessageBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    def sampling_fields(self) -> dict[str, Any]:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return {
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": stop or None,
            "seed": self.seed,
        }

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionsBody(_Sampling):
    model: str = ""
    """Empty on the Azure route, where the deployment in the path names the model."""
    messages: list[ChatMessageBody] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    def chat_request(self, model: str) -> ChatRequest:
        extra = {}
        if self.parallel_tool_calls is not None:
            extra["parallel_tool_calls"] = self.parallel_tool_calls
        return ChatRequest(
            model=model,
            messages=[_plain(message) for message in self.messages],
            tools=self.tools or None,
            tool_choice=self.tool_choice,
            response_format=self.response_format,
            extra=extra,
            **self.sampling_fields(),
        )


class CompletionsBody(_Sampling):
    model: str
    prompt: str | list[str]
    echo: bool = False

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class EmbeddingsBody(_Body):
    model: str
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


def _plain(message: ChatMessageBody) -> dict[str, Any]:
    """The message as the backends take it: text parts joined into one string."""
    plain = message.model_dump(exclude_none=True)
    content = message.content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError(
                    f"messages[].content[{index}] is a {part.get('type')!r} part; these models "
                    "read text parts only"
                )
            texts.append(part["text"])
        plain["content"] = "".join(texts)
    return plain
