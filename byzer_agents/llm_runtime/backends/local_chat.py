"""What every local chat engine (transformers, DeepSpeed, vLLM, llama.cpp) does alike around its own
generation: the request checks, the token budget, the tokens and texts that end an answer, and
the answer written back as a message, a completion or its last stream chunks.

Each engine keeps only what differs: how it tokenizes, batches, constrains and decodes. So a
request is refused with the same words, and an output read into the same message, whichever
engine runs the model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from openai.types.chat import ChatCompletionMessageFunctionToolCall

from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.context_length import new_token_budget
from byzer_agents.llm_runtime.structured_output import OutputSpec, tool_calls_in_text
from byzer_agents.prompts.chat_templates import ChatTemplate
from byzer_agents.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    CompletionUsage,
    FinishReason,
    make_chunk,
    make_completion,
    make_tool_call,
    make_tool_call_chunk,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "EndMarkers",
    "LocalEngine",
    "Sampling",
    "answer_chunks",
    "answer_finish_reason",
    "closing_chunks",
    "completion_of",
    "end_markers",
    "engine_meta",
    "message_of",
    "new_tokens_for",
    "no_embeddings",
    "sampling_of",
    "single_choice",
    "stop_strings",
    "usage_of",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512
"""New tokens per request when it sets no ``max_tokens`` (never beyond ``max_model_len``)."""


# --- reading a request ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn; ``temperature=None`` is greedy decoding."""

    temperature: float | None
    top_p: float


