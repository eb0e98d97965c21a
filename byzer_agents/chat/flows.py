"""The chat -> parse -> validate -> execute loop, written once as generators of effects.

A flow yields ``ModelCall`` and ``RunTools`` effects and receives their results; the drivers in
``driver.py`` carry them out, synchronously or with asyncio. So the retry and feedback logic
exists once for ``chat_oai`` and ``achat_oai`` alike, and can be tested without any I/O.

Per model, the best way first (docs/architecture.md): constrained decoding or native tool calls /
``response_format`` when the backend has them, else the Jinja prompt formats and tolerant parsing.
An answer that does not parse or validate goes back to the model as a message, up to
``max_retries`` times; then ExtractionError / ToolCallError carry every attempt. A tool call that
validated runs once and is final, whether it returned or raised (``execution.py``): only the
calls that did not validate are asked for again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from byzer_agents.chat.config import GenerationConfig
from byzer_agents.chat.execution import ToolOutcomes
from byzer_agents.chat.results import LLMCompletion, LLMResponse, ToolCall, ToolResult
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.core.parsing import (
    NoJSONFoundError,
    ParsedToolCall,
    extract_json,
    parse_tool_calls,
)
from byzer_agents.core.protocol import Capabilities
from byzer_agents.exceptions import (
    Attempt,
    ExtractionError,
    ModelCallError,
    ToolArgumentsError,
    ToolCallError,
)
from byzer_agents.prompts import (
    ChatTemplate,
    function_calling_format,
    json_schema,
    response_class_format,
    response_class_format_after_chat,
)
from byzer_agents.prompts.schema import type_adapter
from byzer_agents.tools import ToolChoice, ToolSet
from byzer_agents.types import ChatCompletion, ChatRequest, Message

__all__ = [
    "ChatSettings",
    "Flow",
    "ModelCall",
    "ModelReply",
    "PromptFormats",
    "RunTools",
    "after_chat_flow",
    "plain_flow",
    "tool_flow",
    "typed_answer_from_text",
    "typed_flow",
]


# --- effects ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelCall:
    request: ChatRequest


@dataclass(frozen=True)
class ModelReply:
    completion: ChatCompletion
    latency_s: float


@dataclass(frozen=True)
class RunTools:
    calls: list[ToolCall]
    parent_id: str | None


Flow = Generator[ModelCall | RunTools, Any, LLMResponse]


# --- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptFormats:
    """The prompt formats for models without native tools or structured output; each replaceable
    (Byzer-LLM's ``setup_function_calling_format_func`` and friends)."""

    function_calling: Callable[..., str] = function_calling_format
    response_class: Callable[[str, Any], str] = response_class_format
    response_class_after_chat: Callable[[Any], str] = response_class_format_after_chat


@dataclass(frozen=True)
class ChatSettings:
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
    def tool_mode(self) -> Literal["native", "prompt"]:
        caps = self.capabilities
        return "native" if caps.native_tools or caps.constrained_decoding else "prompt"

    @property
    def answer_mode(self) -> Literal["json_schema", "prompt"]:
        caps = self.capabilities
        return "json_schema" if caps.json_schema_output or caps.constrained_decoding else "prompt"

    def request(self, messages: list[Message], **fields: Any) -> ChatRequest:
        return ChatRequest(
            messages=messages,
            model=self.model,
            chat_template=self.chat_template,
            max_model_len=self.max_model_len,
            **self.generation.request_fields(),
            **fields,
        )


class _Tally:
    """Usage, latency and attempts summed over the model calls of one flow."""

    def __init__(self) -> None:
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.latency_s = 0.0
        self.attempts = 0

    def add(self, reply: ModelReply) -> None:
        self.attempts += 1
        self.latency_s += reply.latency_s
        if reply.completion.usage is not None:
            for key in self.usage:
                self.usage[key] += getattr(reply.completion.usage, key, 0) or 0

    def metadata(self, settings: ChatSettings, completion: ChatCompletion) -> dict[str, Any]:
        return {
            "model": settings.model,
            "usage": dict(self.usage),
            "latency_s": self.latency_s,
            "attempts": self.attempts,
            "finish_reason": completion.choices[0].finish_reason,
            "run_id": settings.tracer.run_id,
        }


def _call(
    settings: ChatSettings, request: ChatRequest, attempt: int, tally: _Tally
) -> Generator[ModelCall, Any, ModelReply]:
    """Ask the model; a failed call is traced, then raised."""
    try:
        reply: ModelReply = yield ModelCall(request)
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


def _text(completion: ChatCompletion) -> str:
    return completion.choices[0].message.content or ""


# --- plain chat -------------------------------------------------------------------------------


def plain_flow(settings: ChatSettings, messages: list[Message]) -> Flow:
    tally = _Tally()
    request = settings.request(list(messages))
    reply = yield from _call(settings, request, 1, tally)
    settings.tracer.model_call(
        request, reply.completion, latency_s=reply.latency_s, attempt=1, status="ok"
    )
    return LLMResponse(
        output=_text(reply.completion),
        input=list(messages),
        metadata=tally.metadata(settings, reply.completion),
        response=LLMCompletion.of(reply.completion),
    )


# --- tool calls -------------------------------------------------------------------------------


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
    tally = _Tally()
    native = settings.tool_mode == "native"
    if native:
        conversation = list(messages)
        extra = {"tools": toolset.to_openai(), "tool_choice": choice.to_openai()}
    else:
        offered = choice.to_openai() if choice.tool else choice.mode
        conversation = _with_last_user_formatted(
            messages, lambda text: settings.formats.function_calling(text, list(toolset), offered)
        )
        extra = {}
    outcomes = ToolOutcomes()
    attempts: list[Attempt] = []
    numbered = 0  # calls without an id are numbered over the whole flow, so ids stay distinct
    for attempt in range(1, settings.max_retries + 2):
        request = settings.request(list(conversation), **extra)
        reply = yield from _call(settings, request, attempt, tally)
        answer = _read_calls(reply.completion, native, toolset, choice, first_number=numbered)
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
        conversation += _tool_feedback(native, reply.completion, answer, outcomes, execute)
    raise ToolCallError(settings.model, attempts, tool_results=outcomes.results)


def _tool_response(
    settings: ChatSettings,
    messages: list[Message],
    reply: ModelReply,
    tally: _Tally,
    results: list[ToolResult],
    unrun: list[ToolCall],
) -> LLMResponse:
    return LLMResponse(
        output=_text(reply.completion),
        input=list(messages),
        metadata=tally.metadata(settings, reply.completion),
        response=LLMCompletion.of(reply.completion),
        tool_calls=[result.call for result in results] or unrun,
        values=[result.value for result in results if result.ok],
        tool_results=results,
    )


_TOO_DEEP = "the answer is nested too deeply to read; write flatter JSON"
_NO_CALL = "a tool call was required, and the answer made none"


@dataclass(frozen=True)
class _AnswerCalls:
    """One answer's tool calls: each as the model wrote it, and beside it either the validated
    call or why it cannot run."""

    parsed: list[ParsedToolCall]
    checked: list[ToolCall | str]
    shown: str
    """The calls as text, for ``Attempt.output``: the model's text, or native calls as JSON."""
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
    completion: ChatCompletion,
    native: bool,
    toolset: ToolSet,
    choice: ToolChoice,
    *,
    first_number: int,
) -> _AnswerCalls:
    raw = _text(completion)
    try:
        parsed = _native_calls(completion) if native else parse_tool_calls(raw) or []
        checked = [
            _check_call(found, first_number + index, toolset, choice)
            for index, found in enumerate(parsed)
        ]
        shown = json.dumps([_call_dict(call) for call in parsed]) if native else raw
    except RecursionError:
        # Parsers and validators recurse per level; a 10,000-deep reply is an invalid answer.
        return _AnswerCalls([], [], raw or _native_text(completion), unreadable=_TOO_DEEP)
    return _AnswerCalls(parsed, checked, shown)


