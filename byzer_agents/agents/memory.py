"""A conversation fitted to the model's context: the system messages kept, then as many of the
latest turns as fit, an assistant message that calls tools always kept with the tool results
that answer it (a model must never see a result without its call)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from byzer_agents.types import Message

__all__ = ["answer_reserve", "rough_tokens", "trim_history"]

_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4
_DEFAULT_RESERVE = 1024


def rough_tokens(message: Message) -> int:
    """About how many tokens ``message`` takes (four characters a token, plus its framing):
    no tokenizer is needed, and it errs on the generous side for English and code."""
    text = json.dumps(message, ensure_ascii=False, default=str)
    return len(text) // _CHARS_PER_TOKEN + _TOKENS_PER_MESSAGE


def answer_reserve(context_tokens: int, max_tokens: int | None) -> int:
    """The tokens to leave for the answer: ``max_tokens`` when set, else a quarter of the context
    up to 1024."""
    if max_tokens is not None:
        return max_tokens
    return min(_DEFAULT_RESERVE, context_tokens // 4)


def trim_history(
    messages: Sequence[Message],
    budget: int | None,
    count: Callable[[Message], int] = rough_tokens,
) -> list[Message]:
    """``messages`` within ``budget`` tokens (``None``: all): the leading system messages, then
    the latest turns that fit, the last turn always. A turn is one message, or an assistant's
    tool calls with the tool results after them."""
    if budget is None:
        return list(messages)
    head_length = 0
    while head_length < len(messages) and messages[head_length].get("role") == "system":
        head_length += 1
    head = list(messages[:head_length])
    turns: list[list[Message]] = []
    for message in messages[head_length:]:
        if message.get("role") == "tool" and turns:
            turns[-1].append(message)
        else:
            turns.append([message])
    left = budget - sum(count(message) for message in head)
    kept: list[list[Message]] = []
    for turn in reversed(turns):
        cost = sum(count(message) for message in turn)
        if cost > left and kept:
            break
        kept.append(turn)
        left -= cost
    return head + [message for turn in reversed(kept) for message in turn]
