"""What one ``LLM`` call does around the loop: the conversation read into messages, the flow the
call's arguments choose (checked against each other first), and the traced run closed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict

from byzer_agents.chat.flows import (
    ChatSettings,
    Flow,
    after_chat_flow,
    plain_flow,
    tool_flow,
    typed_flow,
)
from byzer_agents.chat.tracing import RunTracer
from byzer_agents.exceptions import ConfigurationError, ConfigurationTypeError
from byzer_agents.prompts.environment import render
from byzer_agents.tools import ToolChoice, ToolLike, ToolSet
from byzer_agents.tools.toolset import ToolChoiceMode
from byzer_agents.types import ChatRequest, Message, make_completion

if TYPE_CHECKING:
    from byzer_agents.traces import TraceStore

__all__ = [
    "ChatOptions",
    "Conversation",
    "ExtractOptions",
    "ToolChoiceLike",
    "choose_flow",
    "extraction_messages",
    "first_request",
    "messages_of",
    "open_store",
    "run_failure",
    "run_status",
    "tools_of",
    "trace_streamed",
    "traced_stream",
]

Conversation: TypeAlias = str | Sequence[Mapping[str, Any]]
"""A prompt (one user message) or OpenAI chat messages."""

ToolChoiceLike: TypeAlias = (
    ToolChoiceMode | str | ToolChoice | Callable[..., Any] | Mapping[str, Any] | None
)
"""``"auto"`` / ``"none"`` / ``"required"``, the name (or the Tool, or the function) of the one
tool the model must call, a ``ToolChoice``, or OpenAI's ``{"type": "function", ...}``."""


class ExtractOptions(TypedDict, total=False):
    """The keyword arguments of ``extract`` and its kin, besides the type and the text."""

    model: str | None
    max_retries: int | None
    llm_config: Mapping[str, Any] | None


class ChatOptions(ExtractOptions, total=False):
    """The keyword arguments of ``chat_oai`` after ``response_class``."""

    response_after_chat: bool


def messages_of(conversations: Conversation) -> list[Message]:
    """The conversation as a list of message dicts (a string is one user message)."""
    if isinstance(conversations, str):
        return [{"role": "user", "content": conversations}]
    messages: list[Message] = []
    for index, message in enumerate(conversations):
        if not isinstance(message, Mapping) or "role" not in message:
            raise ConfigurationTypeError(
                f"conversations[{index}] must be a message dict with a 'role' "
                f"(system, user, assistant or tool), got {message!r:.200}"
            )
        messages.append(dict(message))
    if not messages:
        raise ConfigurationError("conversations is empty: give at least one message")
    return messages


def extraction_messages(text_or_messages: Conversation) -> list[Message]:
    """The messages of an extraction: a text is wrapped in the extraction prompt."""
    if isinstance(text_or_messages, str):
        return [{"role": "user", "content": render("extract.j2", text=text_or_messages)}]
    return messages_of(text_or_messages)


def first_request(flow: Flow) -> ChatRequest:
    """The request a flow's first model call sends (``stream_extract`` streams it)."""
    effect = next(flow)
    flow.close()
    request: ChatRequest = effect.request  # type: ignore[union-attr]  # a typed flow asks first
    return request


def tools_of(
    *,
    tools: Sequence[ToolLike] | None,
    tool_choice: ToolChoiceLike,
    execute_tool: bool,
    response_class: object,
    response_after_chat: bool,
) -> tuple[ToolSet, ToolChoice]:
    """The tools a ``chat_oai`` call offers and its tool choice, once its arguments are checked
    against each other (contradicting ones are refused, saying which)."""
    mode = tool_choice.mode if isinstance(tool_choice, ToolChoice) else tool_choice
    if tools and response_class is not None:
        raise ConfigurationError(
            "give tools or response_class, not both: a call either calls tools or answers typed"
        )
    if not tools and (execute_tool or mode not in (None, "none", "auto")):
        raise ConfigurationError(
            f"execute_tool / tool_choice={tool_choice!r} need tools, and none were given"
        )
    if response_after_chat and response_class is None:
        raise ConfigurationError("response_after_chat=True needs a response_class to extract")
    toolset = ToolSet(tools or ())
    return toolset, _tool_choice(tool_choice, toolset)


def choose_flow(
    settings: ChatSettings,
    messages: list[Message],
    tools: tuple[ToolSet, ToolChoice],
    *,
    execute_tool: bool,
    response_class: object,
    response_after_chat: bool,
) -> Flow:
    """The flow for a call's checked arguments (``tools_of``): tool calls, a typed answer
    (directly or after a free answer), or text."""
    toolset, choice = tools
    if toolset and choice.mode != "none":
        return tool_flow(settings, messages, toolset, choice, execute=execute_tool)
    if response_class is not None and response_after_chat:
        return after_chat_flow(settings, messages, response_class)
    if response_class is not None:
        return typed_flow(settings, messages, response_class)
    return plain_flow(settings, messages)


def _tool_choice(tool_choice: ToolChoiceLike, toolset: ToolSet) -> ToolChoice:
    """``tool_choice`` read against the offered tools; a ToolChoice's tool must be one of them."""
    if not isinstance(tool_choice, ToolChoice):
        return ToolChoice.parse(tool_choice, toolset)
    return ToolChoice.parse(tool_choice.tool or tool_choice.mode, toolset)


@contextlib.contextmanager
def run_status(tracer: RunTracer) -> Iterator[None]:
    """Close the traced run as ok, or as error when the call raised."""
    try:
        yield
    except BaseException:
        tracer.finish("error")
        raise
    tracer.finish("ok")


@contextlib.contextmanager
def run_failure(tracer: RunTracer) -> Iterator[None]:
    """Close the traced run as error when a stream fails (a stream the caller stops reading is
    not a failure, and is left alone)."""
    try:
        yield
    except Exception:
        tracer.finish("error")
        raise


def traced_stream(
    settings: ChatSettings, request: ChatRequest, pieces: Iterator[str]
) -> Iterator[str]:
    """``pieces`` passed through; the whole text is traced when the stream ends."""
    collected: list[str] = []
    with run_failure(settings.tracer):
        for piece in pieces:
            collected.append(piece)
            yield piece
    trace_streamed(settings, request, "".join(collected))


def trace_streamed(settings: ChatSettings, request: ChatRequest, text: str) -> None:
    """Record a streamed answer as one model call, and close the run as ok."""
    settings.tracer.model_call(
        request,
        make_completion(model=settings.model, content=text),
        latency_s=0.0,
        attempt=1,
        status="ok",
    )
    settings.tracer.finish("ok")


def open_store(store: TraceStore | str | os.PathLike[str] | None) -> TraceStore | None:
    """The trace store at a path (opened), the store given, or None."""
    if store is None or not isinstance(store, str | os.PathLike):
        return store
    from byzer_agents.traces import TraceStore

    return TraceStore(Path(store))
