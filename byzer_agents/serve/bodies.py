"""The request bodies the server takes, validated at the edge: a wrong type or value is a 400 naming
the field (OpenAI's ``param``), before any model is asked.

Fields OpenAI defines that change nothing here (``user``, ``metadata``, ``store``...) are accepted
and ignored, as OpenAI-compatible servers do, so clients that always send them keep working.
Booleans are strict (``"stream": "yes"`` is refused, not read as true), and text that UTF-8 cannot
encode (a lone surrogate, which JSON's ``\\ud800`` escapes can carry) is refused here, before a
tokenizer fails on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from byzer_agents.exceptions import ConfigurationError
from byzer_agents.types import ChatRequest

__all__ = ["ChatCompletionsBody", "CompletionsBody", "EmbeddingsBody", "InvalidField"]

MAX_CHOICES = 8
"""``n`` at most: each choice is a generation of its own."""


_TOOL_CHOICE_MODES = ("none", "auto", "required")


class InvalidField(ConfigurationError):
    """A value refused by a validator here, with the OpenAI ``param`` it belongs to (a validator
    of the whole body has no field of its own to be reported under)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Request(_Body):
    """A whole request body."""

    @model_validator(mode="before")
    @classmethod
    def _encodable(cls, data: Any) -> Any:
        for where, text in _strings(data):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidField(
                    where or "body",
                    f"{where or 'the body'} holds {text[exc.start : exc.end]!a} at character "
                    f"{exc.start}, a lone surrogate that is no Unicode text; send valid UTF-8",
                ) from None
        return data


class ChatMessageBody(BaseModel):
    """One message of a chat request: its role and content; other fields are kept as sent."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Body):
    """``stream_options``: whether the last event of a stream carries the usage."""

    include_usage: StrictBool = False


class _Sampling(_Request):
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None

    def sampling_fields(self) -> dict[str, Any]:
        """The sampling settings as ``ChatRequest`` fields."""
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
        """Whether a stream ends with a usage event."""
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionsBody(_Sampling):
    """The body of ``/v1/chat/completions`` (and of Azure's deployment route)."""

    model: str = ""
    """Empty on the Azure route, where the deployment in the path names the model."""
    messages: list[ChatMessageBody] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None

    @field_validator("tool_choice")
    @classmethod
    def _known_tool_choice(cls, value: Any) -> Any:
        named = isinstance(value, dict) and value.get("type") == "function"
        if named and isinstance((value.get("function") or {}).get("name"), str):
            return value
        if value is None or value in _TOOL_CHOICE_MODES:
            return value
        raise InvalidField(
            "tool_choice",
            f"tool_choice {value!r:.80} is not allowed: use one of {list(_TOOL_CHOICE_MODES)} or "
            '{"type": "function", "function": {"name": "<one of the tools>"}}',
        )

    @model_validator(mode="after")
    def _tools_for_the_choice(self) -> ChatCompletionsBody:
        if not self.tools and self.tool_choice not in (None, "none", "auto"):
            raise InvalidField(
                "tool_choice", f"tool_choice {self.tool_choice!r:.80} needs tools; none were sent"
            )
        return self

    def chat_request(self, model: str) -> ChatRequest:
        """The request for ``model`` as the backends take it; ConfigurationError (a ValueError)
        for content they cannot read."""
        return ChatRequest(
            model=model,
            messages=[_plain(message) for message in self.messages],
            tools=self.tools or None,
            tool_choice=self.tool_choice,
            response_format=self.response_format,
            parallel_tool_calls=self.parallel_tool_calls,
            **self.sampling_fields(),
        )


class CompletionsBody(_Sampling):
    """The body of the legacy ``/v1/completions``."""

    model: str
    prompt: str | list[str]
    echo: StrictBool = False

    def prompts(self) -> list[str]:
        """The prompts, one or several, as a list."""
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class EmbeddingsBody(_Request):
    """The body of ``/v1/embeddings``."""

    model: str
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"

    def texts(self) -> list[str]:
        """The inputs, one or several, as a list."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


def _strings(data: Any) -> Iterator[tuple[str, str]]:
    """(dotted path, text) of every string in a parsed JSON body, keys included; no recursion."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            yield where, value
        elif isinstance(value, dict):
            for key, item in value.items():
                path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str):
                    yield path, key
                stack.append((path, item))
        elif isinstance(value, list):
            stack.extend((f"{where}.{index}", item) for index, item in enumerate(value))


def _plain(message: ChatMessageBody) -> dict[str, Any]:
    """The message as the backends take it: text parts joined into one string."""
    plain = message.model_dump(exclude_none=True)
    content = message.content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ConfigurationError(
                    f"messages[].content[{index}] is a {part.get('type')!r} part; these models "
                    "read text parts only"
                )
            texts.append(part["text"])
        plain["content"] = "".join(texts)
    return plain
