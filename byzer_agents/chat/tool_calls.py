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
from dataclasses import dataclass
from typing import Any

from byzer_agents.chat.effects import (
    TOO_DEEP,
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
from byzer_agents.core.parsing import ParsedToolCall
from byzer_agents.exceptions import Attempt, ToolArgumentsError, ToolCallError
from byzer_agents.tools import ToolChoice, ToolSet
from byzer_agents.types import ChatCompletion, Message

__all__ = ["tool_flow"]

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
        answer = _read_calls(reply.completion, toolset, choice, first_number=numbered)
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
                outcomes.record((yield RunTools(fresh, event_id)))
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
class _AnswerCalls:
    """One answer's tool calls: each as the model wrote it, and beside it either the validated
    call or why it cannot run."""

    parsed: list[ParsedToolCall]
    checked: list[ToolCall | str]
    shown: str
    """The calls as JSON (or the answer's text when it made none), for ``Attempt.output``."""
    unreadable: str | None = None

    @property
    def makes_no_call(self) -> bool:
        return not self.parsed and self.unreadable is None

    @property
    def calls(self) -> list[ToolCall]:
        return [call for call in self.checked if isinstance(call, ToolCall)]

    @property
    def problems(self) -> list[str]:
        if self.unreadable is not None:
            return [self.unreadable]
        if not self.parsed:
            return [_NO_CALL]
        return [problem for problem in self.checked if isinstance(problem, str)]


def _read_calls(
    completion: ChatCompletion, toolset: ToolSet, choice: ToolChoice, *, first_number: int
) -> _AnswerCalls:
    try:
        parsed = _calls_of(completion)
        checked = [
            _check_call(found, first_number + index, toolset, choice)
            for index, found in enumerate(parsed)
        ]
        shown = json.dumps([_call_dict(call) for call in parsed]) if parsed else ""
    except RecursionError:
        # Parsers and validators recurse per level; a 10,000-deep reply is an invalid answer.
        return _AnswerCalls([], [], _calls_as_text(completion), unreadable=TOO_DEEP)
    return _AnswerCalls(parsed, checked, shown or reply_text(completion))


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
    completion: ChatCompletion, answer: _AnswerCalls, outcomes: ToolOutcomes, executed: bool
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
    checked: ToolCall | str | None, answer: _AnswerCalls, outcomes: ToolOutcomes, executed: bool
) -> str:
    if checked is None:
        return "Error: " + (answer.unreadable or "this call could not be read")
    if isinstance(checked, str):
        return "Error: " + checked
    result = outcomes.of(checked) if executed else None
    if result is None:
        return "This call is valid; it was not run."
    if result.error is not None:
        return f"Error: {result.error} (the call ran; it will not run again)"
    return json.dumps(result.value, default=str)