def _native_calls(completion: ChatCompletion) -> list[ParsedToolCall]:
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


def _native_text(completion: ChatCompletion) -> str:
    calls = completion.choices[0].message.tool_calls or []
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
    native: bool,
    completion: ChatCompletion,
    answer: _AnswerCalls,
    outcomes: ToolOutcomes,
    executed: bool,
) -> list[Message]:
    """What goes back to the model: every call's outcome, and a request to correct only the
    calls that could not run (those that ran are final)."""
    message = completion.choices[0].message
    if native and message.tool_calls:
        feedback: list[Message] = [message.model_dump(exclude_none=True)]
        by_id = {
            found.id: checked
            for found, checked in zip(answer.parsed, answer.checked, strict=True)
            if found.id
        }
        for call in message.tool_calls:
            content = _native_call_feedback(by_id.get(call.id), answer, outcomes, executed)
            feedback.append({"role": "tool", "tool_call_id": call.id, "content": content})
        ask = (
            "The calls that ran are final and will not run again. Correct the calls that "
            "could not be run, and make only those."
            if executed
            else "Correct the tool calls that could not be run, and make all the calls again."
        )
        feedback.append({"role": "user", "content": ask})
        return feedback
    listing = "\n".join(f"- {problem}" for problem in answer.problems)
    ran = [outcomes.of(call) for call in answer.calls] if executed else []
    done = "\n".join(f"- {_describe_outcome(result)}" for result in ran if result is not None)
    text = f"These tool calls could not be run:\n{listing}\n"
    if done:
        text += f"These ran, and are final (they will not run again):\n{done}\n"
        text += "Reply again with only the corrected tool calls, in the same JSON form."
    else:
        text += "Reply again with the corrected tool calls, in the same JSON form."
    return [
        {"role": "assistant", "content": message.content or ""},
        {"role": "user", "content": text},
    ]


