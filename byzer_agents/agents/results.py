"""What an agent run leaves behind: each step (a model turn and the tool runs it asked for), the
usage, the conversation, and the validated output; and the events ``Agent.stream`` yields while
it runs. Plain data, shared by the agent, its displays and its tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

from byzer_agents.types import Message

__all__ = [
    "AgentEvent",
    "AgentResult",
    "FinalOutput",
    "PartialOutput",
    "Step",
    "TextDelta",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolRun",
    "Usage",
]

OutputT = TypeVar("OutputT")


@dataclass(frozen=True)
class Usage:
    """Tokens and calls spent, summed over a run (``+`` adds two)."""

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    """Model turns asked for."""
    tool_calls: int = 0
    """Tool calls run (denied and refused calls are not counted)."""

    @property
    def total_tokens(self) -> int:
        """Input and output tokens together."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            requests=self.requests + other.requests,
            tool_calls=self.tool_calls + other.tool_calls,
        )


@dataclass(frozen=True)
class ToolRun:
    """One tool call of a step, as it went: what was asked, and what came of it."""

    call_id: str
    name: str
    arguments: Mapping[str, Any]
    """The validated arguments the function received (the model's own text when they did not
    validate)."""
    value: Any = None
    error: str | None = None
    """Why it gave no value: it raised, timed out, asked the model to retry (``ModelRetry``),
    was denied, or its arguments did not validate. ``None`` when it returned."""
    seconds: float = 0.0
    denied: bool = False
    """A person (or the approval callback) refused to let it run."""

    @property
    def ok(self) -> bool:
        """Whether the tool ran and returned."""
        return self.error is None


@dataclass(frozen=True)
class Step:
    """One model turn of a run and the tool calls it made."""

    number: int
    """1 for the first turn of the run."""
    text: str
    """What the model wrote besides its tool calls (its final answer, on the last step)."""
    tool_runs: Sequence[ToolRun] = ()
    problems: Sequence[str] = ()
    """What was sent back for correction: calls that could not run, an output that did not
    validate."""
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0
    """The model turn's latency (tool runs carry their own)."""


@dataclass(frozen=True)
class AgentResult(Generic[OutputT]):
    """A finished run: its validated ``output`` and how it got there."""

    output: OutputT
    steps: Sequence[Step]
    messages: Sequence[Message]
    """The whole conversation, system message first: pass it as ``message_history`` to go on."""
    usage: Usage
    run_id: str | None = None
    """The run's id in the trace store, when the agent has one."""

    def _repr_html_(self) -> str:
        # A notebook shows the run step by step (agents/display.py), not the dataclass repr.
        from byzer_agents.agents.display import result_html

        return result_html(self)

    def __rich__(self) -> Any:
        from byzer_agents.agents.display import render_result

        return render_result(self)


@dataclass(frozen=True)
class TextDelta:
    """A piece of text as the model writes it."""

    step: int
    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    """A validated tool call about to run (after approval, when it needs one)."""

    step: int
    call_id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class ToolCallFinished:
    """A tool call's outcome."""

    step: int
    run: ToolRun


@dataclass(frozen=True)
class PartialOutput(Generic[OutputT]):
    """The typed output so far, while its JSON streams (fields fill in as they arrive)."""

    step: int
    output: OutputT


@dataclass(frozen=True)
class FinalOutput(Generic[OutputT]):
    """The run is over: the same result ``Agent.run`` returns."""

    result: AgentResult[OutputT]


AgentEvent: TypeAlias = (
    TextDelta | ToolCallStarted | ToolCallFinished | PartialOutput[Any] | FinalOutput[Any]
)
"""What ``Agent.stream`` yields, in order; the last event is always a ``FinalOutput``."""
