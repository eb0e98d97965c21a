"""What a chat call returns: Byzer-LLM's ``LLMResponse`` shape (``.output``, ``.values``,
``.value``, ``.metadata``), with the validated tool calls, each call's outcome, and the SDK's
ChatCompletion beside it. ``LLMResponse`` is generic in its typed answer: ``chat_oai(...,
response_class=Story)`` returns ``LLMResponse[Story]``, whose ``.value`` is a ``Story``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from byzer_agents.exceptions import ToolExecutionError
from byzer_agents.tools import Tool
from byzer_agents.types import ChatCompletion

__all__ = ["EmbeddingResponse", "LLMCompletion", "LLMResponse", "ToolCall", "ToolResult"]

AnswerT = TypeVar("AnswerT")
"""The type of a response's typed answer (``None`` when the call asked for none)."""


class LLMCompletion(ChatCompletion):
    """The SDK's ChatCompletion, every field and method kept, that also reads as Byzer-LLM's
    ``LLMResponse.response``: code written for Byzer-LLM reads ``t[0].response.output``."""

    @property
    def output(self) -> str:
        """The text of the first choice's message ("" when it holds only tool calls)."""
        if not self.choices:
            return ""
        return self.choices[0].message.content or ""

    @classmethod
    def of(cls, completion: ChatCompletion) -> LLMCompletion:
        """``completion`` as an LLMCompletion, sharing its values (nothing is validated again)."""
        if isinstance(completion, cls):
            return completion
        values = {**completion.__dict__, **(completion.model_extra or {})}
        return cls.model_construct(_fields_set=set(completion.model_fields_set), **values)


@dataclass(frozen=True)
class ToolCall:
    """A tool call whose tool exists and whose arguments validated."""

    id: str
    tool: Tool[..., Any]
    arguments: dict[str, Any]
    """Validated and coerced, keyed by parameter name."""
    raw_arguments: dict[str, Any] | str
    """What the model wrote."""

    @property
    def name(self) -> str:
        """The name of the tool called."""
        return self.tool.name


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one tool call that ran: its value, or why it did not return."""

    call: ToolCall
    value: Any = None
    error: ToolExecutionError | None = None
    """Why the tool did not return: it raised (``ToolExecutionError``) or timed out
    (``ToolTimeoutError``). ``None`` when it returned."""
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the tool returned."""
        return self.error is None


@dataclass
class LLMResponse(Generic[AnswerT]):
    """One answer of a chat call: its text, and what the call asked for beside it (tool calls
    and their values, or the typed answer in ``.value``)."""

    output: str
    """The model's final text (for tool calls in prompt mode, the text holding them)."""
    input: str | list[dict[str, Any]] = ""
    """What was asked: the prompt, or the conversation."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """model, usage (summed over attempts), latency_s, attempts, finish_reason, run_id."""
    response: LLMCompletion | None = None
    """The last ChatCompletion of the call (an LLMCompletion: it answers ``.output`` too)."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """The validated calls: with ``execute_tool=True`` each call that ran, once, in the order
    they ran (over every attempt); else the last answer's calls."""
    values: list[Any] = field(default_factory=list)
    """The values of the calls that returned, in call order (with ``execute_tool=True``)."""
    value: AnswerT = None  # type: ignore[assignment]  # None is the answer when none was asked
    """The typed answer (with ``response_class``); None without one."""
    tool_results: list[ToolResult] = field(default_factory=list)
    """One outcome per call in ``tool_calls`` (with ``execute_tool=True``): a value or an error."""

    @property
    def tool_errors(self) -> list[ToolExecutionError]:
        """The calls that raised or timed out, in call order; each names its tool and call id."""
        return [result.error for result in self.tool_results if result.error is not None]


@dataclass(frozen=True)
class EmbeddingResponse:
    """One text's embedding (Byzer-LLM's ``emb`` answer)."""

    output: list[float]
    """The vector."""
    input: str
    """The text it embeds."""
