"""``agent_flow``: one agent run as a flow of effects, driven by ``chat.driver`` like every other
flow. Each step asks the model with the tools offered (and, for a typed output, the answer's
``response_format`` or its schema in the prompt), runs the calls that validated and may run
(approval first, where a tool requires it), feeds every outcome back, and ends when the model
answers without calls and that answer validates against the output type. The model is asked to
answer now, tools withdrawn (``tool_choice="none"``), on the last step ``max_steps`` allows and
after a step whose calls all repeated calls that had already run (a model going round in
circles).

What is final stays final (``chat.execution.ToolOutcomes``): a call that ran is never run again
because a sibling failed; a ``ModelRetry`` or a refusal is not final, and the model may call
again. ``Emit`` effects tell a watcher (``Agent.stream``) what happens as it happens."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from byzer_agents.agents.limits import UsageLimits
from byzer_agents.agents.memory import trim_history
from byzer_agents.agents.results import (
    AgentResult,
    Step,
    ToolCallFinished,
    ToolCallStarted,
    ToolRun,
    Usage,
)
from byzer_agents.chat.effects import EffectFlow, Emit, ModelReply, RunTools, Tally, ask_model
from byzer_agents.chat.execution import ToolOutcomes
from byzer_agents.chat.results import ToolCall, ToolResult
from byzer_agents.chat.settings import ChatSettings
from byzer_agents.chat.tool_calls import (
    AnswerCalls,
    ask_approval,
    in_call_order,
    read_calls,
    tool_message_content,
)
from byzer_agents.chat.typed_answers import answer_response_format, typed_answer_from_text
from byzer_agents.core.prompted_tools import with_last_user_text
from byzer_agents.exceptions import (
    Attempt,
    ExtractionError,
    MaxStepsExceededError,
    ToolCallDeniedError,
)
from byzer_agents.tools import RunContext, ToolChoice, ToolSet
from byzer_agents.types import ChatCompletion, Message

__all__ = ["AgentRun", "agent_flow"]

_CORRECT_CALL = "Correct the call and make it again."


@dataclass(frozen=True)
class AgentRun:
    """What one run runs under: the model's settings, the tools, the output type, its limits
    and the dependencies its tools receive."""

    settings: ChatSettings
    toolset: ToolSet
    output_type: Any = str
    max_steps: int = 10
    limits: UsageLimits = field(default_factory=UsageLimits)
    deps: Any = None
    history_budget: int | None = None
    """Tokens the conversation sent may take (the model's context less the answer's share)."""
    trace_store: Any = None
    task_index: int = -1
    """Where the task is in the messages: its text carries the answer's schema when the model
    is asked for it in the prompt."""


def agent_flow(run: AgentRun, messages: Sequence[Message]) -> EffectFlow[AgentResult[Any]]:
    """Run the agent on ``messages`` (system, history, task) to a validated output."""
    settings, tracer = run.settings, run.settings.tracer
    conversation = list(messages)
    outcomes = ToolOutcomes()
    steps: list[Step] = []
    usage = Usage()
    offer = _offer(run)
    rejected: list[Attempt] = []  # final answers that did not validate
    numbered = 0
    answer_now = False
    for number in itertools.count(1):
        if number > run.max_steps:
            raise MaxStepsExceededError(
                f"the agent took max_steps={run.max_steps} steps without a final output",
                steps=steps,
                usage=usage,
            )
        run.limits.check_request(usage, steps)
        answer_now = answer_now or number == run.max_steps
        asked = {**offer, "tool_choice": "none"} if answer_now and run.toolset else offer
        request = settings.request(_sent(run, conversation), **asked)
        reply = yield from ask_model(settings, request, number, Tally())
        completion = reply.completion
        text = completion.choices[0].message.content or ""
        turn = _turn_usage(completion)
        usage += turn
        toolset = ToolSet() if answer_now else run.toolset
        answer = read_calls(completion, toolset, ToolChoice(), first_number=numbered)
        numbered += len(answer.parsed)

        if answer.makes_no_call:
            output, problem = _output(run, completion)
            tracer.model_call(
                request,
                completion,
                latency_s=reply.latency_s,
                attempt=number,
                status="invalid" if problem else "ok",
                error=problem,
            )
            steps.append(_step(number, text, reply, turn, problems=[problem] if problem else []))
            conversation.append({"role": "assistant", "content": text})
            run.limits.check_tokens(usage, steps)
            if problem is None:
                return AgentResult(output, list(steps), conversation, usage, tracer.run_id)
            rejected.append(Attempt(output=text, error=problem))
            if len(rejected) > settings.max_retries:
                raise ExtractionError(settings.model, rejected)
            conversation.append(
                {
                    "role": "user",
                    "content": f"Your answer could not be used: {problem}\n"
                    "Reply again with only the corrected answer.",
                }
            )
            continue

        problems = answer.problems
        event_id = tracer.model_call(
            request,
            completion,
            latency_s=reply.latency_s,
            attempt=number,
            status="invalid" if problems else "ok",
            error="; ".join(problems) or None,
        )
        run.limits.check_tokens(usage, [*steps, _step(number, text, reply, turn, problems)])
        fresh = outcomes.not_yet_run(answer.calls)
        allowed, refused = yield from ask_approval(fresh, tracer, event_id)
        run.limits.check_tool_calls(usage, len(allowed), steps)
        for call in allowed:
            yield Emit(ToolCallStarted(number, call.id, call.name, call.arguments))
        context = RunContext(
            run.deps,
            run_id=tracer.run_id,
            step=number,
            event_id=event_id,
            trace_store=run.trace_store,
        )
        ran: list[ToolResult] = (yield RunTools(allowed, event_id, context)) if allowed else []
        outcomes.record(in_call_order(fresh, [*ran, *refused]))
        usage += Usage(tool_calls=len(ran))
        turn += Usage(tool_calls=len(ran))
        runs = _tool_runs(answer, outcomes)
        for tool_run in runs:
            yield Emit(ToolCallFinished(number, tool_run))
        steps.append(_step(number, text, reply, turn, problems, runs))
        conversation += _feedback(completion, answer, outcomes)
        answer_now = bool(answer.calls) and not fresh and not problems
    raise AssertionError("unreachable")  # itertools.count never ends


def _offer(run: AgentRun) -> dict[str, Any]:
    """What every request carries beside the messages: the tools, and the answer's format."""
    offer: dict[str, Any] = {}
    if run.toolset:
        offer = {"tools": run.toolset.to_openai(), "tool_choice": "auto"}
    if run.output_type is not str:
        response_format = answer_response_format(run.settings, run.output_type)
        if response_format is not None:
            offer["response_format"] = response_format
    return offer


