"""How many new tokens a local backend may generate for a request: the room the model's context
length leaves after the prompt, held to the caller's own limit when it set one
(``ChatRequest.max_model_len``, from ``LLM.setup_max_model_length``).

The two limits differ in one way, on purpose. The deployment's own context length caps an answer
(a ``max_tokens`` beyond the room left is cut to it, and ``finish_reason="length"`` says so), as
the backends always have. A limit the caller set is Byzer-LLM's guard, kept as it was: a prompt
and ``max_tokens`` that together exceed it are refused, naming the lengths, rather than cut.
"""

from __future__ import annotations

from byzer_agents.exceptions import ContextLengthError
from byzer_agents.types import ChatRequest

__all__ = ["new_token_budget"]


def new_token_budget(
    request: ChatRequest, *, prompt_tokens: int, model_name: str, model_len: int, default: int
) -> int:
    """The ``max_new_tokens`` for ``request``: its ``max_tokens`` (else ``default``), within the
    room left by a ``prompt_tokens``-long prompt. ContextLengthError when the prompt leaves no
    room, or when prompt and ``max_tokens`` exceed the caller's ``max_model_len``."""
    wanted = request.max_tokens
    limit = request.max_model_len
    if limit is not None and prompt_tokens + (wanted or 1) > limit:
        # The name the caller gave setup_max_model_length, not the deployment's model name.
        held = f"setup_max_model_length holds {request.model or model_name!r} to {limit} tokens"
        problem = (
            f"the prompt is {prompt_tokens} tokens and max_tokens={wanted}, "
            f"{prompt_tokens + wanted} in all, and {held}; shorten the messages or lower "
            "max_tokens"
            if wanted
            else f"the prompt is {prompt_tokens} tokens, and {held}, which leaves no room for "
            "an answer; shorten the messages"
        )
        raise ContextLengthError(
            problem,
            prompt_tokens=prompt_tokens,
            max_tokens=wanted,
            limit=limit,
        )
    room = min(model_len, limit or model_len) - prompt_tokens
    if room < 1:
        raise ContextLengthError(
            f"the prompt is {prompt_tokens} tokens, and {model_name!r} takes at most "
            f"max_model_len={model_len} tokens in all; shorten the messages",
            prompt_tokens=prompt_tokens,
            max_tokens=wanted,
            limit=model_len,
        )
    return min(wanted or default, room)
