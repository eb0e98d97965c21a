"""Answers over HTTP held to what the request asked of them, as ``extract`` holds them in Python.

A ``response_format`` json_schema or ``tools`` are read at the edge, before any model is asked: a
schema that is not one, goes past the bounds of ``tools.schema_bounds`` or, with
``"strict": true``, uses a keyword constrained decoding does not enforce, is the client's 400,
naming the field. After generation each answer goes through ``OutputSpec.check`` (the check the
local engines run; the grammar is never trusted alone). One that does not fit goes back to the
model with the reason, up to ``retries`` times, the retries' usage summed into the answer's; when
they are spent the caller gets ExtractionError or ToolCallError (the server's 422), never invalid
content as a success. An answer cut off at the token limit (its JSON unfinished) comes back as
it is, with ``finish_reason: "length"``, as OpenAI's do: asked again under the same limit it would
be cut off again. One that closed its JSON just as the limit came is checked like any other.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from byzer_agents.core.call_attempts import take_call_attempts
from byzer_agents.core.protocol import ChatBackend, achat
from byzer_agents.exceptions import (
    Attempt,
    ConfigurationError,
    ExtractionError,
    ToolCallError,
    ToolDefinitionError,
    UnsupportedSchemaError,
)
from byzer_agents.llm_runtime.structured_output import (
    OutputSpec,
    answer_schema,
    offered_tools,
    output_spec,
)
from byzer_agents.serve.errors import bad_request
from byzer_agents.serve.usage import UsageTotal
from byzer_agents.tools.schema_bounds import check_enforced
from byzer_agents.types import ChatCompletion, ChatRequest, Message

__all__ = ["answer_problem", "checked_completion", "request_spec"]

_UNSTATED_MAX_TOKENS = 512
"""What the local backends generate when ``max_tokens`` is not given; only the check's words on
a cut-off answer quote it."""


def request_spec(request: ChatRequest) -> OutputSpec | None:
    """What ``request`` asks its answers to be (None: plain text), every schema in it checked;
    raises the 400 APIError naming ``response_format``, ``tools`` or ``tool_choice``."""
    with _refused_as("response_format"):
        answer = answer_schema(request.response_format)
        if answer is not None and _strict(request.response_format, "response_format"):
            check_enforced(answer, what="the response_format schema")
    try:
        tools, _ = offered_tools(request)
        for tool in tools:
            if tool.strict:
                check_enforced(tool.parameters, what=f"the parameters of tool {tool.name!r}")
    except (ToolDefinitionError, UnsupportedSchemaError) as exc:
        raise bad_request(str(exc), param="tools") from None
    except ValueError as exc:  # ToolChoice.parse: a tool_choice naming no offered tool
        raise bad_request(str(exc), param="tool_choice") from None
    with _refused_as("tools" if tools else "response_format"):
        return output_spec(request, max_new_tokens=request.max_tokens or _UNSTATED_MAX_TOKENS)


async def checked_completion(
    backend: ChatBackend, request: ChatRequest, spec: OutputSpec, *, retries: int
) -> ChatCompletion:
    """The backend's answer to ``request`` once it fits ``spec``, asking again with the reason up
    to ``retries`` times; its usage is that of every attempt. Raises ToolCallError (tool calls
    that never fitted) or ExtractionError (an answer that never fitted) when the tries are spent."""
    conversation = list(request.messages)
    attempts: list[Attempt] = []
    usage = UsageTotal()
    calls = False
    for _ in range(retries + 1):
        completion = await achat(backend, request.model_copy(update={"messages": conversation}))
        take_call_attempts(completion)  # how it was obtained stays off the wire
        usage.add(completion)
        problem = answer_problem(spec, completion)
        if problem is None or _cut_off(completion):
            return usage.on(completion)
        message = completion.choices[0].message
        calls = bool(message.tool_calls) or spec.answer_schema is None
        attempts.append(Attempt(output=_shown(completion), error=problem))
        conversation += _feedback(completion, problem)
    raise (ToolCallError if calls else ExtractionError)(request.model or "", attempts)


def answer_problem(spec: OutputSpec, completion: ChatCompletion) -> str | None:
    """None when ``completion``'s answer fits ``spec``, else what is wrong with it."""
    message = completion.choices[0].message
    if message.tool_calls:
        calls = [
            {"name": call.function.name, "arguments": _parsed(call.function.arguments)}
            for call in message.tool_calls
            if call.type == "function"
        ]
        return spec.check(json.dumps({"tool_calls": calls}, ensure_ascii=False))
    content = message.content or ""
    if spec.allows_text and '"tool_calls"' not in content:
        return None  # tool_choice "auto": a text answer; a broken call still names tool_calls
    return spec.check(content)


def _cut_off(completion: ChatCompletion) -> bool:
    """Whether the answer stopped at the token limit with its JSON unfinished."""
    choice = completion.choices[0]
    if choice.finish_reason != "length" or choice.message.tool_calls:
        return False
    try:
        json.loads(choice.message.content or "")
    except (ValueError, RecursionError):
        return True
    return False


@contextlib.contextmanager
def _refused_as(param: str) -> Iterator[None]:
    try:
        yield
    except (ValueError, ToolDefinitionError) as exc:
        raise bad_request(str(exc), param=param) from None


def _strict(response_format: Any, param: str) -> bool:
    strict = (response_format.get("json_schema") or {}).get("strict", False)
    if not isinstance(strict, bool):
        raise ConfigurationError(
            f"{param}.json_schema.strict must be true or false; got {strict!r}"
        )
    return strict


def _parsed(arguments: str | None) -> Any:
    try:
        return json.loads(arguments or "{}")
    except (json.JSONDecodeError, RecursionError):
        return arguments  # the check then says the arguments are no object


def _shown(completion: ChatCompletion) -> str:
    message = completion.choices[0].message
    if message.tool_calls:
        return json.dumps([call.model_dump(mode="json") for call in message.tool_calls])
    return message.content or ""


def _feedback(completion: ChatCompletion, problem: str) -> list[Message]:
    """The messages that show the model its answer and why it was not taken (the chat loop's
    words, so a model hears the same thing over HTTP as from ``extract`` and ``chat_oai``)."""
    message = completion.choices[0].message
    if message.tool_calls:
        return [
            message.model_dump(mode="json", exclude_none=True),
            *(
                {"role": "tool", "tool_call_id": call.id, "content": f"Error: {problem}"}
                for call in message.tool_calls
            ),
            {"role": "user", "content": "Correct the tool calls that failed."},
        ]
    return [
        {"role": "assistant", "content": message.content or ""},
        {
            "role": "user",
            "content": f"Your answer could not be used: {problem}\n"
            "Reply again with only the corrected JSON.",
        },
    ]