def _sent(run: AgentRun, conversation: list[Message]) -> list[Message]:
    """The messages a request sends: the task with the answer's schema when the prompt must
    ask for it, fitted to the model's context."""
    sent = list(conversation)
    if run.output_type is not str and run.settings.answer_mode == "prompt":
        index = run.task_index % len(sent)
        formats = run.settings.formats
        task = with_last_user_text(
            [sent[index]], lambda text: formats.response_class(text, run.output_type)
        )
        sent[index] = task[0]
    return trim_history(sent, run.history_budget)


def _output(run: AgentRun, completion: ChatCompletion) -> tuple[Any, str | None]:
    """The validated output of a final answer, or why it is not one."""
    choice = completion.choices[0]
    text = choice.message.content or ""
    if choice.finish_reason == "length":
        return None, "the answer was cut off at the token limit before it was complete"
    if run.output_type is str:
        return (text, None) if text.strip() else (None, "the answer is empty")
    try:
        return typed_answer_from_text(run.settings, text, run.output_type), None
    except ExtractionError as exc:
        return None, exc.attempts[-1].error


def _turn_usage(completion: ChatCompletion) -> Usage:
    counted = completion.usage
    if counted is None:
        return Usage(requests=1)
    return Usage(
        input_tokens=counted.prompt_tokens or 0,
        output_tokens=counted.completion_tokens or 0,
        requests=1,
    )


def _step(
    number: int,
    text: str,
    reply: ModelReply,
    usage: Usage,
    problems: Sequence[str],
    runs: Sequence[ToolRun] = (),
) -> Step:
    return Step(number, text, tuple(runs), tuple(problems), usage, reply.latency_s)


def _tool_runs(answer: AnswerCalls, outcomes: ToolOutcomes) -> list[ToolRun]:
    """Each call of the step as it went: its outcome, or why it could not run."""
    runs = []
    for found, checked in zip(answer.parsed, answer.checked, strict=True):
        if isinstance(checked, str):
            raw = found.arguments
            arguments = raw if isinstance(raw, dict) else {"arguments": raw}
            runs.append(ToolRun(found.id or "", found.name, arguments, error=checked))
            continue
        result = outcomes.of(checked)
        runs.append(_tool_run(checked, result))
    return runs


def _tool_run(call: ToolCall, result: ToolResult | None) -> ToolRun:
    if result is None:  # not reachable: every valid call ran, was reused or was refused
        return ToolRun(call.id, call.name, call.arguments, error="the call was not run")
    error = result.error
    return ToolRun(
        call.id,
        call.name,
        call.arguments,
        value=result.value,
        error=None if error is None else str(error),
        seconds=result.latency_s,
        denied=isinstance(error, ToolCallDeniedError),
    )


def _feedback(
    completion: ChatCompletion, answer: AnswerCalls, outcomes: ToolOutcomes
) -> list[Message]:
    """The assistant's calls and, for each, a tool message with its outcome or its problem."""
    message = completion.choices[0].message
    if not answer.parsed:  # the calls could not be read at all
        listing = "; ".join(answer.problems)
        return [
            {"role": "assistant", "content": message.content or ""},
            {"role": "user", "content": f"Your tool calls could not be read: {listing}"},
        ]
    assistant: Message = message.model_dump(exclude_none=True)
    calls = [call for call in assistant.get("tool_calls", []) if call.get("function")]
    feedback: list[Message] = [assistant]
    for index, (found, checked) in enumerate(zip(answer.parsed, answer.checked, strict=True)):
        call_id = found.id or (checked.id if isinstance(checked, ToolCall) else f"call_{index}")
        if index < len(calls):
            calls[index]["id"] = call_id
        if isinstance(checked, str):
            content = f"Error: {checked}\n{_CORRECT_CALL}"
        else:
            result = outcomes.of(checked)
            content = tool_message_content(result) if result else "The call was not run."
        feedback.append({"role": "tool", "tool_call_id": call_id, "content": content})
    return feedback