def sampling_of(request: ChatRequest) -> Sampling:
    """``request``'s temperature and top_p, checked; a temperature of 0 (or none) is greedy."""
    temperature, top_p = request.temperature, request.top_p
    if temperature is not None and temperature < 0:
        raise ConfigurationError(f"temperature must be 0 (greedy) or more; got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ConfigurationError(f"top_p must be in (0, 1]; got {top_p}")
    if not temperature:
        return Sampling(temperature=None, top_p=1.0)
    return Sampling(temperature=float(temperature), top_p=float(top_p or 1.0))


def stop_strings(request: ChatRequest) -> tuple[str, ...]:
    """``request``'s own stop strings, refused when one is empty (it would end every answer)."""
    stops = tuple(request.stop or ())
    if any(not stop for stop in stops):
        raise ConfigurationError(f"stop strings must not be empty; got {list(stops)!r}")
    return stops


def single_choice(request: ChatRequest, engine: str) -> None:
    """Refuse ``n`` other than 1: a local engine answers one choice per request."""
    if request.n != 1:
        raise ConfigurationError(
            f"n={request.n}: {engine} answers with one choice per request; send n=1 "
            "(concurrent requests are batched)"
        )


def new_tokens_for(
    request: ChatRequest, *, prompt_tokens: int, model_name: str, model_len: int
) -> int:
    """How many tokens the answer to ``request`` may take (``DEFAULT_MAX_TOKENS`` when it sets
    no ``max_tokens``), within the room the prompt leaves."""
    return new_token_budget(
        request,
        prompt_tokens=prompt_tokens,
        model_name=model_name,
        model_len=model_len,
        default=DEFAULT_MAX_TOKENS,
    )


@dataclass(frozen=True)
class EndMarkers:
    """What ends an answer: token ids, and the chat template's stop strings that are no token."""

    token_ids: frozenset[int]
    texts: tuple[str, ...]


def end_markers(
    tokenizer: Any,
    template: ChatTemplate,
    *,
    model_name: str,
    eos_ids: frozenset[int] = frozenset(),
) -> EndMarkers:
    """The end markers of ``template`` for ``tokenizer``: its end-of-sequence token, ``eos_ids``
    (the model's own, from its generation config), and each template stop that is one token."""
    ids = set(eos_ids)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    texts: list[str] = []
    vocabulary = tokenizer.get_vocab()
    for stop in template.stop:
        if stop in vocabulary:
            ids.add(int(vocabulary[stop]))
        else:
            texts.append(stop)
    if not ids:
        raise ConfigurationError(
            f"the tokenizer of {model_name!r} names no end-of-sequence token and the chat "
            f"template {template.name!r} no stop token; generation could not end"
        )
    return EndMarkers(frozenset(ids), tuple(texts))


# --- writing the answer -----------------------------------------------------------------------


def message_of(
    text: str, *, spec: OutputSpec | None, offers_tools: bool, model_name: str
) -> tuple[str | None, list[ChatCompletionMessageFunctionToolCall]]:
    """The answer's content and tool calls from the generated ``text``.

    ``spec``: what a grammar held the output to (None when nothing did); a constrained output
    that fails its check comes back as text, for the chat loop to see and feed back as it would
    an unconstrained answer. Unconstrained, tool calls are read from the text when tools were
    offered."""
    if spec is not None:
        problem = spec.check(text)
        if problem is not None:
            logger.warning("%s: constrained output does not validate: %s", model_name, problem)
            return text, []
        content, calls = spec.to_message(text)
        if not calls and spec.allows_text and (written := tool_calls_in_text(text)):
            # tool_choice "auto": a model that writes its call as the prompt format shows
            # (a fenced JSON block) takes the free-text branch; read the call from the text.
            return None, written
        return content, [make_tool_call(name, arguments) for name, arguments in calls]
    if offers_tools and (written := tool_calls_in_text(text)):
        return None, written
    return text, []


def answer_finish_reason(reason: Literal["stop", "length"], *, called: bool) -> FinishReason:
    """The finish reason an answer reports: ``"tool_calls"`` when it called tools and ended on
    its own; ``"length"`` when it was cut off, calls or not."""
    return "tool_calls" if called and reason == "stop" else reason


def usage_of(prompt_tokens: int, completion_tokens: int) -> CompletionUsage:
    """The token counts of one request."""
    return CompletionUsage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def completion_of(
    text: str,
    *,
    model_name: str,
    spec: OutputSpec | None,
    offers_tools: bool,
    reason: Literal["stop", "length"],
    usage: CompletionUsage,
) -> ChatCompletion:
    """The one-choice completion for a generated ``text`` (read as ``message_of`` reads it)."""
    content, tool_calls = message_of(
        text, spec=spec, offers_tools=offers_tools, model_name=model_name
    )
    return make_completion(
        model=model_name,
        content=content,
        tool_calls=tool_calls,
        finish_reason=answer_finish_reason(reason, called=bool(tool_calls)),
        usage=usage,
    )


def answer_chunks(
    text: str,
    *,
    model_name: str,
    completion_id: str,
    spec: OutputSpec | None,
    offers_tools: bool,
) -> tuple[list[ChatCompletionChunk], bool]:
    """A whole answer as stream chunks (an answer that may call tools is sent once complete),
    and whether it called tools."""
    content, tool_calls = message_of(
        text, spec=spec, offers_tools=offers_tools, model_name=model_name
    )
    if tool_calls:
        chunk = make_tool_call_chunk(
            model=model_name, completion_id=completion_id, tool_calls=tool_calls
        )
        return [chunk], True
    if content:
        return [make_chunk(model=model_name, completion_id=completion_id, content=content)], False
    return [], False


def closing_chunks(
    *, model_name: str, completion_id: str, finish_reason: FinishReason, usage: CompletionUsage
) -> Iterator[ChatCompletionChunk]:
    """A stream's last two chunks: the finish reason, then the usage."""
    yield make_chunk(model=model_name, completion_id=completion_id, finish_reason=finish_reason)
    yield make_chunk(model=model_name, completion_id=completion_id, usage=usage)


# --- what the engine says about itself --------------------------------------------------------


class LocalEngine(Protocol):
    """What ``engine_meta`` reads of a local backend."""

    model_name: str
    model_path: Path
    checkpoint: Path
    max_model_len: int
    chat_template: ChatTemplate


def engine_meta(backend: LocalEngine, engine: str, *, dtype: str, device: str) -> dict[str, Any]:
    """The ``meta()`` keys every local engine reports; each adds its own."""
    return {
        "model_deploy_type": "local",
        "backend": engine,
        "model": backend.model_name,
        "model_path": str(backend.model_path),
        "checkpoint": str(backend.checkpoint),
        "max_model_len": backend.max_model_len,
        "dtype": dtype.removeprefix("torch."),
        "device": device,
        "chat_template": backend.chat_template.name,
    }


def no_embeddings(model_name: str, engine: str) -> NotImplementedError:
    """The error a chat model's ``embed`` raises, naming what to deploy instead."""
    return NotImplementedError(
        f"{model_name!r} is a chat model ({engine}): it makes no embeddings; deploy an embedding "
        "model (EmbeddingBackend, e.g. all-MiniLM-L6-v2) for embed()"
    )
