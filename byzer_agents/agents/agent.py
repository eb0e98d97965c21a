"""``Agent``: a model, its tools and an output type, run for as many steps as a task takes, on
the chat loop's flows and drivers (``agents.flow``). Generic in its output: ``Agent(llm,
output_type=Story).run(task).output`` is a ``Story``; ``output_type=str`` (the default) gives
text. An agent is itself a tool for another (``as_tool``), its runs traced under the parent's."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from byzer_agents import llm_calls
from byzer_agents.agents.approval import default_approver
from byzer_agents.agents.flow import AgentRun, agent_flow
from byzer_agents.agents.limits import UsageLimits
from byzer_agents.agents.memory import answer_reserve
from byzer_agents.agents.results import AgentEvent, AgentResult, FinalOutput
from byzer_agents.agents.streaming import astream_run, stream_run
from byzer_agents.chat.driver import adrive, drive
from byzer_agents.chat.effects import Approver, EffectFlow
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.core.protocol import ChatBackend
from byzer_agents.exceptions import ConfigurationError
from byzer_agents.tools import RunContext, Tool, ToolLike, ToolSet
from byzer_agents.types import Message

if TYPE_CHECKING:
    from byzer_agents.llm import LLM
    from byzer_agents.traces import TraceStore

__all__ = ["Agent"]

OutputT = TypeVar("OutputT")
_Started = tuple[EffectFlow[AgentResult[Any]], ChatBackend, RunTracer]


class Agent(Generic[OutputT]):
    """An LLM with tools and an output type, run step by step to a validated output.

    Each step the model may call tools (several at once, run concurrently); calls that could
    not run, tools that failed or asked for a retry (``ModelRetry``) and refused approvals go
    back to the model, and the run ends when it answers with an output of ``output_type``."""

    @overload
    def __init__(
        self: Agent[str],
        llm: LLM,
        *,
        tools: Sequence[ToolLike | Agent[Any]] = (),
        output_type: type[str] = str,
        instructions: str | None = None,
        model: str | None = None,
        name: str = "agent",
        description: str | None = None,
        max_steps: int = 10,
        max_retries: int | None = None,
        tool_timeout_s: float | None = 60.0,
        trace_store: TraceStore | str | os.PathLike[str] | None = None,
        usage_limits: UsageLimits | None = None,
        approve: Approver | None = None,
        llm_config: Mapping[str, Any] | None = None,
        max_context_tokens: int | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: Agent[OutputT],
        llm: LLM,
        *,
        tools: Sequence[ToolLike | Agent[Any]] = (),
        output_type: type[OutputT],
        instructions: str | None = None,
        model: str | None = None,
        name: str = "agent",
        description: str | None = None,
        max_steps: int = 10,
        max_retries: int | None = None,
        tool_timeout_s: float | None = 60.0,
        trace_store: TraceStore | str | os.PathLike[str] | None = None,
        usage_limits: UsageLimits | None = None,
        approve: Approver | None = None,
        llm_config: Mapping[str, Any] | None = None,
        max_context_tokens: int | None = None,
    ) -> None: ...
    def __init__(
        self,
        llm: LLM,
        *,
        tools: Sequence[ToolLike | Agent[Any]] = (),
        output_type: Any = str,
        instructions: str | None = None,
        model: str | None = None,
        name: str = "agent",
        description: str | None = None,
        max_steps: int = 10,
        max_retries: int | None = None,
        tool_timeout_s: float | None = 60.0,
        trace_store: TraceStore | str | os.PathLike[str] | None = None,
        usage_limits: UsageLimits | None = None,
        approve: Approver | None = None,
        llm_config: Mapping[str, Any] | None = None,
        max_context_tokens: int | None = None,
    ) -> None:
        """``instructions``: the system message; ``max_steps``: model turns at most;
        ``max_retries``: final answers that may fail to validate before ExtractionError (the
        LLM's by default); ``approve``: decides calls of tools that ``requires_approval``;
        ``max_context_tokens``: what the conversation sent may take (the model's
        ``max_model_len`` by default, when it says)."""
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ConfigurationError(f"max_steps must be 1 or more, got {max_steps!r}")
        if max_retries is not None and max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries!r}")
        self.llm = llm
        self.tools = ToolSet(cast(Sequence[ToolLike], tools))
        self.output_type = output_type
        self.instructions = instructions
        self.model = model
        self.name = name
        self.description = description
        self.max_steps = max_steps
        self.max_retries = max_retries
        self.tool_timeout_s = tool_timeout_s
        self.trace_store = llm_calls.open_store(trace_store)
        self.usage_limits = usage_limits or UsageLimits()
        self.approve = approve
        self.llm_config = llm_config
        self.max_context_tokens = max_context_tokens
        self._context_lengths: dict[str, int | None] = {}

    # --- running ------------------------------------------------------------------------------

    def run(
        self,
        task: llm_calls.Conversation,
        *,
        deps: Any = None,
        message_history: Sequence[Message] | None = None,
        approve: Approver | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> AgentResult[OutputT]:
        """Run the agent on ``task`` (a text, or messages) to its validated output.
        ``message_history``: an earlier result's ``messages``, to go on from; ``deps``: what
        tools taking a ``RunContext`` receive as ``ctx.deps``."""
        return self._run(task, deps, message_history, approve, usage_limits, parent=None)

    async def run_async(
        self,
        task: llm_calls.Conversation,
        *,
        deps: Any = None,
        message_history: Sequence[Message] | None = None,
        approve: Approver | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> AgentResult[OutputT]:
        """``run`` for asyncio: tools run concurrently on the event loop."""
        flow, backend, tracer = self._start(task, deps, message_history, usage_limits, None)
        with llm_calls.run_status(tracer):
            result = await adrive(
                flow,
                backend,
                tracer=tracer,
                tool_timeout_s=self.tool_timeout_s,
                approve=default_approver(approve or self.approve),
            )
        return cast(AgentResult[OutputT], result)

    def stream(
        self,
        task: llm_calls.Conversation,
        *,
        deps: Any = None,
        message_history: Sequence[Message] | None = None,
        approve: Approver | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> Iterator[AgentEvent]:
        """The run's events as they happen: ``TextDelta``, ``PartialOutput``,
        ``ToolCallStarted``, ``ToolCallFinished``, and last the ``FinalOutput``."""
        flow, backend, tracer = self._start(task, deps, message_history, usage_limits, None)
        with llm_calls.run_failure(tracer):
            for event in stream_run(
                flow,
                backend,
                tracer=tracer,
                tool_timeout_s=self.tool_timeout_s,
                approve=default_approver(approve or self.approve),
                output_type=self.output_type,
            ):
                if isinstance(event, FinalOutput):
                    tracer.finish("ok")
                yield event

    async def astream(
        self,
        task: llm_calls.Conversation,
        *,
        deps: Any = None,
        message_history: Sequence[Message] | None = None,
        approve: Approver | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> AsyncIterator[AgentEvent]:
        """``stream`` for asyncio."""
        flow, backend, tracer = self._start(task, deps, message_history, usage_limits, None)
        with llm_calls.run_failure(tracer):
            async for event in astream_run(
                flow,
                backend,
                tracer=tracer,
                tool_timeout_s=self.tool_timeout_s,
                approve=default_approver(approve or self.approve),
                output_type=self.output_type,
            ):
                if isinstance(event, FinalOutput):
                    tracer.finish("ok")
                yield event

    # --- delegation ---------------------------------------------------------------------------

    def as_tool(self, name: str | None = None, description: str | None = None) -> Tool[..., Any]:
        """This agent as a tool another agent can call with a task: its run gets the caller's
        deps and is traced under the caller's run (the run's metadata names it)."""
        agent = self

        def delegate(ctx: RunContext[Any], task: str) -> Any:
            """Hand a task to the agent; returns its output.

            Args:
                task: the whole task: the agent sees nothing else of this conversation.
            """
            return agent._run(task, ctx.deps, None, None, None, parent=ctx).output

        summary = f"Ask the {self.name} agent to do a task; returns its answer."
        return Tool.from_function(
            delegate, name=name or self.name, description=description or self.description or summary
        )

    def __repr__(self) -> str:
        output = getattr(self.output_type, "__name__", repr(self.output_type))
        return f"Agent(name={self.name!r}, tools={self.tools.names}, output_type={output})"

    # --- internals ----------------------------------------------------------------------------

    def _run(
        self,
        task: llm_calls.Conversation,
        deps: Any,
        message_history: Sequence[Message] | None,
        approve: Approver | None,
        usage_limits: UsageLimits | None,
        *,
        parent: RunContext[Any] | None,
    ) -> AgentResult[OutputT]:
        flow, backend, tracer = self._start(task, deps, message_history, usage_limits, parent)
        with llm_calls.run_status(tracer):
            result = drive(
                flow,
                backend,
                tracer=tracer,
                tool_timeout_s=self.tool_timeout_s,
                approve=default_approver(approve or self.approve),
            )
        return cast(AgentResult[OutputT], result)

    def _start(
        self,
        task: llm_calls.Conversation,
        deps: Any,
        message_history: Sequence[Message] | None,
        usage_limits: UsageLimits | None,
        parent: RunContext[Any] | None,
    ) -> _Started:
        """The run's flow, the backend it asks and its tracer (the run is recorded now)."""
        store = self.trace_store
        if store is None and parent is not None:
            store = parent.trace_store
        if store is None:
            store = self.llm.trace_store
        metadata: dict[str, Any] = {"agent": self.name}
        if parent is not None:
            metadata |= {
                "parent_run_id": parent.run_id,
                "parent_event_id": parent.event_id,
                "parent_tool_call_id": parent.tool_call_id,
            }

        def tracer_for(model: str) -> RunTracer:
            return RunTracer(store, kind="agent", model=model, metadata=metadata)

        messages, task_index = self._messages(task, message_history)
        settings, backend = self.llm.call_settings(
            self.model, self.llm_config, self.max_retries, kind="agent", tracer=tracer_for
        )
        context = self._context_tokens(settings.model)
        budget = None
        if context is not None:
            budget = context - answer_reserve(context, settings.generation.max_tokens)
        run = AgentRun(
            settings=settings,
            toolset=self.tools,
            output_type=self.output_type,
            max_steps=self.max_steps,
            limits=usage_limits or self.usage_limits,
            deps=deps,
            history_budget=budget,
            trace_store=store,
            task_index=task_index,
        )
        return agent_flow(run, messages), backend, settings.tracer

    def _messages(
        self, task: llm_calls.Conversation, history: Sequence[Message] | None
    ) -> tuple[list[Message], int]:
        """The system message, the history and the task; and where the task's text is."""
        earlier = [dict(message) for message in history or ()]
        messages: list[Message] = []
        has_system = bool(earlier) and earlier[0].get("role") == "system"
        if self.instructions and not has_system:
            messages.append({"role": "system", "content": self.instructions})
        messages += earlier + llm_calls.messages_of(task)
        users = [i for i, message in enumerate(messages) if message.get("role") == "user"]
        return messages, users[-1] if users else len(messages) - 1

    def _context_tokens(self, model: str) -> int | None:
        """The model's context length: the agent's setting, else what the model says."""
        if self.max_context_tokens is not None:
            return self.max_context_tokens
        if model not in self._context_lengths:
            try:
                length = self.llm.get_meta(model).get("max_model_len")
            except Exception:  # a model that cannot say is run without trimming
                length = None
            known = isinstance(length, int) and length > 0
            self._context_lengths[model] = length if known else None
        return self._context_lengths[model]
