"""The new-token budget: the deployment's context length caps an answer; a caller's
``max_model_len`` refuses a prompt and ``max_tokens`` that do not fit it, naming the lengths."""

from __future__ import annotations

import pytest

from byzer_agents.exceptions import ByzerAgentsError, ContextLengthError
from byzer_agents.llm_runtime.context_length import new_token_budget
from byzer_agents.types import ChatRequest


def _budget(prompt_tokens: int, model_len: int = 100, **fields: int) -> int:
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], **fields)
    return new_token_budget(
        request, prompt_tokens=prompt_tokens, model_name="m", model_len=model_len, default=50
    )


def test_without_max_tokens_the_answer_gets_the_default_within_the_room_left() -> None:
    assert (_budget(10), _budget(80)) == (50, 20)


def test_the_deployments_own_length_caps_max_tokens() -> None:
    assert _budget(90, max_tokens=30) == 10


def test_a_prompt_that_fills_the_deployments_length_is_refused() -> None:
    with pytest.raises(ContextLengthError, match=r"100 tokens.*max_model_len=100") as refused:
        _budget(100)
    assert (refused.value.prompt_tokens, refused.value.limit) == (100, 100)


def test_a_callers_length_refuses_prompt_and_max_tokens_that_exceed_it() -> None:
    with pytest.raises(ContextLengthError) as refused:
        _budget(30, max_tokens=40, max_model_len=64)
    message = str(refused.value)
    assert "30 tokens and max_tokens=40, 70 in all" in message
    assert "setup_max_model_length holds 'm' to 64 tokens" in message
    assert isinstance(refused.value, ByzerAgentsError) and isinstance(refused.value, ValueError)


def test_a_callers_length_leaves_the_room_left_without_max_tokens() -> None:
    assert _budget(30, max_model_len=64) == 34
    assert _budget(30, max_tokens=34, max_model_len=64) == 34


def test_the_smaller_of_the_two_lengths_holds() -> None:
    assert _budget(90, max_model_len=1000) == 10
