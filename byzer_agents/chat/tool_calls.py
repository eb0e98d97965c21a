"""``tool_flow``: ask for tool calls, validate each, run the valid ones once, and feed back the
ones that could not run.

Every model is asked natively (``tools`` / ``tool_choice`` in the request, calls read from
``message.tool_calls``): a backend without native tools is wrapped by the driver so that it
answers the same way (``core.prompted_backend``), with the tools written into its prompt by the
model's function-calling format. A call that validated runs once and is final, whether it
returned or raised (``execution.py``): only the calls that did not validate are asked for again.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_jsonable_python

from byzer_agents.chat.effects import (
    TOO_DEEP,
    Approve,
    Effect,
    Flow,
    ModelReply,
    RunTools,
    Tally,
    ask_model,
    reply_text,
)
from byzer_agents.chat.execution import ToolOutcomes
from byzer_agents.chat.results import LLMCompletion, LLMResponse, ToolCall, ToolResult
from byzer_agents.chat.settings import ChatSettings
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.core.parsing import ParsedToolCall
from byzer_agents.exceptions import (
    Attempt,
    ToolArgumentsError,
    ToolCallDeniedError,
    ToolCallError,
    ToolRetryRequestedError,
)
from byzer_agents.tools import ToolChoice, ToolSet
from byzer_agents.types import ChatCompletion, Message

__all__ = [
    "AnswerCalls",
    "ask_approval",
    "in_call_order",
    "read_calls",
    "tool_flow",
    "tool_message_content",
]

_NO_CALL = "a tool call was required, and the answer made none"


def tool_flow(
    settings: ChatSettings,
    messages: list[Message],
    toolset: ToolSet,
    choice: ToolChoice,
    *,
    execute: bool,
) -> Flow:
    """Ask for tool calls; with ``execute``, run each valid call once.

    Only calls that did not validate are fed back for another try. A call that validated and
    ran is final, whether it returned or raised: a later answer that repeats it (same tool, same
    validated arguments) reuses its outcome, and the response carries every call that ran."""
    tally = Tally()
    conversation = list(messages)
    offer = {"tools": toolset.to_openai(), "tool_choice": choice.to_openai()}
    outcomes = ToolOutcomes()
    attempts: list[Attempt] = []
    numbered = 0  # calls without an id are numbered over the whole flow, so ids stay distinct
    for attempt in range(1, settings.max_retries + 2):
        request = settings.request(list(conversation), **offer)
        reply = yield from ask_model(settings, request, attempt, tally)
        answer = read_calls(reply.completion, toolset, choice, first_number=numbered)
        numbered += len(answer.parsed)
        ran_before = bool(outcomes.results)
        if answer.makes_no_call and (choice.mode != "required" or ran_before):
            settings.tracer.model_call(
                request, reply.completion, latency_s=reply.latency_s, attempt=attempt, status="ok"
            )
            return _tool_response(settings, messages, reply, tally, outcomes.results, [])

        problems = answer.problems
        error = "; ".join(problems) or None
        event_id = settings.tracer.model_call(
            request,
            reply.completion,
            latency_s=reply.latency_s,
            attempt=attempt,
            status="invalid" if problems else "ok",
            error=error,
        )
        if execute:
            fresh = outcomes.not_yet_run(answer.calls)
            if fresh:
                allowed, refused = yield from ask_approval(fresh, settings.tracer, event_id)
                ran = (yield RunTools(allowed, event_id)) if allowed else []
                outcomes.record(in_call_order(fresh, [*ran, *refused]))
        if not problems:
            return _tool_response(
                settings,
                messages,
                reply,
                tally,
                outcomes.results if execute else [],
                [] if execute else answer.calls,
            )
        attempts.append(Attempt(output=answer.shown, error=error or ""))
        conversation += _tool_feedback(reply.completion, answer, outcomes, execute)
    raise ToolCallError(settings.model, attempts, tool_results=outcomes.results)


def ask_approval(
    calls: Sequence[ToolCall], tracer: RunTracer, parent_id: str | None
) -> Generator[Effect, Any, tuple[list[ToolCall], list[ToolResult]]]:
    """Ask the approver about the calls whose tool ``requires_approval`` (``yield from``):
    returns the calls that may run, and a traced ``ToolCallDeniedError`` result for each one
    refused."""
    needing = [call for call in calls if call.tool.requires_approval]
    if not needing:
        return list(calls), []
    reasons = yield Approve(needing)
    refused: dict[int, ToolResult] = {}
    for call, reason in zip(needing, reasons, strict=True):
        if reason is None:
            continue
        error = ToolCallDeniedError(call.name, call.id, reason)
        refused[id(call)] = ToolResult(call, error=error)
        tracer.tool_call(
            tool_name=call.name,
            arguments=call.raw_arguments,
            result=None,
            error=str(error),
            latency_s=0.0,
            parent_id=parent_id,
        )
    return [call for call in calls if id(call) not in refused], list(refused.values())


def in_call_order(calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> list[ToolResult]:
    """``results`` in the order of ``calls``."""
    position = {id(call): index for index, call in enumerate(calls)}
    return sorted(results, key=lambda result: position.get(id(result.call), len(position)))


def tool_message_content(result: ToolResult) -> str:
    """What the model reads of a call's outcome: its value as JSON, or why it gave none (and
    whether it may make the call again)."""
    error = result.error
    if error is None:
        return json.dumps(to_jsonable_python(result.value, fallback=str))
    if isinstance(error, ToolRetryRequestedError):
        return f"Error: {error.reason}\nCorrect the call and make it again."
    if isinstance(error, ToolCallDeniedError):
        return f"The call was not run: {error.reason}"
    return f"Error: {error} (the call ran; it will not run again)"


def _tool_response(
    settings: ChatSettings,
    messages: list[Message],
    reply: ModelReply,
    tally: Tally,
    results: list[ToolResult],
    unrun: list[ToolCall],
) -> LLMResponse:
    return LLMResponse(
        output=reply_text(reply.completion),
        input=list(messages),
        metadata=tally.metadata(settings, reply.completion),
        response=LLMCompletion.of(reply.completion),
        tool_calls=[result.call for result in results] or unrun,
        values=[result.value for result in results if result.ok],
        tool_results=results,
    )


@dataclass(frozen=True)
class AnswerCalls:
    """One answer's tool calls: each as the model wrote it, and beside it either the validated
    call or why it cannot run."""

    parsed: list[ParsedToolCall]
    checked: list[ToolCall | str]
    shown: str
    """The calls as JSON (or the answer's text when it made none), for ``Attempt.output``."""
    unreadable: str | None = None

    @property
    def makes_no_call(self) -> bool:
        """Whether the answer made no call at all (and was readable)."""
        return not self.parsed and self.unreadable is None

    @property
    def calls(self) -> list[ToolCall]:
        """The calls that validated, in order."""
        return [call for call in self.checked if isinstance(call, ToolCall)]

    @property
    def problems(self) -> list[str]:
        """Why calls could not run (an answer making none, where one was required, is one)."""
        if self.unreadable is not None:
            return [self.unreadable]
        if not self.parsed:
            return [_NO_CALL]
        return [problem for problem in self.checked if isinstance(problem, str)]


def read_calls(
    completion: ChatCompletion, toolset: ToolSet, choice: ToolChoice, *, first_number: int
) -> AnswerCalls:
    """The answer's tool calls, each validated against its tool (calls without an id are
    numbered from ``first_number``)."""
    try:
        parsed = _calls_of(completion)
        checked = [
            _check_call(found, first_number + index, toolset, choice)
            for index, found in enumerate(parsed)
        ]
        shown = json.dumps([_call_dict(call) for call in parsed]) if parsed else ""
    except RecursionError:
        # Parsers and validators recurse per level; a 10,000-deep reply is an invalid answer.
        return AnswerCalls([], [], _calls_as_text(completion), unreadable=TOO_DEEP)
    return AnswerCalls(parsed, checked, shown or reply_text(completion))


def _calls_of(completion: ChatCompletion) -> list[ParsedToolCall]:
    calls = []
    for call in completion.choices[0].message.tool_calls or []:
        function = getattr(call, "function", None)
        if function is None:
            continue
        try:
            arguments: dict[str, Any] | str = json.loads(function.arguments or "{}")
        except (json.JSONDecodeError, RecursionError):
            # Left as text: validating it names the problem, which goes back to the model.
            arguments = function.arguments
        calls.append(ParsedToolCall(name=function.name, arguments=arguments, id=call.id))
    return calls


def _calls_as_text(completion: ChatCompletion) -> str:
    calls = completion.choices[0].message.tool_calls or []
    if not calls:
        return reply_text(completion)
    return json.dumps([call.model_dump(exclude_none=True) for call in calls])


def _call_dict(call: ParsedToolCall) -> dict[str, Any]:
    return {"name": call.name, "arguments": call.arguments}


def _check_call(
    found: ParsedToolCall, number: int, toolset: ToolSet, choice: ToolChoice
) -> ToolCall | str:
    """The validated call, or why it cannot run."""
    tool = toolset.get(found.name)
    if tool is None and not toolset:
        return f"{found.name!r} was called, but no tools are offered now: answer without calls"
    if tool is None:
        return f"there is no tool named {found.name!r}; the tools are {toolset.names}"
    if choice.tool is not None and tool.name != choice.tool:
        return f"{found.name!r} was called, but the tool to call is {choice.tool!r}"
    try:
        arguments = tool.validate(found.arguments)
    except ToolArgumentsError as exc:
        return str(exc)
    return ToolCall(found.id or f"call_{number}", tool, arguments, found.arguments)


def _tool_feedback(
    completion: ChatCompletion, answer: AnswerCalls, outcomes: ToolOutcomes, executed: bool
) -> list[Message]:
    """What goes back to the model: every call's outcome as a tool message, and a request to
    correct only the calls that could not run (those that ran are final). An answer with no
    calls to answer gets its problems back as a user message."""
    message = completion.choices[0].message
    if not message.tool_calls:
        listing = "\n".join(f"- {problem}" for problem in answer.problems)
        return [
            {"role": "assistant", "content": message.content or ""},
            {
                "role": "user",
                "content": f"These tool calls could not be run:\n{listing}\n"
                "Reply again with the corrected tool calls.",
            },
        ]
    feedback: list[Message] = [message.model_dump(exclude_none=True)]
    by_id = {
        found.id: checked
        for found, checked in zip(answer.parsed, answer.checked, strict=True)
        if found.id
    }
    for call in message.tool_calls:
        content = _call_feedback(by_id.get(call.id), answer, outcomes, executed)
        feedback.append({"role": "tool", "tool_call_id": call.id, "content": content})
    ask = (
        "The calls that ran are final and will not run again. Correct the calls that "
        "could not be run, and make only those."
        if executed
        else "Correct the tool calls that could not be run, and make all the calls again."
    )
    feedback.append({"role": "user", "content": ask})
    return feedback


def _call_feedback(
    checked: ToolCall | str | None, answer: AnswerCalls, outcomes: ToolOutcomes, executed: bool
) -> str:
    if checked is None:
        return "Error: " + (answer.unreadable or "this call could not be read")
    if isinstance(checked, str):
        return "Error: " + checked
    result = outcomes.of(checked) if executed else None
    if result is None:
        return "This call is valid; it was not run."
    return tool_message_content(result)