def _native_call_feedback(
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


def _describe_outcome(result: ToolResult) -> str:
    arguments = json.dumps(result.call.raw_arguments, default=str)
    if result.error is not None:
        return f"{result.call.name}({arguments}): {result.error}"
    return f"{result.call.name}({arguments}) returned {json.dumps(result.value, default=str)}"


# --- typed answers ----------------------------------------------------------------------------


def typed_flow(
    settings: ChatSettings,
    messages: list[Message],
    answer_type: Any,
    *,
    format_last_message: bool = True,
) -> Flow:
    """Ask for ``answer_type``; ``format_last_message=False`` when the last message already says
    how to answer (the after-chat extraction)."""
    tally = _Tally()
    adapter = type_adapter(answer_type)
    schema = json_schema(answer_type)
    wrapped = False
    extra: dict[str, Any] = {}
    conversation = list(messages)
    if settings.answer_mode == "json_schema":
        wrapped = schema.get("type") != "object"
        extra["response_format"] = _response_format(answer_type, schema, wrapped)
    elif format_last_message:
        conversation = _with_last_user_formatted(
            messages, lambda text: settings.formats.response_class(text, answer_type)
        )
    attempts: list[Attempt] = []
    for attempt in range(1, settings.max_retries + 2):
        request = settings.request(list(conversation), **extra)
        reply = yield from _call(settings, request, attempt, tally)
        raw = _text(reply.completion)
        try:
            value = _typed_value(reply.completion, adapter, wrapped)
        except _InvalidAnswer as exc:
            settings.tracer.model_call(
                request,
                reply.completion,
                latency_s=reply.latency_s,
                attempt=attempt,
                status="invalid",
                error=exc.message,
            )
            attempts.append(Attempt(output=raw, error=exc.message))
            conversation += [
                {"role": "assistant", "content": raw},
                {
                    "role": "user",
                    "content": f"Your answer could not be used: {exc.message}\n"
                    "Reply again with only the corrected JSON.",
                },
            ]
            continue
        settings.tracer.model_call(
            request, reply.completion, latency_s=reply.latency_s, attempt=attempt, status="ok"
        )
        return LLMResponse(
            output=raw,
            input=list(messages),
            metadata=tally.metadata(settings, reply.completion),
            response=LLMCompletion.of(reply.completion),
            value=value,
        )
    raise ExtractionError(settings.model, attempts)


def after_chat_flow(settings: ChatSettings, messages: list[Message], answer_type: Any) -> Flow:
    """Answer freely first, then extract ``answer_type`` from that answer (two traced calls)."""
    free = yield from plain_flow(settings, messages)
    follow_up = [
        *messages,
        {"role": "assistant", "content": free.output},
        {"role": "user", "content": settings.formats.response_class_after_chat(answer_type)},
    ]
    typed = yield from typed_flow(settings, follow_up, answer_type, format_last_message=False)
    typed.input = list(messages)
    typed.metadata["attempts"] += free.metadata["attempts"]
    typed.metadata["latency_s"] += free.metadata["latency_s"]
    for key, count in free.metadata["usage"].items():
        typed.metadata["usage"][key] += count
    typed.metadata["free_answer"] = free.output
    return typed


class _InvalidAnswer(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _typed_value(completion: ChatCompletion, adapter: Any, wrapped: bool) -> Any:
    choice = completion.choices[0]
    if choice.finish_reason == "length":
        raise _InvalidAnswer("the answer was cut off at the token limit before it was complete")
    return _typed_value_of_text(choice.message.content or "", adapter, wrapped)


def typed_answer_from_text(settings: ChatSettings, text: str, answer_type: Any) -> Any:
    """Parse and validate a typed answer already received (a streamed one); raises ValueError
    saying why it is not valid."""
    wrapped = (
        settings.answer_mode == "json_schema" and json_schema(answer_type).get("type") != "object"
    )
    try:
        return _typed_value_of_text(text, type_adapter(answer_type), wrapped)
    except _InvalidAnswer as exc:
        raise ValueError(exc.message) from None


def _typed_value_of_text(raw: str, adapter: Any, wrapped: bool) -> Any:
    try:
        data = extract_json(raw)
    except NoJSONFoundError as exc:
        raise _InvalidAnswer(str(exc)) from None
    except RecursionError:
        raise _InvalidAnswer(_TOO_DEEP) from None
    if wrapped:
        if not isinstance(data, dict) or "value" not in data:
            raise _InvalidAnswer('expected a JSON object {"value": ...}')
        data = data["value"]
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise _InvalidAnswer(_describe_validation(exc)) from None
    except RecursionError:
        raise _InvalidAnswer(_TOO_DEEP) from None


def _describe_validation(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "the answer"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _response_format(answer_type: Any, schema: dict[str, Any], wrapped: bool) -> dict[str, Any]:
    if wrapped:
        # Structured-output APIs want an object at the root: carry other answers in "value".
        definitions = schema.pop("$defs", None)
        schema = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
        if definitions:
            schema["$defs"] = definitions
    name = getattr(answer_type, "__name__", "answer")
    return {"type": "json_schema", "json_schema": {"name": name[:64], "schema": schema}}


# --- shared -----------------------------------------------------------------------------------


def _with_last_user_formatted(
    messages: Sequence[Message], format_text: Callable[[str], str]
) -> list[Message]:
    """The conversation with its last user message rewritten by a prompt format; if it does not
    end with a user text message, the format's text is added as one."""
    conversation = [dict(message) for message in messages]
    last = conversation[-1] if conversation else None
    if last is not None and last.get("role") == "user" and isinstance(last.get("content"), str):
        last["content"] = format_text(last["content"])
    else:
        conversation.append({"role": "user", "content": format_text("")})
    return conversation
