"""``typed_flow``: ask for an answer of the user's type (a pydantic class, dataclass, TypedDict,
``list[...]``...), parse and validate it, and feed back what did not validate.

The answer is asked for with ``response_format`` where the backend honours it (or constrains
decoding; an answer that is not a JSON object travels as ``{"value": ...}``), else by its schema
written into the last user message (``PromptFormats.response_class``), and read by tolerant
parsing (``core.parsing.extract_json``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from byzer_agents.chat.effects import TOO_DEEP, Flow, Tally, ask_model, reply_text
from byzer_agents.chat.results import LLMCompletion, LLMResponse
from byzer_agents.chat.settings import ChatSettings
from byzer_agents.core.parsing import NoJSONFoundError, extract_json
from byzer_agents.core.prompted_tools import with_last_user_text
from byzer_agents.exceptions import Attempt, ExtractionError
from byzer_agents.prompts import json_schema
from byzer_agents.prompts.schema import type_adapter
from byzer_agents.types import ChatCompletion, Message

__all__ = ["answer_response_format", "typed_answer_from_text", "typed_flow"]


def typed_flow(
    settings: ChatSettings,
    messages: list[Message],
    answer_type: Any,
    *,
    format_last_message: bool = True,
) -> Flow:
    """Ask for ``answer_type``; ``format_last_message=False`` when the last message already says
    how to answer (the after-chat extraction)."""
    tally = Tally()
    adapter = type_adapter(answer_type)
    schema = json_schema(answer_type)
    wrapped = False
    extra: dict[str, Any] = {}
    conversation = list(messages)
    if settings.answer_mode == "json_schema":
        wrapped = schema.get("type") != "object"
        extra["response_format"] = _response_format(answer_type, schema, wrapped)
    elif format_last_message:
        conversation = with_last_user_text(
            messages, lambda text: settings.formats.response_class(text, answer_type)
        )
    attempts: list[Attempt] = []
    for attempt in range(1, settings.max_retries + 2):
        request = settings.request(list(conversation), **extra)
        reply = yield from ask_model(settings, request, attempt, tally)
        raw = reply_text(reply.completion)
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


def answer_response_format(settings: ChatSettings, answer_type: Any) -> dict[str, Any] | None:
    """The ``response_format`` that asks for ``answer_type`` where the backend honours one (or
    constrains decoding); None where the schema must be written into the prompt instead."""
    if settings.answer_mode != "json_schema":
        return None
    schema = json_schema(answer_type)
    return _response_format(answer_type, schema, schema.get("type") != "object")


def typed_answer_from_text(settings: ChatSettings, text: str, answer_type: Any) -> Any:
    """Parse and validate a typed answer already received (a streamed one); raises
    ExtractionError (a ValueError) with the one attempt, its ``error`` saying why it is not
    valid."""
    wrapped = (
        settings.answer_mode == "json_schema" and json_schema(answer_type).get("type") != "object"
    )
    try:
        return _typed_value_of_text(text, type_adapter(answer_type), wrapped)
    except _InvalidAnswer as exc:
        raise ExtractionError(settings.model, [Attempt(output=text, error=exc.message)]) from None


class _InvalidAnswer(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _typed_value(completion: ChatCompletion, adapter: Any, wrapped: bool) -> Any:
    choice = completion.choices[0]
    if choice.finish_reason == "length":
        raise _InvalidAnswer("the answer was cut off at the token limit before it was complete")
    return _typed_value_of_text(choice.message.content or "", adapter, wrapped)


def _typed_value_of_text(raw: str, adapter: Any, wrapped: bool) -> Any:
    try:
        data = extract_json(raw)
    except NoJSONFoundError as exc:
        raise _InvalidAnswer(str(exc)) from None
    except RecursionError:
        raise _InvalidAnswer(TOO_DEEP) from None
    if wrapped:
        if not isinstance(data, dict) or "value" not in data:
            raise _InvalidAnswer('expected a JSON object {"value": ...}')
        data = data["value"]
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise _InvalidAnswer(_describe_validation(exc)) from None
    except RecursionError:
        raise _InvalidAnswer(TOO_DEEP) from None


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
