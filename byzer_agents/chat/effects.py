"""What a flow yields and receives: ``ModelCall``, ``RunTools``, ``Approve`` and ``Emit``
effects, the ``ModelReply`` sent back, and the pieces every flow shares (asking the model with
its failure traced, the tally of usage, latency and attempts over a flow's model calls)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from byzer_agents.chat.results import LLMResponse, ToolCall
from byzer_agents.chat.settings import ChatSettings
from byzer_agents.core.prompted_tools import ToolFormat
from byzer_agents.exceptions import ModelCallError
from byzer_agents.prompts import function_calling_format
from byzer_agents.tools import RunContext
from byzer_agents.types import ChatCompletion, ChatRequest

__all__ = [
    "TOO_DEEP",
    "Approve",
    "Approver",
    "Effect",
    "EffectFlow",
    "Emit",
    "Flow",
    "ModelCall",
    "ModelReply",
    "RunTools",
    "Tally",
    "ask_model",
    "reply_text",
]


@dataclass(frozen=True)
class ModelCall:
    """Ask the model ``request``; the flow receives a ``ModelReply``, or the ModelCallError."""

    request: ChatRequest
    tool_format: ToolFormat = function_calling_format
    """How the driver writes the request's tools into the prompt of a backend without native
    tools (``core.prompted_backend.with_prompted_tools``): the model's own format."""


@dataclass(frozen=True)
class ModelReply:
    """The model's answer to a ``ModelCall``, and how long it took."""

    completion: ChatCompletion
    latency_s: float


@dataclass(frozen=True)
class RunTools:
    """Run ``calls`` (each once); the flow receives their ``ToolResult``s, in order."""

    calls: list[ToolCall]
    parent_id: str | None
    context: RunContext[Any] | None = None
    """What a tool's ``RunContext`` parameter receives (its ``tool_call_id`` set per call)."""


Approver: TypeAlias = Callable[[ToolCall], Any]
"""Decides whether a call of a tool that ``requires_approval`` may run: ``True`` runs it,
``False`` refuses it, a string refuses it with that reason (what the model reads); an async
approver's answer is awaited under ``adrive``."""


@dataclass(frozen=True)
class Approve:
    """Ask the driver's approver about ``calls``; the flow receives, per call, ``None`` when
    it may run or the reason it may not."""

    calls: list[ToolCall]


@dataclass(frozen=True)
class Emit:
    """Tell whoever watches the run (``Agent.stream``) of ``event``; the flow receives None."""

    event: Any


Effect: TypeAlias = ModelCall | RunTools | Approve | Emit
ResultT = TypeVar("ResultT")
EffectFlow: TypeAlias = Generator[Effect, Any, ResultT]
"""A flow of effects ending in a ``ResultT`` (the agent's flow ends in an ``AgentResult``)."""
Flow: TypeAlias = Generator[Effect, Any, LLMResponse]

TOO_DEEP = "the answer is nested too deeply to read; write flatter JSON"


class Tally:
    """Usage, latency and attempts summed over the model calls of one flow."""

    def __init__(self) -> None:
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.latency_s = 0.0
        self.attempts = 0

    def add(self, reply: ModelReply) -> None:
        """Count one model call."""
        self.attempts += 1
        self.latency_s += reply.latency_s
        if reply.completion.usage is not None:
            for key in self.usage:
                self.usage[key] += getattr(reply.completion.usage, key, 0) or 0

    def metadata(self, settings: ChatSettings, completion: ChatCompletion) -> dict[str, Any]:
        """The response's ``metadata``: the model, the sums, the last finish reason, the run."""
        return {
            "model": settings.model,
            "usage": dict(self.usage),
            "latency_s": self.latency_s,
            "attempts": self.attempts,
            "finish_reason": completion.choices[0].finish_reason,
            "run_id": settings.tracer.run_id,
        }


def ask_model(
    settings: ChatSettings, request: ChatRequest, attempt: int, tally: Tally
) -> Generator[ModelCall, Any, ModelReply]:
    """Ask the model (``yield from``); a failed call is traced, then raised."""
    try:
        reply: ModelReply = yield ModelCall(request, settings.formats.function_calling)
    except ModelCallError as exc:
        settings.tracer.model_call(
            request,
            None,
            latency_s=0.0,
            attempt=attempt,
            status="error",
            error=str(exc),
            call_attempts=exc.call_attempts,
        )
        raise
    tally.add(reply)
    return reply


def reply_text(completion: ChatCompletion) -> str:
    """The answer's text ("" when it has none)."""
    return completion.choices[0].message.content or ""
